#!/usr/bin/env python3
"""An independent chat client, written only from PROTOCOL.md (sections 6 and 7).

It shares no code with chatclient.c; the conformance suite runs it to show that the suite
checks the protocol, not the reference.
Usage: python3 indclient.py HOST PORT   (CHAT_HELLO_TIMEOUT=SECONDS overrides the 10 s of C-4)
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import select
import signal
import socket
import struct
import sys
import time
from typing import NoReturn

from indwire import (
    ERROR,
    HELLO,
    LIMITS,
    MESSAGE,
    QUIT,
    TIMEOUT,
    Decoder,
    ProtocolError,
    frame,
    sanitise,
    split_line,
    text_problem,
)

CODES = {
    1: ("BUSY", "the server is busy with another client"),
    2: ("MALFORMED", "the server got a malformed frame"),
    3: ("UNEXPECTED", "the server got an unexpected frame"),
    4: ("BAD_HANDLE", "the server rejected the handle"),
    5: ("TIMEOUT", "the server timed out waiting for HELLO"),
}
HELLO_SENT, CLIENT_TURN, SERVER_TURN = "HELLO_SENT", "CLIENT_TURN", "SERVER_TURN"
HANDLE_PROMPT = "Enter client handle (length 10 or less): "
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)



# ---- the client --------------------------------------------------------------------------


def out(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.write(text)
        sys.stdout.flush()


def err(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


class Client:
    def __init__(self, host: str, port: int, hello_timeout: float) -> None:
        self.host, self.port, self.hello_timeout = host, port, hello_timeout
        self.tty = os.isatty(0)
        self.inbuf = b""
        self.eof = False
        self.prompt = False  # our prompt is showing, its line not yet ended
        self.handle = ""
        self.server = ""
        self.state = HELLO_SENT
        self.sock: socket.socket | None = None
        self.infos: list = []  # HOST's addresses (C-3)
        self.decoder = Decoder(self.unexpected)

    # -- input lines
    def read_more(self) -> None:
        try:
            data = os.read(0, 4096)
        except OSError as exc:
            self.leave(1, f"chatclient: cannot read the terminal: {exc.strerror or exc}", quit_frame=True)
        if data:
            self.inbuf += data
        else:
            self.eof = True

    def take_line(self) -> bytes | None:
        line, self.inbuf = split_line(self.inbuf, self.eof)
        return line

    def ask_handle(self) -> None:
        """C-2: prompt until a valid handle; `\\quit` or end of input leaves without connecting."""
        while True:
            out(HANDLE_PROMPT)
            self.prompt = True
            while (line := self.take_line()) is None and not self.eof:
                self.read_more()
            if line is None:
                self.leave(0)
            if not self.tty:
                self.end_prompt_line()  # C-6: nothing echoed the line's newline
            self.prompt = False
            if line == b"\\quit":
                sys.exit(0)
            problem = text_problem(line, 10, True)
            if problem is None:
                self.handle = line.decode("utf-8")
                return
            if not self.tty:
                err(f"chatclient: invalid handle: it {problem}")
                sys.exit(2)
            out(f"Invalid handle: it {problem}.\n")

    # -- connecting
    def resolve(self) -> None:
        """C-3: before the handle is asked."""
        try:
            self.infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            err(f"chatclient: cannot resolve {self.host}: {exc.strerror or exc}")
            sys.exit(3)
        except UnicodeError as exc:
            err(f"chatclient: cannot resolve {self.host}: {exc}")
            sys.exit(3)

    def connect(self) -> None:
        """C-3: every address getaddrinfo gave, in turn, once the handle is typed."""
        reason = "no address"
        for family, stype, proto, _, addr in self.infos:
            try:
                sock = socket.socket(family, stype, proto)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                continue
            try:
                sock.connect(addr)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                sock.close()
                continue
            self.sock = sock
            return
        err(f"chatclient: cannot connect to {self.host} port {self.port}: {reason}")
        sys.exit(3)

    # -- the conversation
    def unexpected(self, ftype: int) -> str | None:
        if self.state == HELLO_SENT:
            return None if ftype == HELLO else f"{LIMITS[ftype][0]} before HELLO"
        if ftype == HELLO:
            return "second HELLO"
        if ftype == MESSAGE and self.state == CLIENT_TURN:
            return "MESSAGE out of turn"
        return None

    def show_prompt(self) -> None:
        out(f"{self.handle}> ")
        self.prompt = True

    def end_prompt_line(self) -> None:
        if self.prompt:
            out("\n")
            self.prompt = False

    def send(self, data: bytes) -> bool:
        assert self.sock is not None
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def close_gracefully(self) -> None:
        """W-7: FIN, then read and discard until the server closes or a second has passed."""
        assert self.sock is not None
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 1.0
        while (left := deadline - time.monotonic()) > 0:
            try:
                ready, _, _ = select.select([self.sock], [], [], left)
                if not ready or not self.sock.recv(4096):
                    break
            except OSError:
                break
        self.sock.close()

    def leave(self, status: int, line: str | None = None, quit_frame: bool = False, new_line: bool = False) -> NoReturn:
        """Finish: optionally send QUIT and close gracefully, print `line` on stderr, exit."""
        if quit_frame and self.sock is not None:
            if not self.send(frame(QUIT)) and status == 0:  # C-8: it could not go, so it was lost
                status, line = 6, "chatclient: the connection to the server was lost"
            self.close_gracefully()
        if new_line or self.prompt:
            out("\n")  # end the prompt's line (or the one a "^C" echo is on)
        if line is not None:
            err(line)
        sys.exit(status)

    def protocol_error(self, code: int, reason: str) -> NoReturn:
        """C-13 (and C-4): send ERROR, close, say so, exit 5."""
        self.send(frame(ERROR, struct.pack("!B", code) + reason.encode("utf-8")[:200]))
        self.close_gracefully()
        self.leave(5, f"chatclient: protocol error: sent ERROR {code} {CODES[code][0]} ({reason})")

    def on_socket(self) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(4096)
        except OSError:
            data = b""
        if not data:  # EOF, reset, or a frame cut off (E-5, C-14)
            self.sock.close()
            self.leave(6, "chatclient: the connection to the server was lost")
        try:
            for ftype, payload in self.decoder.feed(data):
                self.on_frame(ftype, payload)
        except ProtocolError as exc:
            self.protocol_error(exc.code, exc.reason)

    def on_frame(self, ftype: int, payload: bytes) -> None:
        assert self.sock is not None
        if ftype == HELLO:
            self.server = payload.decode("utf-8")
            self.state = CLIENT_TURN
            self.show_prompt()
        elif ftype == MESSAGE:
            self.end_prompt_line()
            out(f"{self.server}> {payload.decode('utf-8')}\n")
            self.state = CLIENT_TURN
            self.show_prompt()
        elif ftype == QUIT:  # C-11; nothing more is sent (W-8)
            self.sock.close()
            self.end_prompt_line()
            out("The server has closed the connection...\n")
            sys.exit(0)
        else:  # ERROR (C-12): accepted as it is, never answered
            self.sock.close()
            code = payload[0]
            name, description = CODES.get(code, ("UNKNOWN", "unknown error code"))
            self.leave(4, f"chatclient: server sent ERROR {code} {name} ({description}): {sanitise(payload[1:])}")

    def on_line(self, line: bytes) -> None:
        if not self.tty:
            self.end_prompt_line()  # C-6: nothing echoed the line's newline
        self.prompt = False  # the terminal echoed the line's newline
        if line == b"\\quit":
            self.leave(0, quit_frame=True)
        if self.state != CLIENT_TURN:
            out("Not your turn; the line was not sent.\n")
        elif problem := text_problem(line, 500, False):
            out(f"Message not sent: it {problem}.\n")
            self.show_prompt()
        elif self.send(frame(MESSAGE, line)):
            self.state = SERVER_TURN
        else:
            self.leave(6, "chatclient: the connection to the server was lost")

    def pump_lines(self) -> None:
        """Handle the lines already read: all of them from a terminal, one per turn from a script."""
        while True:
            if self.eof and not self.inbuf:  # C-8: end of input means \quit
                self.leave(0, quit_frame=True)
            if not (self.tty or self.state == CLIENT_TURN) or (line := self.take_line()) is None:
                return
            self.on_line(line)

    def converse(self, wake_r: int) -> NoReturn:
        assert self.sock is not None
        self.send(frame(HELLO, self.handle.encode("utf-8")))
        deadline = time.monotonic() + self.hello_timeout
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        stdin_on = False
        while True:
            self.pump_lines()
            want = not self.eof and (self.tty or self.state == CLIENT_TURN)
            if want != stdin_on:
                if want:
                    poller.register(0, select.POLLIN)
                else:
                    poller.unregister(0)
                stdin_on = want
            timeout_ms = None
            if self.state == HELLO_SENT:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.protocol_error(TIMEOUT, f"no HELLO within {self.hello_timeout:g} s")
                timeout_ms = max(1, math.ceil(left * 1000))
            for fd, _ in poller.poll(timeout_ms):
                if fd == wake_r:
                    signums = os.read(wake_r, 64)
                    if signums:  # C-9: QUIT (our HELLO is sent), close, 128 + N
                        self.leave(128 + signums[0], quit_frame=True, new_line=os.isatty(1))
                elif fd == 0:
                    self.read_more()
                else:
                    self.on_socket()


def hello_timeout() -> float:
    try:
        value = float(os.environ.get("CHAT_HELLO_TIMEOUT", "10"))
    except ValueError:
        value = 10.0
    return value if math.isfinite(value) and value > 0 else 10.0


def port_problem(text: str) -> str | None:
    """C-1."""
    if not text:
        return "it is empty"
    if not re.fullmatch(r"[0-9]+", text):
        return "it is not a decimal number"
    return None if 1 <= int(text) <= 65535 else "it is not between 1 and 65535"


def main() -> None:
    args = sys.argv[1:]
    if args in (["--help"], ["-h"]):  # C-1: asked for, so on stdout with status 0
        print("usage: chatclient HOST PORT\n\nChat with the server at HOST on TCP port PORT (1 to 65535).")
        sys.exit(0)
    if len(args) != 2:
        err("usage: chatclient HOST PORT")
        sys.exit(2)
    if problem := port_problem(args[1]):
        err(f"chatclient: invalid port '{sanitise(args[1].encode(errors='surrogateescape'))}': {problem}")
        sys.exit(2)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(encoding="utf-8", errors="replace")

    def before_hello(signum: int, _frame: object) -> None:
        if os.isatty(1):
            out("\n")  # leave the terminal on a fresh line
        raise SystemExit(128 + signum)  # nothing sent yet: just go (C-9)

    for signum in STOP_SIGNALS:
        signal.signal(signum, before_hello)
    client = Client(args[0], int(args[1]), hello_timeout())
    client.resolve()
    client.ask_handle()
    client.connect()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: None)  # the byte on the wakeup fd tells the loop
    client.converse(wake_r)


if __name__ == "__main__":
    main()
