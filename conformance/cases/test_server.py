"""Server cases: the suite plays the client over real TCP and watches the server's terminal.

Each case names the PROTOCOL.md requirements it checks. Wire cases run in each delivery of
W-5 (whole, bytewise, split inside the header, coalesced with the next frame).
"""

from __future__ import annotations

import re

import pytest

import vectors
from chatwire import ErrorCode, FrameType, Hello, Message, Quit
from conformance.checks import CaseFailure
from conformance.peer import DELIVERIES, WirePeer, describe, invalid_vector_cases, send_invalid
from conformance.programs import Program, listening, substitute

case = pytest.mark.case
deliveries = pytest.mark.parametrize("delivery", DELIVERIES)
DROPPED = "The client has dropped the connection..."
YOU_CLOSED = "You have closed the connection..."
MIXED_500 = ("é€😀" * 167)[:500]


def end(srv, peer: WirePeer) -> None:
    """Leave the shared server as it was: QUIT, and its closing line consumed."""
    peer.send(Quit())
    peer.close()
    if srv.program:
        srv.program.settle(re.escape(DROPPED), srv.opts.step)
    peer.finish()  # until the server has closed it too: the next client is not refused as BUSY


def shown_address(peer: WirePeer) -> str:
    host, port = peer.sock.getsockname()[:2]
    return repr((host.removeprefix("::ffff:"), port))


def server_turn(srv, peer: WirePeer, text: str = "test") -> str:
    """Send a message and wait until the server's operator is prompted; returns the server handle."""
    peer.send(Message(text))
    srv.terminal.expect_line(f"Chris> {text}", "S-5", f"the message shown as 'Chris> {text}'")
    handle = srv.handle
    srv.terminal.expect_text(f"{handle}> ", "S-5", f"the operator's prompt '{handle}> '")
    return handle


# --- start and handshake ----------------------------------------------------------------------


@case("S-LISTEN-1", reqs="S-3", title="the first line is 'Listening on port N...' with the real port")
def case_listening_line(server) -> None:
    term = server.terminal
    if "\n" not in term.transcript:
        term.expect_text("\r\n", "S-3", "a first line")
    first = term.transcript.split("\n", 1)[0]
    if first != f"Listening on port {server.port}...":
        raise CaseFailure("S-3", "the server's first line", [f"Listening on port {server.port}..."], repr(first))


@case("S-LISTEN-2", reqs="S-1 S-3", title="with port 0 the 'Listening' line names the port the system chose")
def case_listening_port_zero(fresh_server, opts) -> None:
    argv = substitute(opts.command, port=0, host=opts.host, handshake_timeout=opts.handshake_timeout)
    program = Program("server (port 0)", argv, opts.step)
    try:
        match = program.expect_re(r"Listening on port (\d+)\.\.\.\r\n", "S-3", "the 'Listening on port N...' line")
        port = int(match.group(1))
        if port == 0 or not listening(port):
            raise CaseFailure("S-1 S-3", "the port in the 'Listening' line after asking for port 0",
                              ["the port the system chose, with a socket listening on it"], f"port {port}")
    finally:
        program.stop()


@case("S-HELLO-1", reqs="W-1 W-3 W-5 F-1 S-4", title="HELLO is answered with the server's HELLO")
@deliveries
def case_hello(server, delivery: str) -> None:
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
            server.terminal.expect_line("Chris> test", "W-5 S-5", "the MESSAGE that came in the HELLO's segment")
    end(server, peer)


@case("S-HELLO-2", reqs="W-1 W-3 S-1", title="the default HELLO is the golden 48 00 05 48 6f 73 74 41",
      needs=("S-HELLO-1",))
def case_hello_golden(server) -> None:
    peer = server.connect()
    peer.send(Hello("Chris"))
    if any(part.startswith("--handle") for part in server.opts.command):
        pytest.skip("the server command sets its handle: the default's golden bytes do not apply")
    peer.expect_bytes("W-1 W-3 S-1", "HELLO 'HostA' (the default handle), byte for byte",
                      vectors.by_name("hello-hosta").data)
    end(server, peer)


@case("S-HELLO-3", reqs="S-4", title="'Established connection with (HOST, PORT)...' names the client",
      needs=("S-HELLO-1",))
def case_established_line(server) -> None:
    peer = server.handshake()
    server.terminal.expect_line(f"Established connection with {shown_address(peer)}...", "S-4",
                                "the line naming this client's address and port")
    end(server, peer)


@case("S-ADDR-1", reqs="S-3 S-4", title="IPv4 and IPv6 clients are both served, each address shown plainly",
      needs=("S-HELLO-1",))
def case_dual_stack(server) -> None:
    for host in ("127.0.0.1", "::1"):
        try:
            peer = server.handshake(host=host)
        except CaseFailure as exc:
            raise CaseFailure("S-3", f"a client on {host}: {exc.what}", exc.expected, exc.got) from None
        if server.program:
            server.terminal.expect_line(f"Established connection with {shown_address(peer)}...", "S-4",
                                        f"the line for the client on {host}")
        end(server, peer)


# --- messages -------------------------------------------------------------------------------


@case("S-MSG-1", reqs="W-5 S-5", title="a MESSAGE is shown as 'Chris> text', then the operator's prompt",
      needs=("S-HELLO-1",))
@deliveries
def case_message_shown(server, delivery: str) -> None:
    peer = server.handshake()
    handle = server.handle
    if delivery == "coalesced":
        peer.send(Message("test"), Quit(), delivery="coalesced")
        server.terminal.expect_line("Chris> test", "W-5 S-5", "the message, before the QUIT in its segment")
        server.terminal.expect_line(DROPPED, "S-9", "the line for the QUIT that followed")
        return
    peer.send(Message("test"), delivery=delivery)
    server.terminal.expect_line("Chris> test", "W-5 S-5", "the message shown as 'Chris> test'")
    server.terminal.expect_text(f"{handle}> ", "S-5", f"the operator's prompt '{handle}> '")
    end(server, peer)


@case("S-MSG-2", reqs="S-5 W-3", title="the operator's line goes out as the golden MESSAGE 'hello'",
      needs=("S-MSG-1",))
def case_operator_message(server) -> None:
    peer = server.handshake()
    server_turn(server, peer)
    server.terminal.type("hello")
    peer.expect_bytes("S-5 W-3", "MESSAGE 'hello', byte for byte", vectors.by_name("message-hello").data)
    end(server, peer)


@case("S-MSG-3", reqs="T-3 S-5", title="500 code points of 2-4 byte UTF-8 arrive intact each way",
      needs=("S-MSG-1",))
def case_long_messages(server) -> None:
    peer = server.handshake()
    server_turn(server, peer, MIXED_500)
    server.terminal.type(MIXED_500[::-1])
    peer.expect("T-3 S-5", "the operator's 500-code-point line as one MESSAGE", Message(MIXED_500[::-1]))
    end(server, peer)


@case("S-MSG-4", reqs="S-6 T-3 T-5", title="empty, 501-character and control-character lines are refused",
      needs=("S-MSG-1",))
def case_operator_bad_lines(server) -> None:
    peer = server.handshake()
    handle = server_turn(server, peer)
    term = server.terminal
    for line, phrase in [("", "is empty"), ("x" * 501, "is longer than 500 characters"),
                         ("bell\x07", "contains control characters")]:
        term.type(line)
        term.expect_line(f"Message not sent: it {phrase}.", "S-6 T-5", f"the reason for a line that {phrase}")
        term.expect_text(f"{handle}> ", "S-6", "the prompt again")
    peer.expect_quiet("S-6", "nothing on the wire for refused lines")
    term.type("x" * 500)
    peer.expect("S-6 T-3", "a 500-character line is sent whole", Message("x" * 500))
    end(server, peer)


@case("S-MSG-5", reqs="S-6 F-2", title="a line typed out of turn is not sent", needs=("S-MSG-1",))
def case_operator_out_of_turn(server) -> None:
    peer = server.handshake()
    server_turn(server, peer)
    server.terminal.type("one")
    peer.expect("S-5", "the operator's message", Message("one"))
    server.terminal.type("two")
    server.terminal.expect_line("Not your turn; the line was not sent.", "S-6 F-2", "the out-of-turn notice")
    peer.expect_quiet("F-2", "nothing on the wire for a line out of turn")
    end(server, peer)


# --- the end of a conversation ----------------------------------------------------------------


@case("S-QUIT-1", reqs="S-9 W-8", title="the client's QUIT: 'The client has dropped the connection...'",
      needs=("S-HELLO-1",))
@deliveries
def case_client_quit(server, delivery: str) -> None:
    peer = server.handshake()
    if delivery == "coalesced":
        peer.send(Message("bye"), Quit(), delivery="coalesced")
    else:
        peer.send(Quit(), delivery=delivery)
    peer.expect_closed("S-9 W-8", "the server closes after the client's QUIT")
    if server.program:
        server.terminal.expect_line(DROPPED, "S-9", "the dropped-connection line")


@case("S-QUIT-2", reqs="S-9 W-3 W-7", title="the operator's \\quit sends the golden QUIT and closes",
      needs=("S-MSG-1",))
def case_operator_quit(server) -> None:
    peer = server.handshake()
    server_turn(server, peer)
    server.terminal.type("\\quit")
    peer.expect_bytes("S-9 W-3", "QUIT, byte for byte", vectors.by_name("quit").data)
    peer.expect_closed("W-7", "the connection closes after QUIT")
    server.terminal.expect_line(YOU_CLOSED, "S-9", "the operator's closing line")


@case("S-QUIT-3", reqs="F-3 S-6", title="\\quit works out of turn too", needs=("S-MSG-1",))
def case_operator_quit_out_of_turn(server) -> None:
    peer = server.handshake()
    server.terminal.expect_line(f"Established connection with {shown_address(peer)}...", "S-4", "the handshake line")
    server.terminal.type("\\quit")  # the client's turn
    peer.expect("F-3", "QUIT while it is the client's turn", Quit())
    peer.expect_closed("W-7", "the connection closes after QUIT")
    server.terminal.expect_line(YOU_CLOSED, "S-9", "the operator's closing line")


@case("S-NEXT-1", reqs="S-9 S-4", title="after a conversation ends the next client is served",
      needs=("S-QUIT-1",))
def case_next_client(server) -> None:
    for handle in ("Chris", "Dana", "Eve"):
        peer = server.handshake(handle)
        peer.send(Message("hi"))
        server.terminal.expect_line(f"{handle}> hi", "S-9 S-5", f"client {handle}'s message")
        end(server, peer)


@case("S-DROP-1", reqs="S-9 E-5", title="a client that closes without QUIT is a dropped connection",
      needs=("S-HELLO-1",))
@pytest.mark.parametrize("how", ["eof", "eof-mid-frame", "reset"])
def case_client_vanishes(server, how: str) -> None:
    peer = server.handshake()
    if how == "eof-mid-frame":
        peer.send_raw(vectors.by_name("message-test").data[:5])
    if how == "reset":
        peer.reset()
    else:
        peer.close()
    if server.program:
        server.terminal.expect_line(DROPPED, "S-9 E-5", "the dropped-connection line")
    server.close_peers()
    server.handshake().send(Quit())  # and it serves the next one
    if server.program:
        server.program.settle(re.escape(DROPPED), server.opts.step)


@case("S-DROP-2", reqs="S-7 S-9", title="a client lost while the operator types is noticed on a fresh line",
      needs=("S-MSG-1",))
def case_drop_while_typing(fresh_server) -> None:
    srv = fresh_server
    peer = srv.handshake()
    peer.send(Message("test"))
    srv.terminal.expect_line("Chris> test", "S-5", "the message")
    srv.terminal.expect_re(r"\S+> ", "S-5", "the operator's prompt")
    srv.terminal.send("half a line")
    srv.terminal.expect_text("half a line", "S-7", "the echo of the typing")
    peer.close()
    srv.terminal.expect_text("\r\n" + DROPPED + "\r\n", "S-7 S-9", "the dropped line, on a line of its own")


# --- BUSY ------------------------------------------------------------------------------------


@case("S-BUSY-1", reqs="S-8 E-4 W-7", title="a second client gets the golden ERROR BUSY 'busy' and is closed",
      needs=("S-HELLO-1",))
@pytest.mark.parametrize("first", ["in-conversation", "in-handshake"])
def case_busy(server, first: str) -> None:
    one = server.handshake() if first == "in-conversation" else server.connect()
    two = server.connect()
    two.send(Hello("Eve"))  # which a server that refuses at once leaves unread (W-7)
    two.expect_bytes("S-8 E-4", "ERROR BUSY 'busy', byte for byte", vectors.by_name("error-busy").data)
    two.expect_closed("S-8 W-7", "the refused connection is closed")
    if first == "in-conversation":
        end(server, one)
    else:
        one.close()


@case("S-BUSY-2", reqs="S-8", title="the conversation goes on untouched after a BUSY refusal",
      needs=("S-BUSY-1",))
def case_busy_untouched(server) -> None:
    one = server.handshake()
    two = server.connect()
    two.expect_error("S-8", "the second client is refused", ErrorCode.BUSY)
    one.send(Message("still here"))
    server.terminal.expect_line("Chris> still here", "S-8", "the first client's message after the refusal")
    if "Eve" in server.terminal.output_since():
        raise CaseFailure("S-8", "the refused client must not appear on the screen")
    end(server, one)


# --- errors ---------------------------------------------------------------------------------


@case("S-ERR-1", reqs="E-2 E-3 W-3 W-4 T-1 T-3 T-4", title="each invalid frame of the vectors gets its ERROR code",
      needs=("S-HELLO-1",))
@pytest.mark.parametrize(("vector", "delivery"), invalid_vector_cases())
def case_invalid_frame(server, vector: vectors.Vector, delivery: str) -> None:
    after_handshake = vector.data[0] in (FrameType.MESSAGE, FrameType.QUIT)
    peer = server.handshake() if after_handshake else server.connect()
    send_invalid(peer, vector, delivery)
    peer.expect_error("E-2 E-3", f"the answer to frame {vector.name}", ErrorCode[vector.error])
    peer.expect_closed("E-2 W-7", "the server closes after its ERROR")
    if server.program:
        server.program.settle("Closed the connection", server.opts.quiet_period * 4)
        if raw := server.program.raw_control_in_output():
            raise CaseFailure("E-2 S-13", "a raw control character reached the server's screen", ["none"], raw)


@case("S-ERR-2", reqs="E-1 E-3 F-2", title="frames out of order are UNEXPECTED", needs=("S-HELLO-1",))
@pytest.mark.parametrize("order", ["message-before-hello", "quit-before-hello", "second-hello", "two-messages"])
def case_out_of_order(server, order: str) -> None:
    frames = {
        "message-before-hello": [vectors.by_name("message-test").data],
        "quit-before-hello": [vectors.by_name("quit").data],
        "second-hello": [vectors.by_name("hello-chris").data],
        "two-messages": [vectors.by_name("message-test").data] * 2,
    }[order]
    peer = server.connect() if order.endswith("before-hello") else server.handshake()
    peer.send_raw(b"".join(frames))
    peer.expect_error("E-1 E-3 F-2", f"the answer to {order.replace('-', ' ')}", ErrorCode.UNEXPECTED)
    peer.expect_closed("E-2 W-7", "the server closes after its ERROR")
    if server.program:
        server.program.settle("Closed the connection", server.opts.quiet_period * 4)


@case("S-ERR-3", reqs="S-10", title="a protocol error is reported as 'Closed the connection with ...: sent ERROR'",
      needs=("S-ERR-1",))
def case_error_line(server) -> None:
    peer = server.handshake()
    server.terminal.expect_line(f"Established connection with {shown_address(peer)}...", "S-4", "the handshake line")
    peer.send_raw(bytes.fromhex("4d07d1"))
    peer.expect_error("W-4", "the answer to a MESSAGE declaring 2001 bytes", ErrorCode.MALFORMED)
    server.terminal.expect_re(
        rf"Closed the connection with {re.escape(shown_address(peer))}: sent ERROR 2 MALFORMED \([^\r\n]+\)\.\.\.\r\n",
        "S-10", "the line naming the ERROR sent")


@case("S-ERR-4", reqs="S-10 S-13 W-6", title="an ERROR from the client is shown sanitised, then the dropped line",
      needs=("S-HELLO-1",))
def case_error_received(server) -> None:
    peer = server.handshake()
    peer.send_raw(bytes.fromhex("450008") + b"\x03bad\x1b[2J")
    server.terminal.expect_line("The client sent ERROR 3 UNEXPECTED: bad?[2J", "S-10 S-13",
                                "the client's ERROR, with ESC shown as '?'")
    server.terminal.expect_line(DROPPED, "S-10", "the dropped line after it")
    if raw := server.terminal.raw_control_in_output():
        raise CaseFailure("S-13", "a raw control character reached the server's screen", ["none"], raw)


@case("S-TIMEOUT-1", reqs="S-11 E-1", title="no complete HELLO within the handshake timeout gets ERROR TIMEOUT",
      needs=("S-HELLO-1",))
@pytest.mark.parametrize("sent", ["nothing", "half-a-hello"])
def case_handshake_timeout(server, sent: str) -> None:
    peer = server.connect()
    if sent == "half-a-hello":
        peer.send_raw(vectors.by_name("hello-chris").data[:4])
    substituted = any("{handshake_timeout}" in part for part in server.opts.command)
    wait = (server.opts.handshake_timeout if substituted else 10.0) * server.opts.timeout_scale + server.opts.step
    peer.expect_error("S-11", "the answer to a client that never completes HELLO", ErrorCode.TIMEOUT, timeout=wait)
    peer.expect_closed("S-11 W-7", "the server closes after TIMEOUT")
    if server.program:
        server.program.settle("Closed the connection", server.opts.step)


# --- the operator's keys ------------------------------------------------------------------------


@case("S-CTRLC-1", reqs="S-12", title="Ctrl-C in a conversation sends QUIT and exits 0 without a traceback",
      needs=("S-MSG-1",))
def case_ctrl_c(fresh_server) -> None:
    srv = fresh_server
    peer = srv.handshake()
    peer.send(Message("test"))
    srv.terminal.expect_line("Chris> test", "S-5", "the message")
    srv.terminal.interrupt()
    peer.expect("S-12", "QUIT after Ctrl-C", Quit())
    status = srv.terminal.wait_exit("S-12", "Ctrl-C")
    if status != 0:
        raise CaseFailure("S-12", "the exit status after Ctrl-C", ["0"], str(status))
    if "Traceback" in srv.terminal.transcript:
        raise CaseFailure("S-12", "a traceback on the screen after Ctrl-C")


@case("S-EOF-1", reqs="S-12 S-9", title="Ctrl-D in a conversation is \\quit; with none it ends the server",
      needs=("S-MSG-1",))
def case_ctrl_d(fresh_server) -> None:
    srv = fresh_server
    peer = srv.handshake()
    peer.send(Message("test"))
    srv.terminal.expect_line("Chris> test", "S-5", "the message")
    srv.terminal.expect_re(r"\S+> ", "S-5", "the operator's prompt")
    srv.terminal.end_input()
    peer.expect("S-12", "QUIT after Ctrl-D", Quit())
    srv.terminal.expect_line(YOU_CLOSED, "S-9", "the operator's closing line")
    srv.terminal.end_input()
    status = srv.terminal.wait_exit("S-12", "Ctrl-D with no conversation")
    if status != 0:
        raise CaseFailure("S-12", "the exit status after Ctrl-D", ["0"], str(status))
