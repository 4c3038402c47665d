"""The real ./chatclient against scripted servers on real loopback TCP: golden bytes,
segmentation, every error code both ways, lost connections, its command line
(PROTOCOL.md sections 3, 6 and 7)."""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

import vectors
from chatwire import ConnectionClosed, Error, ErrorCode, Hello, Message, Quit
from conformance.procstate import terminal_unread
from conformance.programs import free_port
from procs import CLIENT_BUILDS, LOST, SANITIZER_ENV, SERVER_CLOSED, Listener

HELLO_HOSTA = vectors.by_name("hello-hosta").data


def start(client, listener: Listener, handle: str = "Chris"):
    """A client connected to the scripted server, which has received its HELLO."""
    cli = client(listener.port)
    cli.enter_handle(handle)
    peer = listener.accept()
    assert peer.receive() == Hello(handle)
    return cli, peer


def in_conversation(client, listener: Listener):
    """The client has sent "test" and waits for the server's turn."""
    cli, peer = start(client, listener)
    peer.send(Hello("HostA"))
    cli.expect_text("Chris> ")
    cli.type("test")
    assert peer.receive() == Message("test")
    return cli, peer


def test_golden_bytes_of_the_example_session(client, listener: Listener) -> None:
    cli = client(listener.port)
    cli.enter_handle("Chris")
    peer = listener.accept()
    assert peer.receive_exactly(8) == vectors.by_name("hello-chris").data
    peer.send_raw(HELLO_HOSTA)
    cli.expect_text("Chris> ")
    cli.type("test")
    assert peer.receive_exactly(7) == vectors.by_name("message-test").data
    peer.send_raw(vectors.by_name("message-hello").data)
    cli.expect_line("HostA> hello")
    cli.expect_text("Chris> ")
    cli.type("\\quit")
    assert peer.receive_bytes_until_closed() == vectors.by_name("quit").data
    assert cli.wait_exit() == 0


@pytest.mark.parametrize("delivery", ["bytewise", "split-header", "coalesced"])
def test_frames_are_reassembled_however_they_are_segmented(client, listener: Listener, delivery: str) -> None:
    cli, peer = start(client, listener)
    peer.send(Hello("HostA"))  # the scripted side's state; the bytes go out raw below
    cli.expect_text("Chris> ")
    cli.type("test")
    assert peer.receive() == Message("test")
    frames = peer.conn.send(Message("one")) + vectors.by_name("quit").data
    if delivery == "bytewise":
        for i in range(len(frames)):
            peer.send_raw(frames[i : i + 1])
    elif delivery == "split-header":
        peer.send_raw(frames[:2])
        peer.send_raw(frames[2:])
    else:
        peer.send_raw(frames)
    cli.expect_line("HostA> one")
    cli.expect_line(SERVER_CLOSED)
    assert cli.wait_exit() == 0


def test_server_quit_ends_with_status_0(client, listener: Listener) -> None:
    cli, peer = in_conversation(client, listener)
    peer.send(Quit())
    cli.expect_line(SERVER_CLOSED)
    assert cli.wait_exit() == 0


@pytest.mark.parametrize(
    ("code", "description"),
    [
        (1, "the server is busy with another client"),
        (2, "the server got a malformed frame"),
        (3, "the server got an unexpected frame"),
        (4, "the server rejected the handle"),
        (5, "the server timed out waiting for HELLO"),
        (77, "unknown error code"),
    ],
)
def test_each_error_code_received_is_one_line_and_exit_4(client, listener: Listener, code: int,
                                                          description: str) -> None:
    cli, peer = start(client, listener)
    reason = b"why\x1b[2J\xff\xe2\x80\xaeevil"  # an escape, invalid UTF-8, U+202E (S-13)
    peer.send_raw(bytes([0x45, 0, 1 + len(reason), code]) + reason)
    name = ErrorCode(code).name if code <= 5 else "UNKNOWN"
    cli.expect_line(f"chatclient: server sent ERROR {code} {name} ({description}): why?[2J??evil")
    assert cli.wait_exit() == 4
    assert "\x1b" not in cli.transcript and "\u202e" not in cli.transcript


MALFORMED_FROM_SERVER = [v.name for v in vectors.load() if v.error == "MALFORMED" and v.data[0] == 0x4D]


@pytest.mark.parametrize("name", MALFORMED_FROM_SERVER)
def test_malformed_messages_get_error_malformed_and_exit_5(client, listener: Listener, name: str) -> None:
    cli, peer = in_conversation(client, listener)
    peer.send_raw(vectors.by_name(name).data)
    event = peer.receive()
    assert isinstance(event, Error) and event.code == ErrorCode.MALFORMED
    assert peer.receive() == ConnectionClosed()
    cli.expect_re(r"chatclient: protocol error: sent ERROR 2 MALFORMED \([^\r\n]*\)\r\n")
    assert cli.wait_exit() == 5
    assert "\x1b" not in cli.transcript and "\x9b" not in cli.transcript


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        (["message-test"], ErrorCode.UNEXPECTED),  # a MESSAGE before the server's HELLO
        (["hello-hosta", "hello-hosta"], ErrorCode.UNEXPECTED),  # a second HELLO
        (["hello-gt"], ErrorCode.BAD_HANDLE),
        (["hello-11-ascii"], ErrorCode.BAD_HANDLE),
        (["type-unknown"], ErrorCode.MALFORMED),
        (["hello-len-41"], ErrorCode.MALFORMED),
    ],
)
def test_bad_handshakes_get_the_matching_error(client, listener: Listener, frames: list[str],
                                               code: ErrorCode) -> None:
    cli, peer = start(client, listener)
    peer.send_raw(b"".join(vectors.by_name(n).data for n in frames))
    event = peer.receive()
    assert isinstance(event, Error) and event.code == code, event
    assert peer.receive() == ConnectionClosed()
    cli.expect_re(rf"chatclient: protocol error: sent ERROR {int(code)} {code.name} \([^\r\n]*\)\r\n")
    assert cli.wait_exit() == 5


def test_a_message_out_of_turn_is_unexpected(client, listener: Listener) -> None:
    cli, peer = start(client, listener)
    peer.send_raw(HELLO_HOSTA + vectors.by_name("message-hello").data)  # the client's turn, not the server's
    event = peer.receive()
    assert isinstance(event, Error) and event.code == ErrorCode.UNEXPECTED
    assert peer.receive() == ConnectionClosed()
    assert cli.wait_exit() == 5


@pytest.mark.parametrize("how", ["clean-eof", "mid-frame"])
def test_a_lost_connection_is_one_line_and_exit_6(client, listener: Listener, how: str) -> None:
    cli, peer = in_conversation(client, listener)
    if how == "mid-frame":
        peer.send_raw(vectors.by_name("message-hello").data[:5])
    peer.close()
    cli.expect_line(LOST)
    assert cli.wait_exit() == 6


def test_a_quit_into_a_reset_connection_is_a_lost_connection(client, listener: Listener) -> None:
    """C-8: the server resets the connection while the user types \\quit; the client, held stopped
    meanwhile, meets both at once and ends as for a lost connection, whichever it takes first."""
    cli, peer = start(client, listener)
    peer.send(Hello("HostA"))
    cli.expect_text("Chris> ")
    os.killpg(cli.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    try:
        while Path(f"/proc/{cli.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "Tt":
            assert time.monotonic() < deadline, "the client did not stop"
            time.sleep(0.002)  # polling /proc: a stop has no event to wait on
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # RST
        cli.type("\\quit")
        while not terminal_unread(cli.pid):
            assert time.monotonic() < deadline, "the typed line did not reach the client's terminal"
            time.sleep(0.002)  # until the line is in its terminal's input queue
    finally:
        os.killpg(cli.pid, signal.SIGCONT)
    cli.expect_line(LOST)
    assert cli.wait_exit() == 6


def test_connection_refused_is_one_line_and_exit_3(client) -> None:
    port = free_port()
    cli = client(port)
    cli.enter_handle("Chris")
    cli.expect_re(rf"chatclient: cannot connect to 127\.0\.0\.1 port {port}: [^\r\n]+\r\n")
    assert cli.wait_exit() == 3


def test_end_of_input_at_the_handle_prompt_exits_0(client, listener: Listener) -> None:
    cli = client(listener.port)
    cli.expect_text("Enter client handle (length 10 or less): ")
    cli.end_input()
    assert cli.wait_exit() == 0


def run_client(build: str, args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = SANITIZER_ENV if build == "asan" else {}
    return subprocess.run([str(CLIENT_BUILDS[build]), *args], input=stdin, capture_output=True, text=True,
                          timeout=30, env={**os.environ, **env})


@pytest.mark.parametrize("args", [[], ["localhost"], ["a", "1", "extra"], ["--help", "extra", "1"]])
def test_a_wrong_number_of_arguments_is_the_usage_line_and_exit_2(build: str, args: list[str]) -> None:
    result = run_client(build, args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", "usage: chatclient HOST PORT\n")


@pytest.mark.parametrize(("port", "reason"), [
    ("0", "it is not between 1 and 65535"),
    ("65536", "it is not between 1 and 65535"),
    ("99999", "it is not between 1 and 65535"),
    ("99999999999999999999999", "it is not between 1 and 65535"),
    ("abc", "it is not a decimal number"),
    ("12ab", "it is not a decimal number"),
    ("-1", "it is not a decimal number"),
    ("", "it is empty"),
    ("1\x1b[2J", "it is not a decimal number"),
])
def test_a_bad_port_says_why_and_exits_2(build: str, port: str, reason: str) -> None:
    """C-1: one line on stderr naming the port (sanitised) and what is wrong with it; nothing asked."""
    result = run_client(build, ["127.0.0.1", port])
    shown = port.replace("\x1b", "?")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"chatclient: invalid port '{shown}': {reason}\n"


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_is_usage_on_stdout_and_exit_0(build: str, flag: str) -> None:
    result = run_client(build, [flag])
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("usage: chatclient HOST PORT\n")
    assert "Exit status" in result.stdout


def test_an_unknown_host_fails_before_the_handle_is_asked(build: str) -> None:
    """C-3: resolved first. A name with spaces is refused by the resolver itself, without a DNS
    query, so the test stays off the network."""
    result = run_client(build, ["no such host", "1"], stdin="Chris\n")
    assert result.returncode == 3
    assert result.stdout == ""  # no handle prompt
    assert result.stderr.startswith("chatclient: cannot resolve no such host: ")
    assert result.stderr.count("\n") == 1


def test_the_connection_is_made_after_the_handle(client, listener: Listener) -> None:
    """C-3: the handle prompt shows with nothing connected (a connection made before it would be
    queued on the listener by then: loopback completes it at once); the handle brings it."""
    cli = client(listener.port)
    cli.expect_text("Enter client handle (length 10 or less): ")
    assert select.select([listener.sock], [], [], 0)[0] == []
    cli.type("Chris")
    assert listener.accept().receive() == Hello("Chris")


def test_an_invalid_handle_from_a_pipe_is_fatal(build: str, listener: Listener) -> None:
    result = run_client(build, ["127.0.0.1", str(listener.port)], stdin="a b\n")
    assert result.returncode == 2
    assert result.stderr == "chatclient: invalid handle: it contains whitespace\n"


def test_a_script_on_stdin_is_sent_in_turn_and_in_order(build: str, listener: Listener) -> None:
    env = {**os.environ, **(SANITIZER_ENV if build == "asan" else {})}
    proc = subprocess.Popen([str(CLIENT_BUILDS[build]), "127.0.0.1", str(listener.port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        proc.stdin.write("Chris\none\ntwo\n")  # all at once, before any turn
        proc.stdin.close()
        peer = listener.accept()
        assert peer.receive() == Hello("Chris")
        peer.send(Hello("HostA"))
        assert peer.receive() == Message("one")
        peer.send(Message("reply"))
        assert peer.receive() == Message("two")
        peer.send(Message("reply"))
        assert peer.receive() == Quit()  # end of the script is \quit (C-8)
        assert proc.wait(timeout=30) == 0
        # Nothing echoes a script's lines, so the client ends each prompt's line itself (C-6).
        assert proc.stdout.read() == ("Enter client handle (length 10 or less): \nChris> \nHostA> reply\n"
                                      "Chris> \nHostA> reply\nChris> \n")
    finally:
        proc.kill()
        proc.wait()


def test_sigterm_sends_quit_and_exits_143(client, listener: Listener) -> None:
    cli, peer = in_conversation(client, listener)
    cli.kill(15)
    assert peer.receive() == Quit()
    assert peer.receive() == ConnectionClosed()
    assert cli.wait_exit() == 143


@pytest.mark.parametrize(("wait", "shown"), [("0.3", "0.3"), ("0.50", "0.5")])
def test_no_server_hello_gets_timeout_and_exit_5(client, listener: Listener, monkeypatch, wait: str,
                                                 shown: str) -> None:
    """C-4, E-4: the reason names the wait used, as %g writes it."""
    monkeypatch.setenv("CHAT_HELLO_TIMEOUT", wait)
    cli, peer = start(client, listener)
    event = peer.receive()
    assert event == Error(ErrorCode.TIMEOUT, f"no HELLO within {shown} s")
    cli.expect_line(f"chatclient: protocol error: sent ERROR 5 TIMEOUT (no HELLO within {shown} s)")
    assert cli.wait_exit() == 5
