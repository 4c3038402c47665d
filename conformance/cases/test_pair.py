"""Pair cases: a third party's server and client together, checked only at their terminals.

The suite types at both terminals and reads both screens; their client reaches their server
through a relay that re-segments the stream. What a case checks is what the assignment fixes:
the handle prompt, `handle> ` before each prompt and each message from the peer, 500-character
messages, strict turns (client first), `\\quit` on either side, and a server that goes on to
the next client. See conformance/pair.py for how "waits for its user" is decided.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance.checks import CaseFailure
from conformance.pair import C2S, S2C, SERVER_HANDLE, PairRun, Relay, Side, handle_from_prompt, short, vanish
from conformance.plugin import Options

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
    """Their server, a relay, their client past its handle and waiting for its first message."""
    server = pair.start_server()
    relay = pair.relay(mode)
    client = pair.start_client(relay, handle)
    return relay, server, client


def expect_shown(lines: list[str], expected: str, reqs: str, who: str, what: str, left: str | None = None) -> None:
    """`expected` as exactly one whole line among `lines` (what `who` showed after a message).
    With `left` (the receiver's own prompt), also after that prompt: a program that read a line
    typed ahead leaves its prompt alone on the line, since the terminal echoed the line earlier."""
    hits = sum(1 for line in lines if line == expected or (left is not None and line == left + expected))
    if hits == 1:
        return
    if hits > 1:
        got = f"shown {hits} times"
    elif not lines:
        got = "no new line at all"
    else:
        got = f"{len(lines)} new line(s): " + ", ".join(short(line, 70) for line in lines[-6:])
    raise CaseFailure(reqs, f"the {who} shows {what} once, as one line", [short(expected)], got)


def client_turn(pair: PairRun, client: Side, text: str, reqs: str = "A-2", left: str | None = None) -> str:
    """The client says `text`; the server shows `Chris> text` and waits for its operator.
    Returns the server's handle, learnt from its prompt."""
    lines = pair.client_says(client, text)
    expect_shown(lines, f"{client.handle}> {text}", reqs, "server", "the client's message after its handle", left)
    assert pair.server is not None
    pair.expect_turn(pair.server, "A-2", "after the client's message the server waits for its operator")
    return pair.learn_server_handle()


def server_turn(pair: PairRun, client: Side, text: str, reqs: str = "A-2") -> None:
    """The server says `text`; the client shows `HANDLE> text` and waits for its user."""
    lines = pair.server_says(client, text)
    expect_shown(lines, f"{pair.server_handle}> {text}", reqs, client.role,
                 "the server's message after the server's handle")
    pair.expect_turn(client, "A-2", f"after the server's message the {client.role} waits for its user")


def serve_next(pair: PairRun, relay: Relay, reqs: str, after: str) -> None:
    """A new client is served: its message shows on the server (whatever the prefix looks like)."""
    assert pair.server is not None
    if not pair.server.program.alive():
        raise CaseFailure(reqs, f"after {after} the server keeps running, for the next client",
                          ["the server is still running"], f"it {pair.server.program.exit_description()}")
    try:
        nxt = pair.start_client(relay, "Dana")
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


# --- the pair starts --------------------------------------------------------------------------


@case("P-INFER-1", reqs="A-1 A-2 A-4", title="the pair starts and takes a turn each (what the suite inferred)")
def case_infer(pair: PairRun, ctx) -> None:
    relay, server, client = begin(pair)
    pair.client_says(client, "hello")
    pair.expect_turn(server, "A-2", "after the client's first message the server waits for its operator")
    server_prompt = server.last_line
    pair.server_says(client, "hi")
    pair.expect_turn(client, "A-2", "after the server's reply the client waits for its user again")
    handle = handle_from_prompt(server_prompt)  # not a verdict here: P-PREFIX-1 checks the prompt
    asked = (f"it asked {short(pair.server_question)}, answered {SERVER_HANDLE!r}" if pair.server_question
             is not None else "not asked for one")
    ctx.note((f"server handle {handle!r}" if handle else f"no server handle in the prompt {short(server_prompt)}")
         + f" ({asked}); client asks {short(pair.client_question or '')}", in_title=True)
    ctx.note(f"server prompt {short(server_prompt)}; client prompt {short(client.last_line)}")
    if relay.errors:
        ctx.note("; ".join(relay.errors))


# --- what the screens show --------------------------------------------------------------------


@case("P-PREFIX-1", reqs="A-2", title="both prompts and both peers' messages show as 'handle> '",
      needs=("P-INFER-1",))
def case_prefix(pair: PairRun) -> None:
    _, _, client = begin(pair)
    if client.last_line != "Chris> ":
        raise CaseFailure("A-2", "the client's prompt in its turn, after the handle 'Chris'", ["'Chris> '"],
                          short(client.last_line))
    client_turn(pair, client, "hello there")
    server_turn(pair, client, "hi, Chris")
    if client.last_line != "Chris> ":
        raise CaseFailure("A-2", "the client's prompt after the server's message", ["'Chris> '"],
                          short(client.last_line))
    client_turn(pair, client, "and again")


@case("P-HANDLE-1", reqs="A-1", title="the client asks for a handle; 10 characters are kept whole",
      needs=("P-PREFIX-1",))
def case_handle(pair: PairRun) -> None:
    _, _, client = begin(pair, handle="Christophe")
    if not (pair.client_question or "").strip():
        raise CaseFailure("A-1", "the client asks for a handle before it waits", ["a question on the screen"],
                          "an empty line")
    if client.last_line != "Christophe> ":
        raise CaseFailure("A-1 A-2", "the client's prompt after the 10-character handle 'Christophe'",
                          ["'Christophe> '"], short(client.last_line))
    client_turn(pair, client, "ten letters", reqs="A-1 A-2")


@case("P-LONG-1", reqs="A-3", title="a 500-character message arrives whole each way, sent one byte at a time",
      needs=("P-PREFIX-1",))
def case_long(pair: PairRun, ctx) -> None:
    relay, _, client = begin(pair, "bytewise")
    client_turn(pair, client, LONG_FROM_CLIENT, reqs="A-3 A-2")
    server_turn(pair, client, LONG_FROM_SERVER, reqs="A-3 A-2")
    link = relay.latest
    if link is not None:
        ctx.note(f"relay wrote {link.c2s.segments} segments to the server and {link.s2c.segments} to the client")


# --- turns ------------------------------------------------------------------------------------


@case("P-TURN-1", reqs="A-4", title="turns alternate, client first: a line typed out of turn waits or is refused",
      needs=("P-PREFIX-1",))
def case_turns(pair: PairRun) -> None:
    relay, server, client = begin(pair)
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
    expect_shown(lines, "Chris> one", "A-2", "server", "the client's message after its handle")
    # A server that kept the early line (it read its terminal only in its turn) sends it now;
    # its prompt is then left alone on its line, and the next message follows it there.
    kept = [line for line in client.lines_since(cmark) if line.endswith("> early")]
    if kept:
        pair.server_handle = kept[0].removesuffix("> early")
    else:
        pair.expect_turn(server, "A-4", "after the client's message the server waits for its operator")
        pair.learn_server_handle()
        server_turn(pair, client, "r1")
    pair.expect_turn(client, "A-4", "the client's turn again")
    client_turn(pair, client, "two", left=f"{pair.server_handle}> " if kept else None)
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
    expect_shown(lines, f"{pair.server_handle}> r2", "A-2", "client", "the server's reply after its handle")


# --- framing --------------------------------------------------------------------------------


@case("P-FRAME-1", reqs="A-3", title="messages stay whole when segments are coalesced (a handshake and a message "
      "in one segment)", needs=("P-PREFIX-1",))
def case_coalesced(pair: PairRun, ctx) -> None:
    server = pair.start_server()
    relay = pair.relay("coalesce", gated=True)  # each direction held from the start, until released
    client = pair.start_client(relay, reach_prompt=False)
    rest = pair.rest()
    merged = []
    if not (rest.ok and rest.kind(client.role) == "user" and client.last_line == "Chris> "):
        relay.release(C2S)  # it waits for the server's answer to what it sent: let everything go
        relay.release(S2C)
        pair.expect_turn(client, "A-2", "the client waits for its first message")
    if held := relay.held(C2S):
        # It sent bytes (a handshake) and then waited for its user without needing an answer:
        # those bytes and its first message reach the server in one segment.
        mark = server.mark()
        relay.release(C2S, after_more=pair.opts.step / 2)
        client.type("first")
        pair.settle("the client's first message, coalesced with its earlier bytes", "A-3")
        lines = server.lines_since(mark)
        merged.append(f"the client's first {held} byte(s) and its first message")
    else:
        relay.release(C2S)
        lines = pair.client_says(client, "first")
    expect_shown(lines, "Chris> first", "A-3 A-2", "server", "the client's first message")
    pair.expect_turn(server, "A-2", "after the client's message the server waits for its operator")
    handle = pair.learn_server_handle()
    if held := relay.held(S2C):
        # The server's earlier bytes are still held: they go with its first message.
        mark = client.mark()
        relay.release(S2C, after_more=pair.opts.step / 2)
        server.type("second")
        pair.settle("the server's first message, coalesced with its earlier bytes", "A-3")
        lines = client.lines_since(mark)
        merged.append(f"the server's first {held} byte(s) and its first message")
    else:
        relay.release(S2C)
        lines = pair.server_says(client, "second")
    expect_shown(lines, f"{handle}> second", "A-3 A-2", "client", "the server's first message")
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
    pair.client_says(client, "hello")
    pair.expect_turn(server, "A-2", "after the client's message the server waits for its operator")
    pair.server_says(client, "hi")
    pair.expect_turn(client, "A-2", "the client's turn")
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
