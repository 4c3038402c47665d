"""Pair cases: a third party's server and client together, checked only at their terminals.

The suite types at both terminals and reads both screens; their client reaches their server
through a relay that re-segments the stream. What a case checks is what the assignment fixes:
the handle prompt, the handle before each prompt and each message from the peer, 500-character
messages, strict turns (client first), `\\quit` on either side, and a server that goes on to the
next client. P-PREFIX-1 alone holds the pair to the form `handle> `; every other case judges
whole lines in the form the pair uses (learnt from its prompts: see conformance/pair.py, which
also says how "waits for its user" is decided and how a pair's start is recognised).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance.checks import CaseFailure
from conformance.pair import C2S, S2C, SERVER_HANDLE, PairRun, Relay, Side, handle_from_prompt, short, vanish
from conformance.plugin import Options
from conformance.screen import handle_piece

case = pytest.mark.case
# 500 printable ASCII characters (the assignment's programs need not know UTF-8), no edge spaces.
LONG_FROM_CLIENT = "".join(f"c{i:03d} quick brown fox " for i in range(30))[:499] + "!"
LONG_FROM_SERVER = "".join(f"s{i:03d} lazy dog jumps, ok " for i in range(30))[:499] + "?"


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
    """P-PREFIX-1: `got` is `expected` to the character."""
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


@case("P-PREFIX-1", reqs="A-2", title="both prompts and both peers' messages show as 'handle> '", kind="text",
      needs=("P-INFER-1",))
def case_prefix(pair: PairRun) -> None:
    _, _, client = begin(pair)
    exactly(pair, client.last_line, "Chris> ", "the client's prompt in its turn, after the handle 'Chris'")
    line = client_turn(pair, client, "hello there")
    prompt = pair.server_prompt or ""
    handle = handle_from_prompt(prompt)
    if handle is None:
        raise CaseFailure("A-2", "the server's prompt while it waits for its operator",
                          ["'HANDLE> ' (its handle, then '> ')"], f"{short(prompt)} (this pair's prompts look "
                                                                  f"like {pair.form})")
    exactly(pair, line, "Chris> hello there", "the client's message on the server's screen")
    line = server_turn(pair, client, "hi, Chris")
    exactly(pair, line, f"{handle}> hi, Chris", "the server's message on the client's screen")
    exactly(pair, client.last_line, "Chris> ", "the client's prompt after the server's message")


@case("P-HANDLE-1", reqs="A-1", title="the client asks for a handle; 10 characters are kept whole",
      needs=("P-INFER-1",))
def case_handle(pair: PairRun) -> None:
    _, _, client = begin(pair, handle="Christophe")
    if not (pair.client_question or "").strip():
        raise CaseFailure("A-1", "the client asks for a handle before it waits", ["a question on the screen"],
                          "an empty line")
    shown, where, talked = client.last_line, "the client's prompt", False
    if "Christophe" not in shown and handle_piece(shown, "Christophe") is None:  # its prompt shows no handle
        shown, where = client_turn(pair, client, "ten letters", reqs="A-1 A-2"), "the client's message on the server"
        talked = True
    if "Christophe" not in shown:
        piece = handle_piece(shown, "Christophe")
        raise CaseFailure("A-1", f"{where} after the 10-character handle 'Christophe': the handle shows whole",
                          ["'Christophe', as in 'Christophe> '"],
                          short(shown) + (f" (cut to {piece!r})" if piece else "")
                          + (f"; and the client sent a first message by itself: the server showed "
                             f"{short(pair.auto_message)}" if pair.auto_message is not None else ""))
    if not talked:
        client_turn(pair, client, "ten letters", reqs="A-1 A-2")


@case("P-LONG-1", reqs="A-3", title="a 500-character message arrives whole each way, sent one byte at a time",
      needs=("P-INFER-1",))
def case_long(pair: PairRun, ctx) -> None:
    with pair.explaining():
        relay, _, client = begin(pair, "bytewise")
        client_turn(pair, client, LONG_FROM_CLIENT, reqs="A-3 A-2")
        server_turn(pair, client, LONG_FROM_SERVER, reqs="A-3 A-2")
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


@case("P-QUIT-1", reqs="A-5 A-7", title="the client's \\quit ends it; the server serves the next client",
      needs=("P-INFER-1",))
def case_client_quit(pair: PairRun) -> None:
    relay, server, client = begin(pair)
    first_exchange(pair, server, client)
    client.type("\\quit")
    rest = pair.rest()
    if rest.kind(client.role) != "exited":
        raise CaseFailure("A-5", "the client ends after its user types \\quit", ["the client exits"],
                          f"it is still running ({rest.states[client.role].detail}), showing "
                          f"{short(client.last_line)}")
    still_running(pair, "A-7", "the client's \\quit")
    serve_next(pair, relay, "A-7", "the client's \\quit")


@case("P-QUIT-2", reqs="A-6 A-7", title="the server's \\quit ends the client; the server serves the next client",
      needs=("P-INFER-1",))
def case_server_quit(pair: PairRun) -> None:
    relay, server, client = begin(pair)
    pair.client_says(client, "hello")
    pair.expect_turn(server, "A-2", "after the client's message the server waits for its operator")
    mark = client.mark()
    server.type("\\quit")
    rest = pair.rest()
    if rest.kind(client.role) != "exited":
        as_message = [line for line in client.lines_since(mark) if line.endswith("\\quit")]
        raise CaseFailure("A-7 A-6", "the client ends when the server's operator types \\quit", ["the client exits"],
                          f"it is still running ({rest.states[client.role].detail})"
                          + (f"; it showed the \\quit as a message: {short(as_message[0])}" if as_message else ""))
    still_running(pair, "A-7", "its own \\quit")
    serve_next(pair, relay, "A-7", "the server's \\quit")


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
