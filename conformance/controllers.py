"""Controllers: the objects the cases drive, as irctest calls them. The implementation under
test (a server started in a pseudo-terminal on a free port, or attached; one shared among the
cases that leave it as they found it), the scripted server a client under test connects to, what
a case knows of its own run, and whether the program speaks frames at all.

conformance/cases/conftest.py makes fixtures of them; the cases import them for their types.
"""

from __future__ import annotations

import select
import socket
import time

import pytest

from chatwire import Hello, Role
from conformance.checks import CaseFailure, ProgramDied
from conformance.peer import WirePeer, describe
from conformance.plugin import NOTES_KEY, PROGRAMS_KEY, WARNINGS_KEY, Options, case_id
from conformance.procstate import sockets
from conformance.programs import (
    SLICE,
    Program,
    free_port,
    held_connections,
    listening,
    open_connections,
    substitute,
    wait_listening,
)


class Context:
    """What a case knows about its own run: options, warnings, the programs it watches."""

    def __init__(self, item: pytest.Item, opts: Options) -> None:
        self.item = item
        self.opts = opts

    @property
    def case_id(self) -> str:
        return case_id(self.item)

    @property
    def step(self) -> float:
        return self.opts.step

    def warn(self, reqs: str, what: str) -> None:
        """A SHOULD is broken: the case goes on, and ends as WARN if nothing else fails."""
        self.item.stash[WARNINGS_KEY].append((reqs, what))

    def note(self, text: str, in_title: bool = False) -> None:
        """Something the case found out (e.g. what it inferred): in its details and the JSON,
        and in its one line too when `in_title`."""
        self.item.stash[NOTES_KEY].append((text, in_title))

    def watch(self, program: Program) -> None:
        """Show this program's screen if the case fails."""
        self.item.stash[PROGRAMS_KEY].append(program)


class ModeCheck:
    """Whether the program under test speaks PROTOCOL.md's frames at all. Until it has sent one,
    each connection watches for plain text (peer.PlainText); once it is found, the case that found
    it FAILs saying which mode to use, and every later case is SKIPped with that one reason."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.framed = False  # it has sent a valid frame in this run
        self.plain_text: str | None = None  # the reason later cases are SKIPped

    def hint(self) -> str:
        ours = " ".join(self.opts.command)  # joined plainly: shlex would quote every '{port}'
        server, client = ((ours, "YOUR-CLIENT {host} {port}") if self.opts.mode == "server"
                          else ("YOUR-SERVER {port}", ours))
        return f"For a plain-text chat use pair mode: python3 -m conformance pair --server \"{server}\" " \
               f"--client \"{client}\""

    def arm(self, peer: WirePeer, program: Program | None) -> None:
        if not self.framed and program is not None:
            peer.plain_text_hint = self.hint()
            peer.prompt = program.prompt

    def seen(self, peers: list[WirePeer]) -> None:
        self.framed = self.framed or any(peer.framed for peer in peers)


# Set by a case once it has left the shared server as it found it (its conversations over, their
# lines taken in), before it judges what it saw: its FAIL then needs no new server.
LEFT_AS_FOUND = pytest.StashKey[bool]()
PORT_ATTEMPTS = 3  # server starts on a free port that another program took first


class ServerUnderTest:
    """The server command started on a free port, or (with --attach) a running server."""

    def __init__(self, opts: Options, mode: ModeCheck) -> None:
        self.opts = opts
        self.mode = mode
        self.program: Program | None = None
        self.handle = "HostA"  # the server's handle, learnt from its HELLO
        self.prompt: str | None = None  # its operator's prompt, learnt when it first waits for its user
        self.question: str | None = None  # what it asked its user before it listened (answered 'HostA')
        self.peers: list[WirePeer] = []
        self.listening_sockets: frozenset[str] = frozenset()  # the server's, before any client
        if opts.attach:
            self.host, self.port = opts.attach
            return
        self.host = opts.host
        for attempt in range(PORT_ATTEMPTS):
            self.port = free_port(opts.host)
            argv = substitute(opts.command, port=self.port, host=opts.host, handshake_timeout=opts.handshake_timeout)
            self.program = Program("server", argv, opts.step)
            try:
                self.question = wait_listening(self.program, self.port, "S-3", answer="HostA")
                self.listening_sockets = frozenset(sockets(self.program.pid))
                return
            except ProgramDied:
                self.program.stop()
                if attempt + 1 == PORT_ATTEMPTS or not self._port_was_taken():
                    raise
            except CaseFailure:
                self.program.stop()
                raise

    def _port_was_taken(self) -> bool:
        """The free port was taken by another program between our look and the server's bind (a
        race that runs side by side, as the mutant runs do, can lose): then a new port is tried."""
        assert self.program is not None
        return listening(self.port) or "in use" in self.program.transcript.lower()

    def wait_until_idle(self) -> None:
        """Until the server has closed every connection the case opened (a step at most, less if it
        comes to rest still holding one), so that the next case is not refused as BUSY by a
        connection the server has yet to notice or still drains (W-7): S-NEXT-2 alone judges that."""
        deadline = time.monotonic() + self.opts.step
        pause = 0.001  # it mostly lets go within a few ms: poll soon, then less often (each read costs ms)
        while self._holds_connections() and time.monotonic() < deadline:
            if self.program is not None and self.program.idle():
                return  # at rest with a connection open: it will not close it
            time.sleep(pause)  # polling /proc: another process's close() has no event to wait on
            pause = min(2 * pause, 0.02)

    def _holds_connections(self) -> bool:
        if self.program is None:  # attached: its sockets are not ours to see; those it has not closed
            return open_connections(self.port) > 0
        return held_connections(self.program.pid, self.port, self.listening_sockets) > 0

    def connect(self, host: str | None = None) -> WirePeer:
        peer = WirePeer.connect(host or self.host, self.port, self.opts.step, self.opts.quiet_period)
        if self.program:
            peer.idle = self.program.idle
            peer.at_rest = lambda program=self.program: f"the {program.role} {program.idle_description()}"
        self.mode.arm(peer, self.program)
        self.peers.append(peer)
        return peer

    def close_peers(self) -> None:
        """Close what a case left open (it may have ended early, skipped or failed), wait until the
        server has closed each connection on the wire too, then ask /proc until it has let go of
        them (after a reset, or a close of its own that it drains, the wire tells nothing more)."""
        self.mode.seen(self.peers)
        for peer in self.peers:
            peer.finish()
        if self.peers:
            self.wait_until_idle()
        self.peers.clear()

    def handshake(self, handle: str = "Chris", host: str | None = None) -> WirePeer:
        """A connection past HELLO; its failure is a plain CaseFailure (cases needing it are
        marked so, and are BLOCKED when the handshake case itself fails)."""
        peer = self.connect(host)
        peer.send(Hello(handle))
        reply = peer.expect("F-1 S-4", f"the server's answer to HELLO {handle!r}")
        if not isinstance(reply, Hello):
            raise CaseFailure("F-1 S-4", f"the server's answer to HELLO {handle!r}", ["HELLO"], describe(reply))
        self.handle = reply.handle
        return peer

    @property
    def terminal(self) -> Program:
        if self.program is None:
            pytest.skip("not applicable with --attach: the server's terminal is not visible")
        return self.program

    def stop(self) -> None:
        if self.program:
            self.program.stop()


class ServerPool:
    """One shared server for the cases that leave it as they found it."""

    def __init__(self, opts: Options, mode: ModeCheck) -> None:
        self.opts = opts
        self.mode = mode
        self.current: ServerUnderTest | None = None
        self.dirty = False
        self.start_failure: str | None = None  # once the command cannot start, later cases are BLOCKED

    def start(self) -> ServerUnderTest:
        """A new server process; the first failure to start FAILs its case, and blocks the rest."""
        if self.start_failure:
            pytest.skip(f"BLOCKED: {self.start_failure}")
        try:
            return ServerUnderTest(self.opts, self.mode)
        except CaseFailure as exc:
            self.start_failure = exc.what
            raise

    def get(self) -> ServerUnderTest:
        if self.current and (self.dirty or (self.current.program and not self.current.program.alive())):
            self.current.stop()
            self.current = None
        if self.current is None:
            self.current = self.start()
            self.dirty = False
        return self.current

    def stop(self) -> None:
        if self.current:
            self.current.stop()


class ScriptedServer:
    """A listening socket on a free loopback port; accept() gives the scripted side."""

    def __init__(self, opts: Options, mode: ModeCheck) -> None:
        self.opts = opts
        self.mode = mode
        self.peers: list[WirePeer] = []
        family = socket.AF_INET6 if ":" in opts.host else socket.AF_INET
        bind_host = "::1" if opts.host == "::1" else "127.0.0.1"
        self.sock = socket.create_server((bind_host, 0), family=family)
        self.port = self.sock.getsockname()[1]
        self.clients: list[Program] = []  # the clients under test that may connect here

    def idle(self) -> bool:
        """Every client under test has answered all it was given (Program.idle)."""
        return bool(self.clients) and all(client.idle() for client in self.clients if client.alive())

    def accept(self, reqs: str = "C-3 C-4", what: str = "the client connects after its handle") -> WirePeer:
        deadline = time.monotonic() + self.opts.step
        while not select.select([self.sock], [], [], min(SLICE, max(0.0, deadline - time.monotonic())))[0]:
            if time.monotonic() >= deadline:
                raise CaseFailure(reqs, what, ["a connection"], f"none within {self.opts.step:g} s")
            if self.idle():
                raise CaseFailure(reqs, what, ["a connection"],
                                  f"none: the client {self.clients[-1].idle_description()}")
            if not any(client.alive() for client in self.clients):
                raise CaseFailure(reqs, what, ["a connection"],
                                  f"none: the client {self.clients[-1].exit_description()}")
        sock, _ = self.sock.accept()
        peer = WirePeer(sock, Role.SERVER, self.opts.step, self.opts.quiet_period)
        peer.idle = self.idle
        self.mode.arm(peer, self.clients[-1] if self.clients else None)
        self.peers.append(peer)
        return peer

    def close(self) -> None:
        self.mode.seen(self.peers)
        self.sock.close()
