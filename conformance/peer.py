"""The scripted peer: one end of a real loopback TCP connection, written on chatwire.

It plays the client against a server under test, or the server against a client under test.
Frames go out through chatwire (in one of the DELIVERIES), frames come in through chatwire's
decoder, and every byte received is kept so that a failure can show it in hex.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from collections.abc import Callable

import pytest

import vectors
from chatwire import (
    NEED_DATA,
    Connection,
    ConnectionClosed,
    Error,
    Event,
    Hello,
    Message,
    ProtocolError,
    Quit,
    Role,
    encode,
    error_name,
)
from conformance.checks import CaseFailure, hexdump
from conformance.netdiag import unread_by_peer
from conformance.programs import SLICE

# W-5: how a case's frames are cut into TCP segments.
DELIVERIES = ("whole", "bytewise", "split-header", "coalesced")
SEGMENT_GAP = 0.02  # between segments, only where it cannot be seen that the other side has read
IDLE_LOOK = 0.02  # how often a wait for the other side to read asks whether it is at rest (each look reads /proc)


def invalid_vector_cases(which: Callable[[vectors.Vector], bool] = lambda vector: True) -> list:
    """pytest parameters: the invalid frames of vectors/frames.txt (those `which` picks), in each delivery."""
    return [pytest.param(vector, delivery, id=f"{vector.name}-{delivery}")
            for vector in vectors.load() if vector.error and which(vector) for delivery in DELIVERIES]


def send_invalid(peer: WirePeer, vector: vectors.Vector, delivery: str) -> None:
    """An invalid frame of the vectors: a header-time fault without its payload (the answer must
    not wait for it, W-4); a coalesced delivery puts a QUIT in the same segment (it must be
    ignored: nothing is read after a violation)."""
    data = vector.data[:3] if vector.at_header else vector.data
    if delivery == "coalesced":
        peer.send_raw(data + encode(Quit()))
    else:
        peer.send_raw(data, delivery)


def describe(event: Event | None) -> str:
    match event:
        case Hello(handle):
            return f"HELLO {handle!r}"
        case Message(text):
            return f"MESSAGE {text if len(text) <= 60 else text[:57] + '...'!r}"
        case Quit():
            return "QUIT"
        case Error(code, reason):
            return f"ERROR {code} {error_name(code)} {reason!r}"
        case ConnectionClosed():
            return "the connection closed"
    return "nothing"


class PlainText(CaseFailure):
    """The program speaks plain text, not PROTOCOL.md's frames: the mode is wrong, not each case.
    Raised at the first exchange of a connection (conformance/cases/conftest.py then SKIPs the rest)."""


def looks_like_text(data: bytes) -> bool:
    """Printable UTF-8 and a line end: what a plain-text chat sends (`Chris> hi\n`), and never a
    frame of PROTOCOL.md, whose length bytes are not text."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return "\n" in text and all(ch.isprintable() or ch in "\r\n\t" for ch in text)


class WirePeer:
    def __init__(self, sock: socket.socket, role: Role, timeout: float, quiet: float) -> None:
        self.sock = sock
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = Connection(role)
        self.timeout = timeout
        self.quiet = quiet
        self.unread = bytearray()  # bytes received since the last event returned, for reports
        self.ignored = b""  # what came between the last two events, e.g. after a QUIT (W-8)
        self.closed = False  # we have sent FIN (or reset)
        self.finished = False  # the socket is closed
        self.reset_seen = False  # the stream ended with a reset rather than a FIN
        self.reset_sent = False  # we ended it with a reset
        # Whether the program at the other end has answered all it was given (Program.idle): a
        # wait for its bytes ends then, instead of at its timeout. Without a program, never.
        self.idle: Callable[[], bool] = lambda: False
        self.at_rest: Callable[[], str] = lambda: "is at rest"  # how idle() found it, for a report
        self.rested = False  # the last wait ended because the program was at rest
        # Set while the program has not yet sent a frame in this run: what to say if it speaks
        # plain text instead (the pair command), and its prompt when it waits for its user (None
        # while it does not). Nothing on the wire and a prompt where a frame was due mean plain text.
        self.plain_text_hint: str | None = None
        self.prompt: Callable[[], str | None] = lambda: None
        self.framed = False  # a valid frame has come on this connection

    @classmethod
    def connect(cls, host: str, port: int, timeout: float, quiet: float) -> WirePeer:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise CaseFailure("S-3", f"cannot connect to the server at {host} port {port}: {exc}") from None
        return cls(sock, Role.CLIENT, timeout, quiet)

    # -- sending

    def send_raw(self, data: bytes, delivery: str = "whole") -> None:
        """Bytes as they are, cut per `delivery` (a coalesced send is one segment)."""
        try:
            if delivery == "bytewise":
                for i in range(len(data)):
                    self.sock.sendall(data[i : i + 1])
                    if i < 8:  # the header and the start of a payload; past that, speed matters more
                        self.wait_consumed()
            elif delivery == "split-header" and len(data) >= 2:
                self.sock.sendall(data[:2])  # inside the 3-byte header
                self.wait_consumed()
                self.sock.sendall(data[2:])
            else:
                self.sock.sendall(data)
        except OSError:
            pass  # the other side has gone; what it sent before is still read and judged

    def wait_consumed(self) -> None:
        """Until the other program has read everything sent so far (at most a second), so that the
        next bytes are surely a read of their own; where that cannot be seen, a fixed gap."""
        deadline = time.monotonic() + min(self.timeout, 1.0)
        look = time.monotonic() + IDLE_LOOK
        while (unread := unread_by_peer(self.sock)) and (now := time.monotonic()) < deadline:
            if now >= look:  # a program at rest that has not read them will not (Program.idle)
                if self.idle():
                    return
                look = now + IDLE_LOOK
            time.sleep(0.0005)  # the other program's read has no event we could wait on
        if unread is None:
            time.sleep(SEGMENT_GAP)

    def send(self, *events: Hello | Message | Quit | Error, delivery: str = "whole") -> None:
        """Events through chatwire. A coalesced delivery puts all of them in one segment; the
        others cut each frame on its own."""
        frames = [self.conn.send(event) for event in events]
        if delivery == "coalesced":
            self.send_raw(b"".join(frames))
        else:
            for frame in frames:
                self.send_raw(frame, delivery)

    def send_ahead(self, *events: Hello | Message | Quit | Error, delivery: str = "whole") -> None:
        """Frames sent without waiting for the turn the protocol gives them, e.g. a MESSAGE in the
        same segment as the HELLO. The peer's own state is not moved: see assume_sent()."""
        self.send_raw(b"".join(encode(event) for event in events), delivery)

    def assume_sent(self, event: Hello | Message | Quit | Error) -> None:
        """Move the peer's state as if `event` were sent now (it was sent ahead)."""
        self.conn.send(event)

    def reset(self) -> None:
        """Close with RST instead of FIN (SO_LINGER 0)."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.closed = self.finished = self.reset_sent = True
        self.sock.close()

    def close(self) -> None:
        """End our side (FIN). The socket stays open, so that finish() can see the other side close."""
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)

    def finish(self) -> None:
        """Close, and wait (at most a step) until the other side has closed too: then it has
        finished with this connection, and a next one will not find it busy."""
        if self.finished:
            return
        self.close()
        deadline = time.monotonic() + self.timeout
        with contextlib.suppress(OSError):
            while (left := deadline - time.monotonic()) > 0:
                if not select.select([self.sock], [], [], min(SLICE, left))[0]:
                    if self.idle():  # it will not close this connection: nothing more to wait for
                        break
                elif not self.sock.recv(65536):
                    break
        self.finished = True
        self.sock.close()

    # -- receiving

    def _read(self, timeout: float) -> bytes | None:
        """Bytes, b"" at end of stream, or None if nothing came within timeout."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None
        try:
            data = self.sock.recv(65536)
        except OSError:  # a reset: the stream has ended
            data = b""
            self.reset_seen = True
        self.unread += data
        self.conn.receive_data(data)
        return data

    def next_event(self, reqs: str, what: str, timeout: float | None = None) -> Event | None:
        """The next event, or None if nothing complete came within timeout. An invalid frame from
        the implementation is a CaseFailure that shows its bytes."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        self.rested = False
        while True:
            try:
                event = self.conn.next_event()
            except ProtocolError as exc:
                self._plain_text(reqs, what)
                raise CaseFailure(reqs, f"{what}: the bytes received are not a valid frame here "
                                        f"({exc.code.name}: {exc.reason})",
                                  got=hexdump(bytes(self.unread))) from None
            if event is not NEED_DATA:
                self.framed = self.framed or not isinstance(event, ConnectionClosed)
                self.ignored = bytes(self.unread) if isinstance(event, ConnectionClosed) else b""
                self.unread.clear()
                if isinstance(event, Quit | Error):
                    # W-8: a peer that got QUIT or ERROR sends nothing more, so the other side's
                    # drain (W-7) ends now; reading goes on, to see it close.
                    with contextlib.suppress(OSError):
                        self.sock.shutdown(socket.SHUT_WR)
                return event
            left = deadline - time.monotonic()
            if self._read(max(0.0, min(SLICE, left))) is None and (left <= 0 or self.idle()):
                self.rested = left > 0
                self._plain_text(reqs, what)
                return None

    def _plain_text(self, reqs: str, what: str) -> None:
        """Before any valid frame: text with a line end, or nothing and a prompt, is PlainText."""
        if self.framed or self.plain_text_hint is None:
            return
        if looks_like_text(bytes(self.unread)):
            raise PlainText(reqs, f"{what}: plain text came, not a frame of PROTOCOL.md. {self.plain_text_hint}",
                            ["a frame"], hexdump(bytes(self.unread)))
        if not self.unread and (prompt := self.prompt()) is not None:
            raise PlainText(reqs, f"{what}: no frame came, and the program waits for its user at the prompt "
                                  f"{prompt!r}. {self.plain_text_hint}", ["a frame"], "nothing")

    def expect(self, reqs: str, what: str, *alternatives: Event, timeout: float | None = None) -> Event:
        """The next event must be one of `alternatives` (any event if none are given)."""
        event = self.next_event(reqs, what, timeout)
        if event is None or (alternatives and event not in alternatives):
            raise CaseFailure(reqs, what, [describe(a) for a in alternatives] or ["a frame"],
                              self._got(event, timeout))
        return event

    def expect_bytes(self, reqs: str, what: str, expected: bytes, timeout: float | None = None) -> Event:
        """The next frame must be exactly these bytes (the golden frames of PROTOCOL.md 1.1)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while len(self.unread) < len(expected) and (left := deadline - time.monotonic()) > 0:
            data = self._read(min(SLICE, left))
            if data == b"" or (data is None and self.idle()):
                break
        if bytes(self.unread[: len(expected)]) != expected:
            got = hexdump(bytes(self.unread)) if self.unread else "no bytes"
            raise CaseFailure(reqs, what, [hexdump(expected)], got)
        return self.expect(reqs, what)

    def expect_error(self, reqs: str, what: str, code: int, timeout: float | None = None) -> Error:
        event = self.next_event(reqs, what, timeout)
        if not isinstance(event, Error) or event.code != code:
            raise CaseFailure(reqs, what, [f"ERROR {code} {error_name(code)} (any reason)"], self._got(event, timeout))
        return event

    def expect_closed(self, reqs: str, what: str, timeout: float | None = None) -> None:
        """Nothing more, then the end of the stream (W-7, W-8)."""
        event = self.next_event(reqs, what, timeout)
        if event != ConnectionClosed():
            raise CaseFailure(reqs, what, ["the connection closes"], self._got(event, timeout))
        if self.ignored:
            raise CaseFailure(f"{reqs} W-8", f"{what}: bytes came after the last frame (QUIT or ERROR ends a stream)",
                              ["nothing, then the close"], hexdump(self.ignored))

    def expect_quiet(self, reqs: str, what: str) -> None:
        """Nothing arrives within the quiet period (a bounded negative check)."""
        event = self.next_event(reqs, what, self.quiet)
        if event is not None or self.unread:
            raise CaseFailure(reqs, what, [f"nothing within {self.quiet:g} s"], self._got(event, self.quiet))

    def _got(self, event: Event | None, timeout: float | None) -> str:
        raw = f"; bytes: {hexdump(bytes(self.unread))}" if self.unread else ""
        if event is None and self.rested:
            return f"nothing complete: {self.at_rest()}{raw}"
        if event is None:
            wait = timeout if timeout is not None else self.timeout
            return f"nothing complete within {wait:g} s{raw}"
        return f"{describe(event)}{raw}"
