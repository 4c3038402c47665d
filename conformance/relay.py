"""A loopback TCP relay between a client under test and its server that re-segments the stream
(one byte at a time, or coalesced), and counts what went each way."""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
import time

C2S, S2C = "client->server", "server->client"
BYTE_GAP = 0.001  # bytewise relay: long enough for the receiver to read each byte on its own
CHUNK = 5  # chunks relay: bytes per write, so that most characters of 2 to 4 bytes in UTF-8 are cut
HOLD = 0.08  # coalescing relay: bytes that arrive within this time after the first go as one segment
PROBE_DELAYS = (0.02, 0.2)  # after writing to a peer that has closed, when to look for its reset
RECORDED = 4096  # the first bytes of each flow are kept with their segment boundaries, for failure messages


class Flow:
    """One direction of one relayed connection: what came in, what is held, what goes out."""

    def __init__(self, name: str, src: socket.socket, dst: socket.socket, mode: str, gated: bool) -> None:
        self.name, self.src, self.dst, self.mode = name, src, dst, mode
        self.held = bytearray()  # read, not yet let through (bytewise, coalesce)
        self.out = bytearray()  # let through, not yet written
        self.held_since: float | None = None
        self.gate = gated  # closed: hold everything until released
        self.release_above: int | None = None  # release once more than this is held ...
        self.grew_at: float | None = None
        self.release_deadline = 0.0  # ... or at this time
        self.next_byte = 0.0
        self.eof = False  # src ended its sending side
        self.shut = False  # and we passed that on to dst
        self.received = 0  # bytes read from src
        self.segments = 0  # writes to dst
        self.delivered = bytearray()  # the first RECORDED bytes written to dst ...
        self.ends: list[int] = []  # ... and where each write that carried them ended

    def wrote(self, data: bytes) -> None:
        """`data` went to dst in one write (one segment, with TCP_NODELAY)."""
        self.segments += 1
        if len(self.delivered) < RECORDED:
            self.delivered += data[: RECORDED - len(self.delivered)]
            self.ends.append(len(self.delivered))

    def take(self, data: bytes, now: float) -> None:
        self.received += len(data)
        if self.mode == "pass":
            self.out += data
            return
        if not self.held:
            self.held_since = now
        self.held += data
        if self.gate and self.release_above is not None and len(self.held) > self.release_above:
            self.grew_at = self.grew_at or now

    def due(self, now: float) -> float | None:
        """When held bytes should move next (None: not while nothing changes)."""
        if not self.held:
            return None
        if self.mode in ("bytewise", "chunks"):
            return self.next_byte if not self.out else None
        if self.eof:
            return now
        if self.gate:
            if self.grew_at is not None:
                return self.grew_at + HOLD
            return self.release_deadline if self.release_above is not None else None
        return (self.held_since or now) + HOLD

    def advance(self, now: float) -> None:
        when = self.due(now)
        if when is None or now < when:
            return
        if self.mode in ("bytewise", "chunks"):
            size = CHUNK if self.mode == "chunks" else 1
            self.out += self.held[:size]
            del self.held[:size]
            self.next_byte = now + BYTE_GAP
        else:  # coalesce: all that is held goes out in one write
            self.out += self.held
            self.held.clear()
            self.gate, self.release_above, self.grew_at = False, None, None

    def idle(self) -> bool:
        gated = self.gate and self.release_above is None
        # readable, not just unread bytes: an end (FIN) or a reset waiting to be read is in flight too
        return not self.out and (not self.held or gated) and (self.eof or not _readable(self.src))


class Link:
    """One client connection through the relay, and its connection to the server."""

    def __init__(self, client: socket.socket, server: socket.socket, mode: str, gated: bool) -> None:
        self.client, self.server = client, server
        self.address = server.getsockname()  # the client's address as their server sees it (the relay's)
        self.c2s = Flow(C2S, client, server, mode, gated)
        self.s2c = Flow(S2C, server, client, mode, gated)
        self.closed = False
        self.probes: list[tuple[float, socket.socket]] = []  # (when, a socket whose peer has ended)

    def flows(self) -> tuple[Flow, Flow]:
        return self.c2s, self.s2c


class Relay:
    """A loopback TCP relay from their client to their server that re-segments both directions.

    mode pass: forward each read as it comes; bytewise: one byte per write, BYTE_GAP apart;
    chunks: CHUNK bytes per write, BYTE_GAP apart (a long multibyte text cut mid-character, quickly);
    coalesce: hold bytes for HOLD after the first, then write them at once. With gated=True each
    new connection starts with both directions held until the case releases them, so that two
    messages sent one after the other (a handshake and the first message) arrive as one segment.
    An end (FIN) is passed on as an end; a reset, or a write into a peer that has gone, as a reset.
    """

    def __init__(self, host: str, target_port: int, mode: str = "pass", gated: bool = False) -> None:
        self.mode, self.gated, self.target_port = mode, gated, target_port
        self.targets = ["::1", "127.0.0.1"] if host == "::1" else ["127.0.0.1", "::1"]
        self.links: list[Link] = []
        self.errors: list[str] = []
        self.activity = time.monotonic()
        self.cond = threading.Condition()
        self.sel = selectors.DefaultSelector()
        self.listeners = self._listen(host)
        self.port = self.listeners[0].getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        for sock in self.listeners:
            self.sel.register(sock, selectors.EVENT_READ, "listen")
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"relay-{mode}", daemon=True)
        self._thread.start()

    @staticmethod
    def _listen(host: str) -> list[socket.socket]:
        first = "::1" if host == "::1" else "127.0.0.1"
        family = socket.AF_INET6 if first == "::1" else socket.AF_INET
        socks = [socket.create_server((first, 0), family=family)]
        if host == "localhost":  # a client may try either address for localhost
            with contextlib.suppress(OSError):
                socks.append(socket.create_server(("::1", socks[0].getsockname()[1]), family=socket.AF_INET6))
        for sock in socks:
            sock.setblocking(False)
        return socks

    # -- what the cases ask

    @property
    def latest(self) -> Link | None:
        with self.cond:
            return self.links[-1] if self.links else None

    def received(self, direction: str) -> int:
        """Bytes that have come in from that direction's sender, over every connection."""
        with self.cond:
            return sum((link.c2s if direction == C2S else link.s2c).received for link in self.links)

    def flow(self, direction: str) -> Flow | None:
        """That direction of the latest connection (its counts and what it delivered)."""
        link = self.latest
        return None if link is None else link.c2s if direction == C2S else link.s2c

    def record(self, direction: str) -> tuple[bytes, list[int], int]:
        """What the latest connection delivered that way (the first RECORDED bytes), where each
        segment ended, and how many bytes have come in from the sender in all."""
        with self.cond:
            flow = self.flow(direction)
            return (bytes(flow.delivered), list(flow.ends), flow.received) if flow else (b"", [], 0)

    def held(self, direction: str) -> int:
        with self.cond:
            link = self.links[-1] if self.links else None
            return len((link.c2s if direction == C2S else link.s2c).held) if link else 0

    def release(self, direction: str, after_more: float | None = None) -> None:
        """Let that direction's held bytes go: now (after a HOLD), or, with after_more, once more
        bytes have joined them (within after_more seconds), so that both leave in one segment."""
        with self.cond:
            for link in self.links:
                flow = link.c2s if direction == C2S else link.s2c
                if not flow.gate:
                    continue
                if not after_more and not flow.held:
                    flow.gate = False  # nothing held: from now on it coalesces like an open flow
                    continue
                flow.release_above = len(flow.held) if after_more else -1
                flow.release_deadline = time.monotonic() + (after_more or 0.0)
                if not after_more:
                    flow.grew_at = time.monotonic()
        self._wake()

    def recut(self, mode: str) -> None:
        """From now on, cut each direction of every connection as `mode` says (bytewise, chunks)."""
        with self.cond:
            self.mode = mode
            for link in self.links:
                for flow in link.flows():
                    flow.mode = mode
        self._wake()

    def idle(self) -> bool:
        """Nothing in flight: no connection waiting, nothing read and not yet passed on (held
        bytes behind a closed gate excepted), no input or end unread, no reset still to look for."""
        with contextlib.suppress(OSError):
            if any(_readable(sock) for sock in self.listeners):
                return False
        with self.cond:
            for link in self.links:
                if link.closed:
                    continue
                if link.probes or not all(flow.idle() for flow in link.flows()):
                    return False
        return True

    def close(self) -> None:
        with self.cond:
            self._stopping = True
        self._wake()
        self._thread.join(timeout=2)
        with self.cond:
            for link in self.links:
                for sock in (link.client, link.server):
                    sock.close()
        for sock in (*self.listeners, self._wake_r, self._wake_w):
            sock.close()
        self.sel.close()

    # -- the relay's own thread

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _run(self) -> None:
        while True:
            with self.cond:
                if self._stopping:
                    return
                timeout = self._next_timer()
            events = self.sel.select(timeout)
            with self.cond:
                now = time.monotonic()
                for key, _mask in events:
                    if key.data == "wake":
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                    elif key.data == "listen":
                        self._accept(key.fileobj)  # type: ignore[arg-type]
                    else:
                        self._read(key.data, key.fileobj, now)  # type: ignore[arg-type]
                for link in self.links:
                    if not link.closed:
                        self._tick(link, time.monotonic())
                self.cond.notify_all()

    def _next_timer(self) -> float | None:
        now = time.monotonic()
        times = []
        for link in self.links:
            if link.closed:
                continue
            times += [when for when, _ in link.probes]
            times += [t for t in (flow.due(now) for flow in link.flows()) if t is not None]
        return max(0.0, min(times) - now) if times else None

    def _accept(self, listener: socket.socket) -> None:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        server = None
        for host in self.targets:
            try:
                server = socket.create_connection((host, self.target_port), timeout=2)
                break
            except OSError as exc:
                self.errors.append(f"relay: cannot connect to the server at {host} port {self.target_port}: {exc}")
        if server is None:
            client.close()
            return
        for sock in (client, server):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one write, one segment
        link = Link(client, server, self.mode, self.gated)
        self.links.append(link)
        self.sel.register(client, selectors.EVENT_READ, link)
        self.sel.register(server, selectors.EVENT_READ, link)
        self.activity = time.monotonic()

    def _read(self, link: Link, sock: socket.socket, now: float) -> None:
        flow = link.c2s if sock is link.client else link.s2c
        if link.closed or flow.eof:
            return
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self._abort(link, sock)
            return
        self.activity = now
        if data:
            flow.take(data, now)
        else:
            flow.eof = True

    def _tick(self, link: Link, now: float) -> None:
        for flow in link.flows():
            flow.advance(now)
            if flow.out:
                try:
                    sent = flow.dst.send(flow.out)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    self._abort(link, flow.dst)
                    return
                if sent:
                    flow.wrote(bytes(flow.out[:sent]))
                    del flow.out[:sent]
                    self.activity = now
                    back = link.s2c if flow is link.c2s else link.c2s
                    if back.eof:  # its peer has ended: a reset may be on its way
                        link.probes += [(now + d, flow.dst) for d in PROBE_DELAYS]
            if flow.eof and not flow.out and not flow.held and not flow.shut:
                with contextlib.suppress(OSError):
                    flow.dst.shutdown(socket.SHUT_WR)
                flow.shut = True
        for probe in [p for p in link.probes if p[0] <= now]:
            link.probes.remove(probe)
            gone = probe[1]
            try:
                gone.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
            except OSError:
                self._abort(link, gone)
                return
        self._interest(link)
        if link.c2s.shut and link.s2c.shut and not link.probes:
            self._finish(link)

    def _interest(self, link: Link) -> None:
        for sock, inbound, outbound in ((link.client, link.c2s, link.s2c), (link.server, link.s2c, link.c2s)):
            events = (0 if inbound.eof else selectors.EVENT_READ) | (selectors.EVENT_WRITE if outbound.out else 0)
            key = self.sel.get_map().get(sock)
            if events and key is None:
                self.sel.register(sock, events, link)
            elif events and key is not None and key.events != events:
                self.sel.modify(sock, events, link)
            elif not events and key is not None:
                self.sel.unregister(sock)

    def _abort(self, link: Link, failed: socket.socket) -> None:
        """One side failed: the other gets a reset, as it would from a peer that vanished."""
        other = link.server if failed is link.client else link.client
        with contextlib.suppress(OSError):
            other.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._finish(link)

    def _finish(self, link: Link) -> None:
        link.closed, link.probes = True, []
        for sock in (link.client, link.server):
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(sock)
            sock.close()
        self.activity = time.monotonic()


def _readable(sock: socket.socket) -> bool:
    """Input, an end or a reset waiting to be read (False for a socket already closed)."""
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_READ)
            return bool(sel.select(0))
    except (OSError, ValueError):
        return False
