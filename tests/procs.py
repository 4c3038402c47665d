"""The real programs in pseudo-terminals (pexpect), and scripted peers on real loopback TCP.

Every wait is on something observable (a line on a screen, a frame, an exit) with a timeout;
nothing sleeps to synchronise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import chatwire
from chatwire import NEED_DATA, Connection, Event, Role
from conformance.programs import Program

ROOT = Path(__file__).resolve().parent.parent
# Every other `python3` the tests start is .venv's, first on PATH as in an activated venv
# (tests/conftest.py): the machine's may be a shim (pyenv's costs 0.1 s of CPU a start, and the
# tests start python3 thousands of times). The machine's own is kept for the README's plain
# `python3 chatserve.py`, which must re-execute itself under .venv (venvboot, S-2).
VENV_BIN = Path(sys.executable).parent
SYSTEM_PATH = os.pathsep.join(folder for folder in os.environ.get("PATH", "").split(os.pathsep)
                              if folder and Path(folder).resolve() != VENV_BIN.resolve())
SYSTEM_PYTHON3 = shutil.which("python3", path=SYSTEM_PATH) or "python3"
TIMEOUT = 15  # seconds for any one expected thing; generous for sanitizer builds on a busy machine

CLIENT_BUILDS = {"plain": ROOT / "chatclient", "asan": ROOT / "build" / "chatclient-asan"}
# A sanitizer finding ends the client with a status no test expects (99/98), so it cannot pass.
SANITIZER_ENV = {
    "ASAN_OPTIONS": "exitcode=99:detect_leaks=1:abort_on_error=0",
    "UBSAN_OPTIONS": "halt_on_error=1:exitcode=98:print_stacktrace=1",
}

HANDLE_PROMPT = "Enter client handle (length 10 or less): "
DROPPED = "The client has dropped the connection..."
YOU_CLOSED = "You have closed the connection..."
SERVER_CLOSED = "The server has closed the connection..."
LOST = "chatclient: the connection to the server was lost"


class Screen(Program):
    """A program in a pseudo-terminal, with everything it has shown kept as a transcript."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, role: str = "program") -> None:
        super().__init__(role, argv, TIMEOUT, env=env, cwd=str(ROOT))


class Server(Screen):
    def __init__(self, *args: str) -> None:
        # The system python3: chatserve.py must re-execute itself under .venv (S-2).
        super().__init__([SYSTEM_PYTHON3, str(ROOT / "chatserve.py"), "0", *args], role="server")
        self.port = int(self.expect_re(r"Listening on port (\d+)\.\.\.\r\n").group(1))

    def expect_established(self) -> tuple[str, int]:
        match = self.expect_re(r"Established connection with \('([^']*)', (\d+)\)\.\.\.\r\n")
        return match.group(1), int(match.group(2))


class Client(Screen):
    def __init__(self, build: str, host: str, port: int | str) -> None:
        env = SANITIZER_ENV if build == "asan" else None
        super().__init__([str(CLIENT_BUILDS[build]), host, str(port)], env, role="client")

    def enter_handle(self, handle: str) -> None:
        self.expect_text(HANDLE_PROMPT)
        self.type(handle)


@contextlib.contextmanager
def conversation(handle: str = "Chris") -> Iterator[tuple[Server, Client]]:
    """The real server and plain client, past the handshake, the client's prompt showing; both
    stopped afterwards (for benchmarks; tests use the fixtures of conftest.py)."""
    srv = Server()
    cli = Client("plain", "127.0.0.1", srv.port)
    try:
        cli.enter_handle(handle)
        srv.expect_established()
        cli.expect_text(f"{handle}> ")
        yield srv, cli
    finally:
        cli.stop()
        srv.stop()


class Peer:
    """A scripted peer on a real loopback socket, speaking through chatwire."""

    def __init__(self, sock: socket.socket, role: Role) -> None:
        self.sock = sock
        self.sock.settimeout(TIMEOUT)
        self.conn = Connection(role)

    def send(self, event: chatwire.Hello | chatwire.Message | chatwire.Quit | chatwire.Error) -> None:
        self.sock.sendall(self.conn.send(event))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> Event:
        """The next event (ProtocolError if the other side breaks the protocol)."""
        while (event := self.conn.next_event()) is NEED_DATA:
            try:
                data = self.sock.recv(4096)
            except ConnectionResetError:
                data = b""
            self.conn.receive_data(data)
        if isinstance(event, chatwire.ConnectionClosed):
            self.sock.close()  # as a real peer would, so the other side's drain (W-7) ends now
        return event

    def receive_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size and (chunk := self.sock.recv(size - len(data))):
            data += chunk
        return data

    def receive_bytes_until_closed(self) -> bytes:
        chunks = []
        while data := self.sock.recv(4096):
            chunks.append(data)
        self.sock.close()
        return b"".join(chunks)

    def close(self) -> None:
        self.sock.close()


def connect(port: int, host: str = "127.0.0.1") -> Peer:
    return Peer(socket.create_connection((host, port), timeout=TIMEOUT), Role.CLIENT)


class Listener:
    """A scripted server: listens on a free loopback port and accepts one client at a time."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, 0), family=family)
        self.sock.settimeout(TIMEOUT)
        self.port = self.sock.getsockname()[1]

    def accept(self) -> Peer:
        sock, _ = self.sock.accept()
        return Peer(sock, Role.SERVER)

    def close(self) -> None:
        self.sock.close()


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


# The mutation runs' summary, printed at the end of the test session (tests/conftest.py).
MUTATION_SUMMARY = pytest.StashKey[list[str]]()


# --- the conformance suite's front end ------------------------------------------------------


def conformance(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python3 -m conformance ...` from the project root, as a user runs it."""
    return subprocess.run(["python3", "-m", "conformance", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def listed(mode: str) -> list[str]:
    """The IDs of every case of `mode`, as `python3 -m conformance list` prints them."""
    result = conformance("list", mode)
    assert result.returncode == 0, result.stderr
    return [line.split()[0] for line in result.stdout.splitlines()]
