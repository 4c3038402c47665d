"""Pair mode: someone else's server and client, driven at their terminals only.

A pair implements the assignment, not PROTOCOL.md: its wire format, its prompts and its server's
handle are its own. So the suite never parses their bytes and never assumes their prompt text.
It knows, or learns:

- when a program waits for its user: its output has gone quiet and its whole process tree is
  blocked, read from /proc, with a thread reading its terminal (a read of it, or a poll, select
  or epoll wait that watches it); and since many programs watch their terminal and their socket
  at once, the suite waits until *everything* is at rest (both programs and the relay between
  them), so that a program still waiting for its peer's answer is not taken for one at its prompt;
- what its prompt is: the last, unterminated line of its screen when it waits;
- how the pair shows a handle (its form): from the client's prompt once it was given the handle
  `Chris` (`Chris> `, `Chris: `, `[Chris] `, `> ` with no handle at all); the server's handle from
  the server's prompt in that form; and where a pair shows messages otherwise than its prompts,
  the text before the first message shown from each side;
- how the pair starts: a server that asks its operator for a handle (before it listens, after,
  or once a client connects) is given SERVER_HANDLE; a client that sends a first message by
  itself (the server shows a line and waits for its operator) is noted, and the server speaks first;
- what went over the wire, in bytes and segments only: their client talks to a loopback relay
  that forwards to their server and re-segments the stream (one byte at a time, or coalesced);
  a failure behind it says which read broke (conformance/cuts.py).
"""


from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from conformance.assignment import Assignment
from conformance.checks import CaseFailure, ProgramDied
from conformance.cuts import Stream, Typed, handle_read, message_read
from conformance.plugin import Options
from conformance.procstate import TreeState, cpu_seconds, descendants, tree_state
from conformance.programs import Program, free_port, listening, listening_ports, substitute
from conformance.relay import C2S, S2C, Relay
from conformance.screen import Display, Form, handle_from_prompt, handle_piece, short, visible

__all__ = ["C2S", "S2C", "SERVER_HANDLE", "Form", "PairRun", "Relay", "Side", "handle_from_prompt", "short",
           "vanish"]

SERVER_HANDLE = "Server"  # typed when a server asks its operator for a handle (not HostA: nothing may assume it)
PORT_ATTEMPTS = 3  # server starts on a free port that another program took first
QUIET = 0.1  # seconds without output before /proc is asked; the blocked state is the real evidence
ASKS = re.compile(r"handle|name|nick|alias", re.IGNORECASE)  # a question for the operator's handle
PORT_ASKED = re.compile(r"\bport\b", re.IGNORECASE)  # a server that reads its port from its input
HOW = {"bytewise": "one byte at a time", "chunks": "five bytes at a time", "coalesce": "with segments joined",
       "pass": "as it came"}


class Side:
    """One program of the pair in its pseudo-terminal, with what the suite learnt about it."""

    def __init__(self, role: str, program: Program, handle: str | None = None, relay: Relay | None = None) -> None:
        self.role = role
        self.program = program
        self.handle = handle
        self.relay = relay  # a client's way to the server
        self.activity = time.monotonic()  # last output, or last typing (it must react to that first)
        self.exited = False
        self.server_mark = 0  # a client: where the server's screen stood when it started
        self.auto_message: str | None = None  # a client: what the server showed when it spoke by itself
        self.typed: list[Typed] = []  # a client: the messages typed in its conversation, both ways

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

    @property
    def last_text(self) -> str:
        """Its prompt, or else the last line it showed: what it asks when it waits."""
        if self.last_line.strip():
            return self.last_line
        return next((line for line in reversed(self.lines_since(0)) if line.strip()), "")


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
        self.server_question: str | None = None  # what the server asked for its handle, if it asked
        self.server_asked = ""  # when: "before it listened", "after it listened"
        self.port_question: str | None = None  # what the server asked for its port, if it read it from its input
        self.client_question: str | None = None  # the client's handle prompt
        self.display = Display()  # how the pair shows handles and messages, as learnt
        self.server_prompt: str | None = None  # the server's prompt, last time it was its turn

    @property
    def assignment(self) -> Assignment:
        """What the course fixes (the run's --profile, else the default): limits, quit word, texts."""
        return self.opts.assignment

    # -- starting

    def start_server(self) -> Side:
        """Their server, listening on a free port (its handle question answered). A server that dies
        because another program took that port first (runs side by side race for free ports) is
        started again on another, up to PORT_ATTEMPTS times."""
        for attempt in range(PORT_ATTEMPTS):
            try:
                return self._start_server()
            except ProgramDied:
                assert self.server is not None
                taken = listening(self.port) or "in use" in self.server.program.transcript.lower()
                if attempt + 1 == PORT_ATTEMPTS or not taken:
                    raise
                self.server_question = self.port_question = None
        raise AssertionError("unreachable")

    def _start_server(self) -> Side:
        self.port = free_port(self.opts.host)
        argv = substitute(self.opts.server_command, port=self.port, host=self.opts.host,
                          handshake_timeout=self.opts.handshake_timeout)
        program = Program("server", argv, self.opts.step)
        self.watch(program)
        self.server = Side("server", program)
        deadline = time.monotonic() + self.opts.step
        while not listening(self.port, program.pid):
            rest = self.rest([self.server], timeout=max(0.0, deadline - time.monotonic()),
                             until=lambda: listening(self.port, program.pid), relays=[])
            if listening(self.port, program.pid):
                break
            if rest.kind("server") == "exited":
                raise ProgramDied("A-7", f"the server {program.exit_description()} before it listened on "
                                         f"port {self.port}", [f"a socket listening on port {self.port}"],
                                  "(see the screen below)")
            if (rest.ok and rest.kind("server") == "user" and self.port_question is None
                    and PORT_ASKED.search(self.server.last_text)):
                # It reads its port from its input ("Port? "), not its command line: it is typed.
                self.port_question = self.server.last_text
                self.server.type(str(self.port))
                continue
            if rest.ok and rest.kind("server") == "user" and self.server_question is None:
                # It waits for its operator before listening: that is the handle question.
                self.answer_server("before it listened")
                continue
            others = [p for p in listening_ports(program.pid) if p != self.port] if rest.ok else []
            if others:  # at rest, listening elsewhere: it will not listen here (a port of its own)
                raise CaseFailure("A-7", f"the server came to rest without listening on port {self.port}",
                                  [f"a socket listening on port {self.port} (the port given for {{port}})"],
                                  f"it listens on port {', '.join(map(str, others))}; "
                                  f"the server {rest.states['server'].detail}")
            if time.monotonic() < deadline:  # still starting (a wrapper such as a pyenv shim waits on pipes)
                continue
            raise CaseFailure("A-7", f"the server did not listen on port {self.port} within {self.opts.step:g} s"
                              + (f" after it was given the handle {SERVER_HANDLE!r}"
                                 if self.server_question is not None else ""),
                              [f"a socket listening on port {self.port} (the port given for {{port}})"],
                              f"none; the server {rest.states.get('server', TreeState('?', '?')).detail}")
        return self.server

    def answer_server(self, when: str) -> None:
        """The server asks its operator for a handle: it gets SERVER_HANDLE."""
        assert self.server is not None
        self.server_question, self.server_asked = self.server.last_text, when
        self.server.type(SERVER_HANDLE)

    def server_asks(self, rest: Rest, client: Side) -> bool:
        """Whether the server, never given a handle, waits for its operator to give one now: its
        question says so; or, while the client waits for it and it has shown nothing of the client,
        it waits on its terminal alone (no socket: not a conversation loop that watches both)."""
        assert self.server is not None and client.handle is not None
        if self.server_question is not None or rest.kind("server") != "user":
            return False
        if ASKS.search(self.server.last_text):
            return True
        shown = self.server.lines_since(client.server_mark)
        if rest.kind(client.role) == "user" or any(client.handle in line or handle_piece(line, client.handle)
                                                   for line in shown):
            return False
        return "socket" not in rest.states["server"].detail

    def relay(self, mode: str = "pass", gated: bool = False) -> Relay:
        relay = Relay(self.opts.host, self.port, mode, gated)
        self.relays.append(relay)
        return relay

    def _spawn_client(self, relay: Relay, handle: str | None) -> Side:
        """Their client started on the relay's port, watched, and counted among the clients; the
        server's screen marked, so that what it shows of this client can be told."""
        assert self.server is not None
        argv = substitute(self.opts.client_command, host=self.opts.host, port=relay.port,
                          handshake_timeout=self.opts.handshake_timeout)
        role = ("client", "second client", "third client")[min(len(self.clients), 2)]
        program = Program(role, argv, self.opts.step)
        self.watch(program)
        client = Side(role, program, handle, relay)
        client.server_mark = self.server.mark()
        self.clients.append(client)
        return client

    def start_client(self, relay: Relay, handle: str = "Chris", reach_prompt: bool = True) -> Side:
        """Their client on the relay's port; its handle prompt answered with `handle`; then (with
        reach_prompt) everything at rest at the first turn (see first_turn)."""
        client = self._spawn_client(relay, handle)
        role, program = client.role, client.program
        deadline = time.monotonic() + self.opts.step
        while True:
            rest = self.started(client, "A-1", "before asking for a handle")
            if rest.kind(role) == "user":
                break
            if rest.kind(role) == "blocked" and not program.transcript and time.monotonic() < deadline:
                continue  # still starting: a wrapper (a pyenv shim) waits on its pipes, nothing shown yet
            if not self.server_asks(rest, client):
                raise CaseFailure("A-1", f"the {role} did not wait for its user to type a handle",
                                  ["a question, then the client waits for its user"],
                                  rest.states[role].detail + self.relay_problems())
            self.answer_server("after it listened")
        self.client_question = client.last_text
        client.type(handle)
        if reach_prompt:
            self.first_turn(client)
        return client

    def start_other_client(self, relay: Relay, answers: tuple[str, ...]) -> Side:
        """Another client, started while a conversation goes on: each time it waits for its user it
        is given the next of `answers` (a handle, then a message); it may as well be refused (exit)
        or wait. Returns once everything is at rest (or the step is over: no verdict here)."""
        side = self._spawn_client(relay, answers[0] if answers else None)
        role, program = side.role, side.program
        deadline = time.monotonic() + self.opts.step
        left = list(answers)
        while True:
            rest = self.rest()
            if rest.kind(role) == "blocked" and not program.transcript and time.monotonic() < deadline:
                continue  # still starting (a wrapper waits on its pipes)
            if not (rest.ok and rest.kind(role) == "user" and left):
                return side
            side.type(left.pop(0))

    def first_turn(self, client: Side) -> None:
        """After the client's handle, everything at rest at the first turn: normally the client's
        (it waits for its user); or, if it sent a first message by itself, the server's (the server
        showed a line and waits for its operator): auto_message. A server that asks for its handle
        meanwhile is given one. The pair's form is learnt from the client's prompt."""
        assert self.server is not None and client.handle is not None
        while True:
            rest = self.started(client, "A-2", f"after the handle {client.handle!r}")
            if self.server_asks(rest, client):
                self.answer_server("after it listened")
                continue
            if rest.kind(client.role) == "user":
                self.learn_form(client)
                return
            shown = [line for line in self.server.lines_since(client.server_mark) if line.strip()]
            if rest.kind("server") == "user" and shown:
                client.auto_message, self.server_prompt = shown[-1], self.server.last_line
                return
            raise CaseFailure("A-2", f"the {client.role} waits for its first message after the handle "
                                     f"{client.handle!r}",
                              ["the client waits for its user (or, having sent a first message by itself, "
                               "the server shows it and waits for its operator)"],
                              f"it waits for something else: {rest.states[client.role].detail}, showing "
                              f"{short(client.last_line)}" + self.relay_problems())

    def started(self, client: Side, reqs: str, when: str) -> Rest:
        """Everything at rest while the client starts, neither program gone; else CaseFailure."""
        rest = self.rest()
        for side in (client, self.server):
            if side is not None and rest.kind(side.role) == "exited":
                raise ProgramDied(reqs, f"the {side.role} {side.program.exit_description()} {when}",
                                  [f"the {client.role} starts"], "(see the screen below)" + self.relay_problems())
        if not rest.ok:
            raise CaseFailure(reqs, f"the {client.role} comes to rest {when}", ["both programs wait"],
                              rest.why + self.relay_problems())
        return rest

    # -- at rest

    def sides(self) -> list[Side]:
        return [s for s in [self.server, *self.clients] if s is not None and not s.exited]

    def rest(self, sides: list[Side] | None = None, timeout: float | None = None,
             until: Callable[[], bool] | None = None, relays: list[Relay] | None = None) -> Rest:
        """Wait until every program is quiet and blocked and every relay has nothing in flight
        (checked twice, a moment apart), or `until()` holds, or the time is up."""
        sides = self.sides() if sides is None else sides
        relays = self.relays if relays is None else relays
        start = time.monotonic()
        deadline = start + (self.opts.step if timeout is None else timeout)
        confirmed = False
        states: dict[str, TreeState] = {}
        spin = Spin(sides, self.opts.timeout_scale)
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
            if busy and (spinning := spin.found(states, now)):
                return Rest(False, states, spinning)
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
        if side is self.server:
            self.server_prompt = side.last_line
        else:
            self.learn_form(side)
        return rest

    def learn_form(self, client: Side) -> None:
        """The pair's form, from the first client's prompt the first time it waits for its user."""
        if self.display.form is None and client is self.clients[0] and client.handle:
            self.display.form = Form.learn(client.last_line, client.handle)

    @property
    def form(self) -> Form | None:
        return self.display.form

    @property
    def auto_message(self) -> str | None:
        """What the server showed when the first client sent a first message by itself, if it did."""
        return self.clients[0].auto_message if self.clients else None

    # -- talking

    def say(self, side: Side, client: Side, text: str) -> Typed:
        """Type `text` at `side` (the server, or `client`) in the conversation with `client`,
        noting where its bytes begin on the way to the other (for cuts.py)."""
        assert self.server is not None and client.relay is not None
        direction, receiver = (S2C, client) if side is self.server else (C2S, self.server)
        typed = Typed(direction, text, client.relay.record(direction)[2], receiver.mark())
        client.typed.append(typed)
        side.type(text)
        return typed

    def client_says(self, client: Side, text: str) -> list[str]:
        """Type `text` at the client; once all is at rest, the lines the server showed meanwhile."""
        assert self.server is not None
        typed = self.say(client, client, text)
        self.settle(f"the client's message {short(text)}")
        return self.server.lines_since(typed.mark)

    def server_says(self, client: Side, text: str) -> list[str]:
        """Type `text` at the server; once all is at rest, the lines the client showed meanwhile."""
        assert self.server is not None
        typed = self.say(self.server, client, text)
        self.settle(f"the server's message {short(text)}")
        return client.lines_since(typed.mark)

    def settle(self, after: str, reqs: str = "A-2") -> Rest:
        rest = self.rest()
        if not rest.ok:
            raise CaseFailure(reqs, f"after {after}, the pair did not come to rest", ["both programs wait"],
                              rest.why)
        return rest

    # -- what the screens show

    @property
    def server_handle(self) -> str | None:
        """The server's handle: its prompt read in the pair's form, else the one it was given."""
        learnt = self.form.handle_in(self.server_prompt) if self.form and self.server_prompt else None
        return learnt or (SERVER_HANDLE if self.server_question is not None else None)

    def expect_message(self, lines: list[str], sender: Side, text: str, reqs: str, what: str,
                       left: str | None = None) -> str:
        """`text` from `sender` shown once, as one whole line, in the pair's form (Display.expect)."""
        handle = self.server_handle if sender is self.server else sender.handle
        receiver = "client" if sender is self.server else "server"
        return self.display.expect(lines, sender.role, handle, text, reqs, f"the {receiver} shows {what}", left)

    def relay_problems(self) -> str:
        """What went wrong in the relays (cannot reach the server), for a failure message."""
        errors = [error for relay in self.relays for error in relay.errors]
        return f" ({'; '.join(errors)})" if errors else ""

    @contextlib.contextmanager
    def explaining(self) -> Iterator[None]:
        """A failure in the conversation through the latest client's relay says first which read
        broke, and the cut that broke it (see conformance/cuts.py)."""
        try:
            yield
        except CaseFailure as exc:
            why = self.which_read(self.clients[-1]) if self.clients and self.server else None
            if why is None:
                raise
            raise type(exc)(" ".join(exc.reqs), f"{why[0].upper()}{why[1:]}. Then: {exc.what}", exc.expected,
                            exc.got) from None

    def which_read(self, client: Side) -> str | None:
        assert self.server is not None and client.relay is not None
        streams = []
        for direction, sender, receiver, start in ((C2S, client, self.server, client.server_mark),
                                                   (S2C, self.server, client, 0)):
            data, ends, _ = client.relay.record(direction)
            typed = [t for t in client.typed if t.direction == direction]
            handle = client.handle if sender is client else self.server_handle
            streams.append(Stream(sender.role, receiver.role, handle, HOW[client.relay.mode], data, ends, typed,
                                  receiver.lines_since(start), receiver.lines_since(typed[-1].mark) if typed else []))
        if found := next(filter(None, map(handle_read, streams)), None):
            return found
        last = client.typed[-1] if client.typed else None
        return next((message_read(s) for s in streams if last is not None and s.typed and s.typed[-1] is last), None)

    # -- the end

    def close(self) -> None:
        for side in [*self.clients, *([self.server] if self.server else [])]:
            side.program.stop()
        for relay in self.relays:
            relay.close()


class Spin:
    """A program that keeps running, using CPU without waiting for anything, well past what any
    answer to a line or a connection costs: its wait is decided then, not at its timeout (CPU
    time, not wall time, so that a loaded machine does not make a slow program look like one)."""

    CPU = 1.0  # seconds of CPU, scaled with --timeout-scale; a program answers in milliseconds
    LOOK = 0.25  # how often the CPU time of a running program is read

    def __init__(self, sides: list[Side], scale: float) -> None:
        self.limit = self.CPU * scale
        self.start = time.monotonic()
        self.next_look = self.start + self.LOOK
        self.used = {s.role: cpu_seconds(s.program.pid) for s in sides if not s.exited}
        self.pids = {s.role: s.program.pid for s in sides if not s.exited}

    def found(self, states: dict[str, TreeState], now: float) -> str:
        """Why a running program is taken as spinning, or ""."""
        if now < self.next_look:
            return ""
        self.next_look = now + self.LOOK
        for role, state in states.items():
            if state.kind != "running" or role not in self.pids:
                continue
            used = cpu_seconds(self.pids[role]) - self.used[role]
            if used >= self.limit:
                return (f"not at rest: the {role} used {used:.1f} s of CPU in {now - self.start:.1f} s "
                        f"without waiting for anything ({state.detail})")
        return ""


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
