"""Pair mode: someone else's server and client, driven at their terminals only.

A pair implements the assignment, not PROTOCOL.md: its wire format, its prompts and its server's
handle are its own. So the suite never parses their bytes and never guesses their prompt text.
It knows three things:

- when a program waits for its user: its output has gone quiet and its whole process tree is
  blocked, read from /proc, with a thread reading its terminal (a read of it, or a poll, select
  or epoll wait that watches it); and since many programs watch their terminal and their socket
  at once, the suite waits until *everything* is at rest (both programs and the relay between
  them), so that a program still waiting for its peer's answer is not taken for one at its prompt;
- what its prompt is: the last, unterminated line of its screen when it waits;
- what went over the wire, in bytes and segments only: their client talks to a loopback relay
  that forwards to their server and re-segments the stream (one byte at a time, or coalesced).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import re
import selectors
import signal
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from conformance.checks import CaseFailure, ProgramDied
from conformance.plugin import Options
from conformance.programs import Program, free_port, listening, substitute

C2S, S2C = "client->server", "server->client"
SERVER_HANDLE = "Server"  # typed when a server asks its operator for a handle (not HostA: nothing may assume it)
QUIET = 0.1  # seconds without output before /proc is asked; the blocked state is the real evidence
BYTE_GAP = 0.001  # bytewise relay: long enough for the receiver to read each byte on its own
HOLD = 0.08  # coalescing relay: bytes that arrive within this time after the first go as one segment
PROBE_DELAYS = (0.02, 0.2)  # after writing to a peer that has closed, when to look for its reset


# --- is it waiting for its user? (/proc) ------------------------------------------------------

# Syscall numbers by machine: a read (of the terminal, if its fd says so), the calls that wait on
# several descriptors at once (watched() says which), and a few more named in messages.
SYSCALLS: dict[str, dict[int, str]] = {
    "x86_64": {0: "read", 17: "pread64", 19: "readv", 7: "poll", 23: "select", 270: "pselect6", 271: "ppoll",
               232: "epoll_wait", 281: "epoll_pwait", 441: "epoll_pwait2", 45: "recvfrom", 47: "recvmsg",
               43: "accept", 288: "accept4", 42: "connect", 61: "wait4", 202: "futex", 35: "nanosleep",
               230: "clock_nanosleep"},
    "aarch64": {63: "read", 67: "pread64", 65: "readv", 73: "ppoll", 72: "pselect6", 22: "epoll_pwait",
                441: "epoll_pwait2", 207: "recvfrom", 212: "recvmsg", 202: "accept", 242: "accept4",
                203: "connect", 260: "wait4", 98: "futex", 101: "nanosleep", 115: "clock_nanosleep"},
}
READS = {"read", "pread64", "readv"}
MULTIPLEX = {"poll", "select", "pselect6", "ppoll", "epoll_wait", "epoll_pwait", "epoll_pwait2"}
# Where syscall numbers are unknown, the kernel function a task sleeps in says almost as much.
MULTIPLEX_WCHAN = ("poll", "select", "ep_poll")
TERMINAL = ("/dev/pts/", "/dev/tty")


def watched(pid: int, name: str, args: list[int]) -> list[int] | None:
    """The descriptors a poll/select/epoll wait watches for input; None if they cannot be read.
    poll and select keep them in the process's memory (read through /proc/PID/mem, which needs the
    same access as /proc/PID/syscall); an epoll instance lists them in its fdinfo."""
    try:
        if name.startswith("epoll"):
            info = Path(f"/proc/{pid}/fdinfo/{args[0]}").read_text()
            return [int(fd) for fd in re.findall(r"^tfd:\s*(\d+)", info, re.MULTILINE)]
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
            if name in ("poll", "ppoll"):  # struct pollfd {int fd; short events, revents;}[nfds]
                mem.seek(args[0])
                data = mem.read(8 * min(args[1], 4096))
                return [fd for fd, events, _ in struct.iter_unpack("ihh", data) if fd >= 0 and events & 0x3]
            if not args[1]:  # select with no read set
                return []
            mem.seek(args[1])
            bits = int.from_bytes(mem.read((min(args[0], 65536) + 7) // 8), "little")
            return [fd for fd in range(args[0]) if bits >> fd & 1]
    except (OSError, ValueError, OverflowError, struct.error):
        return None


def fd_target(pid: int, fd: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return "?"


@dataclass
class TreeState:
    """What a program's process tree is doing, as /proc shows it."""

    kind: str  # running, user (a thread may be reading its terminal), network, blocked, exited
    detail: str  # for messages: "pid 412 in poll", "pid 412 in recvfrom(3 socket)"


def descendants(pid: int) -> list[int]:
    """`pid` and every process under it (a wrapper such as `sh -c` or `python3 x.py` may exec or fork)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in Path(f"/proc/{current}/task/{task}/children").read_text().split()]
    return found


def thread_state(pid: int, tid: int) -> tuple[str, str]:
    """(kind, detail) for one thread: running, user, network or blocked."""
    base = f"/proc/{pid}/task/{tid}"
    stat = Path(f"{base}/stat").read_text()
    state = stat[stat.rindex(")") + 2]
    if state in "ZXxI":
        return "blocked", f"pid {pid} {state}"
    if state in "RD":
        return "running", f"pid {pid} is running (state {state})"
    try:
        fields = Path(f"{base}/syscall").read_text().split()
    except OSError:  # not ours to read: fall back to the kernel function it sleeps in
        fields = []
    if fields and fields[0] == "running":
        return "running", f"pid {pid} is running"
    if not fields or fields[0] == "-1":
        wchan = ""
        with contextlib.suppress(OSError):
            wchan = Path(f"{base}/wchan").read_text()
        kind = "user" if any(w in wchan for w in MULTIPLEX_WCHAN) else "blocked"
        return kind, f"pid {pid} sleeping in {wchan or '?'}"
    name = SYSCALLS.get(platform.machine(), {}).get(int(fields[0]), f"syscall {fields[0]}")
    args = [int(a, 16) for a in fields[1:7]]
    if name in MULTIPLEX:
        fds = watched(pid, name, args)
        if fds is None:  # cannot see what it watches: it may be its terminal
            return "user", f"pid {pid} in {name}"
        targets = [fd_target(pid, fd) for fd in fds]
        shown = ", ".join(f"{fd} {t.split(':')[0]}" for fd, t in zip(fds, targets, strict=True))
        if any(t.startswith(TERMINAL) for t in targets):
            return "user", f"pid {pid} in {name}({shown})"
        kind = "network" if any(t.startswith("socket:") for t in targets) else "blocked"
        return kind, f"pid {pid} in {name}({shown}), not on its terminal"
    if name in READS or name.startswith(("recv", "accept")):
        target = fd_target(pid, args[0])
        if name in READS and target.startswith(TERMINAL):
            return "user", f"pid {pid} in {name}({args[0]} {target})"
        if target.startswith("socket:"):
            return "network", f"pid {pid} in {name}({args[0]} socket)"
        return "blocked", f"pid {pid} in {name}({args[0]} {target})"
    return "blocked", f"pid {pid} in {name}"


def tree_state(pid: int) -> TreeState:
    """Running if any thread of the tree runs; else user if any may be reading its terminal; else
    network if any waits on a socket; else blocked (a wrapper in wait4, a thread in futex)."""
    kinds: list[tuple[str, str]] = []
    for member in descendants(pid):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{member}/task")]
        except OSError:
            continue
        for tid in tids:
            with contextlib.suppress(OSError, ValueError, IndexError):
                kinds.append(thread_state(member, tid))
    if not kinds:
        return TreeState("exited", f"pid {pid} is gone")
    for wanted in ("running", "user", "network", "blocked"):
        details = [d for k, d in kinds if k == wanted]
        if details:
            return TreeState(wanted, "; ".join(details))
    return TreeState("blocked", "")


# --- screens --------------------------------------------------------------------------------

ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def visible(line: str) -> str:
    """What a terminal shows for one line of output: escape sequences dropped, and a carriage
    return or backspace letting later text overwrite earlier text."""
    cells: list[str] = []
    pos = 0
    for ch in ESCAPE.sub("", line):
        if ch == "\r":
            pos = 0
        elif ch == "\b":
            pos = max(0, pos - 1)
        elif (ch >= " " and ch != "\x7f") or ch == "\t":
            if pos < len(cells):
                cells[pos] = ch
            else:
                cells.append(ch)
            pos += 1
    return "".join(cells)


def handle_from_prompt(prompt: str) -> str | None:
    """`HostA> ` -> `HostA`; `John Henry> ` -> `John Henry`; None when it is not `handle> `."""
    if not prompt.endswith("> "):
        return None
    return prompt[:-2].strip() or None


def short(text: str, limit: int = 90) -> str:
    return repr(text) if len(text) <= limit else repr(text[: limit - 20]) + f"... ({len(text)} characters)"


class Side:
    """One program of the pair in its pseudo-terminal, with what the suite learnt about it."""

    def __init__(self, role: str, program: Program, handle: str | None = None) -> None:
        self.role = role
        self.program = program
        self.handle = handle
        self.activity = time.monotonic()  # last output, or last typing (it must react to that first)
        self.exited = False

    def pump(self) -> bool:
        """Read what it has shown so far (into its transcript); True if there was anything."""
        got = self.program.pump()
        self.exited = self.exited or self.program.ended
        if got:
            self.activity = time.monotonic()
        return got

    def type(self, line: str) -> None:
        self.program.type(line)
        self.activity = time.monotonic()

    def state(self) -> TreeState:
        if self.exited or not self.program.alive():
            return TreeState("exited", f"the {self.role} {self.program.exit_description()}")
        return tree_state(self.program.pid)

    def mark(self) -> int:
        """A place in the transcript (a trailing \\r may yet become part of \\r\\n)."""
        return len(self.program.transcript.rstrip("\r"))

    def lines_since(self, mark: int) -> list[str]:
        """The visible lines completed after `mark`, the first one from its start."""
        text = self.program.transcript
        start = text.rfind("\n", 0, mark) + 1
        return [visible(line) for line in text[start:].split("\n")[:-1]]

    @property
    def last_line(self) -> str:
        """The unterminated last line of the screen: its prompt, when it waits for its user."""
        return visible(self.program.transcript.rsplit("\n", 1)[-1])


# --- the relay --------------------------------------------------------------------------------


def unread(sock: socket.socket) -> int:
    """Bytes waiting in our own socket's receive queue (FIONREAD), without reading them."""
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0


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
        if self.mode == "bytewise":
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
        if self.mode == "bytewise":
            self.out += self.held[:1]
            del self.held[:1]
            self.next_byte = now + BYTE_GAP
        else:  # coalesce: all that is held goes out in one write
            self.out += self.held
            self.held.clear()
            self.gate, self.release_above, self.grew_at = False, None, None

    def idle(self) -> bool:
        gated = self.gate and self.release_above is None
        return not self.out and (not self.held or gated) and (self.eof or unread(self.src) == 0)


class Link:
    """One client connection through the relay, and its connection to the server."""

    def __init__(self, client: socket.socket, server: socket.socket, mode: str, gated: bool) -> None:
        self.client, self.server = client, server
        self.c2s = Flow(C2S, client, server, mode, gated)
        self.s2c = Flow(S2C, server, client, mode, gated)
        self.closed = False
        self.probes: list[tuple[float, socket.socket]] = []  # (when, a socket whose peer has ended)

    def flows(self) -> tuple[Flow, Flow]:
        return self.c2s, self.s2c


class Relay:
    """A loopback TCP relay from their client to their server that re-segments both directions.

    mode pass: forward each read as it comes; bytewise: one byte per write, BYTE_GAP apart;
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

    def idle(self) -> bool:
        """Nothing in flight: no connection waiting, nothing read and not yet passed on (held
        bytes behind a closed gate excepted), no unread input, no reset still to look for."""
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
                    del flow.out[:sent]
                    flow.segments += 1
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
    sel = selectors.DefaultSelector()
    try:
        sel.register(sock, selectors.EVENT_READ)
        return bool(sel.select(0))
    finally:
        sel.close()


# --- a pair run -------------------------------------------------------------------------------


@dataclass
class Rest:
    """Everything at rest (or not, within the time): what each program waits for."""

    ok: bool
    states: dict[str, TreeState] = field(default_factory=dict)
    why: str = ""

    def kind(self, role: str) -> str:
        return self.states[role].kind if role in self.states else "exited"


class PairRun:
    """Their server on a free port, their clients through relays, and the conversation between.

    Every program is watched (its screen is shown when the case fails); every wait is bounded by
    opts.step. Methods that find the pair unable to go on raise CaseFailure with `reqs`.
    """

    def __init__(self, opts: Options, watch: Callable[[Program], None]) -> None:
        self.opts = opts
        self.watch = watch
        self.quiet = QUIET * opts.timeout_scale
        self.server: Side | None = None
        self.clients: list[Side] = []
        self.relays: list[Relay] = []
        self.port = 0
        self.server_question: str | None = None  # what the server asked before it listened
        self.client_question: str | None = None  # the client's handle prompt
        self.server_handle: str | None = None  # learnt from the server's prompt

    # -- starting

    def start_server(self) -> Side:
        self.port = free_port(self.opts.host)
        argv = substitute(self.opts.server_command, port=self.port, host=self.opts.host,
                          handshake_timeout=self.opts.handshake_timeout)
        program = Program("server", argv, self.opts.step)
        self.watch(program)
        self.server = Side("server", program)
        deadline = time.monotonic() + self.opts.step
        while not listening(self.port):
            rest = self.rest([self.server], timeout=max(0.0, deadline - time.monotonic()),
                             until=lambda: listening(self.port), relays=[])
            if listening(self.port):
                break
            if rest.kind("server") == "exited":
                raise ProgramDied("A-7", f"the server {program.exit_description()} before it listened on "
                                         f"port {self.port}", [f"a socket listening on port {self.port}"],
                                  "(see the screen below)")
            if rest.ok and rest.kind("server") == "user" and self.server_question is None:
                # It waits for its operator before listening: that is the handle question (asked on
                # the prompt's line, or on a line of its own just before).
                self.server_question = self.server.last_line or next(
                    (line for line in reversed(self.server.lines_since(0)) if line.strip()), "")
                self.server.type(SERVER_HANDLE)
                continue
            raise CaseFailure("A-7", f"the server did not listen on port {self.port} within {self.opts.step:g} s"
                              + (f" after it was given the handle {SERVER_HANDLE!r}"
                                 if self.server_question is not None else ""),
                              [f"a socket listening on port {self.port} (the port given for {{port}})"],
                              f"none; the server {rest.states.get('server', TreeState('?', '?')).detail}")
        return self.server

    def relay(self, mode: str = "pass", gated: bool = False) -> Relay:
        relay = Relay(self.opts.host, self.port, mode, gated)
        self.relays.append(relay)
        return relay

    def start_client(self, relay: Relay, handle: str = "Chris", reach_prompt: bool = True) -> Side:
        """Their client on the relay's port; its handle prompt answered with `handle`; then (with
        reach_prompt) everything at rest, the client waiting for its user's first message."""
        argv = substitute(self.opts.client_command, host=self.opts.host, port=relay.port,
                          handshake_timeout=self.opts.handshake_timeout)
        role = ("client", "second client", "third client")[min(len(self.clients), 2)]
        program = Program(role, argv, self.opts.step)
        self.watch(program)
        client = Side(role, program, handle)
        self.clients.append(client)
        rest = self.rest()
        if rest.kind(role) == "exited":
            raise ProgramDied("A-1", f"the {role} {program.exit_description()} before asking for a handle",
                              ["a question, then the client waits for its user"], "(see the screen below)")
        if not rest.ok or rest.kind(role) != "user":
            raise CaseFailure("A-1", f"the {role} did not wait for its user to type a handle",
                              ["a question, then the client waits for its user"],
                              (rest.why or rest.states[role].detail) + self.relay_problems())
        self.client_question = client.last_line
        client.type(handle)
        if reach_prompt:
            self.expect_turn(client, "A-2", f"the client waits for its first message after the handle {handle!r}")
        return client

    # -- at rest

    def sides(self) -> list[Side]:
        return [s for s in [self.server, *self.clients] if s is not None and not s.exited]

    def rest(self, sides: list[Side] | None = None, timeout: float | None = None,
             until: Callable[[], bool] | None = None, relays: list[Relay] | None = None) -> Rest:
        """Wait until every program is quiet and blocked and every relay has nothing in flight
        (checked twice, a moment apart), or `until()` holds, or the time is up."""
        sides = self.sides() if sides is None else sides
        relays = self.relays if relays is None else relays
        deadline = time.monotonic() + (self.opts.step if timeout is None else timeout)
        confirmed = False
        states: dict[str, TreeState] = {}
        while True:
            for side in sides:
                side.pump()
            if until is not None and until():
                return Rest(True, states)
            now = time.monotonic()
            last = max([s.activity for s in sides] + [r.activity for r in relays] + [0.0])
            states = {s.role: s.state() for s in sides}
            busy = [f"the {r} {st.detail}" for r, st in states.items() if st.kind == "running"]
            calm = now - last >= self.quiet and not busy and all(r.idle() for r in relays)
            if calm and confirmed:
                return Rest(True, states)
            confirmed = calm
            if now >= deadline:
                printing = [f"the {s.role} kept printing" for s in sides if now - s.activity < self.quiet]
                why = "; ".join(busy + printing) or "a relay still had bytes in flight"
                return Rest(False, states, f"not at rest after {self.opts.step if timeout is None else timeout:g} s: "
                                           f"{why}")
            fds = [s.program.fd for s in sides if not s.exited]
            wait = 0.01 if calm else min(0.02, max(0.001, self.quiet - (now - last)))
            with contextlib.suppress(OSError, ValueError):
                # bounded polling of /proc: another process's blocking has no event to wait on
                selectors_wait(fds, min(wait, max(0.0, deadline - now)))

    def expect_turn(self, side: Side, reqs: str, what: str) -> Rest:
        """Everything at rest with `side` waiting for its user (its turn); else CaseFailure."""
        rest = self.rest()
        if rest.kind(side.role) == "exited":
            raise ProgramDied(reqs, f"{what}: the {side.role} {side.program.exit_description()}",
                              [f"the {side.role} waits for its user"], "(see the screen below)" + self.relay_problems())
        if not rest.ok:
            raise CaseFailure(reqs, what, [f"the {side.role} comes to rest waiting for its user"],
                              rest.why + self.relay_problems())
        if rest.kind(side.role) != "user":
            raise CaseFailure(reqs, what, [f"the {side.role} waits for its user (reads its terminal)"],
                              f"it waits for something else: {rest.states[side.role].detail}, showing "
                              f"{short(side.last_line)}" + self.relay_problems())
        return rest

    # -- talking

    def client_says(self, client: Side, text: str) -> list[str]:
        """Type `text` at the client; once all is at rest, the lines the server showed meanwhile."""
        assert self.server is not None
        mark = self.server.mark()
        client.type(text)
        self.settle(f"the client's message {short(text)}")
        return self.server.lines_since(mark)

    def server_says(self, client: Side, text: str) -> list[str]:
        """Type `text` at the server; once all is at rest, the lines the client showed meanwhile."""
        assert self.server is not None
        mark = client.mark()
        self.server.type(text)
        self.settle(f"the server's message {short(text)}")
        return client.lines_since(mark)

    def settle(self, after: str, reqs: str = "A-2") -> Rest:
        rest = self.rest()
        if not rest.ok:
            raise CaseFailure(reqs, f"after {after}, the pair did not come to rest", ["both programs wait"],
                              rest.why)
        return rest

    def learn_server_handle(self, reqs: str = "A-2") -> str:
        """The server's handle, from the prompt it shows while it waits for its operator."""
        assert self.server is not None
        prompt = self.server.last_line
        handle = handle_from_prompt(prompt)
        if handle is None:
            raise CaseFailure(reqs, "the server's prompt while it waits for its operator",
                              ["'HANDLE> ' (its handle, then '> ')"], short(prompt))
        self.server_handle = handle
        return handle

    def relay_problems(self) -> str:
        """What went wrong in the relays (cannot reach the server), for a failure message."""
        errors = [error for relay in self.relays for error in relay.errors]
        return f" ({'; '.join(errors)})" if errors else ""

    # -- the end

    def close(self) -> None:
        for side in [*self.clients, *([self.server] if self.server else [])]:
            side.program.stop()
        for relay in self.relays:
            relay.close()


def selectors_wait(fds: list[int], timeout: float) -> None:
    """Until one of `fds` is readable or `timeout` passes."""
    sel = selectors.DefaultSelector()
    try:
        for fd in fds:
            sel.register(fd, selectors.EVENT_READ)
        if fds:
            sel.select(timeout)
        else:
            time.sleep(timeout)
    finally:
        sel.close()


def vanish(side: Side) -> None:
    """SIGKILL to the program's whole process tree: it ends with no chance to say goodbye."""
    for pid in reversed(descendants(side.program.pid)):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
