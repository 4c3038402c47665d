"""Client cases: the suite plays the server (a scripted peer on chatwire), types into the
client's terminal, and checks its bytes, its screen and its exit status.

Each case names the PROTOCOL.md requirements it checks; wire cases run in each delivery of W-5.
"""

from __future__ import annotations

import select
import signal

import pytest

import vectors
from chatwire import Error, ErrorCode, FrameType, Hello, Message, Quit, encode, error_name
from conformance.checks import CaseFailure
from conformance.peer import DELIVERIES, WirePeer, describe, invalid_vector_cases, send_invalid
from conformance.programs import Program, free_port

case = pytest.mark.case
deliveries = pytest.mark.parametrize("delivery", DELIVERIES)
HANDLE_PROMPT = "Enter client handle (length 10 or less): "
SERVER_CLOSED = "The server has closed the connection..."
LOST = "chatclient: the connection to the server was lost"
MIXED_500 = ("é€😀" * 167)[:500]
DESCRIPTIONS = {
    1: "the server is busy with another client",
    2: "the server got a malformed frame",
    3: "the server got an unexpected frame",
    4: "the server rejected the handle",
    5: "the server timed out waiting for HELLO",
}


def expect_status(client: Program, status: int, reqs: str, after: str) -> None:
    got = client.wait_exit(reqs, after)
    if got != status:
        shown = f"killed by {signal.Signals(-got).name}" if got < 0 else str(got)
        raise CaseFailure(f"{reqs} X-1", f"the client's exit status after {after}", [str(status)], shown)


def connected(start_client, scripted_server, handle: str = "Chris") -> tuple[Program, WirePeer]:
    """A client that has typed its handle and sent its HELLO."""
    client = start_client()
    client.expect_text(HANDLE_PROMPT, "C-2", "the handle prompt")
    client.type(handle)
    peer = scripted_server.accept()
    peer.expect("C-4 F-1", f"the client's HELLO {handle!r}", Hello(handle))
    return client, peer


def in_conversation(start_client, scripted_server) -> tuple[Program, WirePeer]:
    """Past the handshake, the client's turn, its prompt showing."""
    client, peer = connected(start_client, scripted_server)
    peer.send(Hello("HostA"))
    client.expect_text("Chris> ", "C-5", "the prompt 'Chris> '")
    return client, peer


def waiting(start_client, scripted_server) -> tuple[Program, WirePeer]:
    """The client has sent 'test' and it is the server's turn."""
    client, peer = in_conversation(start_client, scripted_server)
    client.type("test")
    peer.expect("C-5", "the typed line as a MESSAGE", Message("test"))
    return client, peer


# --- handle and handshake ---------------------------------------------------------------------


@case("C-PROMPT-1", reqs="C-2", title="the handle prompt is 'Enter client handle (length 10 or less): '")
def case_handle_prompt(start_client) -> None:
    start_client().expect_text(HANDLE_PROMPT, "C-2", "the handle prompt")


@case("C-HANDLE-1", reqs="C-2 T-1 T-5", title="an invalid handle is refused with its reason and asked again",
      needs=("C-PROMPT-1",))
@pytest.mark.parametrize(("handle", "phrase"), [
    pytest.param("", "is empty", id="empty"),
    pytest.param("abcdefghijk", "is longer than 10 characters", id="eleven"),
    pytest.param("a b", "contains whitespace", id="space"),
    pytest.param("a>b", "contains '>'", id="gt"),
    pytest.param("a\x01b", "contains control characters", id="control"),
])
def case_invalid_handle(start_client, scripted_server, handle: str, phrase: str) -> None:
    client = start_client()
    client.expect_text(HANDLE_PROMPT, "C-2", "the handle prompt")
    client.type(handle)
    client.expect_line(f"Invalid handle: it {phrase}.", "C-2 T-5", "the reason the handle was refused")
    client.expect_text(HANDLE_PROMPT, "C-2", "the handle prompt again")
    ready, _, _ = select.select([scripted_server.sock], [], [], scripted_server.opts.quiet_period)
    if ready:
        raise CaseFailure("C-2", "the client connected with an invalid handle", ["no connection"], "a connection")
    client.type("abcdefghij")  # ten: the longest valid handle
    scripted_server.accept().expect("C-2 T-1", "the HELLO of a 10-character handle", Hello("abcdefghij"))


@case("C-HELLO-1", reqs="C-4 W-1 W-3", title="the HELLO for 'Chris' is the golden 48 00 05 43 68 72 69 73",
      needs=("C-PROMPT-1",))
def case_hello_golden(start_client, scripted_server) -> None:
    client = start_client()
    client.expect_text(HANDLE_PROMPT, "C-2", "the handle prompt")
    client.type("Chris")
    peer = scripted_server.accept()
    peer.expect_bytes("C-4 W-1 W-3", "HELLO 'Chris', byte for byte", vectors.by_name("hello-chris").data)


@case("C-HELLO-2", reqs="C-5 W-5", title="after the server's HELLO the prompt is 'Chris> '", needs=("C-HELLO-1",))
@deliveries
def case_server_hello(start_client, scripted_server, delivery: str) -> None:
    client, peer = connected(start_client, scripted_server)
    if delivery == "coalesced":
        peer.send(Hello("HostA"), Quit(), delivery="coalesced")
        client.expect_text("Chris> ", "C-5 W-5", "the prompt, before the QUIT in the same segment")
        client.expect_line(SERVER_CLOSED, "C-11 W-5", "the closing line for the QUIT")
        expect_status(client, 0, "C-11", "the server's QUIT")
        return
    peer.send(Hello("HostA"), delivery=delivery)
    client.expect_text("Chris> ", "C-5 W-5", "the prompt 'Chris> '")


# --- messages -------------------------------------------------------------------------------


@case("C-MSG-1", reqs="C-5 W-3", title="a typed line goes out as the golden MESSAGE 'test'", needs=("C-HELLO-2",))
def case_message_golden(start_client, scripted_server) -> None:
    client, peer = in_conversation(start_client, scripted_server)
    client.type("test")
    peer.expect_bytes("C-5 W-3", "MESSAGE 'test', byte for byte", vectors.by_name("message-test").data)


@case("C-MSG-2", reqs="C-6 W-5", title="a MESSAGE is shown as 'HostA> text', then the prompt", needs=("C-MSG-1",))
@deliveries
def case_message_shown(start_client, scripted_server, delivery: str) -> None:
    client, peer = waiting(start_client, scripted_server)
    if delivery == "coalesced":
        peer.send(Message("hello"), Quit(), delivery="coalesced")
        client.expect_line("HostA> hello", "C-6 W-5", "the message, before the QUIT in its segment")
        client.expect_line(SERVER_CLOSED, "C-11 W-5", "the closing line for the QUIT")
        expect_status(client, 0, "C-11", "the server's QUIT")
        return
    peer.send(Message("hello"), delivery=delivery)
    client.expect_line("HostA> hello", "C-6 W-5", "the message shown as 'HostA> hello'")
    client.expect_text("Chris> ", "C-6", "the prompt again")


@case("C-MSG-3", reqs="T-3 C-5 C-6", title="500 code points of 2-4 byte UTF-8 arrive intact each way",
      needs=("C-MSG-1",))
def case_long_messages(start_client, scripted_server) -> None:
    client, peer = in_conversation(start_client, scripted_server)
    client.type(MIXED_500)
    peer.expect("T-3 C-5", "the 500-code-point line as one MESSAGE", Message(MIXED_500))
    peer.send(Message(MIXED_500[::-1]))
    client.expect_line(f"HostA> {MIXED_500[::-1]}", "T-3 C-6", "the server's 500-code-point message")


@case("C-MSG-4", reqs="C-7 T-3 T-5", title="empty, 501-character and control-character lines are refused",
      needs=("C-MSG-1",))
def case_bad_lines(start_client, scripted_server) -> None:
    client, peer = in_conversation(start_client, scripted_server)
    for line, phrase in [("", "is empty"), ("x" * 501, "is longer than 500 characters"),
                         ("bell\x07", "contains control characters")]:
        client.type(line)
        client.expect_line(f"Message not sent: it {phrase}.", "C-7 T-5", f"the reason for a line that {phrase}")
        client.expect_text("Chris> ", "C-7", "the prompt again")
    peer.expect_quiet("C-7", "nothing on the wire for refused lines")
    client.type("x" * 500)
    peer.expect("C-7 T-3", "a 500-character line is sent whole", Message("x" * 500))


@case("C-MSG-5", reqs="C-7 F-2", title="a line typed out of turn is not sent", needs=("C-MSG-1",))
def case_out_of_turn(start_client, scripted_server) -> None:
    client, peer = waiting(start_client, scripted_server)
    client.type("again")
    client.expect_line("Not your turn; the line was not sent.", "C-7 F-2", "the out-of-turn notice")
    peer.expect_quiet("F-2", "nothing on the wire for a line out of turn")


# --- the end of a conversation ----------------------------------------------------------------


@case("C-QUIT-1", reqs="C-8 W-3 W-7", title="\\quit sends the golden QUIT, closes and exits 0", needs=("C-HELLO-2",))
def case_quit(start_client, scripted_server) -> None:
    client, peer = in_conversation(start_client, scripted_server)
    client.type("\\quit")
    peer.expect_bytes("C-8 W-3", "QUIT, byte for byte", vectors.by_name("quit").data)
    peer.expect_closed("C-8 W-7", "the client closes after its QUIT")
    expect_status(client, 0, "C-8", "\\quit")


@case("C-QUIT-2", reqs="C-8", title="Ctrl-D at the prompt is \\quit", needs=("C-HELLO-2",))
def case_ctrl_d(start_client, scripted_server) -> None:
    client, peer = in_conversation(start_client, scripted_server)
    client.end_input()
    peer.expect("C-8", "QUIT after Ctrl-D", Quit())
    expect_status(client, 0, "C-8", "Ctrl-D")


@case("C-QUIT-3", reqs="C-8 F-3", title="\\quit works out of turn too", needs=("C-MSG-1",))
def case_quit_out_of_turn(start_client, scripted_server) -> None:
    client, peer = waiting(start_client, scripted_server)
    client.type("\\quit")
    peer.expect("C-8 F-3", "QUIT while it is the server's turn", Quit())
    expect_status(client, 0, "C-8", "\\quit out of turn")


@case("C-QUIT-4", reqs="C-11", title="the server's QUIT: 'The server has closed the connection...', exit 0",
      needs=("C-MSG-1",))
def case_server_quit(start_client, scripted_server) -> None:
    client, peer = waiting(start_client, scripted_server)
    peer.send(Quit())
    client.expect_line(SERVER_CLOSED, "C-11", "the closing line")
    expect_status(client, 0, "C-11", "the server's QUIT")


@case("C-QUIT-5", reqs="C-10 C-11 F-3", title="a QUIT that comes while the user types is shown on a fresh line",
      needs=("C-QUIT-4",))
def case_quit_while_typing(start_client, scripted_server) -> None:
    client, peer = in_conversation(start_client, scripted_server)
    client.send("half a line")
    client.expect_text("half a line", "C-10", "the echo of the typing")
    peer.send(Quit())
    client.expect_text("\r\n" + SERVER_CLOSED + "\r\n", "C-10 C-11", "the closing line, on a line of its own")
    expect_status(client, 0, "C-11", "the server's QUIT")


@case("C-LOST-1", reqs="C-14 E-5", title="a connection lost without QUIT is one line and exit 6",
      needs=("C-MSG-1",))
@pytest.mark.parametrize("how", ["eof", "eof-mid-frame", "reset"])
def case_lost(start_client, scripted_server, how: str) -> None:
    client, peer = waiting(start_client, scripted_server)
    if how == "eof-mid-frame":
        peer.send_raw(encode(Message("hello"))[:5])
    if how == "reset":
        peer.reset()
    else:
        peer.close()
    client.expect_line(LOST, "C-14", "the lost-connection line")
    expect_status(client, 6, "C-14", "the lost connection")


@case("C-SIGPIPE-1", reqs="C-15 C-14", title="writing to a reset connection does not kill the client (SIGPIPE)",
      needs=("C-HELLO-2",))
def case_sigpipe(start_client, scripted_server) -> None:
    client, peer = in_conversation(start_client, scripted_server)
    peer.reset()
    client.type("into the void")
    status = client.wait_exit("C-15", "a line typed after the server reset the connection")
    if status == -signal.SIGPIPE:
        raise CaseFailure("C-15", "the client died of SIGPIPE", ["a one-line message and exit 6"], "killed by SIGPIPE")
    if status != 6:
        raise CaseFailure("C-14 X-1", "the client's exit status after the connection was reset", ["6"], str(status))


@case("C-CTRLC-1", reqs="C-9", title="Ctrl-C sends QUIT and exits 130", needs=("C-HELLO-2",))
def case_ctrl_c(start_client, scripted_server) -> None:
    client, peer = in_conversation(start_client, scripted_server)
    client.interrupt()
    peer.expect("C-9", "QUIT after Ctrl-C", Quit())
    expect_status(client, 130, "C-9", "Ctrl-C")


@case("C-REFUSED-1", reqs="C-3 X-1", title="a refused connection is one line and exit 3", needs=("C-PROMPT-1",))
def case_refused(start_client, opts) -> None:
    port = free_port(opts.host)
    client = start_client(port)
    client.expect_text(HANDLE_PROMPT, "C-2", "the handle prompt")
    client.type("Chris")
    client.expect_re(rf"chatclient: cannot connect to \S+ port {port}: [^\r\n]+\r\n", "C-3",
                     "the one-line connection failure")
    expect_status(client, 3, "C-3", "a refused connection")


# --- errors ---------------------------------------------------------------------------------


@case("C-ERR-1", reqs="C-12 W-6 S-13", title="an ERROR from the server is one sanitised line and exit 4",
      needs=("C-HELLO-1",))
@pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 77])
def case_error_received(start_client, scripted_server, code: int) -> None:
    client, peer = connected(start_client, scripted_server)
    reason = "busy" if code == 1 else "why\x1b[2J"
    peer.send_raw(bytes([0x45, 0, 1 + len(reason), code]) + reason.encode())
    shown = reason.replace("\x1b", "?")
    description = DESCRIPTIONS.get(code, "unknown error code")
    client.expect_line(f"chatclient: server sent ERROR {code} {error_name(code)} ({description}): {shown}",
                       "C-12 S-13", "the one-line report of the server's ERROR")
    expect_status(client, 4, "C-12", "the server's ERROR")
    if raw := client.raw_control_in_output():
        raise CaseFailure("C-12 S-13", "a raw control character reached the client's screen", ["none"], raw)


@case("C-ERR-2", reqs="E-2 E-3 C-13 W-3 W-4 T-1 T-4",
      title="each invalid non-MESSAGE frame of the vectors, in place of HELLO, gets its ERROR code, exit 5",
      needs=("C-HELLO-2",))
@pytest.mark.parametrize(("vector", "delivery"), invalid_vector_cases(lambda v: v.data[0] != FrameType.MESSAGE))
def case_invalid_frame(start_client, scripted_server, vector: vectors.Vector, delivery: str) -> None:
    client, peer = connected(start_client, scripted_server)  # in place of the server's HELLO
    reject(client, peer, vector, delivery)


@case("C-ERR-4", reqs="E-2 E-3 C-13 W-3 W-4 T-3 T-4",
      title="each invalid MESSAGE of the vectors, in the server's turn, gets its ERROR code, exit 5",
      needs=("C-MSG-1",))
@pytest.mark.parametrize(("vector", "delivery"), invalid_vector_cases(lambda v: v.data[0] == FrameType.MESSAGE))
def case_invalid_message(start_client, scripted_server, vector: vectors.Vector, delivery: str) -> None:
    client, peer = waiting(start_client, scripted_server)
    reject(client, peer, vector, delivery)


def reject(client: Program, peer: WirePeer, vector: vectors.Vector, delivery: str) -> None:
    """Send an invalid frame of the vectors; the client must answer with its ERROR and exit 5."""
    send_invalid(peer, vector, delivery)
    error = peer.expect_error("E-2 E-3", f"the answer to frame {vector.name}", ErrorCode[vector.error])
    client.expect_line(f"chatclient: protocol error: sent ERROR {error.code} {vector.error} ({error.reason})",
                       "C-13", "the one-line report of the ERROR sent")
    expect_status(client, 5, "C-13", "sending ERROR")
    if raw := client.raw_control_in_output():
        raise CaseFailure("E-2", "a raw control character reached the client's screen", ["none"], raw)


@case("C-ERR-3", reqs="E-1 E-3 F-2 C-13", title="frames out of order are UNEXPECTED", needs=("C-HELLO-2",))
@pytest.mark.parametrize("order", ["message-before-hello", "quit-before-hello", "second-hello", "message-out-of-turn"])
def case_out_of_order(start_client, scripted_server, order: str) -> None:
    client, peer = connected(start_client, scripted_server)
    frames = {
        "message-before-hello": [Message("hello")],
        "quit-before-hello": [Quit()],
        "second-hello": [Hello("HostA"), Hello("HostA")],
        "message-out-of-turn": [Hello("HostA"), Message("hello")],  # the client's turn, not the server's
    }[order]
    peer.send_raw(b"".join(map(encode, frames)))
    peer.expect_error("E-1 E-3 F-2", f"the answer to {order.replace('-', ' ')}", ErrorCode.UNEXPECTED)
    expect_status(client, 5, "C-13", "sending ERROR")


@case("C-TIMEOUT-1", reqs="C-4", title="no HELLO from the server within the timeout gets ERROR TIMEOUT, exit 5",
      needs=("C-HELLO-1",))
def case_hello_timeout(start_client, scripted_server, ctx) -> None:
    client, peer = connected(start_client, scripted_server)
    opts = scripted_server.opts
    soon = opts.handshake_timeout * opts.timeout_scale + opts.step
    event = peer.next_event("C-4", "ERROR TIMEOUT", timeout=soon)
    if event is None:  # it does not honour CHAT_HELLO_TIMEOUT: the SHOULD of C-4; wait for the 10 s
        ctx.warn("C-4", f"CHAT_HELLO_TIMEOUT={opts.handshake_timeout:g} was not honoured")
        event = peer.next_event("C-4", "ERROR TIMEOUT", timeout=10 * opts.timeout_scale)
    if not isinstance(event, Error) or event.code != ErrorCode.TIMEOUT:
        raise CaseFailure("C-4", "the client's answer to a server that never says HELLO",
                          ["ERROR 5 TIMEOUT"], describe(event))
    expect_status(client, 5, "C-4 C-13", "sending ERROR TIMEOUT")
