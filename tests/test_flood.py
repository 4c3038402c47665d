"""Floods of idle connections against the real server (PROTOCOL.md S-8, S-11): connections in
their handshake are served together, each on its own clock, and keep no real client out."""

from __future__ import annotations

import selectors
import socket
import time

from chatwire import NEED_DATA, Connection, Error, ErrorCode, Hello, Message, Role
from procs import DROPPED, Client, connect

HALF_HELLO = bytes.fromhex("48000543")  # a HELLO's header and one byte of its handle, then nothing


class Idle:
    """An idle connection: it says nothing (or half a HELLO) and records what it gets, and when."""

    def __init__(self, port: int, half_hello: bool = False) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.opened = time.monotonic()
        if half_hello:
            self.sock.sendall(HALF_HELLO)
        self.sock.setblocking(False)
        self.conn = Connection(Role.CLIENT)
        self.answer: object = None
        self.answered = 0.0  # when the answer came

    def on_readable(self) -> bool:
        """Read what came; True once the answer (a frame, or the end of the stream) is in."""
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return False
        except ConnectionResetError:
            data = b""
        self.conn.receive_data(data)
        if (event := self.conn.next_event()) is NEED_DATA:
            return False
        self.answer, self.answered = event, time.monotonic()
        self.sock.close()
        return True

    @property
    def code(self) -> int | None:
        return self.answer.code if isinstance(self.answer, Error) else None


class Watch:
    """Idle connections, each answer read as it comes (a selector, no thread)."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.waiting = 0

    def add(self, idle: Idle) -> Idle:
        self.selector.register(idle.sock, selectors.EVENT_READ, idle)
        self.waiting += 1
        return idle

    def pump(self, timeout: float) -> None:
        """Read whatever answers come within `timeout` (at most)."""
        for key, _ in self.selector.select(timeout):
            if key.data.on_readable():
                self.selector.unregister(key.fileobj)
                self.waiting -= 1

    def until_answered(self, deadline: float) -> None:
        while self.waiting and time.monotonic() < deadline:
            self.pump(0.05)
        assert not self.waiting, f"{self.waiting} idle connections got no answer in time"


def test_100_idle_connections_each_time_out_on_their_own_clock(server) -> None:
    """100 idle connections, one every 25 ms (at most 40 of them in their handshake at once, under
    the bound of 64): every one gets TIMEOUT, none before its own handshake timeout has passed
    since its own accept, and none much later."""
    timeout = 1.0
    srv = server("--handshake-timeout", f"{timeout:g}")
    watch = Watch()
    idle = []
    for i in range(100):
        idle.append(watch.add(Idle(srv.port, half_hello=i % 2 == 1)))
        until = time.monotonic() + 0.025  # the pace of the flood: at least this long between two
        while (left := until - time.monotonic()) > 0:
            watch.pump(left)  # the answers due meanwhile are read as they come
    watch.until_answered(time.monotonic() + timeout + 15)
    assert [c.code for c in idle] == [ErrorCode.TIMEOUT] * 100, [c.answer for c in idle if c.code != ErrorCode.TIMEOUT]
    waits = [c.answered - c.opened for c in idle]
    # The server accepts after our connect() returned, so its deadline is at least `timeout` after
    # ours: an answer earlier than that was not on the connection's own clock.
    assert min(waits) >= timeout - 0.01, sorted(waits)[:5]
    assert max(waits) < timeout + 5, sorted(waits)[-5:]  # generous: a loaded machine
    # Own clocks: the answers are spread as the arrivals were, not all at one moment.
    assert idle[-1].answered - idle[0].answered > 1.5
    for _ in range(100):
        srv.expect_re(r"Closed the connection with \('127\.0\.0\.1', \d+\): sent ERROR 5 TIMEOUT "
                      r"\(no HELLO within 1 s\)\.\.\.\r\n")
    peer = connect(srv.port)
    peer.send(Hello("Chris"))
    assert peer.receive() == Hello("HostA")


def test_a_real_client_among_idle_connections_is_served_at_once(server, screens) -> None:
    """50 idle connections in their handshake (10 s timeout) do not keep the real client out: it
    is served at once, they then get BUSY at once (not TIMEOUT 10 s later), and so do newcomers
    during the conversation; when it ends, the next client is served."""
    srv = server()  # the default handshake timeout, 10 s: 'at once' is far from it
    watch = Watch()
    idle = [watch.add(Idle(srv.port, half_hello=i % 2 == 1)) for i in range(50)]
    started = time.monotonic()
    cli = Client("plain", "127.0.0.1", srv.port)
    screens.append(cli)
    cli.enter_handle("Chris")
    srv.expect_established()
    cli.expect_text("Chris> ")
    served = time.monotonic() - started
    watch.until_answered(time.monotonic() + 5)
    assert [c.code for c in idle] == [ErrorCode.BUSY] * 50, [c.answer for c in idle if c.code != ErrorCode.BUSY]
    assert max(c.answered for c in idle) - started < 5, "the idle connections waited for their timeout"
    assert served < 5, f"the client was served after {served:.1f} s"

    late = [watch.add(Idle(srv.port)) for _ in range(20)]  # during the conversation
    watch.until_answered(time.monotonic() + 5)
    assert [c.code for c in late] == [ErrorCode.BUSY] * 20

    cli.type("hello")
    srv.expect_line("Chris> hello")
    cli.type("\\quit")
    srv.expect_line(DROPPED)
    assert cli.wait_exit() == 0
    peer = connect(srv.port)
    peer.send(Hello("Dana"))
    assert peer.receive() == Hello("HostA")
    peer.send(Message("next"))
    srv.expect_line("Dana> next")
