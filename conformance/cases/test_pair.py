"""Pair cases: a third party's server and client together, checked only at their terminals.

The suite types at both terminals and reads both screens; their client reaches their server
through a relay that re-segments the stream. What a case checks is what the assignment fixes:
the handle prompt and its limit, the handle before each prompt and each message from the peer,
messages up to the limit (multibyte ones too) and none over it, strict turns (client first),
empty lines, the quit word on either side, a second client that does not disturb a
conversation, a server that goes on to the next client, and the server's status lines. The
limits and texts are the course's (the run's --profile, else the default: conformance/
assignment.py); no case writes one of its own. P-PREFIX-1 alone holds the pair to the
profile's prompt form (`handle> ` by default), and P-STATUS-1/2 to its status lines; every other
case judges whole lines in the form the pair uses (learnt from its prompts: see
conformance/pair.py, which also says how "waits for its user" is decided and how a pair's start
is recognised).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance.assignment import Assignment
from conformance.checks import CaseFailure, ProgramDied
from conformance.pair import C2S, S2C, SERVER_HANDLE, PairRun, Relay, Side, short, vanish
from conformance.plugin import Options
from conformance.screen import Form, handle_piece

case = pytest.mark.case


def text_of(length: int, letter: str, words: str, end: str) -> str:
    """`length` printable ASCII characters (the assignment's programs need not know UTF-8), no edge
    spaces: numbered `words` (`c000 quick brown fox c001 ...`), then `end`."""
    return "".join(f"{letter}{i:03d} {words} " for i in range(length // 8 + 2))[:length - 1] + end


def multibyte_of(length: int, letter: str) -> str:
    """`length` characters of 2-, 3- and 4-byte UTF-8 (`é€😀`) and `letter`, no edge spaces."""
    pattern = f"{letter}é€😀 "
    return (pattern * (length // len(pattern) + 2))[:length - 1] + "€"


def handle_of(length: int) -> str:
    """A handle of `length` letters: `Christophe` for 10."""
    return ("Christophe" + "rAlexanderMontgomery" * (length // 20 + 1))[:length]


def over_handle_of(length: int) -> str:
    """A handle of `length` letters that shares no start with the others: `Maximiliano` for 11."""
    return ("Maximiliano" + "Bartholomew" * (length // 11 + 1))[:length]


def long_from_client(a: Assignment) -> str:
    return text_of(a.message_limit, "c", "quick brown fox", "!")


def long_from_server(a: Assignment) -> str:
    return text_of(a.message_limit, "s", "lazy dog jumps, ok", "?")


def profile_form(a: Assignment) -> Form:
    """The course's prompt form (`{handle}> ` is ('', '> '))."""
    before, placeholder, after = a.prompt.partition("{handle}")
    return Form(before, after) if placeholder else Form(a.prompt, "", False)


@pytest.fixture
def pair(opts: Options, ctx) -> Iterator[PairRun]:
    run = PairRun(opts, ctx.watch)
    yield run
    run.close()


def begin(pair: PairRun, mode: str = "pass", handle: str = "Chris") -> tuple[Relay, Side, Side]:
    """Their server, a relay, their client past its handle, at the client's turn: where the client
    sent a first message by itself, the server's operator has answered it."""
    server = pair.start_server()
    relay = pair.relay(mode)
    client = pair.start_client(relay, handle)
    if pair.auto_message is not None:
        server_turn(pair, client, "welcome")
    return relay, server, client


def client_turn(pair: PairRun, client: Side, text: str, reqs: str = "A-2", left: str | None = None) -> str:
    """The client says `text`; the server shows it after the client's handle and waits for its
    operator. Returns the line it showed."""
    assert pair.server is not None
    lines = pair.client_says(client, text)
    line = pair.expect_message(lines, client, text, reqs, "the client's message after its handle", left)
    pair.expect_turn(pair.server, "A-2", "after the client's message the server waits for its operator")
    return line


def server_turn(pair: PairRun, client: Side, text: str, reqs: str = "A-2") -> str:
    """The server says `text`; the client shows it after the server's handle and waits for its user.
    Returns the line it showed."""
    assert pair.server is not None
    lines = pair.server_says(client, text)
    line = pair.expect_message(lines, pair.server, text, reqs, "the server's message after the server's handle")
    pair.expect_turn(client, "A-2", f"after the server's message the {client.role} waits for its user")
    return line


def exactly(pair: PairRun, got: str, expected: str, what: str) -> None:
    """P-PREFIX-1: `got` is `expected` (in the course's prompt form) to the character."""
    if got != expected:
        raise CaseFailure("A-2", what, [short(expected)], f"{short(got)} (this pair's prompts look like {pair.form}; "
                                                           "the other cases judge lines in its own form)")


def serve_next(pair: PairRun, relay: Relay, reqs: str, after: str) -> None:
    """A new client is served: its message shows on the server (whatever the prefix looks like)."""
    assert pair.server is not None
    if not pair.server.program.alive():
        raise CaseFailure(reqs, f"after {after} the server keeps running, for the next client",
                          ["the server is still running"], f"it {pair.server.program.exit_description()}")
    try:
        nxt = pair.start_client(relay, "Dana")
        if nxt.auto_message is not None:  # it spoke by itself, and the server showed it
            return
        lines = pair.client_says(nxt, "again")
    except CaseFailure as exc:
        raise CaseFailure(reqs, f"after {after} the next client is served; instead: {exc.what}",
                          exc.expected, exc.got) from None
    if not any(line.endswith("again") for line in lines):
        raise CaseFailure(reqs, f"after {after} the next client is served: its message shows on the server",
                          ["Dana> again"], ", ".join(short(line, 70) for line in lines) or "no new line")
def still_running(pair: PairRun, reqs: str, after: str) -> None:
    """The server is alive and at rest (not spinning) after `after`."""
    assert pair.server is not None
    rest = pair.rest()
    if rest.kind("server") == "exited":
        raise CaseFailure(reqs, f"the server keeps running after {after}", ["the server waits for the next client"],
                          f"it {pair.server.program.exit_description()}")
    if not rest.ok:
        raise CaseFailure(reqs, f"the server comes to rest after {after}", ["the server waits for the next client"],
                          rest.why)


def first_exchange(pair: PairRun, server: Side, client: Side) -> None:
    """A turn each from the client's turn on, judging only that the turns come."""
    pair.client_says(client, "hello")
    pair.expect_turn(server, "A-2", "after the client's message the server waits for its operator")
    pair.server_says(client, "hi")
    pair.expect_turn(client, "A-2", "the client's turn")


# --- the pair starts --------------------------------------------------------------------------


@case("P-INFER-1", reqs="A-1 A-2 A-4", title="the pair starts and takes a turn each (what the suite inferred)")
def case_infer(pair: PairRun, ctx) -> None:
    server = pair.start_server()
    relay = pair.relay()
    client = pair.start_client(relay)
    if pair.auto_message is not None:  # the server's operator answers the client's own first message
        pair.server_says(client, "welcome")
        pair.expect_turn(client, "A-2 A-4", "after the server's answer to its first message the client waits "
                                            "for its user")
    pair.client_says(client, "hello")
    pair.expect_turn(server, "A-2", "after the client's message the server waits for its operator")
    server_prompt = server.last_line
    pair.server_says(client, "hi")
    pair.expect_turn(client, "A-2", "after the server's reply the client waits for its user again")
    handle = pair.server_handle
    asked = (f"it asked {short(pair.server_question)} {pair.server_asked}, answered {SERVER_HANDLE!r}"
             if pair.server_question is not None else "not asked for one")
    if pair.port_question is not None:
        asked += f"; it asked {short(pair.port_question)} for its port, which was typed"
    ctx.note((f"server handle {handle!r}" if handle else f"no server handle in the prompt {short(server_prompt)}")
             + f" ({asked}); client asks {short(pair.client_question or '')}; prompts like {pair.form}",
             in_title=True)
    ctx.note(f"server prompt {short(server_prompt)}; client prompt {short(client.last_line)}")
    if pair.auto_message is not None:
        ctx.note(f"the client sent a first message by itself (the server showed {short(pair.auto_message)}); "
                 "the server's operator spoke first, then the sides took turns")
    if relay.errors:
        ctx.note("; ".join(relay.errors))


# --- what the screens show --------------------------------------------------------------------


@case("P-PREFIX-1", reqs="A-2", title="both prompts and both peers' messages show in the course's prompt form "
      "('handle> ' by default)", kind="text", needs=("P-INFER-1",))
def case_prefix(pair: PairRun) -> None:
    a = pair.assignment
    _, _, client = begin(pair)
    exactly(pair, client.last_line, a.prefix("Chris"), "the client's prompt in its turn, after the handle 'Chris'")
    line = client_turn(pair, client, "hello there")
    prompt = pair.server_prompt or ""
    form = profile_form(a)
    handle = form.handle_in(prompt) if form.handled else pair.server_handle or SERVER_HANDLE
    if handle is None:
        raise CaseFailure("A-2", "the server's prompt while it waits for its operator",
                          [f"{form} (its handle in the course's form {a.prompt!r})"],
                          f"{short(prompt)} (this pair's prompts look like {pair.form})")
    exactly(pair, line, a.prefix("Chris") + "hello there", "the client's message on the server's screen")
    line = server_turn(pair, client, "hi, Chris")
    exactly(pair, line, a.prefix(handle) + "hi, Chris", "the server's message on the client's screen")
    exactly(pair, client.last_line, a.prefix("Chris"), "the client's prompt after the server's message")


@case("P-HANDLE-1", reqs="A-1", title="the client asks for a handle; one of the limit's length (10 by default) is "
      "kept whole", needs=("P-INFER-1",))
def case_handle(pair: PairRun) -> None:
    full = handle_of(pair.assignment.handle_limit)
    _, _, client = begin(pair, handle=full)
    if not (pair.client_question or "").strip():
        raise CaseFailure("A-1", "the client asks for a handle before it waits", ["a question on the screen"],
                          "an empty line")
    shown, where, talked = client.last_line, "the client's prompt", False
    if full not in shown and handle_piece(shown, full) is None:  # its prompt shows no handle
        shown, where = client_turn(pair, client, "ten letters", reqs="A-1 A-2"), "the client's message on the server"
        talked = True
    if full not in shown:
        piece = handle_piece(shown, full)
        raise CaseFailure("A-1", f"{where} after the {len(full)}-character handle {full!r}: the handle shows whole",
                          [f"{full!r}, as in {pair.assignment.prefix(full)!r}"],
                          short(shown) + (f" (cut to {piece!r})" if piece else "")
                          + (f"; and the client sent a first message by itself: the server showed "
                             f"{short(pair.auto_message)}" if pair.auto_message is not None else ""))
    if not talked:
        client_turn(pair, client, "ten letters", reqs="A-1 A-2")


@case("P-LONG-1", reqs="A-3", title="a message of the limit's length (500 by default) arrives whole each way, "
      "sent one byte at a time", needs=("P-INFER-1",))
def case_long(pair: PairRun, ctx) -> None:
    with pair.explaining():
        relay, _, client = begin(pair, "bytewise")
        client_turn(pair, client, long_from_client(pair.assignment), reqs="A-3 A-2")
        server_turn(pair, client, long_from_server(pair.assignment), reqs="A-3 A-2")
    link = relay.latest
    if link is not None:
        ctx.note(f"relay wrote {link.c2s.segments} segments to the server and {link.s2c.segments} to the client")


# --- turns ------------------------------------------------------------------------------------


@case("P-TURN-1", reqs="A-4", title="turns alternate, client first: a line typed out of turn waits or is refused",
      needs=("P-INFER-1",))
def case_turns(pair: PairRun) -> None:
    server = pair.start_server()
    relay = pair.relay()
    client = pair.start_client(relay)
    if pair.auto_message is not None:
        raise CaseFailure("A-4", "the client speaks first: after its handle it waits for its user's first message",
                          ["the client waits for its user; the server waits for the client"],
                          f"the client sent a first message by itself: the server showed "
                          f"{short(pair.auto_message)} and waits for its operator, before the client's user "
                          "typed anything")
    # F-1: before the client's first message the server's operator cannot send.
    before, cmark = relay.received(S2C), client.mark()
    server.type("early")
    pair.settle("a line typed at the server before the client spoke", "A-4")
    leaked = [line for line in client.lines_since(cmark) if "early" in line]
    if relay.received(S2C) != before or leaked:
        raise CaseFailure("A-4", "a line typed at the server before the client's first message is not sent then",
                          ["nothing to the client until it has spoken"],
                          f"{relay.received(S2C) - before} byte(s) went to the client"
                          + (f"; it showed {short(leaked[0])}" if leaked else ""))
    cmark = client.mark()
    lines = pair.client_says(client, "one")
    pair.expect_message(lines, client, "one", "A-2", "the client's message after its handle")
    # A server that kept the early line (it read its terminal only in its turn) sends it now;
    # its prompt is then left alone on its line, and the next message follows it there.
    kept = [line for line in client.lines_since(cmark) if line.endswith("early")]
    left = None
    if kept:
        pair.expect_message(kept, server, "early", "A-2", "the server's line, sent in its turn")
        left = pair.server_prompt = server.last_line
    else:
        pair.expect_turn(server, "A-4", "after the client's message the server waits for its operator")
        server_turn(pair, client, "r1")
    pair.expect_turn(client, "A-4", "the client's turn again")
    client_turn(pair, client, "two", left=left)
    # F-2: the client has sent; a line typed there now waits for the server's reply (or is refused).
    before, smark = relay.received(C2S), server.mark()
    client.type("extra")
    pair.settle("a line typed at the client out of turn", "A-4")
    leaked = [line for line in server.lines_since(smark) if "extra" in line]
    if relay.received(C2S) != before or leaked:
        raise CaseFailure("A-4", "a line typed at the client before the server's reply is not sent then",
                          ["nothing to the server until its operator has answered"],
                          f"{relay.received(C2S) - before} byte(s) went to the server"
                          + (f"; it showed {short(leaked[0])}" if leaked else ""))
    lines = pair.server_says(client, "r2")
    pair.expect_message(lines, server, "r2", "A-2", "the server's reply after its handle")


# --- framing --------------------------------------------------------------------------------


@case("P-FRAME-1", reqs="A-3", title="messages stay whole when segments are coalesced (a handshake and a message "
      "in one segment)", needs=("P-INFER-1",))
def case_coalesced(pair: PairRun, ctx) -> None:
    server = pair.start_server()
    relay = pair.relay("coalesce", gated=True)  # each direction held from the start, until released
    client = pair.start_client(relay, reach_prompt=False)
    merged = []
    with pair.explaining():
        rest = pair.rest()
        if not (rest.ok and rest.kind(client.role) == "user" and client.last_line.strip()):
            relay.release(C2S)  # it waits for the server's answer to what it sent: let everything go
            relay.release(S2C)
        pair.first_turn(client)
        if pair.auto_message is not None:
            server_turn(pair, client, "zero", reqs="A-3 A-2")
        if held := relay.held(C2S):
            # It sent bytes (a handshake) and then waited for its user without needing an answer:
            # those bytes and its first message reach the server in one segment.
            relay.release(C2S, after_more=pair.opts.step / 2)
            typed = pair.say(client, client, "first")
            pair.settle("the client's first message, coalesced with its earlier bytes", "A-3")
            lines = server.lines_since(typed.mark)
            merged.append(f"the client's first {held} byte(s) and its first message")
        else:
            relay.release(C2S)
            lines = pair.client_says(client, "first")
        pair.expect_message(lines, client, "first", "A-3 A-2", "the client's first message")
        pair.expect_turn(server, "A-2", "after the client's message the server waits for its operator")
        if held := relay.held(S2C):
            # The server's earlier bytes are still held: they go with its first message.
            relay.release(S2C, after_more=pair.opts.step / 2)
            typed = pair.say(server, client, "second")
            pair.settle("the server's first message, coalesced with its earlier bytes", "A-3")
            lines = client.lines_since(typed.mark)
            merged.append(f"the server's first {held} byte(s) and its first message")
        else:
            relay.release(S2C)
            lines = pair.server_says(client, "second")
        pair.expect_message(lines, server, "second", "A-3 A-2", "the server's first message")
        pair.expect_turn(client, "A-2", "after the server's message the client waits for its user")
        for n in (3, 5):
            client_turn(pair, client, f"message {n}", reqs="A-3 A-2")
            server_turn(pair, client, f"message {n + 1}", reqs="A-3 A-2")
    ctx.note("coalesced: " + ("; ".join(merged) if merged else "nothing before the first messages (each side "
                                                                    "waits for the other's bytes first)"))


# --- the end of a conversation ----------------------------------------------------------------


@case("P-QUIT-1", reqs="A-5 A-7", title="the client's quit word (\\quit) ends it; the server serves the next client",
      needs=("P-INFER-1",))
def case_client_quit(pair: PairRun) -> None:
    relay, server, client = begin(pair)
    first_exchange(pair, server, client)
    word = pair.assignment.quit_word
    client.type(word)
    rest = pair.rest()
    if rest.kind(client.role) != "exited":
        raise CaseFailure("A-5", f"the client ends after its user types {word}", ["the client exits"],
                          f"it is still running ({rest.states[client.role].detail}), showing "
                          f"{short(client.last_line)}")
    still_running(pair, "A-7", f"the client's {word}")
    serve_next(pair, relay, "A-7", f"the client's {word}")


@case("P-QUIT-2", reqs="A-6 A-7", title="the server's quit word (\\quit) ends the client; the server serves the next "
      "client",
      needs=("P-INFER-1",))
def case_server_quit(pair: PairRun) -> None:
    relay, server, client = begin(pair)
    pair.client_says(client, "hello")
    pair.expect_turn(server, "A-2", "after the client's message the server waits for its operator")
    mark, word = client.mark(), pair.assignment.quit_word
    server.type(word)
    rest = pair.rest()
    if rest.kind(client.role) != "exited":
        as_message = [line for line in client.lines_since(mark) if line.endswith(word)]
        raise CaseFailure("A-7 A-6", f"the client ends when the server's operator types {word}", ["the client exits"],
                          f"it is still running ({rest.states[client.role].detail})"
                          + (f"; it showed the {word} as a message: {short(as_message[0])}" if as_message else ""))
    still_running(pair, "A-7", f"its own {word}")
    serve_next(pair, relay, "A-7", f"the server's {word}")


@case("P-DROP-1", reqs="A-8 A-7", title="a client killed mid-conversation: the server survives and serves the next",
      needs=("P-INFER-1",))
@pytest.mark.parametrize("turn", ["client-turn", "server-turn"])
def case_client_vanishes(pair: PairRun, turn: str) -> None:
    relay, server, client = begin(pair)
    pair.client_says(client, "hello")
    pair.expect_turn(server, "A-2", "after the client's message the server waits for its operator")
    if turn == "client-turn":  # the server waits for the client's next message
        pair.server_says(client, "hi")
        pair.expect_turn(client, "A-2", "the client's turn")
    vanish(client)
    still_running(pair, "A-8 A-7", "its client was killed")
    if turn == "server-turn":  # the operator answers a client that is gone
        server.type("anyone there?")
        still_running(pair, "A-8 A-7", "its operator wrote to a client that was killed")
    serve_next(pair, relay, "A-8 A-7", "a client was killed")


# --- the assignment's limits and edges --------------------------------------------------------


@case("P-HANDLE-2", reqs="A-9", title="a handle one character over the limit is refused or asked again, never cut "
      "and used", needs=("P-INFER-1",))
def case_handle_over(pair: PairRun, ctx) -> None:
    limit = pair.assignment.handle_limit
    over = over_handle_of(limit + 1)
    pair.start_server()
    relay = pair.relay()
    client = pair.start_client(relay, handle=over, reach_prompt=False)
    rest = pair.rest()
    if rest.kind(client.role) == "exited":
        refused(pair, client, over, limit)
        ctx.note(f"the client refused the handle {over!r} and {client.program.exit_description()}")
        return
    # Asked again (a handle is welcome), or at its first turn with the handle used (this is then
    # sent as a message, and shows on the server after the handle it used).
    client.handle = "Chris"
    client.type("Chris")
    pair.first_turn(client)
    refused(pair, client, over, limit)
    if pair.auto_message is None:
        client_turn(pair, client, "hello", reqs="A-9 A-2")
    ctx.note(f"the client asked again after the handle {over!r}")


def refused(pair: PairRun, client: Side, over: str, limit: int) -> None:
    """Nothing shows that the over-long handle `over` was used: not on the server, not in the
    client's prompt (a piece of it)."""
    assert pair.server is not None
    shown = [line for line in pair.server.lines_since(client.server_mark) if over[:4] in line]
    prompt = client.last_line if not client.exited else ""
    if not shown and over[:4] in prompt and handle_piece(prompt, over):
        shown = [prompt]
    if not shown:
        return
    used = max((over[:n] for n in range(4, len(over) + 1) if any(over[:n] in line for line in shown)), key=len)
    how = "whole, over the limit" if used == over else f"cut to {used!r} without a word"
    raise CaseFailure("A-9", f"a handle of {len(over)} characters ({limit} + 1) is refused or asked again",
                      [f"the client says so and asks again (or ends); nothing of {over!r} is used"],
                      f"the client used it {how}: "
                      + ", ".join(short(line, 70) for line in shown[:3])
                      + ("" if shown[0] is prompt else " (on the server's screen)"))


def over_the_limit(pair: PairRun, client: Side, sender: Side, text: str, follow: str) -> str:
    """`text` (over the limit) typed at `sender` in its turn, then `follow` once it is its turn
    again (the other side answering whatever arrived): what became of `text`, else CaseFailure."""
    a = pair.assignment
    assert pair.server is not None
    receiver = pair.server if sender is client else client
    mark = seen = receiver.mark()
    pair.say(sender, client, text)
    pair.settle(f"a line of {len(text)} characters typed at the {sender.role}", "A-10")
    for _ in range(4):  # the receiver answers each time something of it arrived (pieces, a rest sent later)
        if not any(piece_of(line, text) for line in receiver.lines_since(seen)):
            break
        seen = receiver.mark()
        pair.say(receiver, client, "ok")
        pair.settle(f"the {receiver.role}'s answer", "A-10")
    pieces = [p for line in receiver.lines_since(mark) if (p := piece_of(line, text))]
    pair.expect_turn(sender, "A-10 A-4", f"after a line over the limit typed at the {sender.role} (and the "
                                         f"{receiver.role}'s answer to what arrived), the {sender.role}'s turn")
    lines = pair.client_says(sender, follow) if sender is client else pair.server_says(client, follow)
    joined = "".join(pieces)
    what = (f"a line of {len(text)} characters typed at the {sender.role} ({a.message_limit} + "
            f"{len(text) - a.message_limit})")
    if spilled := [line for line in lines if piece_of(line.removesuffix(follow), text)]:
        raise CaseFailure("A-10", f"{what} is refused, never cut with the rest spilled into the next message",
                          [f"the {sender.role} refuses it" + (" or sends it in pieces" if a.split_long_lines else "")],
                          f"the {receiver.role} showed {len(joined)} of its characters, then the next message "
                          f"as {short(spilled[0], 70)}")
    pair.expect_message(lines, sender, follow, "A-10 A-2", "the next message")
    if not pieces:
        return "refused"
    if len(pieces) == 1 and pieces[0] == text:
        got = f"it went whole: the {receiver.role} showed all {len(text)} characters as one message"
    elif "".join(joined.split()) == "".join(text.split()) and len(pieces) > 1:
        if a.split_long_lines and all(len(p) <= a.message_limit for p in pieces):
            return f"split into {len(pieces)} messages"
        got = (f"it went in {len(pieces)} messages of {', '.join(str(len(p)) for p in pieces)} characters"
               + ("" if a.split_long_lines else " (the course's profile does not allow that: split_long_lines "
                                                "is false)"))
    else:
        got = (f"it was cut: the {receiver.role} showed {len(joined)} of its {len(text)} characters "
               f"({short(pieces[-1][-30:])} at the end), the rest lost")
    raise CaseFailure("A-10", f"{what} is refused" + (", or split into messages within the limit"
                                                       if a.split_long_lines else ""),
                      [f"the {sender.role} says so and the line is not sent"
                       + (f", or it goes as messages of at most {a.message_limit} characters"
                          if a.split_long_lines else "")], got)


def piece_of(line: str, text: str) -> str:
    """The end of `line` that is a piece of `text` (at least 8 characters), else ''."""
    for start in range(len(line)):
        if len(line) - start < 8:
            return ""
        if line[start:] in text:
            return line[start:]
    return ""


@case("P-LONG-2", reqs="A-10", title="a line over the message limit is refused (or split, where the profile allows), "
      "never cut or spilled into the next message", needs=("P-INFER-1",))
def case_long_over(pair: PairRun, ctx) -> None:
    a = pair.assignment
    _, server, client = begin(pair)
    size = a.message_limit + 40
    from_client = over_the_limit(pair, client, client, text_of(size, "o", "over from the client", "#"), "after that")
    from_server = over_the_limit(pair, client, server, text_of(size, "b", "beyond, says the server", "#"), "back")
    ctx.note(f"{size} characters: at the client {from_client}, at the server {from_server}")


@case("P-UTF8-1", reqs="A-11", title="a message of the limit's length in multibyte UTF-8 ('é€😀') arrives whole each "
      "way, sent five bytes at a time", needs=("P-INFER-1",))
def case_multibyte(pair: PairRun) -> None:
    a = pair.assignment
    relay, _, client = begin(pair)
    relay.recut("chunks")  # the messages only: a pair's handshake, cut, is P-LONG-1's
    with pair.explaining():
        client_turn(pair, client, multibyte_of(a.message_limit, "c"), reqs="A-11 A-2")
        server_turn(pair, client, multibyte_of(a.message_limit, "s"), reqs="A-11 A-2")


def empty_line(pair: PairRun, client: Side, sender: Side) -> str:
    """An empty line typed at `sender` in its turn: both go on, and it is `sender`'s turn again
    (it was refused), or the other's (it went as an empty message, which the other answers)."""
    assert pair.server is not None
    receiver = pair.server if sender is client else client
    mark = receiver.mark()
    pair.say(sender, client, "")
    rest = pair.settle(f"an empty line typed at the {sender.role}", "A-12")
    for side in (pair.server, client):
        if rest.kind(side.role) == "exited":
            raise ProgramDied("A-12", f"after an empty line typed at the {sender.role}, the {side.role} "
                                      f"{side.program.exit_description()}", ["both go on"], "(see the screen below)")
    shown = receiver.lines_since(mark)
    handle = pair.server_handle if sender is pair.server else sender.handle
    prefix = pair.display.prefix(sender.role, handle)
    if prefix is not None and any(line.rstrip() == prefix.rstrip() for line in shown):
        if sender is client:
            server_turn(pair, client, "an answer", reqs="A-12 A-2")
        else:
            client_turn(pair, client, "an answer", reqs="A-12 A-2")
        how = "went as an empty message"
    else:
        how = "was refused"
    rest = pair.rest()
    if rest.kind(sender.role) != "user":
        raise CaseFailure("A-12", f"after an empty line typed at the {sender.role} the turns go on: its turn again",
                          [f"the {sender.role} waits for its user"],
                          f"it {rest.states[sender.role].detail if sender.role in rest.states else 'is gone'}, "
                          f"showing {short(sender.last_line)}"
                          + (f"; the {receiver.role} showed " + ", ".join(short(line, 60) for line in shown[-3:])
                             if shown else ""))
    return how


@case("P-EMPTY-1", reqs="A-12", title="an empty line typed on either side neither crashes a program nor breaks the "
      "turns", needs=("P-INFER-1",))
def case_empty(pair: PairRun, ctx) -> None:
    _, server, client = begin(pair)
    at_client = empty_line(pair, client, client)
    client_turn(pair, client, "after an empty line", reqs="A-12 A-2")
    at_server = empty_line(pair, client, server)
    server_turn(pair, client, "mine too", reqs="A-12 A-2")
    ctx.note(f"an empty line at the client {at_client}, at the server {at_server}")


@case("P-BUSY-1", reqs="A-13", title="a second client during a conversation does not disturb it", needs=("P-INFER-1",))
def case_second_client(pair: PairRun, ctx) -> None:
    _, server, client = begin(pair)  # connected, at the client's turn: the conversation is on
    second = pair.start_other_client(pair.relay(), ("Dana", "intruder"))
    try:
        client_turn(pair, client, "still there?", reqs="A-13 A-2")
        server_turn(pair, client, "yes", reqs="A-13 A-2")
    except CaseFailure as exc:
        raise type(exc)(" ".join(exc.reqs), f"once a second client had started ({second_state(second)}), "
                                            f"{exc.what}", exc.expected, exc.got) from None
    if intruded := [line for line in server.lines_since(second.server_mark) if "intruder" in line]:
        raise CaseFailure("A-13", "the second client's message does not show in the conversation",
                          ["the second client is refused or waits"], f"the server showed {short(intruded[0])}")
    ctx.note(f"the second client {second_state(second)}")


def second_state(side: Side) -> str:
    if side.exited or not side.program.alive():
        return side.program.exit_description()
    return f"waits ({side.state().detail}), showing {short(side.last_text)}"


# --- the server's status lines ------------------------------------------------------------------


def status_line(pair: PairRun, mark: int, expected: list[str], what: str, reqs: str) -> None:
    """One of `expected` on a line of the server's since `mark` (after a prompt of its own, if one
    was left on the line); else CaseFailure."""
    assert pair.server is not None
    lines = pair.server.lines_since(mark)
    prompts = {p for p in (pair.server_question, pair.server_prompt) if p}
    for line in lines:
        for text in expected:
            if line == text or (line.endswith(text) and line[: -len(text)] in prompts):
                return
    raise CaseFailure(reqs, what, [short(text) for text in expected[:1]],
                      ", ".join(short(line, 80) for line in lines[-6:]) or "no new line")


@case("P-STATUS-1", reqs="A-14", title="the server shows the profile's connected line with the client's address",
      kind="text", needs=("P-INFER-1",))
def case_connected_line(pair: PairRun) -> None:
    a = pair.assignment
    relay, _, client = begin(pair)
    link = relay.latest
    assert link is not None
    host, port = link.address[:2]
    forms = [f"({host!r}, {port})", str(tuple(link.address))]
    expected = list(dict.fromkeys(a.connected_line.replace("{address}", f) for f in forms))
    status_line(pair, client.server_mark, expected, f"the server's line once a client connected from {forms[0]}",
                "A-14")


@case("P-STATUS-2", reqs="A-15", title="the server shows the profile's dropped line when the client leaves",
      kind="text", needs=("P-INFER-1",))
def case_dropped_line(pair: PairRun) -> None:
    a = pair.assignment
    _, server, client = begin(pair)
    mark = server.mark()
    client.type(a.quit_word)
    pair.rest()
    status_line(pair, mark, [a.dropped_line], f"the server's line once the client left (its user typed "
                                              f"{a.quit_word})", "A-15")
