"""Unit tests of chatwire: golden vectors at every split, every error code, the state machine."""

from __future__ import annotations

import pytest

import vectors
from chatwire import (
    FRAME,
    HEADER_SIZE,
    NEED_DATA,
    Connection,
    ConnectionClosed,
    Error,
    ErrorCode,
    FrameType,
    Hello,
    LocalProtocolError,
    Message,
    ProtocolError,
    Quit,
    Role,
    State,
    error_name,
    printable,
)

VECTORS = vectors.load()
QUIT_BYTES = vectors.by_name("quit").data


def ready_for(type_byte: int) -> Connection:
    """A server-side connection in a state where the client may send this frame type."""
    conn = Connection(Role.SERVER)
    if type_byte in (FrameType.MESSAGE, FrameType.QUIT):
        conn.receive_data(vectors.by_name("hello-chris").data)
        assert conn.next_event() == Hello("Chris")
        conn.send(Hello("HostA"))
    return conn


def drain(conn: Connection) -> list[object]:
    events = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def feed(conn: Connection, chunks: list[bytes]) -> tuple[list[object], ProtocolError | None, int]:
    """Events, the error if one was raised, and how many bytes were fed when it was."""
    events: list[object] = []
    fed = 0
    for chunk in chunks:
        conn.receive_data(chunk)
        fed += len(chunk)
        try:
            events += drain(conn)
        except ProtocolError as exc:
            return events, exc, fed
    return events, None, fed


def splits(data: bytes) -> list[tuple[str, list[bytes]]]:
    ways = [("whole", [data]), ("bytewise", [data[i : i + 1] for i in range(len(data))])]
    ways += [(f"split@{i}", [data[:i], data[i:]]) for i in range(1, len(data))]
    return ways


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_vector_decodes_the_same_at_every_split(vector: vectors.Vector) -> None:
    for how, chunks in splits(vector.data):
        events, error, fed = feed(ready_for(vector.data[0]), chunks)
        if vector.ok:
            assert error is None, f"{how}: {error}"
            assert len(events) == 1, how
            assert FRAME.build({"type": vector.data[0], "payload": vector.data[3:]}) == vector.data
        else:
            assert error is not None and error.code.name == vector.error, f"{how}: {events}"
            # W-4 / E-3: decided at the header, or only once the whole frame is in.
            needed = HEADER_SIZE if vector.at_header else len(vector.data)
            assert fed >= needed, f"{how}: error after only {fed} bytes"
            if how == "bytewise":
                assert fed == needed, f"error after {fed} bytes, expected at {needed}"


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_vector_coalesced_with_the_next_frame(vector: vectors.Vector) -> None:
    conn = ready_for(vector.data[0])
    events, error, _ = feed(conn, [vector.data + QUIT_BYTES])
    if vector.ok:
        assert error is None
        # After ERROR or QUIT nothing more is read (W-8); otherwise the QUIT is the next event.
        expect_quit = vector.data[0] in (FrameType.HELLO, FrameType.MESSAGE)
        assert events[1:] == ([Quit()] if expect_quit else [])
    else:
        assert error is not None and error.code.name == vector.error


GOLDEN_SENDS = [
    (Role.CLIENT, [], Hello("Chris"), "hello-chris"),
    (Role.SERVER, [Hello("Chris")], Hello("HostA"), "hello-hosta"),
    (Role.CLIENT, [Hello("Chris"), Hello("HostA")], Message("test"), "message-test"),
    (Role.SERVER, [Hello("Chris"), Hello("HostA"), Message("test")], Message("hello"), "message-hello"),
    (Role.CLIENT, [Hello("Chris"), Hello("HostA")], Quit(), "quit"),
    (Role.SERVER, [], Error(ErrorCode.BUSY, "busy"), "error-busy"),
]


def converse(role: Role, history: list[Hello | Message]) -> Connection:
    """A connection of `role` after the given frames, alternately from the client and the server."""
    ours = Connection(role)
    theirs = Connection(Role.SERVER if role is Role.CLIENT else Role.CLIENT)
    for i, event in enumerate(history):
        sender, receiver = (ours, theirs) if (i % 2 == 0) == (role is Role.CLIENT) else (theirs, ours)
        receiver.receive_data(sender.send(event))
        assert receiver.next_event() == event
    return ours


@pytest.mark.parametrize(("role", "history", "event", "name"), GOLDEN_SENDS, ids=[g[3] for g in GOLDEN_SENDS])
def test_send_produces_the_golden_bytes(role: Role, history: list, event: object, name: str) -> None:
    assert converse(role, history).send(event) == vectors.by_name(name).data


def test_the_example_session_from_both_sides() -> None:
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    for sender, receiver, event in [
        (client, server, Hello("Chris")),
        (server, client, Hello("HostA")),
        (client, server, Message("test")),
        (server, client, Message("hello")),
        (client, server, Quit()),
    ]:
        receiver.receive_data(sender.send(event))
        assert drain(receiver) == [event]
    assert client.state is server.state is State.CLOSED
    server.receive_data(b"")
    assert drain(server) == [ConnectionClosed()]


HELLO_C, HELLO_S = Hello("Chris"), Hello("HostA")
MSG = vectors.by_name("message-test").data


@pytest.mark.parametrize(
    ("role", "history", "incoming", "reason"),
    [
        (Role.SERVER, [], MSG, "MESSAGE before HELLO"),
        (Role.SERVER, [], QUIT_BYTES, "QUIT before HELLO"),
        (Role.SERVER, [HELLO_C, HELLO_S], vectors.by_name("hello-chris").data, "second HELLO"),
        (Role.SERVER, [HELLO_C, HELLO_S, Message("a")], MSG, "MESSAGE out of turn"),
        (Role.CLIENT, [HELLO_C], MSG, "MESSAGE before HELLO"),
        (Role.CLIENT, [HELLO_C], QUIT_BYTES, "QUIT before HELLO"),
        (Role.CLIENT, [HELLO_C, HELLO_S], MSG, "MESSAGE out of turn"),
        (Role.CLIENT, [HELLO_C, HELLO_S], vectors.by_name("hello-hosta").data, "second HELLO"),
        # E-3: the state is checked at the header, before the payload's UTF-8.
        (Role.SERVER, [], vectors.by_name("message-bad-byte").data, "MESSAGE before HELLO"),
    ],
)
def test_frames_out_of_turn_are_unexpected(role: Role, history: list, incoming: bytes, reason: str) -> None:
    conn = converse(role, history)
    conn.receive_data(incoming[:HEADER_SIZE])
    with pytest.raises(ProtocolError) as caught:
        drain(conn)
    assert (caught.value.code, caught.value.reason) == (ErrorCode.UNEXPECTED, reason)
    assert conn.state is State.BROKEN
    conn.receive_data(incoming[HEADER_SIZE:] + QUIT_BYTES)  # ignored after the violation
    assert drain(conn) == []
    assert conn.send(Error(caught.value.code, caught.value.reason))[:4] == bytes([0x45, 0, len(reason) + 1, 3])


def test_unknown_type_is_malformed_even_out_of_turn() -> None:
    conn = Connection(Role.SERVER)
    conn.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    with pytest.raises(ProtocolError) as caught:
        drain(conn)
    assert caught.value.code is ErrorCode.MALFORMED
    assert caught.value.reason == "unknown frame type 0x47"


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_round_trips(code: ErrorCode) -> None:
    sender = Connection(Role.SERVER)
    receiver = Connection(Role.CLIENT)
    receiver.send(Hello("Chris"))
    receiver.receive_data(sender.send(Error(code, f"reason {code.name}")))
    assert drain(receiver) == [Error(code, f"reason {code.name}")]
    assert receiver.state is State.CLOSED
    assert error_name(code) == code.name


@pytest.mark.parametrize(
    ("vector_name", "code"),
    [
        ("type-unknown", ErrorCode.MALFORMED),
        ("hello-11-ascii", ErrorCode.BAD_HANDLE),
    ],
)
def test_protocol_error_codes_from_the_receiver(vector_name: str, code: ErrorCode) -> None:
    conn = Connection(Role.SERVER)
    conn.receive_data(vectors.by_name(vector_name).data)
    with pytest.raises(ProtocolError) as caught:
        drain(conn)
    assert caught.value.code is code


def test_events_are_values() -> None:
    """Compared by type and fields, hashable, immutable, matched by position, as frozen
    dataclasses were."""
    assert Hello("Chris") == Hello(handle="Chris") != Message("Chris")
    assert Quit() != ConnectionClosed() and len({Error(1, "busy"), Error(1, "busy")}) == 1
    assert repr(Error(2, "x")) == "Error(code=2, reason='x')"
    with pytest.raises(AttributeError):
        Hello("Chris").handle = "Eve"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Message()
    match Error(3, "why"):
        case Error(code, reason):
            assert (code, reason) == (3, "why")


def test_unknown_error_codes_are_accepted_and_named_unknown() -> None:
    conn = Connection(Role.CLIENT)
    conn.send(Hello("Chris"))
    conn.receive_data(vectors.by_name("error-unknown-code").data)
    assert drain(conn) == [Error(9, "")]
    assert error_name(9) == "UNKNOWN"


def test_error_reasons_are_sanitised_for_the_terminal() -> None:
    assert printable(b"ok \x1b[2J\xff\xc2\x9b end") == "ok ?[2J?? end"
    # S-13: direction overrides (T-6) too; other invisible characters are shown as they are
    assert printable("a\u202ab\u202ec\u2066d\u2069e\u200df".encode()) == "a?b?c?d?e\u200df"
    conn = Connection(Role.CLIENT)
    conn.receive_data(vectors.by_name("error-reason-bad-utf8").data)
    assert drain(conn) == [Error(2, "??")]


@pytest.mark.parametrize(
    ("role", "history", "event"),
    [
        (Role.CLIENT, [], Message("hi")),  # MESSAGE before HELLO
        (Role.SERVER, [], Quit()),  # QUIT before its own HELLO
        (Role.SERVER, [], Hello("HostA")),  # the client speaks first
        (Role.CLIENT, [HELLO_C, HELLO_S, Message("a")], Message("b")),  # two in a row
        (Role.CLIENT, [], Hello("a b")),  # invalid handle
        (Role.CLIENT, [HELLO_C, HELLO_S], Message("x" * 501)),  # too long
        (Role.CLIENT, [HELLO_C, HELLO_S], Message("bell\a")),  # control character
        (Role.SERVER, [], Error(ErrorCode.BUSY, "x" * 201)),  # reason too long
    ],
)
def test_sending_what_the_protocol_forbids_raises(role: Role, history: list, event: object) -> None:
    with pytest.raises(LocalProtocolError):
        converse(role, history).send(event)


def test_eof_mid_frame_is_a_closed_connection() -> None:
    conn = converse(Role.SERVER, [HELLO_C, HELLO_S])
    conn.receive_data(MSG[:5])
    assert drain(conn) == []
    conn.receive_data(b"")
    assert drain(conn) == [ConnectionClosed()]
    assert conn.state is State.CLOSED


def test_quit_crossing_a_message_ignores_what_follows() -> None:
    conn = converse(Role.CLIENT, [HELLO_C, HELLO_S, Message("a")])
    conn.receive_data(QUIT_BYTES + MSG)
    assert drain(conn) == [Quit()]
    conn.receive_data(MSG)
    assert drain(conn) == []


def test_a_long_stream_of_messages_keeps_the_buffer_bounded() -> None:
    """W-5: after each drain at most one partial frame is held."""
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    server.receive_data(client.send(HELLO_C))
    drain(server)
    client.receive_data(server.send(HELLO_S))
    drain(client)
    text = "é" * 500
    for _ in range(50):
        data = client.send(Message(text))
        for i in range(0, len(data), 7):
            server.receive_data(data[i : i + 7])
            events = drain(server)
            assert server.buffered < HEADER_SIZE + 2000
        assert events == [Message(text)]
        client.receive_data(server.send(Message("ok")))
        assert drain(client) == [Message("ok")]
