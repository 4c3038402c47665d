"""Faults and floods against the real server on loopback, bounded in count and time:
hundreds of extra connections, stalled handshakes, clients killed mid-frame, a peer that stops
reading. The conversation must lose nothing and the server must give back what it took."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

import vectors
from chatwire import ErrorCode, Hello, Message, Quit, Role, encode
from conformance.netdiag import far_end_queues
from procs import DROPPED, LOST, ROOT, Client, Peer, Screen, connect

BUSY = vectors.by_name("error-busy").data


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for(predicate, timeout: float, what: str) -> None:
    """Poll a condition of another process (its /proc entries) until it holds, bounded."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def handshake(port: int) -> Peer:
    peer = connect(port)
    peer.send(Hello("Chris"))
    assert peer.receive() == Hello("HostA")
    return peer


def refusal(sock: socket.socket) -> bytes:
    """Everything a refused connection receives before the server closes it."""
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_500_extra_connections_during_a_conversation(server) -> None:
    srv = server()
    peer = handshake(srv.port)
    srv.expect_established()
    peer.send(Message("before"))
    srv.expect_line("Chris> before")
    srv.expect_text("HostA> ")
    fds_before = open_fds(srv.pid)

    kinds = [b"", encode(Hello("Eve")), b"\xde\xad\xbe\xef" * 64]
    for batch in range(10):
        socks = []
        for i in range(50):
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
            if data := kinds[(batch * 50 + i) % 3]:
                sock.sendall(data)
            socks.append(sock)
        for sock in socks:
            got = refusal(sock)
            assert got == BUSY, got[:32]
            sock.close()

    srv.type("after the flood")
    assert peer.receive() == Message("after the flood")
    peer.send(Message("still here"))
    srv.expect_line("Chris> still here")
    wait_for(lambda: open_fds(srv.pid) <= fds_before, 10, "the server's descriptors to return to their count")
    peer.send(Quit())
    srv.expect_line(DROPPED)


def test_100_stalled_handshakes_then_a_real_client(server) -> None:
    """100 stalled handshakes at once: 64 are in their handshake together (S-8's bound) and each
    gets TIMEOUT on its own clock; the other 36 get BUSY at once; then a real client is served."""
    timeout = 3.0  # far longer than 100 connects take, even on a loaded machine
    srv = server("--handshake-timeout", f"{timeout:g}")
    started = time.monotonic()
    socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=15) for _ in range(100)]
    for sock in socks:
        sock.sendall(b"H")  # one byte of a HELLO, then nothing
    answers = []
    for sock in reversed(socks):  # the last to arrive first: those are the ones refused at once
        answers.append((refusal(sock), time.monotonic() - started))
        sock.close()
    codes = sorted(answer[3] for answer, _ in answers)
    assert codes == [ErrorCode.BUSY] * 36 + [ErrorCode.TIMEOUT] * 64, codes
    assert all(elapsed < timeout for answer, elapsed in answers if answer[3] == ErrorCode.BUSY)
    assert time.monotonic() - started < timeout + 5
    peer = handshake(srv.port)
    peer.send(Message("served"))
    srv.expect_line("Chris> served")


KILLED_MID_FRAME = """
import socket, sys, time
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
sock.sendall(bytes.fromhex("4800054368726973"))
sock.recv(8)
sock.sendall(bytes.fromhex("4d0100") + b"half")  # declares 256 bytes, sends 4
print("ready", flush=True)
time.sleep(60)
"""


def test_a_client_killed_mid_frame_is_dropped_and_the_next_served(server) -> None:
    srv = server()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MID_FRAME, str(srv.port)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        srv.expect_established()
        proc.kill()
    finally:
        proc.wait()
    srv.expect_line(DROPPED)
    handshake(srv.port).send(Message("next"))
    srv.expect_line("Chris> next")


def shows(screen: Screen, text: str) -> bool:
    """Whether `text` is on the screen now; what is read stays for the next expect (Program.here)."""
    screen.here()
    return text in screen.output_since(0)


def test_a_client_that_stops_reading_does_not_block_the_operator(server) -> None:
    """The client sends and never reads, with a tiny receive buffer: the server's replies pile up
    until one cannot be handed to the kernel; then the server drops it instead of blocking."""
    srv = server()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", srv.port))
    sock.sendall(encode(Hello("Chris")))
    reply = "€" * 500  # 1503 bytes a frame: the kernel's buffers (up to 4 MB) fill after thousands
    for i in range(6000):
        with contextlib.suppress(OSError):  # already dropped: the server's line below says so
            sock.sendall(encode(Message(f"m{i}")))  # in turn; the replies are never read
        if srv.child.expect_exact([DROPPED + "\r\n", f"Chris> m{i}\r\n"]) == 0:
            break  # the server gave up on it rather than block
        srv.expect_text("HostA> ")
        before = in_flight(sock)
        srv.type(reply)
        # The next message only once the server has taken the reply (the kernel has it), or has
        # dropped the client: sent earlier, it would come out of turn on a loaded machine.
        wait_for(lambda: in_flight(sock) > before or shows(srv, DROPPED), 15,  # noqa: B023
                 "the server sends its operator's reply, or drops the client")
    else:
        pytest.fail("6000 replies were taken although the client read none")
    srv.type("x")  # the operator's terminal still answers
    srv.expect_line("No client is connected; the line was not sent.")
    sock.close()


@pytest.mark.skipif(not Path("/usr/bin/valgrind").exists(), reason="valgrind is not installed")
def test_valgrind_finds_no_leak_or_error_in_a_whole_session(server) -> None:
    srv = server()
    cli = Screen(["valgrind", "--leak-check=full", "--error-exitcode=1", "--errors-for-leak-kinds=all", "-q",
                  str(ROOT / "chatclient"), "127.0.0.1", str(srv.port)], role="client")
    try:
        cli.expect_text("Enter client handle (length 10 or less): ")
        cli.type("Chris")
        srv.expect_established()
        cli.expect_text("Chris> ")
        cli.type("test")
        srv.expect_line("Chris> test")
        srv.expect_text("HostA> ")
        srv.type("hello")
        cli.expect_line("HostA> hello")
        cli.type("\\quit")
        assert cli.wait_exit() == 0, cli.transcript
    finally:
        cli.stop()


def in_flight(sock: socket.socket) -> int:
    """Bytes the other side has written to `sock`'s connection: waiting here, or still in its queue."""
    waiting = struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0"))[0]
    return waiting + (far_end_queues(sock) or (0, 0))[1]


def test_a_server_that_stops_reading_does_not_freeze_the_client(screens) -> None:
    """C-15: the server sends in turn but never reads; once the buffers are full, the client's
    send gives up after 10 s, and it reports a lost connection instead of freezing."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # inherited by the accepted one
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        cli = Client("plain", "127.0.0.1", listener.getsockname()[1])
        screens.append(cli)
        cli.enter_handle("Chris")
        listener.settimeout(15)
        sock, _ = listener.accept()
    peer = Peer(sock, Role.SERVER)
    assert peer.receive() == Hello("Chris")
    sock.sendall(encode(Hello("HostA")))
    reply = "€" * 500
    frame = len(encode(Message(reply)))
    for i in range(6000):
        cli.expect_text("Chris> ")
        before = in_flight(sock)
        cli.type(reply)  # never read by the server
        # The client's turn ends when its frame is written: then the server may answer.
        deadline = time.monotonic() + 2
        while in_flight(sock) < before + frame and time.monotonic() < deadline:
            time.sleep(0.001)  # another process's write has no event we could wait on
        sock.sendall(encode(Message(f"m{i}")))
        if cli.child.expect_exact([LOST + "\r\n", f"HostA> m{i}\r\n"], timeout=30) == 0:
            break
    else:
        pytest.fail("6000 lines were sent although the server read none")
    assert cli.wait_exit() == 6
    sock.close()
