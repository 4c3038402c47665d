"""Property tests of chatwire (hypothesis): valid frames round-trip byte-exact; any bytes, cut
anywhere, give events or the ProtocolError PROTOCOL.md names, never another exception, and
never more than one frame's worth buffered."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from chatwire import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    NEED_DATA,
    Connection,
    Error,
    ErrorCode,
    Hello,
    Message,
    ProtocolError,
    Quit,
    Role,
    encode,
    handle_problem,
    is_control,
    message_problem,
)

# Text without control characters (T-2); surrogates cannot be encoded, so they are left out too.
SAFE = st.characters(codec="utf-8", exclude_categories=("Cs",)).filter(lambda c: not is_control(c))
HANDLES = st.text(SAFE, min_size=1, max_size=10).filter(lambda h: handle_problem(h) is None)
MESSAGES = st.text(SAFE, min_size=1, max_size=500).filter(lambda m: message_problem(m) is None)
REASONS = st.text(SAFE, max_size=50).filter(lambda r: len(r.encode()) <= 200)


def drain(conn: Connection) -> list[object]:
    events = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=300, deadline=None)
@given(handles=st.tuples(HANDLES, HANDLES), texts=st.lists(MESSAGES, min_size=1, max_size=8),
       points=st.lists(st.integers(min_value=0), max_size=6))
def test_a_conversation_round_trips_however_each_frame_is_cut(handles: tuple[str, str], texts: list[str],
                                                               points: list[int]) -> None:
    """Client and server take turns; every frame arrives cut at arbitrary points, and comes out
    as it was sent, with at most one partial frame buffered (W-5)."""
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    script: list[tuple[Connection, Connection, object]] = [
        (client, server, Hello(handles[0])), (server, client, Hello(handles[1]))]
    for i, text in enumerate(texts):
        script.append((client, server, Message(text)) if i % 2 == 0 else (server, client, Message(text)))
    script.append((client, server, Quit()))
    for sender, receiver, event in script:
        received: list[object] = []
        for piece in cut(sender.send(event), points):
            receiver.receive_data(piece)
            received += drain(receiver)
            assert receiver.buffered < HEADER_SIZE + MAX_PAYLOAD
        assert received == [event]


@settings(max_examples=500, deadline=None)
@given(event=st.one_of(HANDLES.map(Hello), MESSAGES.map(Message), st.just(Quit()),
                       st.builds(Error, st.integers(0, 255), REASONS)))
def test_every_valid_frame_round_trips_byte_exact(event: object) -> None:
    data = encode(event)
    assert data[1:3] == (len(data) - HEADER_SIZE).to_bytes(2, "big")
    conn = Connection(Role.SERVER)
    if not isinstance(event, Hello | Error):  # MESSAGE and QUIT come after a handshake
        conn.receive_data(encode(Hello("Chris")))
        drain(conn)
        conn.send(Hello("HostA"))
    conn.receive_data(data)
    assert drain(conn) == [event]


@settings(max_examples=1000, deadline=None)
@given(data=st.binary(max_size=3000), points=st.lists(st.integers(min_value=0), max_size=10),
       role=st.sampled_from(list(Role)), handshake=st.booleans())
def test_any_bytes_give_events_or_a_named_protocol_error(data: bytes, points: list[int], role: Role,
                                                          handshake: bool) -> None:
    conn = Connection(role)
    if handshake:  # past HELLO, so that MESSAGE is in play too
        peer = Connection(Role.SERVER if role is Role.CLIENT else Role.CLIENT)
        if role is Role.CLIENT:
            peer.receive_data(conn.send(Hello("Chris")))
            drain(peer)
            conn.receive_data(peer.send(Hello("HostA")))
        else:
            conn.receive_data(peer.send(Hello("Chris")))
            drain(conn)
            peer.receive_data(conn.send(Hello("HostA")))
        drain(conn)
    outcomes: list[object] = []
    for piece in cut(data, points):
        conn.receive_data(piece)
        try:
            outcomes += drain(conn)
        except ProtocolError as exc:
            assert exc.code in (ErrorCode.MALFORMED, ErrorCode.UNEXPECTED, ErrorCode.BAD_HANDLE)
            assert exc.reason and len(exc.reason.encode()) <= 200 and exc.reason.isascii()
            conn.send(Error(exc.code, exc.reason))  # the answer can always be sent
            return
        assert conn.buffered < HEADER_SIZE + MAX_PAYLOAD  # W-5: one partial frame at most
    for event in outcomes:
        if isinstance(event, Hello):
            assert handle_problem(event.handle) is None
        if isinstance(event, Message):
            assert message_problem(event.text) is None
