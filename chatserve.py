#!/usr/bin/env python3
"""Reference chat server (PROTOCOL.md section 5).

    python3 chatserve.py [PORT] [--handle NAME] [--handshake-timeout SECONDS]

One `selectors` loop watches the listening socket, the client's socket, the operator's
terminal and a signal wake-up socket, so a second client gets BUSY and a dropped client is
noticed even while the operator is typing. Frames come and go only through chatwire.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import signal
import socket
import sys
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, TextIO

import venvboot

venvboot.ensure("construct", program="chatserve", argv0=[str(Path(__file__).resolve())])  # S-2

from chatwire import (  # noqa: E402
    NEED_DATA,
    NOT_UTF8,
    Connection,
    ConnectionClosed,
    Error,
    ErrorCode,
    Hello,
    LocalProtocolError,
    Message,
    ProtocolError,
    Quit,
    Role,
    State,
    decode_text,
    error_name,
    handle_problem,
    message_problem,
)

DEFAULT_PORT = 39919
DEFAULT_HANDLE = "HostA"
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
LINGER_SECONDS = 1.0  # W-7: how long a closing socket is drained
MAX_LINGERING = 256  # beyond this, refused sockets are closed at once (a flood must not pile up)
RECV_SIZE = 4096
LINE_LIMIT = 4 * 500  # bytes: a longer typed line cannot be a valid message, so it is not kept

DROPPED = "The client has dropped the connection..."
YOU_CLOSED = "You have closed the connection..."
QUIT_COMMAND = "\\quit"


# --- the operator's terminal ---------------------------------------------------------------


class Terminal:
    """Output lines and prompts; a line printed while a prompt shows starts on a fresh line (S-7)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.prompt_showing = False

    def _write(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except OSError:
            pass  # the terminal is gone; SIGHUP or end of input will end the server

    def line(self, text: str) -> None:
        self._write(("\n" if self.prompt_showing else "") + text + "\n")
        self.prompt_showing = False

    def prompt(self, text: str) -> None:
        self._write(text)
        self.prompt_showing = True

    def end_line(self) -> None:
        if self.prompt_showing:
            self._write("\n")
            self.prompt_showing = False

    def line_entered(self) -> None:
        self.prompt_showing = False  # the terminal's echo of Enter ended the prompt's line


class LineReader:
    """Splits terminal input into lines without ever holding more than LINE_LIMIT bytes."""

    TOO_LONG = None

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._overlong = False

    def feed(self, data: bytes) -> list[bytes | None]:
        """Complete lines (without their newline); None stands for a line too long to keep."""
        self._buffer += data
        lines: list[bytes | None] = []
        while (end := self._buffer.find(b"\n")) >= 0:
            lines.append(self.TOO_LONG if self._overlong else bytes(self._buffer[:end]))
            del self._buffer[: end + 1]
            self._overlong = False
        if len(self._buffer) > LINE_LIMIT:
            self._overlong = True
            self._buffer.clear()
        return lines

    def finish(self) -> list[bytes | None]:
        """At end of input, a last line without newline still counts."""
        return self.feed(b"\n") if self._buffer or self._overlong else []


def typed_problem(line: bytes | None) -> tuple[str, str | None]:
    """(text, None) for a line that may be sent, or ("", why) for one that may not (S-6)."""
    if line is None:
        return "", "is longer than 500 characters"
    text = decode_text(line)
    if text is None:
        return "", NOT_UTF8
    return text, message_problem(text)


# --- connections ---------------------------------------------------------------------------


def show_address(address: tuple) -> str:
    """S-4: ('HOST', PORT) as Python prints a tuple, IPv4-mapped IPv6 shown as plain IPv4."""
    host, port = address[0], address[1]
    if host.startswith("::ffff:") and "." in host:
        host = host.removeprefix("::ffff:")
    return repr((host, port))


@dataclass
class Peer:
    """The one connection being served: in its handshake, or in a conversation."""

    sock: socket.socket
    address: str
    conn: Connection = field(default_factory=lambda: Connection(Role.SERVER))
    deadline: float | None = None  # end of the handshake timeout (S-11)
    handle: str | None = None  # set once its HELLO is accepted

    @property
    def established(self) -> bool:
        return self.handle is not None


class PeerGone(Exception):
    """The client's socket failed, or stopped reading so that a frame could not be sent."""


def send_frame(sock: socket.socket, data: bytes) -> None:
    """Hand a frame to the kernel whole. Frames are small, so a full send buffer means the peer
    has stopped reading long ago; it is treated as gone rather than blocking the operator."""
    try:
        sent = sock.send(data)
    except OSError as exc:
        raise PeerGone(str(exc)) from exc
    if sent != len(data):
        raise PeerGone("the client stopped reading")


def listen(port: int) -> socket.socket:
    """S-3: dual-stack :: where the system has IPv6, else IPv4 only."""
    if socket.has_dualstack_ipv6():
        return socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
    return socket.create_server(("0.0.0.0", port))


class Server:
    def __init__(self, listener: socket.socket, handle: str, handshake_timeout: float,
                 term_in: int, term: Terminal) -> None:
        self.listener = listener
        self.handle = handle
        self.handshake_timeout = handshake_timeout
        self.term_in = term_in
        self.term = term
        self.lines = LineReader()
        self.peer: Peer | None = None
        self.lingering: dict[socket.socket, float] = {}
        # poll(2) rather than epoll: it also accepts a regular file as the operator's input.
        self.selector = selectors.PollSelector()
        self.wakeup_r, self.wakeup_w = socket.socketpair()
        self.running = True

    # -- the loop

    def run(self) -> int:
        for sock in (self.listener, self.wakeup_r, self.wakeup_w):
            sock.setblocking(False)
        signal.set_wakeup_fd(self.wakeup_w.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda *_: None)  # the wake-up socket reports it to the loop
        self.selector.register(self.listener, selectors.EVENT_READ, self.on_accept)
        self.selector.register(self.wakeup_r, selectors.EVENT_READ, self.on_signal)
        self.selector.register(self.term_in, selectors.EVENT_READ, self.on_terminal)
        while self.running:
            for key, _ in self.selector.select(self.next_timeout()):
                # An earlier event of this round may have closed this socket (e.g. the operator's
                # send found the client gone): its event is stale.
                if self.selector.get_map().get(key.fd) is not key:
                    continue
                key.data(key.fileobj)
                if not self.running:
                    break
            self.on_deadlines()
        self.term.end_line()
        return 0

    def next_timeout(self) -> float | None:
        """S-14: block with no timeout unless a handshake or a linger deadline is pending."""
        deadlines = list(self.lingering.values())
        if self.peer and self.peer.deadline is not None:
            deadlines.append(self.peer.deadline)
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def on_deadlines(self) -> None:
        now = time.monotonic()
        for sock, deadline in list(self.lingering.items()):
            if now >= deadline:
                self.forget(sock)
        if self.peer and self.peer.deadline is not None and now >= self.peer.deadline:
            seconds = f"{self.handshake_timeout:g}"
            self.fail(ProtocolError(ErrorCode.TIMEOUT, f"no HELLO within {seconds} s"))

    # -- sockets

    def on_accept(self, _: object) -> None:
        while True:
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. out of file descriptors: the pending connection waits in the backlog
            sock.setblocking(False)
            if self.peer is None:
                self.peer = Peer(sock, show_address(address), deadline=time.monotonic() + self.handshake_timeout)
                self.selector.register(sock, selectors.EVENT_READ, self.on_peer)
            else:
                self.refuse_busy(sock)

    def refuse_busy(self, sock: socket.socket) -> None:
        """S-8: ERROR BUSY, then close gracefully; the conversation is not touched."""
        try:
            send_frame(sock, Connection(Role.SERVER).send(Error(ErrorCode.BUSY, "busy")))
        except PeerGone:
            sock.close()
            return
        self.linger(sock)

    def linger(self, sock: socket.socket) -> None:
        """W-7: shut down our side, then drain until the peer closes or the deadline."""
        if self.peer and self.peer.sock is sock:
            self.selector.unregister(sock)
            self.peer = None
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        if len(self.lingering) >= MAX_LINGERING:
            sock.close()
            return
        self.lingering[sock] = time.monotonic() + LINGER_SECONDS
        self.selector.register(sock, selectors.EVENT_READ, self.on_linger)

    def on_linger(self, sock: socket.socket) -> None:
        try:
            if sock.recv(RECV_SIZE):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self.forget(sock)

    def forget(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)
        del self.lingering[sock]
        sock.close()

    def on_peer(self, sock: socket.socket) -> None:
        peer = self.peer
        assert peer is not None and peer.sock is sock
        try:
            data = sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # a reset is a lost connection like any other (S-9)
        peer.conn.receive_data(data)
        try:
            while self.peer is peer and (event := peer.conn.next_event()) is not NEED_DATA:
                self.on_event(peer, event)
        except ProtocolError as exc:
            self.fail(exc)
        except PeerGone:
            self.drop(peer)

    def on_event(self, peer: Peer, event: object) -> None:
        match event:
            case Hello(handle):
                send_frame(peer.sock, peer.conn.send(Hello(self.handle)))
                peer.handle, peer.deadline = handle, None
                self.term.line(f"Established connection with {peer.address}...")
            case Message(text):
                self.term.line(f"{peer.handle}> {text}")
                self.term.prompt(f"{self.handle}> ")
            case Error(code, reason):
                self.term.line(f"The client sent ERROR {code} {error_name(code)}: {reason}")
                self.drop(peer)
            case Quit() | ConnectionClosed():
                self.drop(peer)

    def drop(self, peer: Peer) -> None:
        """S-9: the client quit or its connection ended."""
        self.selector.unregister(peer.sock)
        peer.sock.close()
        self.peer = None
        if peer.established:
            self.discard_typing()  # before the news: what is typed after it is meant for what comes next
            self.term.line(DROPPED)

    def fail(self, exc: ProtocolError) -> None:
        """E-2, S-10, S-11: the client broke the protocol (or timed out): ERROR, then close."""
        peer = self.peer
        assert peer is not None
        with contextlib.suppress(PeerGone):
            send_frame(peer.sock, peer.conn.send(Error(exc.code, exc.reason)))
        self.linger(peer.sock)
        if peer.established:
            self.discard_typing()
        self.term.line(f"Closed the connection with {peer.address}: "
                       f"sent ERROR {exc.code} {exc.code.name} ({exc.reason})...")

    def quit_peer(self) -> None:
        """S-9, S-12: the operator ends the conversation."""
        peer = self.peer
        assert peer is not None and peer.established
        with contextlib.suppress(PeerGone):
            send_frame(peer.sock, peer.conn.send(Quit()))
        self.linger(peer.sock)
        self.discard_typing()
        self.term.line(YOU_CLOSED)

    # -- the operator

    def on_terminal(self, _: object) -> None:
        try:
            data = os.read(self.term_in, RECV_SIZE)
        except OSError:
            data = b""
        if not data:
            for line in self.lines.finish():
                self.on_line(line)
            if self.peer and self.peer.established:
                self.quit_peer()  # Ctrl-D in a conversation means \quit; a next one ends the server
            else:
                self.shut_down()
            return
        self.term.line_entered()
        for line in self.lines.feed(data):
            self.on_line(line)

    def discard_typing(self) -> None:
        """S-9: a line half typed to a client that has gone must not become the next client's
        first message, so the terminal's pending input is thrown away."""
        if os.isatty(self.term_in):
            termios.tcflush(self.term_in, termios.TCIFLUSH)

    def operators_turn(self) -> bool:
        return self.peer is not None and self.peer.conn.state is State.SERVER_TURN

    def on_line(self, line: bytes | None) -> None:
        text, problem = typed_problem(line)
        established = self.peer is not None and self.peer.established
        if text == QUIT_COMMAND and established:
            self.quit_peer()  # F-3: in or out of turn
        elif not established:
            self.term.line("No client is connected; the line was not sent.")
        elif not self.operators_turn():
            self.term.line("Not your turn; the line was not sent.")
        elif problem:
            self.term.line(f"Message not sent: it {problem}.")
            self.term.prompt(f"{self.handle}> ")
        else:
            assert self.peer is not None
            try:
                send_frame(self.peer.sock, self.peer.conn.send(Message(text)))
            except PeerGone:
                self.drop(self.peer)

    def on_signal(self, _: object) -> None:
        try:
            signums = self.wakeup_r.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        if signal.SIGINT in signums and os.isatty(self.term_in):
            self.term.prompt_showing = True  # the terminal echoed ^C on the current line
        self.shut_down()

    def shut_down(self) -> None:
        """S-12: QUIT to a client in conversation, then stop."""
        if self.peer and self.peer.established:
            peer = self.peer
            self.quit_peer()
            self.drain_now(peer.sock)
        elif self.peer:
            self.peer.sock.close()
            self.peer = None
        for sock in list(self.lingering):
            self.forget(sock)
        self.running = False

    def drain_now(self, sock: socket.socket) -> None:
        """W-7 before exit: let the QUIT reach the client instead of a reset (at most LINGER_SECONDS)."""
        deadline = time.monotonic() + LINGER_SECONDS
        with selectors.PollSelector() as just_this:
            just_this.register(sock, selectors.EVENT_READ)
            while sock in self.lingering and (left := deadline - time.monotonic()) > 0:
                if just_this.select(left):
                    self.on_linger(sock)


# --- command line --------------------------------------------------------------------------


class OneLineParser(argparse.ArgumentParser):
    """S-1: a usage error is one line on stderr and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"chatserve: {message} (see --help)\n")


def port_number(text: str) -> int:
    if text.isdigit() and int(text) <= 65535:
        return int(text)
    raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected a number from 0 to 65535")


def handle_name(text: str) -> str:
    if problem := handle_problem(text):
        raise argparse.ArgumentTypeError(f"invalid handle {text!r}: it {problem}")
    return text


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"invalid timeout {text!r}: expected a positive number of seconds")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(prog="chatserve.py", description="Reference server of the two-party chat (PROTOCOL.md).")
    parser.add_argument("port", nargs="?", type=port_number, default=DEFAULT_PORT,
                        help=f"TCP port to listen on; 0 picks a free one (default {DEFAULT_PORT})")
    parser.add_argument("--handle", type=handle_name, default=DEFAULT_HANDLE,
                        help=f"the server's handle (default {DEFAULT_HANDLE})")
    parser.add_argument("--handshake-timeout", type=seconds, default=DEFAULT_HANDSHAKE_TIMEOUT, metavar="SECONDS",
                        help=f"how long a new client has to send HELLO (default {DEFAULT_HANDSHAKE_TIMEOUT:g})")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        listener = listen(args.port)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)  # create_server adds the address
        print(f"chatserve: cannot listen on port {args.port}: {reason}", file=sys.stderr)
        return 1
    term = Terminal(sys.stdout)
    term.line(f"Listening on port {listener.getsockname()[1]}...")
    return Server(listener, args.handle, args.handshake_timeout, sys.stdin.fileno(), term).run()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except LocalProtocolError as exc:  # a bug of ours: say so in one line rather than a traceback
        print(f"chatserve: internal error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C before the loop took over signals
        sys.exit(0)
