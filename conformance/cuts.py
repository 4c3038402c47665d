"""Which read broke when a pair fails behind a relay that re-segments its stream.

A pair's wire format is its own, so the suite cannot parse its bytes. It can still say what went
where, precisely enough for a grader to reproduce by hand: the relay keeps the first bytes of each
direction with the boundaries of the segments that carried them (conformance/relay.py), the suite
knows where each message it typed began in that direction, and the receiver's screen shows where
things went wrong. From those: the handle read (a piece of the peer's handle on the screen, or the
handshake and the first message taken as one), a message read (the message shown in pieces), or
the end of a message (a line end or end marker split across reads: the message is never shown).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.screen import handle_piece, short

HEAD, TAIL = 8, 4  # segments shown at each end of a long cut


@dataclass
class Typed:
    """A message the suite typed at one side, and where its bytes begin in that direction."""

    direction: str  # relay.C2S or relay.S2C
    text: str
    offset: int  # bytes that had come in from the sender that way before it was typed
    mark: int  # the receiver's transcript mark at that moment


@dataclass
class Stream:
    """One direction of a relayed connection, with what the receiver showed."""

    sender: str  # "client", "server"
    receiver: str
    handle: str | None  # the sender's handle, if known
    how: str  # how the relay cut it: "one byte at a time", ...
    data: bytes  # what the relay delivered (the first bytes)
    ends: list[int]  # where each segment ended in `data`
    typed: list[Typed] = field(default_factory=list)
    screen: list[str] = field(default_factory=list)  # the receiver's lines since the client started
    after_last: list[str] = field(default_factory=list)  # ... since the last message was typed

    def pieces(self, lo: int, hi: int) -> list[bytes]:
        """Delivered bytes lo..hi, as the segments that carried them (clipped to lo..hi)."""
        out, start = [], 0
        for end in self.ends:
            if end > lo and start < hi:
                out.append(self.data[max(start, lo): min(end, hi)])
            start = end
        return out

    def segment_start(self, offset: int) -> int:
        """Where the segment that carried byte `offset` began."""
        start = 0
        for end in self.ends:
            if end > offset:
                return start
            start = end
        return start

    def segment_end(self, offset: int) -> int:
        """Where the segment that carried byte `offset` ended."""
        return next((end for end in self.ends if end > offset), len(self.data))

    def cut(self, lo: int, hi: int) -> str:
        pieces = self.pieces(lo, hi)
        if not pieces:
            return "(nothing delivered)"
        if len(pieces) > HEAD + TAIL + 1:
            shown = [*map(_bytes, pieces[:HEAD]), f"... {len(pieces) - HEAD - TAIL} more ...",
                     *map(_bytes, pieces[-TAIL:])]
        else:
            shown = [_bytes(p) for p in pieces]
        return " | ".join(shown) + f" (bytes {lo} to {hi - 1}, {len(pieces)} segment(s))"


def _bytes(data: bytes) -> str:
    return repr(data)[1:]


def handle_read(stream: Stream) -> str | None:
    """A piece of the sender's handle on the receiver's screen: its read of the handle broke."""
    if not stream.handle:
        return None
    first = stream.typed[0].offset if stream.typed else len(stream.data)
    cut = [(line, piece) for line in stream.screen if (piece := handle_piece(line, stream.handle))]
    if not cut:
        return None
    return (f"the {stream.receiver}'s read of the {stream.sender}'s handle broke: it showed "
            f"{', '.join(short(line, 50) for line, _ in cut[:3])} (the handle {stream.handle!r} cut to "
            f"{cut[0][1]!r}) after the relay delivered the handshake {stream.how}: {stream.cut(0, first)}; "
            f"it takes one read for the whole handle")


def message_read(stream: Stream) -> str | None:
    """Where the receiver's reading of the last message typed that way broke, if it points anywhere:
    the read before it took it too, it showed the message in pieces, or it never saw its end."""
    if not stream.typed:
        return None
    last = stream.typed[-1]
    at = stream.data.find(last.text.encode(), last.offset)
    if at < 0:  # not in the first bytes, or not sent as plain text
        return None
    end = at + len(last.text.encode())
    lines = [line for line in stream.after_last if line.strip()]
    if any(line.endswith(last.text) for line in lines):  # it arrived: something else went wrong
        return None
    start = stream.segment_start(at)
    if last.offset > 0 and start < last.offset:
        before = f"the {stream.sender}'s handle" if last is stream.typed[0] else "the message before"
        return (f"the {stream.receiver}'s read of {before} took the next message too: the relay delivered the end "
                f"of {before} and the start of {short(last.text, 40)} in one segment: "
                f"{stream.cut(start, min(stream.segment_end(at), start + 80))}; the {stream.receiver} then showed "
                + (", ".join(short(line, 50) for line in lines[:4]) or "nothing")
                + "; it takes one read for one whole line")
    if lines:
        return (f"the {stream.receiver}'s read of a message broke: it showed the {len(last.text)}-character "
                f"message as {len(lines)} line(s) ({', '.join(short(line, 40) for line in lines[:3])}"
                f"{', ...' if len(lines) > 3 else ''}) after the relay delivered it {stream.how}: "
                f"{stream.cut(at, end)}; it takes one read for one whole message")
    return (f"the {stream.receiver} never found the end of the message: it showed nothing after the relay "
            f"delivered it {stream.how}, ending {stream.cut(max(at, end - 3), min(len(stream.data), end + 8))}; "
            f"a line end or end marker split across reads is missed")
