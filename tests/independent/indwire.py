"""The wire and text rules shared by the independent server and client (PROTOCOL.md
sections 1-3), written with `struct` from the spec alone: no code in common with chatwire."""

from __future__ import annotations

import codecs
import struct
from collections.abc import Callable, Iterator

HELLO, MESSAGE, QUIT, ERROR = 0x48, 0x4D, 0x51, 0x45
LIMITS = {HELLO: ("HELLO", 0, 40), MESSAGE: ("MESSAGE", 0, 2000), QUIT: ("QUIT", 0, 0), ERROR: ("ERROR", 1, 201)}
BUSY, MALFORMED, UNEXPECTED, BAD_HANDLE, TIMEOUT = 1, 2, 3, 4, 5

codecs.register_error("ind-qmark", lambda exc: ("?", exc.end))  # each bad sequence becomes one "?"


# ---- text rules (T-1 .. T-5) -------------------------------------------------------------


def is_control(ch: str) -> bool:
    return ord(ch) <= 0x1F or 0x7F <= ord(ch) <= 0x9F


# T-6, as (first, last) code point ranges.
INVISIBLE = ((0xAD, 0xAD), (0x34F, 0x34F), (0x61C, 0x61C), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
             (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F),
             (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
             (0xE0000, 0xE0FFF))
OVERRIDES = ((0x202A, 0x202E), (0x2066, 0x2069))


def in_ranges(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(first <= cp <= last for first, last in ranges)


def text_problem(raw: bytes, limit: int, handle: bool) -> str | None:
    """The T-5 phrase for the first rule `raw` breaks, or None if it is a valid handle/message."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "is not valid UTF-8"
    if not text:
        return "is empty"
    if len(text) > limit:
        return f"is longer than {limit} characters"
    if any(is_control(ch) for ch in text):
        return "contains control characters"
    if handle and any(in_ranges(ord(ch), INVISIBLE) for ch in text):
        return "contains invisible characters"
    if not handle and any(in_ranges(ord(ch), OVERRIDES) for ch in text):
        return "contains direction overrides"
    if handle and any(ch.isspace() for ch in text):
        return "contains whitespace"
    if handle and ">" in text:
        return "contains '>'"
    return None


def sanitise(raw: bytes) -> str:
    """C-12, S-13: each invalid UTF-8 sequence, control character and direction override becomes '?'."""
    return "".join("?" if is_control(ch) or in_ranges(ord(ch), OVERRIDES) else ch
                   for ch in raw.decode("utf-8", "ind-qmark"))


# ---- frames (W-*, E-3) ---------------------------------------------------------------------


class ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def frame(ftype: int, payload: bytes = b"") -> bytes:
    return struct.pack("!BH", ftype, len(payload)) + payload


def error_frame(code: int, reason: str) -> bytes:
    return frame(ERROR, struct.pack("!B", code) + reason.encode("utf-8")[:200])


class Decoder:
    """Reassembles frames from a byte stream, checking each header as soon as it is complete."""

    def __init__(self, unexpected: Callable[[int], str | None]) -> None:
        self.unexpected = unexpected  # E-3 step 3: why this frame type is out of order, or None
        self.pending = b""  # never more than one frame's worth (W-5)

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        buf, pos = self.pending + data, 0
        self.pending = b""
        while len(buf) - pos >= 3:
            ftype, length = struct.unpack_from("!BH", buf, pos)
            if ftype not in LIMITS:
                raise ProtocolError(MALFORMED, f"unknown frame type 0x{ftype:02x}")
            name, low, high = LIMITS[ftype]
            if length > high:
                raise ProtocolError(MALFORMED, f"declared length {length} exceeds {high} for {name}")
            if length < low:
                raise ProtocolError(MALFORMED, f"declared length {length} is below {low} for {name}")
            if ftype != ERROR and (why := self.unexpected(ftype)):
                raise ProtocolError(UNEXPECTED, why)
            if len(buf) - pos - 3 < length:
                break
            payload = buf[pos + 3 : pos + 3 + length]
            pos += 3 + length
            if ftype in (HELLO, MESSAGE):
                what, limit = ("handle", 10) if ftype == HELLO else ("message", 500)
                problem = text_problem(payload, limit, ftype == HELLO)
                if problem:
                    bad = BAD_HANDLE if ftype == HELLO and problem != "is not valid UTF-8" else MALFORMED
                    raise ProtocolError(bad, f"{what} {problem}")
            yield ftype, payload
        self.pending = buf[pos:]


def split_line(buf: bytes, eof: bool) -> tuple[bytes | None, bytes]:
    """The next complete line of typed input (or the unterminated rest at end of input), without
    its newline, and what is left; None while no line is complete."""
    nl = buf.find(b"\n")
    if nl >= 0:
        return buf[:nl], buf[nl + 1 :]
    if eof and buf:
        return buf, b""
    return None, buf
