"""The real chatserve.py against scripted clients on real loopback TCP: every error code,
handshake timeout, BUSY, segmentation, and its command line (PROTOCOL.md sections 3 and 5)."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys

import pytest

import vectors
from chatwire import ConnectionClosed, Error, ErrorCode, Hello, Message, Quit
from procs import DROPPED, ROOT, Server, connect

HELLO = vectors.by_name("hello-chris").data
TEST = vectors.by_name("message-test").data


def handshake(srv: Server, host: str = "127.0.0.1"):
    peer = connect(srv.port, host)
    peer.send(Hello("Chris"))
    assert peer.receive() == Hello("HostA")
    srv.expect_established()
    return peer


def expect_error(peer, code: ErrorCode) -> Error:
    event = peer.receive()
    assert isinstance(event, Error) and event.code == code, event
    assert peer.receive() == ConnectionClosed()  # W-7: the server closes after ERROR
    return event


def test_golden_bytes_of_the_handshake_and_a_message(server) -> None:
    srv = server()
    peer = connect(srv.port)
    peer.send_raw(HELLO)
    assert peer.receive_exactly(8) == vectors.by_name("hello-hosta").data
    peer.send_raw(TEST)
    srv.expect_line("Chris> test")
    srv.expect_text("HostA> ")
    srv.type("hello")
    assert peer.receive_exactly(8) == vectors.by_name("message-hello").data
    peer.send_raw(vectors.by_name("quit").data)
    srv.expect_line(DROPPED)


@pytest.mark.parametrize("delivery", ["bytewise", "coalesced"])
def test_frames_are_reassembled_however_they_are_segmented(server, delivery: str) -> None:
    srv = server()
    peer = connect(srv.port)
    if delivery == "bytewise":
        for i in range(len(HELLO)):
            peer.send_raw(HELLO[i : i + 1])
    else:
        peer.send_raw(HELLO + TEST)  # the HELLO and the first MESSAGE in one segment
    assert peer.receive_exactly(8) == vectors.by_name("hello-hosta").data
    if delivery == "bytewise":
        for i in range(len(TEST)):
            peer.send_raw(TEST[i : i + 1])
    srv.expect_line("Chris> test")


FIRST_FRAME_FAULTS = [v for v in vectors.load() if v.error and v.data[0] != 0x4D]  # all but MESSAGE (sent later)


@pytest.mark.parametrize(("name", "code"), [(v.name, v.error) for v in FIRST_FRAME_FAULTS])
def test_bad_first_frames_get_the_matching_error(server, name: str, code: str) -> None:
    srv = server()
    peer = connect(srv.port)
    peer.send_raw(vectors.by_name(name).data)
    expect_error(peer, ErrorCode[code])
    srv.expect_re(rf"Closed the connection with \('127\.0\.0\.1', \d+\): sent ERROR \d {code} \([^)]*\)\.\.\.\r\n")


@pytest.mark.parametrize(
    "name", ["message-501-ascii", "message-esc-clear", "message-c1-csi", "message-len-2001", "message-surrogate"]
)
def test_bad_messages_are_malformed_and_never_shown(server, name: str) -> None:
    srv = server()
    peer = handshake(srv)
    peer.send_raw(vectors.by_name(name).data)
    expect_error(peer, ErrorCode.MALFORMED)
    srv.expect_re(r"Closed the connection with [^\r\n]*MALFORMED[^\r\n]*\r\n")
    assert "\x1b" not in srv.transcript and "\x9b" not in srv.transcript


def test_an_oversized_length_is_rejected_at_the_header(server) -> None:
    srv = server()
    peer = handshake(srv)
    peer.send_raw(bytes.fromhex("4d07d1"))  # declares 2001 bytes; none of them is ever sent
    event = expect_error(peer, ErrorCode.MALFORMED)
    assert "2001" in event.reason


@pytest.mark.parametrize(
    ("after_handshake", "frames"),
    [
        (False, [TEST]),  # MESSAGE before HELLO
        (True, [HELLO]),  # a second HELLO
        (True, [TEST, TEST]),  # two MESSAGEs in a row
    ],
)
def test_frames_out_of_order_are_unexpected(server, after_handshake: bool, frames: list[bytes]) -> None:
    srv = server()
    peer = handshake(srv) if after_handshake else connect(srv.port)
    peer.send_raw(b"".join(frames))
    expect_error(peer, ErrorCode.UNEXPECTED)


def test_no_hello_within_the_timeout_gets_timeout_then_the_next_client_is_served(server) -> None:
    srv = server("--handshake-timeout", "0.5")
    silent = connect(srv.port)
    silent.send_raw(HELLO[:4])  # a stalled, partial HELLO does not count
    event = expect_error(silent, ErrorCode.TIMEOUT)
    assert event.reason == "no HELLO within 0.5 s"
    srv.expect_re(r"Closed the connection with [^\r\n]*TIMEOUT[^\r\n]*\r\n")
    handshake(srv).send(Message("after"))
    srv.expect_line("Chris> after")


def test_a_second_connection_gets_busy_golden_bytes(server) -> None:
    srv = server()
    first = handshake(srv)
    second = connect(srv.port, "::1")
    assert second.receive_bytes_until_closed() == vectors.by_name("error-busy").data
    third = connect(srv.port)  # in the first one's handshake too: BUSY, not a queue
    third.send_raw(HELLO)
    assert third.receive_bytes_until_closed() == vectors.by_name("error-busy").data
    first.send(Message("untouched"))
    srv.expect_line("Chris> untouched")


def test_an_error_from_the_client_is_shown_sanitised(server) -> None:
    srv = server()
    peer = handshake(srv)
    peer.send_raw(bytes.fromhex("450006") + b"\x03bad\x1b[")
    srv.expect_line("The client sent ERROR 3 UNEXPECTED: bad?[")
    srv.expect_line(DROPPED)


def test_a_reset_connection_is_a_dropped_client(server) -> None:
    srv = server()
    peer = handshake(srv)
    peer.send_raw(TEST[:4])  # cut off mid-frame
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # linger on, time 0: the close sends RST
    srv.expect_line(DROPPED)
    handshake(srv)


def test_quit_before_the_first_message_ends_the_conversation(server) -> None:
    srv = server()
    peer = handshake(srv)
    peer.send(Quit())
    srv.expect_line(DROPPED)
    assert peer.receive() == ConnectionClosed()


def test_ipv6_and_ipv4_mapped_addresses_are_shown_plainly(server) -> None:
    srv = server()
    handshake(srv, "::1").send(Quit())
    srv.expect_line(DROPPED)
    handshake(srv, "127.0.0.1").send(Quit())
    assert "('::1', " in srv.transcript and "('127.0.0.1', " in srv.transcript
    assert "::ffff:" not in srv.transcript


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["notaport"], "invalid port 'notaport'"),
        (["70000"], "invalid port '70000'"),
        (["--handle", "a b"], "invalid handle 'a b': it contains whitespace"),
        (["--handshake-timeout", "0"], "invalid timeout '0'"),
        (["1", "2"], "unrecognized arguments"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = subprocess.run(["python3", str(ROOT / "chatserve.py"), *args], capture_output=True, text=True,
                            timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert result.stderr.startswith("chatserve: ")


def test_a_port_in_use_is_one_line_and_exit_1(server) -> None:
    srv = server()
    result = subprocess.run([sys.executable, str(ROOT / "chatserve.py"), str(srv.port)], capture_output=True,
                            text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stderr == f"chatserve: cannot listen on port {srv.port}: Address already in use\n"


def test_end_of_input_with_no_conversation_exits_0() -> None:
    result = subprocess.run(["python3", str(ROOT / "chatserve.py"), "0"], capture_output=True, text=True,
                            timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout.startswith("Listening on port ") and result.stdout.count("\n") == 1


def test_an_invisible_server_handle_is_a_usage_error() -> None:
    result = subprocess.run(["python3", str(ROOT / "chatserve.py"), "--handle", "Host\u200bA"], capture_output=True,
                            text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert "it contains invisible characters" in result.stderr and result.stderr.count("\n") == 1


def test_direction_overrides_in_an_error_reason_are_shown_as_question_marks(server) -> None:
    """S-13: U+202E would reverse the rest of the line on the operator's screen."""
    srv = server()
    peer = handshake(srv)
    reason = "bad \u202eknil\u2066 end".encode()
    peer.send_raw(bytes([0x45]) + (len(reason) + 1).to_bytes(2, "big") + b"\x03" + reason)
    srv.expect_line("The client sent ERROR 3 UNEXPECTED: bad ?knil? end")
    srv.expect_line(DROPPED)
    assert "\u202e" not in srv.transcript and "\u2066" not in srv.transcript


def test_an_error_from_a_connection_in_its_handshake_shows_nothing(server) -> None:
    """S-10: a connection that never said HELLO does not get its words on the screen."""
    srv = server()
    peer = connect(srv.port)
    peer.send_raw(bytes.fromhex("45000b") + b"\x03not-a-chat")
    assert peer.receive() == ConnectionClosed()
    handshake(srv).send(Message("next"))
    srv.expect_line("Chris> next")
    assert "not-a-chat" not in srv.transcript and "sent ERROR" not in srv.transcript


def test_quit_with_no_conversation_changes_nothing(server) -> None:
    """S-6: \\quit with only a connection in its handshake is refused like any line; the
    handshake goes on and the server with it."""
    srv = server()
    waiting = connect(srv.port)
    srv.type("\\quit")
    srv.expect_line("No client is connected; the line was not sent.")
    waiting.send(Hello("Chris"))
    assert waiting.receive() == Hello("HostA")
    srv.expect_established()


def test_a_closed_standard_input_is_the_end_of_input() -> None:
    """S-12: no standard input at all stops the server at once, status 0, after its first line."""
    result = subprocess.run(["sh", "-c", f'exec python3 "{ROOT / "chatserve.py"}" 0 <&-'], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("Listening on port ") and result.stdout.count("\n") == 1


def test_a_second_hello_among_handshakes_is_refused_busy(server) -> None:
    """S-8: two connections in their handshake; the first HELLO takes the conversation, and the
    other's HELLO, sent after, finds only its BUSY."""
    srv = server()
    first, second = connect(srv.port), connect(srv.port)
    first.send(Hello("Chris"))
    assert first.receive() == Hello("HostA")
    assert second.receive_bytes_until_closed() == vectors.by_name("error-busy").data
    first.send(Message("still mine"))
    srv.expect_line("Chris> still mine")
