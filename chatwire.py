"""The chat wire format of PROTOCOL.md, written once, and a sans-I/O connection.

The frame layout is the `construct` struct FRAME; nothing else in the project packs or
parses frames by hand. `Connection` holds one side's view of a conversation: feed it the
bytes that arrived (`receive_data`), take events out (`next_event`), and turn events you
want to send into bytes (`send`). It does no I/O, so it is tested without sockets, and it
decides every protocol error (E-3) in one place.

    conn = Connection(Role.SERVER)
    conn.receive_data(sock.recv(4096))
    while (event := conn.next_event()) is not NEED_DATA:
        ...                                  # Hello, Message, Quit, Error, ConnectionClosed
    sock.sendall(conn.send(Hello("HostA")))
"""

from __future__ import annotations

import codecs
import enum
import re

TYPE_CHECKING = False  # typing itself is not imported: its import costs every program's start-up time
if TYPE_CHECKING:
    from typing import Any, Final

# --- the layout (W-1, W-2, W-6) ----------------------------------------------------------
# Built on first use, not at import: the text rules need no construct, and a program that starts
# with them (the server checks its handle, then listens) need not wait for construct to load.

HEADER_SIZE: Final = 3  # type u8, length u16 (W-1); checked against the layout when it is built


class Layouts:
    """The frame layout, written once in construct, and its compiled parsers."""

    def __init__(self) -> None:
        from construct import Bytes, GreedyBytes, Int8ub, Int16ub, Rebuild, Struct, len_, this

        self.FRAME_LAYOUT = Struct(
            "type" / Int8ub,
            "length" / Rebuild(Int16ub, len_(this.payload)),
            "payload" / Bytes(this.length),
        )
        self.HEADER_LAYOUT = Struct(*self.FRAME_LAYOUT.subcons[:2])  # the first two fields, to decide at the header
        self.ERROR_LAYOUT = Struct("code" / Int8ub, "reason" / GreedyBytes)
        # construct's compiled parsers: the same definitions, about 3x faster (bench/throughput.py).
        self.FRAME, self.HEADER = self.FRAME_LAYOUT.compile(), self.HEADER_LAYOUT.compile()
        self.ERROR_BODY = self.ERROR_LAYOUT.compile()
        assert self.HEADER_LAYOUT.sizeof() == HEADER_SIZE


_layouts: Layouts | None = None


def layouts() -> Layouts:
    """The layouts, built (construct imported, the parsers compiled) on the first call."""
    global _layouts
    if _layouts is None:
        _layouts = Layouts()
    return _layouts


def __getattr__(name: str) -> Any:
    """FRAME, HEADER, ERROR_BODY and the *_LAYOUT structs as module attributes (PEP 562)."""
    if name in ("FRAME", "HEADER", "ERROR_BODY", "FRAME_LAYOUT", "HEADER_LAYOUT", "ERROR_LAYOUT"):
        return getattr(layouts(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


MAX_PAYLOAD: Final = 2000  # W-4
HANDLE_MAX: Final = 10  # T-1, in code points
MESSAGE_MAX: Final = 500  # T-3, in code points
REASON_MAX: Final = 200  # W-6, in bytes


class FrameType(enum.IntEnum):
    HELLO = 0x48
    MESSAGE = 0x4D
    QUIT = 0x51
    ERROR = 0x45


# W-3: the payload lengths each type may declare, (least, most).
PAYLOAD_LIMITS: Final = {
    FrameType.HELLO: (0, 4 * HANDLE_MAX),
    FrameType.MESSAGE: (0, MAX_PAYLOAD),
    FrameType.QUIT: (0, 0),
    FrameType.ERROR: (1, 1 + REASON_MAX),
}


class ErrorCode(enum.IntEnum):
    BUSY = 1
    MALFORMED = 2
    UNEXPECTED = 3
    BAD_HANDLE = 4
    TIMEOUT = 5


def error_name(code: int) -> str:
    """The E-1 name of an error code; receivers accept codes they do not know (W-6)."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return "UNKNOWN"


# --- text rules (T-1 .. T-4) -------------------------------------------------------------
# Each check returns None, or the phrase that both programs show ("Invalid handle: it
# contains '>'.") and send as an ERROR reason ("handle contains '>'").


def is_control(ch: str) -> bool:
    """T-2: U+0000-U+001F and U+007F-U+009F."""
    return ch <= "\x1f" or "\x7f" <= ch <= "\x9f"


CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # T-2, for whole strings (a regex scans in C)
# T-6: Unicode's default-ignorable code points: drawn as nothing, they let one handle pass for
# another ("Host\u200bA"), and the bidi controls among them reorder what follows on the screen.
INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff]"
)
# T-6: the bidi embeddings, overrides and isolates, whose effect can outlast the message's text.
OVERRIDES = re.compile("[\u202a-\u202e\u2066-\u2069]")
# S-13: what an ERROR reason may not show of itself: control characters and direction overrides.
UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def decode_text(raw: bytes) -> str | None:
    """Strict UTF-8 (T-4), or None. Python's codec already refuses overlongs and surrogates."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _text_problem(text: str, longest: int) -> str | None:
    """The rules that handles and messages share, in the order of T-5."""
    if not text:
        return "is empty"
    if len(text) > longest:
        return f"is longer than {longest} characters"
    if CONTROL.search(text):
        return "contains control characters"
    return None


def handle_problem(text: str) -> str | None:
    if problem := _text_problem(text, HANDLE_MAX):
        return problem
    if INVISIBLE.search(text):
        return "contains invisible characters"
    if any(ch.isspace() for ch in text):
        return "contains whitespace"
    if ">" in text:
        return "contains '>'"
    return None


def message_problem(text: str) -> str | None:
    if problem := _text_problem(text, MESSAGE_MAX):
        return problem
    if OVERRIDES.search(text):
        return "contains direction overrides"
    return None


NOT_UTF8: Final = "is not valid UTF-8"


def _question_mark(err: UnicodeError) -> tuple[str, int]:
    assert isinstance(err, UnicodeDecodeError)
    return "?", err.end


codecs.register_error("chatwire.question-mark", _question_mark)


def printable(raw: bytes) -> str:
    """S-13: text for the terminal, each invalid sequence, control character and direction
    override (T-6) as '?'."""
    text = raw.decode("utf-8", errors="chatwire.question-mark")
    return UNSHOWABLE.sub("?", text)


# --- events --------------------------------------------------------------------------------


class _Event:
    """A value with named fields, compared by type and fields, immutable, matched by position
    (`case Hello(handle)`): what a frozen dataclass gives, without importing dataclasses (and
    inspect) into every program that speaks the protocol."""

    __slots__: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        values = dict(zip(self.__slots__, args, strict=False)) | kwargs
        if len(args) > len(self.__slots__) or set(values) != set(self.__slots__):
            raise TypeError(f"{type(self).__name__} takes the fields {', '.join(self.__slots__) or 'none'}")
        for name in self.__slots__:
            object.__setattr__(self, name, values[name])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return type(self), self._values()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in zip(self.__slots__, self._values(), strict=True))
        return f"{type(self).__name__}({fields})"


class Hello(_Event):
    __slots__ = __match_args__ = ("handle",)
    handle: str


class Message(_Event):
    __slots__ = __match_args__ = ("text",)
    text: str


class Quit(_Event):
    __slots__ = ()


class Error(_Event):
    __slots__ = __match_args__ = ("code", "reason")
    code: int
    reason: str  # received: already sanitised for display (S-13)


class ConnectionClosed(_Event):
    """The peer's end of the stream: clean after QUIT or ERROR, a lost connection otherwise."""

    __slots__ = ()


Event = Hello | Message | Quit | Error | ConnectionClosed


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


class ProtocolError(Exception):
    """The peer broke the protocol: send Error(code, reason) and close (E-2)."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(f"{code.name}: {reason}")
        self.code = code
        self.reason = reason


class LocalProtocolError(Exception):
    """We tried to send something the protocol does not allow: a bug in the caller."""


# --- the state machine (PROTOCOL.md section 4) -------------------------------------------


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class State(enum.Enum):
    START = enum.auto()
    HELLO_SENT = enum.auto()
    CLIENT_TURN = enum.auto()
    SERVER_TURN = enum.auto()
    BROKEN = enum.auto()  # the peer broke the protocol; we may only send ERROR
    CLOSED = enum.auto()


C, S = Role.CLIENT, Role.SERVER
_ACTIVE = (State.START, State.HELLO_SENT, State.CLIENT_TURN, State.SERVER_TURN)

TRANSITIONS: Final[dict[tuple[State, Role, FrameType], State]] = {
    (State.START, C, FrameType.HELLO): State.HELLO_SENT,
    (State.HELLO_SENT, S, FrameType.HELLO): State.CLIENT_TURN,
    (State.HELLO_SENT, C, FrameType.QUIT): State.CLOSED,
    (State.CLIENT_TURN, C, FrameType.MESSAGE): State.SERVER_TURN,
    (State.SERVER_TURN, S, FrameType.MESSAGE): State.CLIENT_TURN,
    **{(st, r, FrameType.QUIT): State.CLOSED for st in (State.CLIENT_TURN, State.SERVER_TURN) for r in (C, S)},
    **{(st, r, FrameType.ERROR): State.CLOSED for st in (*_ACTIVE, State.BROKEN) for r in (C, S)},
}


def _unexpected_reason(state: State, ftype: FrameType) -> str:
    if state in (State.START, State.HELLO_SENT):
        return f"{ftype.name} before HELLO"
    if ftype is FrameType.HELLO:
        return "second HELLO"
    return f"{ftype.name} out of turn"


class Connection:
    """One side of one conversation, without I/O."""

    def __init__(self, our_role: Role) -> None:
        self.our_role = our_role
        self.their_role = S if our_role is C else C
        self.state = State.START
        self._buffer = bytearray()
        self._start = 0  # where the undecoded bytes begin in _buffer (consumed bytes are dropped lazily)
        self._eof = False
        self._closed_reported = False

    # -- receiving

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; b"" means the peer closed. Drain next_event() after each call,
        which keeps at most one partial frame buffered (W-5)."""
        if data:
            if self.state in _ACTIVE:
                self._buffer += data  # after QUIT/ERROR/violation input is ignored (W-8)
        else:
            self._eof = True

    @property
    def buffered(self) -> int:
        """Bytes received and not yet decoded: at most one partial frame after a drain (W-5)."""
        return len(self._buffer) - self._start

    def _take(self, size: int) -> bytes:
        frame = bytes(self._buffer[self._start : self._start + size])
        self._start += size
        if self._start == len(self._buffer) or self._start > 65536:
            del self._buffer[: self._start]  # compact now and then, not per frame
            self._start = 0
        return frame

    def next_event(self) -> Event | _NeedData:
        """The next complete event, NEED_DATA, or ProtocolError (after which only send(Error) is allowed)."""
        if self.state in _ACTIVE and self.buffered >= HEADER_SIZE:
            header = layouts().HEADER.parse(self._buffer[self._start : self._start + HEADER_SIZE])
            ftype = self._check_header(header.type, header.length)
            size = HEADER_SIZE + header.length
            if self.buffered >= size:
                frame = layouts().FRAME.parse(self._take(size))
                event = self._decode_payload(ftype, frame.payload)
                self.state = TRANSITIONS[self.state, self.their_role, ftype]
                if self.state is State.CLOSED:
                    self._clear()  # W-8
                return event
        if self._eof and not self._closed_reported:
            self._closed_reported = True
            if self.state is not State.BROKEN:
                self.state = State.CLOSED
            self._clear()
            return ConnectionClosed()
        return NEED_DATA

    def _clear(self) -> None:
        self._buffer.clear()
        self._start = 0

    def _fail(self, code: ErrorCode, reason: str) -> ProtocolError:
        self.state = State.BROKEN
        self._clear()
        return ProtocolError(code, reason)

    def _check_header(self, type_byte: int, length: int) -> FrameType:
        """E-3 steps 1-3, decided before any payload byte is needed (W-4)."""
        try:
            ftype = FrameType(type_byte)
        except ValueError:
            raise self._fail(ErrorCode.MALFORMED, f"unknown frame type 0x{type_byte:02x}") from None
        least, most = PAYLOAD_LIMITS[ftype]
        if length > most:
            raise self._fail(ErrorCode.MALFORMED, f"declared length {length} exceeds {most} for {ftype.name}")
        if length < least:
            raise self._fail(ErrorCode.MALFORMED, f"declared length {length} is below {least} for {ftype.name}")
        if (self.state, self.their_role, ftype) not in TRANSITIONS:
            raise self._fail(ErrorCode.UNEXPECTED, _unexpected_reason(self.state, ftype))
        return ftype

    def _decode_payload(self, ftype: FrameType, payload: bytes) -> Event:
        """E-3 steps 4-5."""
        if ftype is FrameType.QUIT:
            return Quit()
        if ftype is FrameType.ERROR:
            body = layouts().ERROR_BODY.parse(payload)
            return Error(body.code, printable(body.reason))
        text = decode_text(payload)
        noun = "handle" if ftype is FrameType.HELLO else "message"
        if text is None:
            raise self._fail(ErrorCode.MALFORMED, f"{noun} {NOT_UTF8}")
        if ftype is FrameType.HELLO:
            if problem := handle_problem(text):
                raise self._fail(ErrorCode.BAD_HANDLE, f"handle {problem}")
            return Hello(text)
        if problem := message_problem(text):
            raise self._fail(ErrorCode.MALFORMED, f"message {problem}")
        return Message(text)

    # -- sending

    def send(self, event: Hello | Message | Quit | Error) -> bytes:
        """The bytes for an event we send; LocalProtocolError if the protocol does not allow it."""
        ftype, payload = _encode_payload(event)
        key = (self.state, self.our_role, ftype)
        if key not in TRANSITIONS:
            raise LocalProtocolError(f"{self.our_role.value} may not send {ftype.name} in {self.state.name}")
        self.state = TRANSITIONS[key]
        return layouts().FRAME.build({"type": ftype, "payload": payload})


def encode(event: Hello | Message | Quit | Error) -> bytes:
    """The frame of an event regardless of any conversation's state (test peers use it to send
    frames ahead of or against the turn); the text rules still apply."""
    ftype, payload = _encode_payload(event)
    return layouts().FRAME.build({"type": ftype, "payload": payload})


def _encode_payload(event: Hello | Message | Quit | Error) -> tuple[FrameType, bytes]:
    match event:
        case Hello(handle):
            if problem := handle_problem(handle):
                raise LocalProtocolError(f"handle {problem}")
            return FrameType.HELLO, handle.encode()
        case Message(text):
            if problem := message_problem(text):
                raise LocalProtocolError(f"message {problem}")
            return FrameType.MESSAGE, text.encode()
        case Quit():
            return FrameType.QUIT, b""
        case Error(code, reason):
            raw = reason.encode()
            if len(raw) > REASON_MAX or UNSHOWABLE.search(reason):
                raise LocalProtocolError("an ERROR reason is at most 200 bytes without control characters "
                                         "or direction overrides")
            return FrameType.ERROR, layouts().ERROR_BODY.build({"code": code, "reason": raw})
    raise LocalProtocolError(f"not an event that can be sent: {event!r}")
