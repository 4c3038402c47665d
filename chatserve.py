#!/usr/bin/env python3
"""Reference chat server (PROTOCOL.md section 5).

    python3 chatserve.py [PORT] [--handle NAME] [--handshake-timeout SECONDS]

One `selectors` loop watches the listening socket, the conversation's socket, the connections
still in their handshake, the operator's terminal and a signal wake-up socket, so that any number
of connections may be in their handshake together (S-8), a second client gets BUSY and a dropped
client is noticed even while the operator is typing. Frames come and go only through chatwire.
"""

from __future__ import annotations

import os
import sys
from importlib.machinery import PathFinder  # loaded with the interpreter, unlike importlib.util

HERE = os.path.dirname(os.path.realpath(__file__))

if PathFinder.find_spec("construct") is None:  # S-2: the system python3 lacks the wire format's package
    VENV = os.path.realpath(os.path.join(HERE, ".venv"))
    SITE = os.path.join(VENV, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")
    if os.path.isdir(SITE) and PathFinder.find_spec("construct", [SITE]) is not None:
        # .venv was made with this Python version: its packages serve this interpreter as they
        # are, without a second interpreter's start (half of the server's start, bench/footprint.py).
        sys.path.append(SITE)
    elif os.path.exists(os.path.join(VENV, "bin", "python")) and os.path.realpath(sys.prefix) != VENV:
        # What venvboot.ensure() does, without importing venvboot (its import machinery costs tens
        # of milliseconds of every start); venvboot says what to do without .venv.
        os.execv(os.path.join(VENV, "bin", "python"), [os.path.join(VENV, "bin", "python"),
                                                         os.path.realpath(__file__), *sys.argv[1:]])
    else:
        import venvboot

        venvboot.ensure("construct", program="chatserve", argv0=[os.path.realpath(__file__)])

import argparse  # noqa: E402
import select  # noqa: E402
import selectors  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import termios  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402

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
    layouts,
    message_problem,
)

TYPE_CHECKING = False  # typing itself is not imported: its import costs start-up time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

DEFAULT_PORT = 39919
DEFAULT_HANDLE = "HostA"
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
MAX_HANDSHAKES = 64  # S-8: connections in their handshake at once; past that, BUSY at once
LINGER_SECONDS = 1.0  # W-7: how long a closing socket is drained
MAX_LINGERING = 256  # beyond this, refused sockets are closed at once (a flood must not pile up)
WATCHDOG_SECONDS = LINGER_SECONDS + 0.5  # S-12: a stop signal ends a terminal write blocked this long
RECV_SIZE = 4096
LINE_LIMIT = 4 * 500  # bytes: a longer typed line cannot be a valid message, so it is not kept

DROPPED = "The client has dropped the connection..."
YOU_CLOSED = "You have closed the connection..."
NO_CLIENT = "No client is connected; the line was not sent."
QUIT_COMMAND = "\\quit"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


# --- signals that always stop the server (S-12) ---------------------------------------------


class Interrupted(Exception):
    """A stop signal arrived while the server was blocked reading or writing its terminal."""


class SignalGate:
    """Lets a stop signal end a blocked read or write of the terminal.

    The signals' handler only wakes the loop (the wake-up socket): the loop stops the server where
    it is safe. But a system call that a signal interrupts is retried by Python when the handler
    returns (PEP 475), so a server blocked in a read of its terminal (a job brought back with `fg`
    finds that the shell took the line that woke it) or in a write to it (output stopped with
    Ctrl-S, a terminal nobody reads) would stay blocked, signal or not. Terminal I/O therefore runs
    through read() and write() here, during which the handler raises Interrupted instead. After the
    first stop signal, a terminal that cannot take output now is not written at all, and a
    watchdog timer (SIGALRM) ends a write that blocks all the same, so the lines of the stop
    itself cannot hold the server either.
    """

    def __init__(self) -> None:
        self.armed = False  # in a terminal read or write: the handler raises Interrupted
        self.signalled = False  # a stop signal has arrived

    def install(self, wakeup: socket.socket) -> None:
        signal.set_wakeup_fd(wakeup.fileno(), warn_on_full_buffer=False)
        for signum in (*STOP_SIGNALS, signal.SIGALRM):
            signal.signal(signum, self.handler)

    def handler(self, signum: int, _frame: object) -> None:
        if signum != signal.SIGALRM and not self.signalled:
            self.signalled = True
            signal.setitimer(signal.ITIMER_REAL, WATCHDOG_SECONDS)
        if self.armed:
            self.armed = False
            raise Interrupted

    def read(self, fd: int, size: int) -> bytes:
        """os.read, or Interrupted once a stop signal has arrived (before or during the read)."""
        try:
            self.armed = True
            if self.signalled:  # arrived since the loop's select: do not start a read it could not end
                raise Interrupted
            return os.read(fd, size)
        finally:
            self.armed = False

    def write(self, fd: int, data: bytes) -> int:
        """os.write, or Interrupted by a stop signal (or the watchdog after one) while it blocks.
        Once a stop signal has arrived, a terminal that cannot take output now (stopped, full)
        is not waited for at all."""
        try:
            self.armed = True
            if self.signalled and not writable(fd):
                raise Interrupted
            return os.write(fd, data)
        finally:
            self.armed = False

    @staticmethod
    def disarm() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)  # a pending watchdog must not outlive the handlers


def writable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return bool(poller.poll(0))


# --- the operator's terminal ---------------------------------------------------------------


class Terminal:
    """Output lines and prompts; a line printed while a prompt shows starts on a fresh line (S-7).

    Written with os.write, unbuffered: a write that a signal ended leaves nothing in a buffer for
    the interpreter to flush (and block on) at exit."""

    def __init__(self, fd: int, gate: SignalGate, encoding: str = "utf-8") -> None:
        self.fd = fd
        self.gate = gate
        self.encoding = encoding
        self.prompt_showing = False
        self.stuck = False  # a write was blocked until a signal ended it: no more output

    def _write(self, text: str) -> None:
        data = text.encode(self.encoding, errors="replace")
        while data and not self.stuck:
            try:
                data = data[self.gate.write(self.fd, data):]
            except Interrupted:
                self.stuck = True
            except OSError:
                return  # the terminal is gone; SIGHUP or end of input will end the server

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


class Peer:
    """One connection being served: in its handshake, or in the conversation."""

    __slots__ = ("address", "conn", "deadline", "handle", "sock")

    def __init__(self, sock: socket.socket, address: str, deadline: float | None) -> None:
        self.sock = sock
        self.address = address
        self.conn = Connection(Role.SERVER)
        self.deadline = deadline  # end of its handshake timeout (S-11); None once in conversation
        self.handle: str | None = None  # set once its HELLO is accepted

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
        return socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=128)
    return socket.create_server(("0.0.0.0", port), backlog=128)


class Server:
    def __init__(self, listener: socket.socket, handle: str, handshake_timeout: float,
                 term_in: int | None, term: Terminal, gate: SignalGate) -> None:
        self.listener = listener
        self.handle = handle
        self.handshake_timeout = handshake_timeout
        self.term_in = term_in  # None: the server has no input at all (its standard input is closed)
        self.term = term
        self.gate = gate
        self.lines = LineReader()
        self.conversation: Peer | None = None  # the one client past its HELLO (S-4)
        self.handshakes: dict[socket.socket, Peer] = {}  # connections before their HELLO (S-8)
        self.lingering: dict[socket.socket, float] = {}  # closing sockets and the end of their drain (W-7)
        # poll(2) rather than epoll: it also accepts a regular file such as /dev/null as the
        # operator's input, which epoll refuses (S-12).
        self.selector = selectors.PollSelector()
        self.wakeup_r, self.wakeup_w = socket.socketpair()
        for sock in (self.listener, self.wakeup_r, self.wakeup_w):
            sock.setblocking(False)
        gate.install(self.wakeup_w)
        self.running = True

    # -- the loop

    def run(self) -> int:
        self.selector.register(self.listener, selectors.EVENT_READ, self.on_accept)
        self.selector.register(self.wakeup_r, selectors.EVENT_READ, self.on_signal)
        if self.term_in is None:
            self.shut_down()  # no input at all: as at end of input (S-12)
        else:
            self.selector.register(self.term_in, selectors.EVENT_READ, self.on_terminal)
        while self.running:
            for key, _ in self.selector.select(self.next_timeout()):
                # An earlier event of this round may have closed or moved this socket (e.g. the
                # operator's send found the client gone, or another HELLO took the conversation):
                # its event is stale.
                if self.selector.get_map().get(key.fd) is not key:
                    continue
                key.data(key.fileobj)
                if not self.running:
                    break
            self.on_deadlines()
        self.term.end_line()
        self.gate.disarm()
        return 0

    def next_timeout(self) -> float | None:
        """S-14: block with no timeout, or until the nearest deadline: a handshake's (S-11) or the
        end of a drain (W-7)."""
        handshakes = (peer.deadline for peer in self.handshakes.values() if peer.deadline is not None)
        deadlines = [*self.lingering.values(), *handshakes]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def on_deadlines(self) -> None:
        now = time.monotonic()
        for sock, deadline in list(self.lingering.items()):
            if now >= deadline:
                self.forget(sock)
        self.expire_handshakes()

    def expire_handshakes(self) -> None:
        """S-11: each connection in its handshake on its own clock."""
        now = time.monotonic()
        for peer in [p for p in self.handshakes.values() if p.deadline is not None and now >= p.deadline]:
            seconds = f"{self.handshake_timeout:g}"
            self.fail(peer, ProtocolError(ErrorCode.TIMEOUT, f"no HELLO within {seconds} s"))

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
            self.expire_handshakes()  # a handshake whose time is up holds no place in the bound
            if self.conversation is None and len(self.handshakes) < MAX_HANDSHAKES:
                peer = Peer(sock, show_address(address), deadline=time.monotonic() + self.handshake_timeout)
                self.handshakes[sock] = peer
                self.selector.register(sock, selectors.EVENT_READ, self.on_readable(peer))
            else:
                self.refuse_busy(sock)

    def on_readable(self, peer: Peer) -> Callable[[object], None]:
        return lambda _: self.on_peer(peer)

    def refuse_busy(self, sock: socket.socket) -> None:
        """S-8: ERROR BUSY, then close gracefully; the conversation is not touched."""
        try:
            send_frame(sock, Connection(Role.SERVER).send(Error(ErrorCode.BUSY, "busy")))
        except PeerGone:
            sock.close()
            return
        self.linger(sock)

    def release(self, peer: Peer) -> None:
        """The peer is no longer served: out of the loop, out of the handshakes or the conversation."""
        self.selector.unregister(peer.sock)
        if self.conversation is peer:
            self.conversation = None
        else:
            del self.handshakes[peer.sock]

    def linger(self, sock: socket.socket) -> None:
        """W-7: shut down our side, then drain until the peer closes or the deadline. A draining
        socket is neither a conversation nor a handshake: it keeps no newcomer out (S-8)."""
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

    def served(self, peer: Peer) -> bool:
        return self.conversation is peer or self.handshakes.get(peer.sock) is peer

    def on_peer(self, peer: Peer) -> None:
        try:
            data = peer.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # a reset is a lost connection like any other (S-9)
        peer.conn.receive_data(data)
        try:
            while self.served(peer) and (event := peer.conn.next_event()) is not NEED_DATA:
                self.on_event(peer, event)
        except ProtocolError as exc:
            self.fail(peer, exc)
        except PeerGone:
            self.drop(peer)

    def on_event(self, peer: Peer, event: object) -> None:
        match event:
            case Hello(handle):  # only in a handshake: a second HELLO is UNEXPECTED (section 4)
                send_frame(peer.sock, peer.conn.send(Hello(self.handle)))
                del self.handshakes[peer.sock]
                peer.handle, peer.deadline = handle, None
                self.conversation = peer
                self.term.line(f"Established connection with {peer.address}...")
                for other in list(self.handshakes.values()):  # S-8: the first HELLO has the conversation
                    self.release(other)
                    self.refuse_busy(other.sock)
            case Message(text):
                self.term.line(f"{peer.handle}> {text}")
                self.term.prompt(f"{self.handle}> ")
            case Error(code, reason):
                if peer.established:  # S-10; from a handshake, nothing is shown (S-9)
                    self.term.line(f"The client sent ERROR {code} {error_name(code)}: {reason}")
                self.drop(peer)
            case Quit() | ConnectionClosed():
                self.drop(peer)

    def drop(self, peer: Peer) -> None:
        """S-9: the client quit or its connection ended (a handshake's end shows nothing)."""
        self.release(peer)
        peer.sock.close()
        if peer.established:
            self.discard_typing()  # before the news: what is typed after it is meant for what comes next
            self.term.line(DROPPED)

    def fail(self, peer: Peer, exc: ProtocolError) -> None:
        """E-2, S-10, S-11: the client broke the protocol (or timed out): ERROR, then close."""
        self.release(peer)
        try:
            send_frame(peer.sock, peer.conn.send(Error(exc.code, exc.reason)))
        except PeerGone:
            peer.sock.close()
        else:
            self.linger(peer.sock)
        if peer.established:
            self.discard_typing()
        self.term.line(f"Closed the connection with {peer.address}: "
                       f"sent ERROR {exc.code} {exc.code.name} ({exc.reason})...")

    def quit_peer(self) -> None:
        """S-9, S-12: the operator ends the conversation."""
        peer = self.conversation
        assert peer is not None
        self.release(peer)
        try:
            send_frame(peer.sock, peer.conn.send(Quit()))
        except (PeerGone, LocalProtocolError):  # gone, or its QUIT or ERROR is already in (not read yet)
            peer.sock.close()
        else:
            self.linger(peer.sock)
        self.discard_typing()
        self.term.line(YOU_CLOSED)

    # -- the operator

    def on_terminal(self, _: object) -> None:
        assert self.term_in is not None
        try:
            data = self.gate.read(self.term_in, RECV_SIZE)
        except Interrupted:
            return  # a stop signal: its byte on the wake-up socket stops the server next
        except OSError:
            data = b""
        if not data:
            for line in self.lines.finish():
                self.on_line(line)
            if self.conversation:
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
        if self.term_in is not None and os.isatty(self.term_in):
            termios.tcflush(self.term_in, termios.TCIFLUSH)

    def on_line(self, line: bytes | None) -> None:
        text, problem = typed_problem(line)
        peer = self.conversation
        if peer is None:  # S-6: \quit too; connections in their handshake are no conversation
            self.term.line(NO_CLIENT)
        elif text == QUIT_COMMAND:
            self.quit_peer()  # F-3: in or out of turn
        elif peer.conn.state is not State.SERVER_TURN:
            self.term.line("Not your turn; the line was not sent.")
        elif problem:
            self.term.line(f"Message not sent: it {problem}.")
            self.term.prompt(f"{self.handle}> ")
        else:
            try:
                send_frame(peer.sock, peer.conn.send(Message(text)))
            except PeerGone:
                self.drop(peer)

    def on_signal(self, _: object) -> None:
        try:
            signums = self.wakeup_r.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        if signal.SIGINT in signums and self.term_in is not None and os.isatty(self.term_in):
            self.term.prompt_showing = True  # the terminal echoed ^C on the current line
        self.shut_down()

    def shut_down(self) -> None:
        """S-12: QUIT to a client in conversation, the handshakes closed, then stop."""
        if not self.running:
            return
        self.running = False
        if peer := self.conversation:
            self.quit_peer()
            self.drain_now(peer.sock)
        for peer in list(self.handshakes.values()):
            self.release(peer)
            peer.sock.close()
        for sock in list(self.lingering):
            self.forget(sock)

    def drain_now(self, sock: socket.socket) -> None:
        """W-7 before exit: let the QUIT reach the client instead of a reset. S-12: until the client
        closes, at most LINGER_SECONDS, and a further stop signal ends it at once."""
        deadline = time.monotonic() + LINGER_SECONDS
        with selectors.PollSelector() as just_this:
            just_this.register(sock, selectors.EVENT_READ)
            just_this.register(self.wakeup_r, selectors.EVENT_READ)
            while sock in self.lingering and (left := deadline - time.monotonic()) > 0:
                for key, _ in just_this.select(left):
                    if key.fileobj is self.wakeup_r:
                        return
                    self.on_linger(sock)


# --- command line --------------------------------------------------------------------------


class OneLineParser(argparse.ArgumentParser):
    """S-1: a usage error is one line on stderr and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"chatserve: {message} (see --help)\n")

    def _get_formatter(self) -> argparse.HelpFormatter:
        # The terminal's width from os, as HelpFormatter would get it from shutil, whose import
        # (with bz2 and lzma) costs more than the rest of the command line.
        try:
            width = os.get_terminal_size(sys.stdout.fileno()).columns - 2
        except (OSError, ValueError):
            width = 78
        return argparse.HelpFormatter(self.prog, width=width)


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


# construct imports, at its own import, modules for what the wire format never uses: its debugger
# (pdb, inspect, traceback), Pickled (pickle) and Checksum (hashlib, which loads OpenSSL). They are
# a third of the server's memory and of its start (bench/footprint.py).
STAND_INS = ("pdb", "inspect", "traceback", "pickle", "hashlib")


def import_construct() -> None:
    """Import construct with inert stand-ins for STAND_INS, taken out of sys.modules afterwards (a
    later import gets the real module). hashlib's stand-in has the sha1 that construct's compile()
    names its parsers with. A construct that needs more of them is imported as it is."""
    import _sha1

    stand_ins = {name: types.ModuleType(name, "a stand-in (chatserve.import_construct)")
                 for name in STAND_INS if name not in sys.modules}
    if "hashlib" in stand_ins:
        stand_ins["hashlib"].sha1 = _sha1.sha1  # type: ignore[attr-defined]
    sys.modules.update(stand_ins)
    try:
        import construct
    except Exception:  # not what it was written against: as it is, then
        for name in [m for m in sys.modules if m == "construct" or m.startswith("construct.")]:
            del sys.modules[name]
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
        stand_ins.clear()
        import construct  # noqa: F401
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        listener = listen(args.port)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)  # create_server adds the address
        print(f"chatserve: cannot listen on port {args.port}: {reason}", file=sys.stderr)
        return 1
    gate = SignalGate()
    term = Terminal(sys.stdout.fileno(), gate, sys.stdout.encoding or "utf-8")
    # S-12: no standard input at all (closed) is the end of input; a file such as /dev/null is read
    # like a terminal, and is at its end at once.
    term_in = sys.stdin.fileno() if sys.stdin is not None else None
    server = Server(listener, args.handle, args.handshake_timeout, term_in, term, gate)
    term.line(f"Listening on port {listener.getsockname()[1]}...")
    # The wire format's layouts are built once it listens: a client that connects meanwhile waits
    # in the kernel's backlog for the few milliseconds this takes.
    import_construct()
    layouts()
    return server.run()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except LocalProtocolError as exc:  # a bug of ours: say so in one line rather than a traceback
        print(f"chatserve: internal error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C before the loop took over signals
        sys.exit(0)
