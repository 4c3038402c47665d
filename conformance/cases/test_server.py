"""Server cases: the suite plays the client over real TCP and watches the server's terminal.

Each case names the PROTOCOL.md requirements it checks. Wire cases run in each delivery of
W-5 (whole, bytewise, split inside the header, coalesced with the next frame).

Behaviour apart from wording: where PROTOCOL.md fixes an exact text or exit status, checking
it is a case of its own, marked `kind="text"` (S-LISTEN-1, S-HELLO-3, S-TEXT-*, S-ERR-3). Every
other case judges what the server does, and learns what it shows instead of assuming the
reference's words: a message is shown on a line holding the client's handle before the text,
the operator is prompted (the server waits for its user; its prompt is learnt then), a
conversation that ends is followed by a line of the server's own, and so on. One wording of
one's own therefore FAILs one text case, not the behaviour around it.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import vectors
from chatwire import ConnectionClosed, Error, ErrorCode, FrameType, Hello, Message, Quit
from conformance import procstate
from conformance.checks import CaseFailure, ProgramDied
from conformance.controllers import LEFT_AS_FOUND, Context, ModeCheck, ServerPool, ServerUnderTest
from conformance.peer import DELIVERIES, WirePeer, describe, invalid_vector_cases, send_invalid
from conformance.plugin import Options
from conformance.plugin import case_id as id_of
from conformance.programs import SLICE, Program, listening_ports, substitute
from conformance.screen import visible

case = pytest.mark.case
deliveries = pytest.mark.parametrize("delivery", DELIVERIES)
YOU_CLOSED = "You have closed the connection..."
NOT_YOUR_TURN = "Not your turn; the line was not sent."
NO_CLIENT = "No client is connected; the line was not sent."
MIXED_500 = ("é€😀" * 167)[:500]
LINE = r"([^\r\n]*)\r\n"  # one completed line of output, as the pty shows it
FAMILIES = {"ipv4": "127.0.0.1", "ipv6": "::1"}


# --- what the server shows, learnt rather than assumed ------------------------------------------


class Learnt:
    """What this run has learnt of the server's screen, for every process of its command (a run
    is a process of its own): a server started anew after a failure shows the same prompt."""

    prompt: str | None = None


def prompt_of(srv: ServerUnderTest) -> str | None:
    return srv.prompt if srv.prompt is not None else Learnt.prompt


def expect_shown(srv: ServerUnderTest, handle: str, text: str, reqs: str, what: str) -> str:
    """A line holding `handle` and, after it, `text`: a message shown after its sender (S-5), in
    whatever form the server gives it. Returns the line as shown."""
    pattern = rf"[^\r\n]*{re.escape(handle)}[^\r\n]*{re.escape(text)}[^\r\n]*\r\n"
    match = srv.terminal.expect_re(pattern, reqs, what)
    return visible(match.group(0)[:-2])


def expect_prompt(srv: ServerUnderTest, reqs: str, what: str) -> str:
    """Until the server waits for its operator; its prompt then ('' if it shows none). The prompt
    is learnt the first time (from /proc: it waits for its user) and simply awaited afterwards."""
    term = srv.terminal
    if known := prompt_of(srv):
        try:
            term.expect_re(re.escape(known) + r"\Z", reqs, what)
            return known
        except ProgramDied:
            raise
        except CaseFailure:
            pass  # not that prompt at the end of its screen: does it wait for its user at all?
    prompt = term.wait_for_user(reqs, what)
    term.forget_unread()  # judged through /proc and the screen: the next wait starts from here
    srv.prompt = Learnt.prompt = prompt
    return prompt


def shown_line(srv: ServerUnderTest, reqs: str, what: str, typed: tuple[str, ...] = (),
               timeout: float | None = None, shown: str = "") -> str:
    """The next line the server completes that says something: not blank, not its prompt alone,
    not the echo of what the operator typed (lines holding one of `typed`), not `shown` (a line
    that was on the screen before, unfinished, such as a prompt not yet learnt)."""
    term = srv.terminal
    skip = {"", (prompt_of(srv) or "").strip(), shown.strip()}
    while True:
        line = visible(term.expect_re(LINE, reqs, what, timeout).group(1))
        if line.strip() not in skip and not any(t in line for t in typed):
            return line


def settle_line(srv: ServerUnderTest, shown: str = "") -> None:
    """No verdict: take in the next line the server shows (e.g. a closing line), if one comes
    before it is at rest, so that it is not taken for a later step's. The wait ends as soon as
    the server is idle (Program.idle); a full step only while it is busy, as on a loaded machine."""
    if srv.program:
        with contextlib.suppress(CaseFailure):
            shown_line(srv, "", "a line", timeout=srv.opts.step, shown=shown)


def connected(srv: ServerUnderTest, handle: str = "Chris", host: str | None = None) -> WirePeer:
    """A connection past HELLO, the line the server shows for it (if any) taken in."""
    peer = srv.handshake(handle, host)
    settle_line(srv)
    return peer


def end(srv: ServerUnderTest, peer: WirePeer) -> None:
    """Leave the shared server as it was: QUIT, and its closing line taken in."""
    unfinished = srv.program.last_line if srv.program else ""  # a prompt, which the closing line may end
    peer.send(Quit())
    peer.close()
    settle_line(srv, unfinished)
    peer.finish()  # until the server has closed it too: the next client is not refused as BUSY


def serves_next(srv: ServerUnderTest, reqs: str) -> None:
    """The server went back to waiting for a client: the next one is served (once the last has
    closed, as a client does after QUIT, and the server has let go of it: a drain is S-NEXT-2's)."""
    srv.close_peers()
    try:
        peer = connected(srv, "Dana")
    except CaseFailure as exc:
        raise CaseFailure(reqs, f"the next client, after the conversation ended: {exc.what}", exc.expected,
                          exc.got) from None
    end(srv, peer)


def shown_address(peer: WirePeer) -> str:
    host, port = peer.sock.getsockname()[:2]
    return repr((host.removeprefix("::ffff:"), port))


def server_turn(srv: ServerUnderTest, peer: WirePeer, text: str = "test") -> str:
    """Send a message, see it shown, and wait until the operator is prompted; the server's handle."""
    peer.send(Message(text))
    expect_shown(srv, "Chris", text, "S-5", f"the message {text[:20]!r} shown after the handle 'Chris'")
    expect_prompt(srv, "S-5", "the operator prompted after the message")
    return srv.handle


def on_screen(srv: ServerUnderTest) -> None:
    """A case about the server's screen is SKIPped with --attach (ServerUnderTest.terminal)."""
    assert srv.terminal is not None


def as_found(ctx: Context) -> None:
    """The case has left the shared server as it found it (its conversation over, its lines taken
    in): a text it then judges wrong needs no new server for the next case."""
    ctx.item.stash[LEFT_AS_FOUND] = True


def exact(reqs: str, what: str, expected: str, got: str) -> None:
    if got != expected:
        raise CaseFailure(reqs, what, [repr(expected)], repr(got))


DRAIN_LIMIT = 1.0  # W-7: seconds a closing peer drains at most
IDLE_CPU_SHARE = 0.1  # of a window: a busy loop gets far more, even a fifth of a core on a loaded machine


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) of the process tree of `pid` so far, from /proc."""
    ticks = 0
    for member in procstate.descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def take(peer: WirePeer, size: int, timeout: float) -> bytes:
    """Up to `size` bytes from the raw socket within `timeout`, leaving our side open (WirePeer's
    reads end our side after a QUIT or ERROR, which would end the server's drain, W-7)."""
    got = b""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(OSError):
        while len(got) < size and (left := deadline - time.monotonic()) > 0:
            if select.select([peer.sock], [], [], left)[0]:
                if not (data := peer.sock.recv(size - len(got))):
                    break
                got += data
    return got


# --- start and handshake ----------------------------------------------------------------------


@case("S-LISTEN-1", reqs="S-3", title="the first line is 'Listening on port N...' with the real port", kind="text")
def case_listening_line(server: ServerUnderTest, ctx: Context) -> None:
    term = server.terminal
    if "\n" not in term.transcript:
        term.expect_text("\r\n", "S-3", "a first line")
    first = term.transcript.split("\n", 1)[0]
    as_found(ctx)
    exact("S-3", "the server's first line", f"Listening on port {server.port}...", first)


@case("S-LISTEN-2", reqs="S-1 S-3", title="with port 0 it listens on a port the system chose, and shows that port")
def case_listening_port_zero(opts: Options, ctx: Context, server_pool: ServerPool) -> None:
    if opts.attach:
        pytest.skip("not applicable with --attach: this case needs a server process of its own")
    if server_pool.start_failure:  # as for every server this run starts (ServerPool.start)
        pytest.skip(f"BLOCKED: {server_pool.start_failure}")
    argv = substitute(opts.command, port=0, host=opts.host, handshake_timeout=opts.handshake_timeout)
    program = Program("server (port 0)", argv, opts.step)
    ctx.watch(program)
    try:
        answered = False
        while not (ports := listening_ports(program.pid)):
            if not program.settle_idle() or program.ended or not program.alive():
                break
            if (ports := listening_ports(program.pid)) or answered or program.last_state is None \
                    or program.last_state.kind != "user":
                break
            program.type("HostA")  # it asks its user something before it listens (its handle, say)
            answered = True
        if not ports:
            state = program.exit_description() if not program.alive() else f"it {program.idle_description()}"
            raise CaseFailure("S-1 S-3", "a listening socket after asking for port 0",
                              ["a socket listening on the port the system chose"], f"none: {state}")
        screen = "\n".join([*program.lines_since(0), program.last_line])
        if 0 in ports or not any(re.search(rf"(?<!\d){port}(?!\d)", screen) for port in ports):
            raise CaseFailure("S-1 S-3", "the port it listens on, shown on its screen after asking for port 0",
                              [f"the number {' or '.join(map(str, sorted(ports)))}"], repr(screen[-300:]))
    finally:
        program.stop()


@case("S-HELLO-1", reqs="W-1 W-3 W-5 F-1 S-4", title="HELLO is answered with the server's HELLO")
@deliveries
def case_hello(server: ServerUnderTest, delivery: str) -> None:
    peer = server.connect()
    if delivery == "coalesced":
        peer.send_ahead(Hello("Chris"), Message("test"))  # the first MESSAGE in the HELLO's segment
        peer.assume_sent(Hello("Chris"))
    else:
        peer.send(Hello("Chris"), delivery=delivery)
    reply = peer.expect("W-1 W-3 F-1 S-4", "the server's answer to HELLO 'Chris'")
    if not isinstance(reply, Hello):
        raise CaseFailure("F-1 S-4", "the server's answer to HELLO 'Chris'", ["HELLO with the server's handle"],
                          describe(reply))
    server.handle = reply.handle
    if delivery == "coalesced":
        peer.assume_sent(Message("test"))
        if server.program:
            expect_shown(server, "Chris", "test", "W-5 S-5", "the MESSAGE that came in the HELLO's segment")
    else:
        settle_line(server)  # the line for the new connection
    end(server, peer)


@case("S-HELLO-2", reqs="W-1 W-3 S-1", title="the default HELLO is the golden 48 00 05 48 6f 73 74 41",
      needs=("S-HELLO-1",))
def case_hello_golden(server: ServerUnderTest) -> None:
    peer = server.connect()
    peer.send(Hello("Chris"))
    if any(part.startswith("--handle") for part in server.opts.command):
        pytest.skip("the server command sets its handle: the default's golden bytes do not apply")
    peer.expect_bytes("W-1 W-3 S-1", "HELLO 'HostA' (the default handle), byte for byte",
                      vectors.by_name("hello-hosta").data)
    settle_line(server)
    end(server, peer)


# --- messages -------------------------------------------------------------------------------


@case("S-MSG-1", reqs="W-5 S-5", title="a MESSAGE is shown after the client's handle, then the operator is prompted",
      needs=("S-HELLO-1",))
@deliveries
def case_message_shown(server: ServerUnderTest, delivery: str) -> None:
    peer = connected(server)
    if delivery == "coalesced":
        peer.send(Message("test"), Quit(), delivery="coalesced")
        expect_shown(server, "Chris", "test", "W-5 S-5", "the message, before the QUIT in its segment")
        peer.expect_closed("W-5 S-9", "the server closes after the QUIT that followed")
        shown_line(server, "W-5 S-9", "a line saying that the conversation ended, for the QUIT that followed")
        return
    peer.send(Message("test"), delivery=delivery)
    expect_shown(server, "Chris", "test", "W-5 S-5", "the message shown after the handle 'Chris'")
    expect_prompt(server, "S-5", "the operator prompted after the message")
    end(server, peer)


@case("S-TEXT-1", reqs="S-5 A-2", title="the message is shown as 'Chris> test', the prompt is 'HostA> '",
      needs=("S-HELLO-1",), kind="text")
@pytest.mark.parametrize("text", ["message", "prompt"])
def case_message_texts(server: ServerUnderTest, ctx: Context, text: str) -> None:
    peer = connected(server)
    peer.send(Message("test"))
    line = expect_shown(server, "Chris", "test", "S-5", "the message shown after the handle 'Chris'")
    prompt = expect_prompt(server, "S-5", "the operator prompted after the message")
    end(server, peer)
    as_found(ctx)
    if text == "message":
        exact("S-5", "the line showing the MESSAGE 'test' of the client 'Chris'", "Chris> test", line)
    else:
        exact("S-5", "the operator's prompt, with the server's handle", f"{server.handle}> ", prompt)


@case("S-ADDR-1", reqs="S-3 S-4", title="IPv4 and IPv6 clients are both served", needs=("S-HELLO-1",))
def case_dual_stack(server: ServerUnderTest) -> None:
    for family, host in FAMILIES.items():
        try:
            peer = connected(server, host=host)
        except CaseFailure as exc:
            raise CaseFailure("S-3", f"an {family} client on {host}: {exc.what}", exc.expected, exc.got) from None
        peer.send(Message("hi"))
        if server.program:
            expect_shown(server, "Chris", "hi", "S-5", f"the message of the client on {host}")
        end(server, peer)


@case("S-HELLO-3", reqs="S-4", title="'Established connection with (HOST, PORT)...' names the client plainly",
      needs=("S-ADDR-1",), kind="text")
@pytest.mark.parametrize("family", FAMILIES)
def case_established_line(server: ServerUnderTest, opts: Options, ctx: Context, family: str) -> None:
    on_screen(server)
    peer = server.handshake(host=FAMILIES[family])
    line = shown_line(server, "S-4", "the line for the new connection")
    address = shown_address(peer)
    end(server, peer)
    as_found(ctx)
    exact("S-4", f"the line naming this {family} client's address and port",
          opts.assignment.connected_line.replace("{address}", address), line)


@case("S-MSG-2", reqs="S-5 W-3", title="the operator's line goes out as the golden MESSAGE 'hello'",
      needs=("S-HELLO-1",))
def case_operator_message(server: ServerUnderTest) -> None:
    peer = connected(server)
    server_turn(server, peer)
    server.terminal.type("hello")
    peer.expect_bytes("S-5 W-3", "MESSAGE 'hello', byte for byte", vectors.by_name("message-hello").data)
    end(server, peer)


@case("S-MSG-3", reqs="T-3 S-5", title="500 code points of 2-4 byte UTF-8 arrive intact each way",
      needs=("S-HELLO-1",))
def case_long_messages(server: ServerUnderTest) -> None:
    peer = connected(server)
    server_turn(server, peer, MIXED_500)
    server.terminal.type(MIXED_500[::-1])
    peer.expect("T-3 S-5", "the operator's 500-code-point line as one MESSAGE", Message(MIXED_500[::-1]))
    end(server, peer)


BAD_LINES = {"empty": ("", "is empty"), "too-long": ("x" * 501, "is longer than 500 characters"),
             "control": ("bell\x07", "contains control characters")}


@case("S-MSG-4", reqs="S-6 T-3", title="empty, 501-character and control-character lines are refused, and asked again",
      needs=("S-HELLO-1",))
def case_operator_bad_lines(server: ServerUnderTest) -> None:
    peer = connected(server)
    server_turn(server, peer)
    for name, (line, _) in BAD_LINES.items():
        server.terminal.type(line)
        expect_prompt(server, "S-6", f"the operator asked again after a line that is {name}")
    peer.expect_quiet("S-6", "nothing on the wire for refused lines")
    server.terminal.type("x" * 500)
    peer.expect("S-6 T-3", "a 500-character line is sent whole", Message("x" * 500))
    end(server, peer)


@case("S-TEXT-2", reqs="S-6 T-5", title="a refused line is explained as 'Message not sent: it PHRASE.'",
      needs=("S-HELLO-1",), kind="text")
@pytest.mark.parametrize("bad", BAD_LINES)
def case_refusal_text(server: ServerUnderTest, ctx: Context, bad: str) -> None:
    line, phrase = BAD_LINES[bad]
    peer = connected(server)
    server_turn(server, peer)
    server.terminal.type(line)
    said = shown_line(server, "S-6 T-5", f"the reason for a line that {phrase}", typed=(line[:4],) if line else ())
    end(server, peer)
    as_found(ctx)
    exact("S-6 T-5", f"the line explaining why a line that {phrase} was not sent",
          f"Message not sent: it {phrase}.", said)


@case("S-MSG-5", reqs="S-6 F-2", title="a line typed out of turn is not sent, then or later", needs=("S-HELLO-1",))
def case_operator_out_of_turn(server: ServerUnderTest) -> None:
    peer = connected(server)
    server_turn(server, peer)
    term = server.terminal
    term.type("line-one")
    peer.expect("S-5", "the operator's message", Message("line-one"))
    term.type("line-two")  # the client's turn
    term.wait_for_user("S-6 F-2", "the server back at rest after a line typed out of turn")
    term.forget_unread()
    peer.send(Message("three"))
    expect_shown(server, "Chris", "three", "S-5", "the client's next message")
    expect_prompt(server, "S-5", "the operator prompted after it")
    peer.expect_quiet("S-6 F-2", "nothing on the wire for the line typed out of turn, then or in the next turn")
    end(server, peer)


@case("S-TEXT-3", reqs="S-6 F-2", title="a line typed out of turn or with no client: 'Not your turn; ...' or "
      "'No client is connected; ...'", needs=("S-HELLO-1",), kind="text")
@pytest.mark.parametrize("when", ["not-your-turn", "no-client"])
def case_not_sent_texts(server: ServerUnderTest, ctx: Context, when: str) -> None:
    term = server.terminal
    if when == "no-client":
        term.type("line-nobody")
        said = shown_line(server, "S-6", "the notice for a line typed with no client", typed=("line-nobody",))
        as_found(ctx)
        exact("S-6", "the line saying that a line typed with no client was not sent", NO_CLIENT, said)
        return
    peer = connected(server)
    server_turn(server, peer)
    term.type("line-one")
    peer.expect("S-5", "the operator's message")
    term.type("line-two")
    said = shown_line(server, "S-6 F-2", "the notice for a line typed out of turn", typed=("line-one", "line-two"))
    end(server, peer)
    as_found(ctx)
    exact("S-6 F-2", "the line saying that a line typed out of turn was not sent", NOT_YOUR_TURN, said)


# --- the end of a conversation ----------------------------------------------------------------


@case("S-QUIT-1", reqs="S-9 W-8", title="the client's QUIT ends the conversation; the next client is served",
      needs=("S-HELLO-1",))
@deliveries
def case_client_quit(server: ServerUnderTest, delivery: str) -> None:
    peer = connected(server)
    if delivery == "coalesced":
        peer.send(Message("bye"), Quit(), delivery="coalesced")
    else:
        peer.send(Quit(), delivery=delivery)
    peer.expect_closed("S-9 W-8", "the server closes after the client's QUIT")
    if server.program:
        if delivery == "coalesced":
            expect_shown(server, "Chris", "bye", "W-5 S-5", "the message before the QUIT")
        shown_line(server, "S-9", "a line saying that the client ended the conversation")
    serves_next(server, "S-9")


@case("S-QUIT-2", reqs="S-9 W-3 W-7", title="the operator's \\quit sends the golden QUIT, closes, and waits for "
      "the next client", needs=("S-HELLO-1",))
def case_operator_quit(server: ServerUnderTest) -> None:
    peer = connected(server)
    server_turn(server, peer)
    server.terminal.type("\\quit")
    peer.expect_bytes("S-9 W-3", "QUIT, byte for byte", vectors.by_name("quit").data)
    peer.expect_closed("W-7", "the connection closes after QUIT")
    shown_line(server, "S-9", "a line saying that the operator ended the conversation", typed=("\\quit",))
    serves_next(server, "S-9")


@case("S-QUIT-3", reqs="F-3 S-6", title="\\quit works out of turn too", needs=("S-HELLO-1",))
def case_operator_quit_out_of_turn(server: ServerUnderTest) -> None:
    peer = connected(server)
    server.terminal.type("\\quit")  # the client's turn
    peer.expect("F-3", "QUIT while it is the client's turn", Quit())
    peer.expect_closed("W-7", "the connection closes after QUIT")
    shown_line(server, "S-9", "a line saying that the operator ended the conversation", typed=("\\quit",))


@case("S-TEXT-4", reqs="S-9", title="'The client has dropped the connection...' and 'You have closed the "
      "connection...'", needs=("S-HELLO-1",), kind="text")
@pytest.mark.parametrize("how", ["dropped", "lost", "you-closed"])
def case_closing_texts(server: ServerUnderTest, opts: Options, ctx: Context, how: str) -> None:
    if how == "you-closed":
        peer = connected(server)
        server_turn(server, peer)
        server.terminal.type("\\quit")
        said = shown_line(server, "S-9", "the operator's closing line", typed=("\\quit",))
        as_found(ctx)
        exact("S-9", "the line after the operator's \\quit", YOU_CLOSED, said)
        return
    peer = connected(server)
    if how == "dropped":
        peer.send(Quit())
    else:
        peer.close()
    said = shown_line(server, "S-9", "the line for the client's " + ("QUIT" if how == "dropped" else "lost connection"))
    as_found(ctx)
    exact("S-9", "the line after the client's " + ("QUIT" if how == "dropped" else "end of stream"),
          opts.assignment.dropped_line, said)


@case("S-NEXT-1", reqs="S-9 S-4", title="after a conversation ends the next client is served", needs=("S-HELLO-1",))
def case_next_client(server: ServerUnderTest) -> None:
    for handle in ("Chris", "Dana", "Eve"):
        peer = connected(server, handle)
        peer.send(Message("hi"))
        expect_shown(server, handle, "hi", "S-9 S-5", f"client {handle}'s message, after its handle")
        end(server, peer)


@case("S-DROP-1", reqs="S-9 E-5", title="a client that closes without QUIT is noticed, and the next one served",
      needs=("S-HELLO-1",))
@pytest.mark.parametrize("how", ["eof", "eof-mid-frame", "reset"])
def case_client_vanishes(server: ServerUnderTest, how: str) -> None:
    peer = connected(server)
    if how == "eof-mid-frame":
        peer.send_raw(vectors.by_name("message-test").data[:5])
    if how == "reset":
        peer.reset()
    else:
        peer.close()
    if server.program:
        shown_line(server, "S-9 E-5", "a line saying that the client's connection ended")
    server.close_peers()
    serves_next(server, "S-9")


@case("S-DROP-2", reqs="S-7 S-9", title="a client lost while the operator types is noticed on a fresh line",
      needs=("S-HELLO-1",))
def case_drop_while_typing(fresh_server: ServerUnderTest) -> None:
    srv = fresh_server
    peer = connected(srv)
    server_turn(srv, peer)
    srv.terminal.send("half a line")
    srv.terminal.expect_text("half a line", "S-7", "the echo of the typing")
    peer.close()
    rest = visible(srv.terminal.expect_re(LINE, "S-7 S-9", "the end of the line being typed").group(1))
    if rest.strip():
        raise CaseFailure("S-7", "the server's notice must start on a line of its own, not after the half-typed "
                                 "input", ["'half a line' alone, then the notice on the next line"],
                          repr("half a line" + rest))
    shown_line(srv, "S-9", "a line saying that the client's connection ended")


# --- BUSY ------------------------------------------------------------------------------------


@case("S-BUSY-1", reqs="S-8 E-4 W-7", title="a client refused gets the golden ERROR BUSY 'busy' and is closed: one "
      "arriving during a conversation, one in its handshake when another's HELLO came first", needs=("S-HELLO-1",))
@pytest.mark.parametrize("first", ["in-conversation", "hello-came-first"])
def case_busy(server: ServerUnderTest, first: str) -> None:
    if first == "in-conversation":
        one = connected(server)
        two = server.connect()
        two.send(Hello("Eve"))  # which a server that refuses at once leaves unread (W-7)
    else:
        two = server.connect()
        two.send_raw(vectors.by_name("hello-chris").data[:4])  # half a HELLO, unread when it is refused (W-7)
        one = connected(server)  # its HELLO is the first: the conversation is its, the other is refused (S-8)
    two.expect_bytes("S-8 E-4", "ERROR BUSY 'busy', byte for byte", vectors.by_name("error-busy").data)
    two.expect_closed("S-8 W-7", "the refused connection is closed")
    end(server, one)


@case("S-BUSY-2", reqs="S-8", title="the conversation goes on untouched after a second client is refused",
      needs=("S-HELLO-1",))
def case_busy_untouched(server: ServerUnderTest) -> None:
    one = connected(server)
    two = server.connect()
    refusal = two.next_event("S-8", "the second client is refused")
    if not isinstance(refusal, Error | ConnectionClosed):  # S-BUSY-1 judges the BUSY frame itself
        raise CaseFailure("S-8", "the second client is refused", ["ERROR BUSY", "the connection closed"],
                          describe(refusal))
    one.send(Message("still here"))
    expect_shown(server, "Chris", "still here", "S-8", "the first client's message after the refusal")
    if "Eve" in server.terminal.output_since():
        raise CaseFailure("S-8", "the refused client must not appear on the screen")
    end(server, one)


IDLE_HANDSHAKES = 8


def refused(event: object) -> bool:
    """Refused at once: ERROR BUSY, or (judged by S-BUSY-1, not here) closed without it."""
    return (isinstance(event, Error) and event.code == ErrorCode.BUSY) or isinstance(event, ConnectionClosed)


@case("S-BUSY-3", reqs="S-8 S-11", title="connections in their handshake keep no one out: a client arriving among "
      "idle ones is served at once, and they then get BUSY", needs=("S-HELLO-1",))
def case_handshakes_together(server: ServerUnderTest) -> None:
    idle = [server.connect() for _ in range(IDLE_HANDSHAKES)]
    for peer in idle[::2]:
        peer.send_raw(vectors.by_name("hello-chris").data[:4])  # half a HELLO, then nothing
    try:
        one = connected(server)
    except CaseFailure as exc:
        raise CaseFailure("S-8", f"a client arriving while {IDLE_HANDSHAKES} connections are in their handshake: "
                                 f"{exc.what}", exc.expected, exc.got) from None
    for n, peer in enumerate(idle, 1):
        # BUSY as soon as the conversation has begun; a server that served them one after another
        # would time each out first (TIMEOUT), or keep them waiting
        event = peer.next_event("S-8", f"the answer to idle connection {n} once another's HELLO took the "
                                       "conversation")
        if not refused(event):  # S-BUSY-1 judges the BUSY frame itself
            raise CaseFailure("S-8", f"idle connection {n} of {IDLE_HANDSHAKES}, once another client's HELLO took "
                                     "the conversation", ["ERROR BUSY", "the connection closed"], describe(event))
    one.send(Message("among idle ones"))
    if server.program:
        expect_shown(server, "Chris", "among idle ones", "S-8 S-5", "the message of the client served among idle "
                                                                     "connections")
    end(server, one)


@case("S-BUSY-4", reqs="S-8", title="with 64 connections in their handshake, the 65th gets BUSY at once",
      needs=("S-HELLO-1",))
def case_handshake_bound(server: ServerUnderTest) -> None:
    idle = [server.connect() for _ in range(64)]
    extra = server.connect()
    event = extra.next_event("S-8", "the answer to a 65th connection while 64 are in their handshake")
    if not refused(event):  # S-BUSY-1 judges the BUSY frame itself
        raise CaseFailure("S-8", "the answer to a 65th connection while 64 are in their handshake",
                          ["ERROR BUSY, at once", "the connection closed, at once"], describe(event))
    for peer in idle:
        peer.close()
    server.close_peers()
    serves_next(server, "S-8")


@case("S-NEXT-2", reqs="S-8 W-7", title="a client arriving while the last conversation's connection drains (W-7) is "
      "served", needs=("S-HELLO-1",))
def case_served_during_drain(server: ServerUnderTest) -> None:
    old = connected(server)
    server_turn(server, old)
    server.terminal.type("\\quit")
    got = take(old, 3, server.opts.step)  # the QUIT; this side stays open: the server drains it (W-7)
    if got != vectors.by_name("quit").data:
        raise CaseFailure("S-9", "QUIT after the operator's \\quit", ["51 00 00"], got.hex(" ") or "nothing")
    shown_line(server, "S-9", "a line saying that the operator ended the conversation", typed=("\\quit",))
    try:
        peer = connected(server)
    except CaseFailure as exc:
        raise CaseFailure("S-8 W-7", f"a client arriving while the last connection drains: {exc.what}",
                          exc.expected, exc.got) from None
    peer.send(Message("not kept out"))
    if server.program:
        expect_shown(server, "Chris", "not kept out", "S-8", "the message of the client served during the drain")
    old.close()
    end(server, peer)


@case("S-IDLE-1", reqs="S-14 W-7 S-11", title="waiting with a connection in its handshake and one in its W-7 drain "
      "uses no CPU", needs=("S-HELLO-1",))
def case_no_busy_loop(server: ServerUnderTest) -> None:
    if server.program is None:
        pytest.skip("not applicable with --attach: the server's CPU time is not visible")
    server.connect()  # in its handshake: a deadline (S-11)
    bad = server.connect()
    bad.send_raw(bytes.fromhex("580000"))  # MALFORMED: ERROR, then a drain (W-7) while this side stays open
    take(bad, 3, server.opts.step)  # the ERROR's header: its drain has begun
    pid = server.program.pid
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(min(0.8, server.opts.handshake_timeout * 0.8))  # the measurement: CPU time over a window
    used, window = cpu_seconds(pid) - before, time.monotonic() - started
    settle_line(server)  # the line for the ERROR sent
    if used > window * IDLE_CPU_SHARE:
        raise CaseFailure("S-14", f"CPU time while waiting {window:.2f} s, with a connection in its handshake and one "
                                  "in its drain (W-7)", [f"at most {window * IDLE_CPU_SHARE:.2f} s"],
                          f"{used:.2f} s: a busy loop")


# --- errors ---------------------------------------------------------------------------------


@case("S-ERR-1", reqs="E-2 E-3 W-3 W-4 T-1 T-3 T-4", title="each invalid frame of the vectors gets its ERROR code",
      needs=("S-HELLO-1",))
@pytest.mark.parametrize(("vector", "delivery"), invalid_vector_cases())
def case_invalid_frame(server: ServerUnderTest, vector: vectors.Vector, delivery: str) -> None:
    after_handshake = vector.data[0] in (FrameType.MESSAGE, FrameType.QUIT)
    peer = connected(server) if after_handshake else server.connect()
    send_invalid(peer, vector, delivery)
    peer.expect_error("E-2 E-3", f"the answer to frame {vector.name}", ErrorCode[vector.error])
    peer.expect_closed("E-2 W-7", "the server closes after its ERROR")
    if server.program:
        settle_line(server)
        if raw := server.program.raw_control_in_output():
            raise CaseFailure("E-2 S-13", "a raw control character reached the server's screen", ["none"], raw)


@case("S-ERR-2", reqs="E-1 E-3 F-2", title="frames out of order are UNEXPECTED", needs=("S-HELLO-1",))
@pytest.mark.parametrize("order", ["message-before-hello", "quit-before-hello", "second-hello", "two-messages"])
def case_out_of_order(server: ServerUnderTest, order: str) -> None:
    frames = {
        "message-before-hello": [vectors.by_name("message-test").data],
        "quit-before-hello": [vectors.by_name("quit").data],
        "second-hello": [vectors.by_name("hello-chris").data],
        "two-messages": [vectors.by_name("message-test").data] * 2,
    }[order]
    peer = server.connect() if order.endswith("before-hello") else connected(server)
    peer.send_raw(b"".join(frames))
    peer.expect_error("E-1 E-3 F-2", f"the answer to {order.replace('-', ' ')}", ErrorCode.UNEXPECTED)
    peer.expect_closed("E-2 W-7", "the server closes after its ERROR")
    if order == "two-messages":
        settle_line(server)  # the first message
    settle_line(server)


@case("S-ERR-3", reqs="S-10", title="a protocol error is reported as 'Closed the connection with ...: sent ERROR'",
      needs=("S-HELLO-1",), kind="text")
def case_error_line(server: ServerUnderTest, ctx: Context) -> None:
    on_screen(server)
    peer = connected(server)
    peer.send_raw(bytes.fromhex("4d07d1"))
    peer.expect_error("W-4", "the answer to a MESSAGE declaring 2001 bytes", ErrorCode.MALFORMED)
    said = shown_line(server, "S-10", "the line naming the ERROR sent")
    as_found(ctx)
    pattern = rf"Closed the connection with {re.escape(shown_address(peer))}: sent ERROR 2 MALFORMED \([^\r\n]+\)\.\.\."
    if not re.fullmatch(pattern, said):
        raise CaseFailure("S-10", "the line naming the ERROR sent",
                          [f"Closed the connection with {shown_address(peer)}: sent ERROR 2 MALFORMED (REASON)..."],
                          repr(said))


@case("S-ERR-4", reqs="S-10 S-13 W-6", title="an ERROR from the client is shown sanitised, and ends the conversation",
      needs=("S-HELLO-1",))
def case_error_received(server: ServerUnderTest) -> None:
    on_screen(server)
    peer = connected(server)
    peer.send_raw(bytes.fromhex("450008") + b"\x03bad\x1b[2J")
    said = shown_line(server, "S-10 S-13", "a line showing the client's ERROR and its reason")
    if "bad" not in said or "[2J" not in said:
        raise CaseFailure("S-10 S-13", "the client's ERROR reason 'bad ESC [2J' shown, its ESC made harmless",
                          ["a line holding 'bad', a stand-in for ESC, and '[2J'"], repr(said))
    peer.expect_closed("S-10 W-8", "the server closes after the client's ERROR")
    settle_line(server)  # the line saying that the conversation ended
    if raw := server.terminal.raw_control_in_output():
        raise CaseFailure("S-13", "a raw control character reached the server's screen", ["none"], raw)


@case("S-TEXT-5", reqs="S-10 S-13", title="the client's ERROR is shown as 'The client sent ERROR 3 UNEXPECTED: REASON'",
      needs=("S-HELLO-1",), kind="text")
def case_error_received_text(server: ServerUnderTest, ctx: Context) -> None:
    on_screen(server)
    peer = connected(server)
    peer.send_raw(bytes.fromhex("450008") + b"\x03bad\x1b[2J")
    said = shown_line(server, "S-10 S-13", "the line showing the client's ERROR")
    settle_line(server)  # the line saying that the conversation ended
    as_found(ctx)
    exact("S-10 S-13", "the line showing the client's ERROR 3 'bad ESC [2J', ESC as '?'",
          "The client sent ERROR 3 UNEXPECTED: bad?[2J", said)


@case("S-ERR-5", reqs="S-10 S-9", title="an ERROR from a connection still in its handshake shows nothing",
      needs=("S-HELLO-1",))
def case_error_in_handshake(server: ServerUnderTest) -> None:
    on_screen(server)
    peer = server.connect()
    peer.send_raw(bytes.fromhex("45000b") + b"\x03" + b"not-a-chat")
    peer.expect_closed("S-10 W-8", "the server closes after the ERROR of a connection in its handshake")
    settle_line(server)  # a line, if the server shows one: judged below
    serves_next(server, "S-10")  # and the next client is served as usual
    if "not-a-chat" in server.terminal.output_since():
        raise CaseFailure("S-10 S-9", "the ERROR of a connection that never said HELLO must not reach the screen",
                          ["nothing shown for it"], repr(server.terminal.output_since()[-300:]))


@case("S-ERR-6", reqs="S-13 T-6 W-6", title="direction overrides in an ERROR reason do not reach the screen",
      needs=("S-HELLO-1",))
def case_error_reason_overrides(server: ServerUnderTest) -> None:
    on_screen(server)
    peer = connected(server)
    reason = "bad \u202eknil\u2066 end".encode()
    peer.send_raw(bytes([FrameType.ERROR]) + (len(reason) + 1).to_bytes(2, "big") + b"\x03" + reason)
    said = shown_line(server, "S-10 S-13", "a line showing the client's ERROR and its reason")
    peer.expect_closed("S-10 W-8", "the server closes after the client's ERROR")
    settle_line(server)  # the line saying that the conversation ended
    if "bad" not in said or "end" not in said:
        raise CaseFailure("S-10 S-13", "the client's ERROR reason shown, its direction overrides made harmless",
                          ["a line holding 'bad', 'knil' and 'end', without U+202E or U+2066"], repr(said))
    if found := [f"U+{ord(ch):04X}" for ch in server.terminal.output_since() if ch in "\u202a\u202b\u202c\u202d"
                 "\u202e\u2066\u2067\u2068\u2069"]:
        raise CaseFailure("S-13 T-6", "a direction override of an ERROR reason reached the screen", ["none"],
                          ", ".join(found))


# --- the operator's keys ------------------------------------------------------------------------


@case("S-QUIT-4", reqs="S-6", title="\\quit with no conversation (a connection in its handshake) changes nothing",
      needs=("S-HELLO-1",))
def case_quit_without_conversation(fresh_server: ServerUnderTest) -> None:
    srv = fresh_server
    waiting = srv.connect()  # in its handshake: no conversation (and no waiting here: it has a timeout)
    srv.terminal.type("\\quit")
    shown_line(srv, "S-6", "the notice for \\quit typed with no conversation", typed=("\\quit",))
    waiting.send(Hello("Chris"))
    reply = waiting.expect("S-6", "the answer to the HELLO of the connection that was in its handshake "
                                      "when \\quit was typed")
    if not isinstance(reply, Hello):
        raise CaseFailure("S-6", "the connection in its handshake when \\quit was typed is served",
                          ["the server's HELLO"], describe(reply))
    settle_line(srv)
    end(srv, waiting)
    serves_next(srv, "S-6")


@case("S-CTRLC-2", reqs="S-12 W-7", title="Ctrl-C ends the server within the W-7 drain even if the client never "
      "closes", needs=("S-HELLO-1",))
def case_ctrl_c_client_open(fresh_server: ServerUnderTest) -> None:
    srv = fresh_server
    peer = connected(srv)
    server_turn(srv, peer)
    srv.terminal.interrupt()
    got = take(peer, 3, srv.opts.step)  # the QUIT; this side stays open, and reads nothing more
    if got != vectors.by_name("quit").data:
        raise CaseFailure("S-12", "QUIT after Ctrl-C", ["51 00 00"], got.hex(" ") or "nothing")
    srv.terminal.wait_exit("S-12 W-7", "Ctrl-C, with the client's side still open (the drain lasts at most 1 s)",
                           timeout=(DRAIN_LIMIT + 1.0) * srv.opts.timeout_scale)


@case("S-CTRLC-3", reqs="S-12", title="SIGTERM ends the server while its terminal's output is stopped (Ctrl-S)",
      needs=("S-HELLO-1",))
def case_signal_output_stopped(fresh_server: ServerUnderTest) -> None:
    srv = fresh_server
    peer = connected(srv)
    term = srv.terminal
    # Ctrl-S and a line (out of turn) in one write: the terminal stops its output before the line
    # can be read, so whatever the server writes about it blocks.
    term.send("\x13x\n")
    deadline = time.monotonic() + srv.opts.step
    while procstate.terminal_unread(term.pid) and time.monotonic() < deadline:
        time.sleep(SLICE)  # until it has read the line: another process's read has no event
    term.kill(signal.SIGTERM)
    peer.idle = lambda: False  # blocked in a write, it is not idle: its own way out may take a moment
    peer.expect("S-12", "QUIT after SIGTERM, with the server's terminal output stopped", Quit(),
                timeout=srv.opts.step)
    # Its W-7 drain, and a step: a server ends a write that blocks its own way (the reference's
    # watchdog is 1.5 s, the independent one's 2 s), and a loaded machine adds to it. The wait ends
    # as soon as it exits: only one that does not is waited for in full.
    limit = DRAIN_LIMIT * srv.opts.timeout_scale + srv.opts.step
    deadline = time.monotonic() + limit
    while term.alive() and time.monotonic() < deadline:
        time.sleep(SLICE)  # its screen is stopped: its exit is seen by the process, not the output
    if term.alive():
        raise CaseFailure("S-12", f"the server did not exit within {limit:g} s of SIGTERM, its terminal's output "
                                  "stopped (Ctrl-S)", ["the process ends"], "it is still running")
    term.wait_exit("S-12", "SIGTERM")  # its status: S-TEXT-6


@case("S-STDIN-1", reqs="S-12 X-2", title="with /dev/null as its input the server exits at once, without a traceback, "
      "as after Ctrl-D", needs=("S-HELLO-1",))
def case_dev_null_input(opts: Options, ctx: Context, server_pool: ServerPool) -> None:
    if opts.attach:
        pytest.skip("not applicable with --attach: this case needs a server process of its own")
    if server_pool.start_failure:  # as for every server this run starts (ServerPool.start)
        pytest.skip(f"BLOCKED: {server_pool.start_failure}")
    argv = substitute(opts.command, port=0, host=opts.host, handshake_timeout=opts.handshake_timeout)
    program = Program("server (input /dev/null)", ["/bin/sh", "-c", 'exec "$@" </dev/null', "sh", *argv], opts.step)
    at_terminal = Program("server (Ctrl-D)", argv, opts.step)
    ctx.watch(program)
    ctx.watch(at_terminal)
    try:
        status = program.wait_exit("S-12", "the end of its input (/dev/null)")
        if "Traceback" in program.transcript:
            raise CaseFailure("S-12", "a traceback on the screen with /dev/null as the server's input")
        # The status it gives for the end of its input at a terminal (S-TEXT-6 judges its value):
        # a server that crashes on /dev/null ends otherwise.
        at_terminal.wait_for_user("S-12", "the server waiting for its operator")
        at_terminal.end_input()
        exact("S-12 X-2", "the exit status with /dev/null as the server's input, as after Ctrl-D at its terminal",
              str(at_terminal.wait_exit("S-12", "Ctrl-D with no conversation")), str(status))
    finally:
        program.stop()
        at_terminal.stop()




@case("S-CTRLC-1", reqs="S-12", title="Ctrl-C in a conversation sends QUIT and ends the server without a traceback",
      needs=("S-HELLO-1",))
def case_ctrl_c(fresh_server: ServerUnderTest) -> None:
    srv = fresh_server
    peer = connected(srv)
    peer.send(Message("test"))
    expect_shown(srv, "Chris", "test", "S-5", "the message shown after the handle 'Chris'")
    srv.terminal.interrupt()
    peer.expect("S-12", "QUIT after Ctrl-C", Quit())
    srv.terminal.wait_exit("S-12", "Ctrl-C")
    if "Traceback" in srv.terminal.transcript:
        raise CaseFailure("S-12", "a traceback on the screen after Ctrl-C")


@case("S-EOF-1", reqs="S-12 S-9", title="Ctrl-D in a conversation is \\quit; with none it ends the server",
      needs=("S-HELLO-1",))
def case_ctrl_d(fresh_server: ServerUnderTest) -> None:
    srv = fresh_server
    peer = connected(srv)
    server_turn(srv, peer)
    srv.terminal.end_input()
    peer.expect("S-12", "QUIT after Ctrl-D", Quit())
    shown_line(srv, "S-9", "a line saying that the operator ended the conversation")
    serves_next(srv, "S-12 S-9")
    # typed as its operator would, once it is at rest: a server may throw away what was typed
    # before the news of the closed conversation (S-9)
    srv.terminal.wait_for_user("S-12", "the server waiting for its operator after the conversation")
    srv.terminal.end_input()
    srv.terminal.wait_exit("S-12", "Ctrl-D with no conversation")


@case("S-TEXT-6", reqs="S-12 X-2", title="the server exits with status 0 after Ctrl-C or Ctrl-D", kind="text")
@pytest.mark.parametrize("key", ["ctrl-c", "ctrl-d"])
def case_exit_status(fresh_server: ServerUnderTest, key: str) -> None:
    term = fresh_server.terminal
    term.wait_for_user("S-12", "the server waiting for its operator")  # its loop has taken over the keys
    if key == "ctrl-c":
        term.interrupt()
    else:
        term.end_input()
    status = term.wait_exit("S-12", key.capitalize())
    exact("S-12 X-2", f"the exit status after {key.capitalize()}", "0", str(status))


# --- the server's own clock ---------------------------------------------------------------------


TIMEOUT_SENDS = {"nothing": b"", "half-a-hello": vectors.by_name("hello-chris").data[:4]}
APART = "two-apart"  # S-TIMEOUT-2's own clock: two connections, the second opened a while after the first


def handshake_wait(opts: Options) -> float:
    """The server's handshake timeout: {handshake_timeout} if the command has it, else S-11's 10 s."""
    return opts.handshake_timeout if any("{handshake_timeout}" in part for part in opts.command) else 10.0


class OwnClock:
    """A server of its own for one S-TIMEOUT-1 case, and the connection that waits on its clock."""

    def __init__(self, sent: str) -> None:
        self.sent = sent
        self.server: ServerUnderTest | None = None
        self.peer: WirePeer | None = None
        self.opened = 0.0  # when the connection was made: the server's handshake clock starts at accept
        self.second: WirePeer | None = None  # APART: the connection opened a while later
        self.second_opened = 0.0
        self.answered: dict[int, float] = {}  # APART: when each connection's answer arrived (1, 2)
        self.failure: CaseFailure | None = None
        self.thread: threading.Thread | None = None


class OwnClocks:
    """The cases that wait on the server's own clock (S-11: 10 s by default) run beside the rest:
    a server of their own is started for each, and its connection opened, as the first server case
    starts; the cases, last in the module, collect the outcome at their turn."""

    def __init__(self, opts: Options, mode: ModeCheck, wanted: list[str]) -> None:
        self.opts = opts
        self.mode = mode
        self.clocks = {sent: OwnClock(sent) for sent in wanted}
        self.started = False
        self.stopping = threading.Event()  # the run ends: a thread still timing answers stops

    def start(self) -> None:
        """Each server started, and its connection opened, in a thread of its own: the first case
        goes on meanwhile, and a server slow to start delays only its own clock."""
        self.started = True
        for clock in self.clocks.values():
            clock.thread = threading.Thread(target=self._open, args=(clock,), name=f"S-TIMEOUT-1[{clock.sent}]",
                                            daemon=True)
            clock.thread.start()

    def _open(self, clock: OwnClock) -> None:
        try:
            clock.server = ServerUnderTest(self.opts, self.mode)
            # Each clock is timed from before the connect: the server's starts at its accept, which
            # cannot come earlier, whereas this thread may run again only well after connect() is done.
            clock.opened = time.monotonic()
            clock.peer = clock.server.connect()
            if clock.sent == APART:
                # The first one's clock has started once the server has read from it (it may accept
                # late, busy starting); the second comes a while after that.
                clock.peer.send_raw(TIMEOUT_SENDS["half-a-hello"])
                clock.peer.wait_consumed()
                time.sleep(apart(self.opts))  # the offset between the two connections' clocks
                clock.second_opened = time.monotonic()
                clock.second = clock.server.connect()
                self._time_answers(clock)
            elif data := TIMEOUT_SENDS[clock.sent]:
                clock.peer.send_raw(data)
        except CaseFailure as exc:
            clock.failure = exc
        except Exception as exc:  # said by the case, not lost in a thread
            clock.failure = CaseFailure("S-11", f"the server for this case could not be started: {exc!r}")

    def _time_answers(self, clock: OwnClock) -> None:
        """When each connection's answer arrives, seen without reading it (the case reads it at its
        turn, which may be long after)."""
        assert clock.peer is not None and clock.second is not None
        waiting = {clock.peer.sock: 1, clock.second.sock: 2}
        deadline = clock.opened + handshake_wait(self.opts) * self.opts.timeout_scale + self.opts.step
        while waiting and (left := deadline - time.monotonic()) > 0 and not self.stopping.is_set():
            for sock in select.select(list(waiting), [], [], min(left, SLICE))[0]:
                clock.answered[waiting.pop(sock)] = time.monotonic()

    def get(self, sent: str) -> OwnClock:
        if not self.started:
            self.start()
        clock = self.clocks[sent]
        if clock.thread:
            clock.thread.join()  # bounded: a server start waits at most a step for its listening socket
        return clock

    def stop(self) -> None:
        self.stopping.set()  # S-TIMEOUT-2 BLOCKED, its clock is not waited out
        for clock in self.clocks.values():
            if clock.thread:
                clock.thread.join()
            if clock.server:
                clock.server.stop()
                for peer in clock.server.peers:
                    with contextlib.suppress(OSError):
                        peer.sock.close()


@pytest.fixture(scope="session")
def own_clocks(request: pytest.FixtureRequest, opts: Options, mode_check: ModeCheck) -> Iterator[OwnClocks]:
    wanted = [] if opts.attach else [item.callspec.params["sent"] for item in request.session.items
                                     if id_of(item).startswith("S-TIMEOUT-1[")]
    if not opts.attach and any(id_of(item) == "S-TIMEOUT-2" for item in request.session.items):
        wanted.append(APART)
    clocks = OwnClocks(opts, mode_check, wanted)
    yield clocks
    clocks.stop()


@pytest.fixture(autouse=True)
def _start_own_clocks(own_clocks: OwnClocks) -> None:
    """As the first case starts."""
    if not own_clocks.started and own_clocks.clocks:
        own_clocks.start()


@case("S-TIMEOUT-1", reqs="S-11 E-1", title="no complete HELLO within the handshake timeout gets ERROR TIMEOUT",
      needs=("S-HELLO-1",))
@pytest.mark.parametrize("sent", TIMEOUT_SENDS)
def case_handshake_timeout(request: pytest.FixtureRequest, opts: Options, ctx: Context, own_clocks: OwnClocks,
                           sent: str) -> None:
    if opts.attach:  # one server, already running: wait here
        srv: ServerUnderTest = request.getfixturevalue("server")
        opened = time.monotonic()
        peer = srv.connect()
        if TIMEOUT_SENDS[sent]:
            peer.send_raw(TIMEOUT_SENDS[sent])
    else:
        clock = own_clocks.get(sent)
        if clock.failure:
            raise clock.failure
        assert clock.server is not None and clock.server.program is not None and clock.peer is not None
        srv, peer, opened = clock.server, clock.peer, clock.opened
        ctx.watch(clock.server.program)
    substituted = any("{handshake_timeout}" in part for part in opts.command)
    wait = (opts.handshake_timeout if substituted else 10.0) * opts.timeout_scale + opts.step
    left = max(opened + wait - time.monotonic(), opts.quiet_period)
    peer.expect_error("S-11", "the answer to a client that never completes HELLO", ErrorCode.TIMEOUT, timeout=left)
    peer.expect_closed("S-11 W-7", "the server closes after TIMEOUT")
    if not opts.attach:
        srv.close_peers()


def apart(opts: Options) -> float:
    return min(handshake_wait(opts) / 2, 1.0)


@case("S-TIMEOUT-2", reqs="S-11", title="two connections in their handshake time out each on its own clock",
      needs=("S-HELLO-1",))
def case_own_clocks(opts: Options, ctx: Context, own_clocks: OwnClocks) -> None:
    if opts.attach:
        pytest.skip("not applicable with --attach: this case needs a server process of its own")
    clock = own_clocks.get(APART)
    if clock.failure:
        raise clock.failure
    assert clock.server is not None and clock.server.program is not None
    assert clock.peer is not None and clock.second is not None
    ctx.watch(clock.server.program)
    timeout = handshake_wait(opts)
    wait = timeout * opts.timeout_scale + opts.step
    for n, (peer, opened) in enumerate(((clock.peer, clock.opened), (clock.second, clock.second_opened)), 1):
        left = max(opened + wait - time.monotonic(), opts.quiet_period)
        peer.expect_error("S-11", f"the answer to connection {n} of 2, which never says HELLO", ErrorCode.TIMEOUT,
                          timeout=left)
        waited = clock.answered.get(n, time.monotonic()) - opened
        ctx.note(f"connection {n} of 2: TIMEOUT {waited:.2f} s after it was opened")
        if waited < timeout * 0.95:  # its clock starts at its own accept, after our connect
            raise CaseFailure("S-11", f"connection {n} of 2 ({apart(opts):g} s after the first) timed out too early",
                              [f"TIMEOUT {timeout:g} s after its own accept"], f"TIMEOUT after {waited:.2f} s")
    clock.server.close_peers()
