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
import os
import selectors
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from conformance.checks import CaseFailure, ProgramDied
from conformance.plugin import Options
from conformance.procstate import TreeState, descendants, tree_state
from conformance.programs import Program, free_port, listening, substitute
from conformance.relay import C2S, S2C, Relay
from conformance.screen import handle_from_prompt, short, visible

__all__ = ["C2S", "S2C", "SERVER_HANDLE", "PairRun", "Relay", "Side", "handle_from_prompt", "short", "vanish"]

SERVER_HANDLE = "Server"  # typed when a server asks its operator for a handle (not HostA: nothing may assume it)
QUIET = 0.1  # seconds without output before /proc is asked; the blocked state is the real evidence


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
