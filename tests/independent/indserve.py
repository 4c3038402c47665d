#!/usr/bin/env python3
"""An independent chat server, written only from PROTOCOL.md (section 5).

It shares no code with chatserve.py; the conformance suite runs it to show that the suite
checks the protocol, not the reference.
Usage: python3 indserve.py [PORT] [--handle NAME] [--handshake-timeout SECONDS]
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import math
import os
import re
import selectors
import signal
import socket
import sys
import termios
import time
from typing import Any, NoReturn, cast

from indwire import (
    BUSY,
    HELLO,
    LIMITS,
    MESSAGE,
    QUIT,
    TIMEOUT,
    Decoder,
    ProtocolError,
    error_frame,
    frame,
    sanitise,
    split_line,
    text_problem,
)

CODE_NAMES = {1: "BUSY", 2: "MALFORMED", 3: "UNEXPECTED", 4: "BAD_HANDLE", 5: "TIMEOUT"}
START, CLIENT_TURN, SERVER_TURN = "START", "CLIENT_TURN", "SERVER_TURN"
USAGE = "usage: chatserve.py [PORT] [--handle NAME] [--handshake-timeout SECONDS]"
DRAIN_SECONDS = 1.0
MAX_HANDSHAKES = 64  # S-8
SEND_TIMEOUT = 5.0



# ---- the server --------------------------------------------------------------------------


def show_addr(addr: tuple[Any, ...]) -> str:
    host, port = addr[0], addr[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:") :]
    return repr((host, port))


class Conn:
    def __init__(self, sock: socket.socket, addr: str, deadline: float) -> None:
        self.sock, self.addr, self.deadline = sock, addr, deadline
        self.state = START
        self.peer = ""
        self.decoder = Decoder(self.unexpected)

    def unexpected(self, ftype: int) -> str | None:
        if self.state == START:
            return None if ftype == HELLO else f"{LIMITS[ftype][0]} before HELLO"
        if ftype == HELLO:
            return "second HELLO"
        if ftype == MESSAGE and self.state == SERVER_TURN:
            return "MESSAGE out of turn"
        return None


class Server:
    def __init__(self, lsock: socket.socket, handle: str, hs_timeout: float) -> None:
        self.lsock, self.handle, self.hs_timeout = lsock, handle, hs_timeout
        self.sel = selectors.PollSelector()  # poll, unlike epoll, also accepts a regular file on stdin
        lsock.setblocking(False)
        self.sel.register(lsock, selectors.EVENT_READ, "listen")
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.on_signal)  # the byte on the wakeup fd tells the loop (S-12)
        self.writing = False  # in a write to the terminal, which may block (output stopped)
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.conn: Conn | None = None  # the conversation, past its HELLO
        self.handshakes: dict[socket.socket, Conn] = {}  # S-8: connections before their HELLO
        self.draining: dict[socket.socket, float] = {}
        self.tty = os.isatty(0)
        self.inbuf = b""
        self.eof = False
        self.stdin_on = False
        self.prompt = False

    def on_signal(self, signum: int, _frame: object) -> None:
        """S-12: a signal during a terminal write that may never end (output stopped): stop here,
        the client told, rather than let Python retry the write."""
        if self.writing:
            self.quit_now()
        # Not writing yet: the loop will see the wakeup byte, unless a write it is about to start
        # (a line just read) blocks first; then this alarm ends it, the client told.
        signal.signal(signal.SIGALRM, lambda *_: self.quit_now())
        signal.alarm(2)

    def quit_now(self) -> None:
        if self.talking():
            with contextlib.suppress(OSError):
                self.conn.sock.send(frame(QUIT))  # type: ignore[union-attr]
        os._exit(0)

    # -- output
    def out(self, text: str) -> None:
        self.writing = True
        try:
            with contextlib.suppress(OSError, ValueError):
                sys.stdout.write(text)
                sys.stdout.flush()
        finally:
            self.writing = False

    def say(self, line: str) -> None:
        """Print a line, first ending the prompt's line if a prompt is showing (S-7)."""
        self.out(("\n" if self.prompt else "") + line + "\n")
        self.prompt = False

    def show_prompt(self) -> None:
        self.out(f"{self.handle}> ")
        self.prompt = True

    # -- the loop
    def talking(self) -> bool:
        return self.conn is not None and self.conn.state != START

    def my_turn(self) -> bool:
        return self.conn is not None and self.conn.state == SERVER_TURN

    def run(self) -> None:
        while True:
            self.pump_lines()
            self.sync_stdin()
            for key, _ in self.sel.select(self.timeout()):
                if key.data == "listen":
                    self.accept()
                elif key.data == "wake" and (signums := os.read(self.wake_r, 64)):
                    self.stop(signal.SIGINT in signums)  # only SIGINT, SIGTERM and SIGHUP have handlers
                elif key.data == "stdin":
                    self.read_stdin()
                elif key.data == "conn" and (conn := self.serving(key.fileobj)) is not None:
                    self.read_conn(conn)
                elif key.data == "drain" and key.fileobj in self.draining:
                    self.read_drain(cast(socket.socket, key.fileobj))
            self.expire()

    def serving(self, sock: object) -> Conn | None:
        if self.conn is not None and sock is self.conn.sock:
            return self.conn
        return self.handshakes.get(cast(socket.socket, sock))

    def timeout(self) -> float | None:
        deadlines = [*self.draining.values(), *(c.deadline for c in self.handshakes.values())]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def expire(self) -> None:
        now = time.monotonic()
        for sock, deadline in list(self.draining.items()):
            if deadline <= now:
                self.end_drain(sock)
        for conn in [c for c in self.handshakes.values() if c.deadline <= now]:  # S-11: each on its own clock
            self.violation(conn, TIMEOUT, f"no HELLO within {self.hs_timeout:g} s")

    # -- connections
    def accept(self) -> None:
        while True:
            try:
                sock, addr = self.lsock.accept()
            except OSError:  # nothing more to accept (or a connection already gone)
                return
            if self.conn is None and len(self.handshakes) < MAX_HANDSHAKES:
                self.handshakes[sock] = Conn(sock, show_addr(addr), time.monotonic() + self.hs_timeout)
                sock.settimeout(SEND_TIMEOUT)
                self.sel.register(sock, selectors.EVENT_READ, "conn")
            else:  # S-8: refuse quietly
                self.refuse(sock)

    def refuse(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.send(error_frame(BUSY, "busy"))
        self.close_gracefully(sock)

    def close_gracefully(self, sock: socket.socket) -> None:
        """W-7: shut down our sending side, then drain for up to a second inside the loop."""
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        sock.setblocking(False)
        self.sel.register(sock, selectors.EVENT_READ, "drain")
        self.draining[sock] = time.monotonic() + DRAIN_SECONDS

    def read_drain(self, sock: socket.socket) -> None:
        try:
            if sock.recv(4096):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self.end_drain(sock)

    def end_drain(self, sock: socket.socket) -> None:
        self.sel.unregister(sock)
        del self.draining[sock]
        sock.close()

    def send(self, data: bytes, conn: Conn | None = None) -> bool:
        conn = conn or self.conn
        assert conn is not None
        try:
            conn.sock.sendall(data)
            return True
        except OSError:
            return False

    def finish(self, line: str | None, graceful: bool, conn: Conn | None = None) -> None:
        """End a connection (the conversation's by default); print `line`; discard half-typed input
        if it was a conversation."""
        conn = conn or self.conn
        assert conn is not None
        if conn is self.conn:
            self.conn = None
        else:
            del self.handshakes[conn.sock]
        was_talking = conn.state != START
        self.sel.unregister(conn.sock)
        if graceful:
            self.close_gracefully(conn.sock)
        else:
            conn.sock.close()
        if line is not None:
            self.say(line)
        if was_talking and self.tty:
            with contextlib.suppress(OSError, termios.error):
                termios.tcflush(0, termios.TCIFLUSH)
            self.inbuf = b""

    def violation(self, conn: Conn, code: int, reason: str) -> None:
        """E-2 / S-10: the client broke the protocol (or S-11: it never said HELLO)."""
        self.send(error_frame(code, reason), conn)
        self.finish(f"Closed the connection with {conn.addr}: sent ERROR {code} {CODE_NAMES[code]} ({reason})...",
                    True, conn)

    def dropped(self, conn: Conn) -> None:
        self.finish("The client has dropped the connection..." if conn.state != START else None, False, conn)

    def read_conn(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(4096)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError:
            data = b""
        if not data:  # EOF, reset, or a frame cut off (E-5)
            self.dropped(conn)
            return
        try:
            for ftype, payload in conn.decoder.feed(data):
                self.on_frame(conn, ftype, payload)
                if self.serving(conn.sock) is not conn:
                    return  # the connection ended: ignore anything after it (W-8)
        except ProtocolError as exc:
            self.violation(conn, exc.code, exc.reason)

    def on_frame(self, conn: Conn, ftype: int, payload: bytes) -> None:
        if ftype == HELLO:
            conn.peer = payload.decode("utf-8")
            if not self.send(frame(HELLO, self.handle.encode("utf-8")), conn):
                self.finish(None, False, conn)
                return
            del self.handshakes[conn.sock]
            self.conn = conn
            conn.state = CLIENT_TURN
            self.say(f"Established connection with {conn.addr}...")
            for other in list(self.handshakes.values()):  # S-8: the first HELLO has the conversation
                del self.handshakes[other.sock]
                self.sel.unregister(other.sock)
                self.refuse(other.sock)
        elif ftype == MESSAGE:
            self.say(f"{conn.peer}> {payload.decode('utf-8')}")
            conn.state = SERVER_TURN
            self.show_prompt()
        elif ftype == QUIT:
            self.dropped(conn)
        else:  # ERROR: accepted as it is, never answered (E-3); shown only from a conversation (S-10)
            code = payload[0]
            if conn.state != START:
                self.say(f"The client sent ERROR {code} {CODE_NAMES.get(code, 'UNKNOWN')}: "
                         f"{sanitise(payload[1:])}")
            self.dropped(conn)

    # -- the operator
    def sync_stdin(self) -> None:
        """The input is always watched (its end stops a server with no conversation, S-12); lines
        that are not typed at a terminal are taken one per turn (pump_lines)."""
        want = not self.eof
        if want != self.stdin_on:
            if want:
                self.sel.register(0, selectors.EVENT_READ, "stdin")
            else:
                self.sel.unregister(0)
            self.stdin_on = want

    def read_stdin(self) -> None:
        try:
            data = os.read(0, 4096)
        except OSError:  # the terminal cannot be read any more (hung up)
            self.stop()
            return
        if data:
            self.inbuf += data
        else:
            self.eof = True

    def take_line(self) -> bytes | None:
        line, self.inbuf = split_line(self.inbuf, self.eof)
        return line

    def pump_lines(self) -> None:
        """Handle the lines already read: all of them from a terminal, one per turn from other input."""
        while True:
            if self.eof and not self.inbuf:  # S-12: end of input
                self.eof = False  # (a terminal can be read again after Ctrl-D)
                if not self.talking():
                    self.stop()
                self.operator_quit()
                if not self.tty:
                    self.stop()  # input from a file: the first conversation's end is the last
            if not (self.tty or self.my_turn()) or (line := self.take_line()) is None:
                return
            self.on_line(line)

    def on_line(self, line: bytes) -> None:
        self.prompt = False  # the terminal echoed the line's newline
        if line == b"\\quit" and self.talking():
            self.operator_quit()
        elif not self.talking():
            self.say("No client is connected; the line was not sent.")
        elif not self.my_turn():
            self.say("Not your turn; the line was not sent.")
        elif problem := text_problem(line, 500, False):
            self.say(f"Message not sent: it {problem}.")
            self.show_prompt()
        else:
            assert self.conn is not None
            if self.send(frame(MESSAGE, line)):
                self.conn.state = CLIENT_TURN
            else:
                self.dropped(self.conn)

    def operator_quit(self) -> None:
        self.send(frame(QUIT))
        self.finish("You have closed the connection...", True)

    def stop(self, ctrl_c: bool = False) -> None:
        """S-12: QUIT to a client in conversation, drain the closing sockets briefly, exit 0."""
        signal.signal(signal.SIGALRM, lambda *_: os._exit(0))  # a terminal write that blocks ends it too
        signal.alarm(2)
        if ctrl_c and not self.prompt and os.isatty(1):
            self.out("\n")  # end the line that the terminal's "^C" echo is on
        if self.conn is not None:
            self.operator_quit()
        for conn in list(self.handshakes.values()):
            self.finish(None, False, conn)
        deadline = time.monotonic() + DRAIN_SECONDS
        while self.draining and (left := deadline - time.monotonic()) > 0:
            for key, _ in self.sel.select(left):
                if key.data == "drain":
                    self.read_drain(cast(socket.socket, key.fileobj))
                elif key.data == "wake":
                    os.read(self.wake_r, 64)
        try:
            sys.stdout.flush()
        finally:
            os._exit(0)


# ---- command line ------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"chatserve: {message} ({USAGE})\n")
        sys.exit(2)


def port_arg(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"PORT must be 0 to 65535, not {text!r}")
    return int(text)


def handle_arg(text: str) -> str:
    problem = text_problem(text.encode("utf-8", "surrogateescape"), 10, True)
    if problem:
        raise argparse.ArgumentTypeError(f"invalid handle: it {problem}")
    return text


def seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"SECONDS must be a positive number, not {text!r}")
    return value


def listen(port: int) -> socket.socket:
    """S-3: dual stack on '::', or '0.0.0.0' where IPv6 is missing."""
    for family, host in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((host, port))
            sock.listen()  # the default backlog (128): a burst of connections waits for accept()
            return sock
        except OSError as exc:
            sock.close()
            if family == socket.AF_INET6 and exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                continue
            raise
    raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))


def main() -> None:
    parser = Parser(prog="chatserve.py", description="An independent chat server (PROTOCOL.md).")
    parser.add_argument("port", nargs="?", type=port_arg, default=39919, metavar="PORT")
    parser.add_argument("--handle", type=handle_arg, default="HostA", metavar="NAME")
    parser.add_argument("--handshake-timeout", type=seconds_arg, default=10.0, metavar="SECONDS")
    args = parser.parse_args()
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(encoding="utf-8", errors="replace")
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: os._exit(0))  # no conversation yet: just stop (S-12)
    try:
        lsock = listen(args.port)
    except OSError as exc:
        sys.stderr.write(f"chatserve: cannot listen on port {args.port}: {exc.strerror or exc}\n")
        sys.exit(1)
    server = Server(lsock, args.handle, args.handshake_timeout)
    server.out(f"Listening on port {lsock.getsockname()[1]}...\n")
    server.run()


if __name__ == "__main__":
    main()
