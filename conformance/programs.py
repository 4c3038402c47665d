"""Controllers: an implementation under test, started in a pseudo-terminal and watched.

Program runs one command in a pty (pexpect) and keeps everything it showed; every wait has a
timeout and turns into a CaseFailure that says what was awaited and how the program ended,
never a bare pexpect exception.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import time

import pexpect

from conformance import sandbox
from conformance.checks import CaseFailure, ProgramDied
from conformance.procstate import LISTEN, TreeState, sockets, tcp_sockets, terminal_unread, tree_state, unread_input
from conformance.screen import visible

ANSI_OR_CONTROL = re.compile(r"\x1b|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
QUIET = 0.04  # seconds without output or typing before /proc is asked whether a program is idle
CONFIRM = 0.03  # and it must still be idle this much later: one look could catch it between two steps
SLICE = 0.05  # a wait looks at the program this often


class Policy:
    """How every program under test is started in this run: as a shell would start it, or, for
    untrusted code (batch grading, --untrusted), in the sandbox with a clean environment."""

    untrusted = False

    @classmethod
    def start_options(cls, env: dict[str, str] | None) -> dict[str, object]:
        if cls.untrusted:
            return {"env": {**sandbox.environment(os.getcwd()), **(env or {})}, "preexec_fn": sandbox.preexec}
        return {"env": {**os.environ, **(env or {})}, "preexec_fn": sandbox.default_signals}


def substitute(argv: list[str], **values: object) -> list[str]:
    """{host}, {port} and {handshake_timeout} in a command, replaced as plain text."""
    out = []
    for part in argv:
        for name, value in values.items():
            part = part.replace("{" + name + "}", str(value))
        out.append(part)
    return out


def describe_status(exitstatus: int | None, signalstatus: int | None) -> str:
    if signalstatus is not None:
        try:
            return f"was killed by {signal.Signals(signalstatus).name}"
        except ValueError:
            return f"was killed by signal {signalstatus}"
    return f"exited with status {exitstatus}"


class Program:
    """A command in a pseudo-terminal: its screen, its keyboard, its exit."""

    def __init__(self, role: str, argv: list[str], timeout: float, env: dict[str, str] | None = None,
                 cwd: str | None = None) -> None:
        self.role = role
        self.argv = argv
        self.timeout = timeout
        self._log = io.StringIO()
        try:
            self.child = pexpect.spawn(
                argv[0], argv[1:], cwd=cwd, encoding="utf-8", codec_errors="replace", timeout=timeout,
                dimensions=(24, 250), **Policy.start_options(env),
            )
        except pexpect.ExceptionPexpect as exc:
            raise ProgramDied("", f"the {role} command could not be started: {exc}") from None
        self.child.logfile_read = self._log
        self.child.delaybeforesend = None  # the suite waits for the program before typing
        self.child.delayafterclose = 0.01
        self.child.delayafterterminate = 0.05
        # ptyprocess sleeps this long after closing the pty, at every close
        self.child.ptyproc.delayafterclose = 0.01
        self.child.ptyproc.delayafterterminate = 0.05
        self._status: str | None = None
        self.case_mark = 0  # where the current case's output starts (a shared server runs many)
        self.ended = False  # its output has ended
        self.quiet = QUIET * max(1.0, timeout / 5.0)  # stretched with the step (--timeout-scale)
        self.early = True  # a wait may end as soon as the program is idle (see idle())
        self._seen = 0  # transcript length at the last look
        self._activity = time.monotonic()  # its last output, or our last typing
        self._idle_since: float | None = None
        self.last_state: TreeState | None = None

    @property
    def pid(self) -> int:
        return self.child.pid

    # -- the screen

    @property
    def transcript(self) -> str:
        return self._log.getvalue().replace("\r\n", "\n")

    def mark(self) -> int:
        """A place in the transcript; output_since() gives what came after it."""
        self.case_mark = len(self._log.getvalue())
        return self.case_mark

    def here(self) -> int:
        """A place in the transcript now, for lines_since() (the case's own mark() stays)."""
        self._take_output()
        return len(self._log.getvalue())

    def output_since(self, mark: int | None = None) -> str:
        return self._log.getvalue()[self.case_mark if mark is None else mark :].replace("\r\n", "\n")

    def tail(self, lines: int = 8) -> list[str]:
        return self.transcript.rstrip("\n").split("\n")[-lines:]

    def _wait_for(self, pattern: str | re.Pattern[str], exact: bool, reqs: str, what: str,
                  timeout: float | None) -> None:
        """Until `pattern` shows. Failing: the program exited, or it sits idle (waiting for its
        user or its socket with nothing to act on), or it stayed busy for the whole timeout."""
        wait = timeout or self.timeout
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            try:
                if exact:
                    self.child.expect_exact(pattern, timeout=max(0.0, min(SLICE, left)))
                else:
                    self.child.expect(pattern, timeout=max(0.0, min(SLICE, left)))
                self._saw_output()
                return
            except pexpect.EOF:
                raise ProgramDied(reqs, f"the {self.role} {self.exit_description()} while waiting for {what}",
                                  [shown(pattern)], "(end of output)") from None
            except pexpect.TIMEOUT:
                pass
            if left <= 0:
                raise CaseFailure(reqs, f"the {self.role} did not show {what} within {wait:g} s",
                                  [shown(pattern)], "(see the screen below)") from None
            if self.idle():
                raise CaseFailure(reqs, f"the {self.role} did not show {what}: it {self.idle_description()}",
                                  [shown(pattern)], "(see the screen below)") from None

    def expect_line(self, text: str, reqs: str = "", what: str | None = None, timeout: float | None = None) -> None:
        """`text` as a whole line (the pty turns each \\n into \\r\\n)."""
        self._wait_for(text + "\r\n", True, reqs, what or repr(text), timeout)

    def expect_text(self, text: str, reqs: str = "", what: str | None = None, timeout: float | None = None) -> None:
        """`text` anywhere next on the screen, e.g. a prompt that ends without a newline."""
        self._wait_for(text, True, reqs, what or repr(text), timeout)

    def expect_re(self, pattern: str, reqs: str = "", what: str = "", timeout: float | None = None) -> re.Match[str]:
        self._wait_for(pattern, False, reqs, what or shown(pattern), timeout)
        return self.child.match

    def settle(self, pattern: str, timeout: float) -> bool:
        """Consume output up to a line matching `pattern` if one comes within `timeout`; no verdict.
        Keeps a line that belongs to an earlier step from being taken for a later one."""
        try:
            self.child.expect(pattern + r"[^\n]*\r\n", timeout=timeout)
            return True
        except (pexpect.TIMEOUT, pexpect.EOF):
            return False

    def pump(self) -> bool:
        """Take in whatever output is waiting (into the transcript, past any expect); True if
        there was some. The end of its output (it exited) sets `ended`."""
        got = False
        while not self.ended:
            try:
                if not self.child.read_nonblocking(65536, timeout=0):
                    break
                got = True
            except pexpect.TIMEOUT:
                break
            except (pexpect.EOF, OSError, ValueError):
                self.ended = True
        return got

    @property
    def fd(self) -> int:
        """The pty's descriptor, to wait for its output with select()."""
        return self.child.child_fd

    def raw_control_in_output(self) -> str | None:
        """A raw escape or control character that reached the screen in this case, if any (E-2, S-13)."""
        match = ANSI_OR_CONTROL.search(self.output_since().replace("\t", ""))
        return None if match is None else repr(match.group(0))

    # -- the keyboard

    def type(self, line: str) -> None:
        self.send(line + "\n")

    def send(self, text: str) -> None:
        self._activity = time.monotonic()  # it has something to act on now
        self._idle_since = None
        with contextlib.suppress(OSError):  # it has exited; the next wait says so
            self.child.send(text)

    # -- has it answered?

    def _take_output(self) -> None:
        """Read what it has written so far into the transcript, and keep it for the next expect
        (pump() reads past every expect; this does not)."""
        while not self.ended:
            try:
                data = self.child.read_nonblocking(65536, timeout=0)
            except pexpect.TIMEOUT:
                return
            except (pexpect.EOF, OSError, ValueError):
                self.ended = True
                return
            if not data:
                return
            self.child.buffer += data

    def _saw_output(self) -> None:
        length = len(self._log.getvalue())
        if length != self._seen:
            self._seen = length
            self._activity = time.monotonic()
            self._idle_since = None

    def idle(self) -> bool:
        """Whether it has answered all it was given: it waits for its user or a socket, or is blocked
        for good (read from /proc), with no unread input on its sockets, no timer of its own pending
        (a sleep of more than procstate.LONG_SLEEP is none), and no output or
        typing for a quiet period; seen so twice, CONFIRM apart. An exited program is not idle
        (its wait ends at the end of its output). With `early` off, never."""
        if not self.early or self.ended:
            return False
        self._take_output()
        self._saw_output()
        now = time.monotonic()
        if now - self._activity < self.quiet:
            return False
        state = tree_state(self.child.pid)
        self.last_state = state
        pid = self.child.pid
        # Blocked elsewhere with no timer (a sleep of an hour, a lock never released) is at rest too:
        # nothing but a signal can wake it, so what a wait expects of it will not come, and input
        # waiting for it does not count (it is not reading).
        waiting = state.kind in ("user", "network")
        if (state.kind in ("running", "exited") or state.timed
                or (waiting and (unread_input(pid) or terminal_unread(pid)))):
            self._idle_since = None
            return False
        if self._idle_since is None:
            self._idle_since = now
        return now - self._idle_since >= CONFIRM

    def prompt(self) -> str | None:
        """The last, unterminated line of its screen while it is idle waiting for its user; None
        while it is not (busy, exited, waiting on the network, or nothing on that line)."""
        if not self.idle() or self.last_state is None or self.last_state.kind != "user":
            return None
        return self.last_line.strip() or None

    def wait_for_user(self, reqs: str, what: str, timeout: float | None = None) -> str:
        """Until it is idle waiting for its user (reading its terminal); its prompt then, the last
        unterminated line of its screen ("" if none). A CaseFailure if it exits, waits for
        something else (its socket) with nothing to act on, or is still busy at the timeout."""
        wait = timeout or self.timeout
        deadline = time.monotonic() + wait
        while True:
            if self.idle() and self.last_state is not None:
                if self.last_state.kind == "user":
                    return self.last_line
                raise CaseFailure(reqs, what, [f"the {self.role} waits for its user"],
                                  f"it {self.idle_description()}")
            if self.ended or not self.alive():
                raise ProgramDied(reqs, f"{what}: the {self.role} {self.exit_description()}",
                                  [f"the {self.role} waits for its user"], "(see the screen below)")
            if time.monotonic() >= deadline:
                state = self.last_state.detail if self.last_state else "busy"
                raise CaseFailure(reqs, what, [f"the {self.role} waits for its user"],
                                  f"not at rest after {wait:g} s ({state})")
            time.sleep(SLICE / 5)  # polling /proc: another process's blocking has no event

    def settle_idle(self, timeout: float | None = None) -> bool:
        """Until it is idle or has exited (True), or the timeout (False); no verdict. Its output
        is in the transcript then (lines_since(), last_line)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            if self.idle() or self.ended or not self.alive():
                self._take_output()
                return True
            time.sleep(SLICE / 5)  # polling /proc: another process's blocking has no event
        return False

    def lines_since(self, mark: int) -> list[str]:
        """The visible lines (escapes, \r and \b applied) completed after `mark` (a mark() of
        the transcript), the first one from its start."""
        self._take_output()
        raw = self._log.getvalue()
        start = raw.rfind("\n", 0, mark) + 1
        return [visible(line) for line in raw[start:].replace("\r\n", "\n").split("\n")[:-1]]

    @property
    def last_line(self) -> str:
        """The unterminated last line of its screen, as shown: its prompt when it waits for its user."""
        self._take_output()
        return visible(self._log.getvalue().replace("\r\n", "\n").rsplit("\n", 1)[-1])

    def forget_unread(self) -> None:
        """Drop what no expect has matched yet, so that the next expect_* starts from now (after a
        case judged the screen through lines_since() instead)."""
        self._take_output()
        self.child.buffer = ""

    def idle_description(self) -> str:
        state = self.last_state
        if state is None:
            return "is idle"
        waits = {"user": "waits for its user", "network": "waits on the network"}.get(state.kind, "is blocked")
        return f"{waits}, with nothing more to show ({state.detail})"

    def interrupt(self) -> None:
        self.send("\x03")

    def end_input(self) -> None:
        self.send("\x04")

    # -- the process

    def alive(self) -> bool:
        return self.child.isalive()

    def wait_exit(self, reqs: str = "", what: str = "its end", timeout: float | None = None) -> int:
        """The exit status (-N for signal N) once it has ended; a CaseFailure if it does not end."""
        wait = timeout or self.timeout
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            try:
                self.child.expect(pexpect.EOF, timeout=max(0.0, min(SLICE, left)))
                break
            except pexpect.TIMEOUT:
                pass
            if left <= 0:
                raise CaseFailure(reqs, f"the {self.role} did not exit within {wait:g} s after {what}",
                                  ["the process ends"], "it is still running") from None
            if self.idle():
                raise CaseFailure(reqs, f"the {self.role} did not exit after {what}", ["the process ends"],
                                  f"it is still running: it {self.idle_description()}") from None
        self._close()
        if self.child.signalstatus is not None:
            return -self.child.signalstatus
        return self.child.exitstatus

    def exit_description(self) -> str:
        if self.child.isalive():
            return "is still running"
        if self._status is None:
            with contextlib.suppress(pexpect.ExceptionPexpect):
                self.child.close()
            self._status = describe_status(self.child.exitstatus, self.child.signalstatus)
        return self._status

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.child.isalive():
            self.child.kill(sig)

    def stop(self) -> None:
        """The end of it, and of whatever it forked (the pty made it a session leader): killed at
        once, since what it does after its case has no verdict."""
        sandbox.kill_group(self.child.pid)
        self._close()

    def _close(self) -> None:
        """Close the pty of a process that has ended or is ending: reaped first (within a second),
        so that closing need not sleep (ptyprocess sleeps at every close, to let a child die of
        the hangup: 10 ms a case, a third of a vector case's time)."""
        deadline = time.monotonic() + 1.0
        while self.child.isalive() and time.monotonic() < deadline:
            time.sleep(0.001)  # waitpid has no timeout; an exit that EOF announced comes within ms
        if not self.child.isalive():
            self.child.ptyproc.delayafterclose = 0
        with contextlib.suppress(pexpect.ExceptionPexpect):
            self.child.close(force=True)


def shown(pattern: str | re.Pattern[str]) -> str:
    text = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
    return repr(text.replace("\r\n", "\n"))


# --- ports ---------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (bound, then released)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def listening(port: int, owner: int | None = None) -> bool:
    """Whether some socket listens on `port` (with `owner`, one of the process tree of that pid:
    another run's server may have taken the port first), read from /proc without connecting to it
    (a probe connection would be a client to the server under test)."""
    mine = sockets(owner) if owner is not None else None
    if mine is not None and not mine:
        return False  # it holds no socket yet (still starting): nothing to ask the kernel about
    return any(sock.state == LISTEN and sock.port == port and (mine is None or sock.inode in mine)
               for sock in tcp_sockets())


def listening_ports(pid: int) -> list[int]:
    """The TCP ports that `pid` and its descendants listen on, read from /proc."""
    mine = sockets(pid)
    return sorted({sock.port for sock in tcp_sockets() if sock.state == LISTEN and sock.inode in mine})


def wait_listening(program: Program, port: int, reqs: str, answer: str | None = None) -> str | None:
    """Until `program` listens on `port`, within its timeout. A program that waits for its user
    before it listens asks a question (its handle, as many students' servers do): with `answer` it
    is typed once and the question returned; without, it is a CaseFailure that says so. An exit,
    a second question, or no listening socket in time is a CaseFailure."""
    question = None
    deadline = time.monotonic() + program.timeout
    while not listening(port, program.pid):
        if not program.alive():
            raise ProgramDied(reqs, f"the {program.role} {program.exit_description()} before it listened on "
                                    f"port {port}", [f"a socket listening on port {port}"], "(see the screen below)")
        asked = program.prompt()
        if asked is not None and (answer is None or question is not None):
            raise CaseFailure(reqs, f"the {program.role} waits for its user before it listens on port {port}",
                              [f"a socket listening on port {port}"], f"the question {asked!r}")
        if asked is not None:
            question = asked
            program.type(answer or "")
        elif program.idle():  # at rest, not listening there: it will not (a port of its own, say)
            raise CaseFailure(reqs, f"the {program.role} came to rest without listening on port {port}",
                              [f"a socket listening on port {port} (the port given for {{port}})"],
                              f"it {program.idle_description()}")
        if time.monotonic() > deadline:
            answered = f" after the answer {answer!r} to {question!r}" if question else ""
            raise CaseFailure(reqs, f"the {program.role} did not listen on port {port} within {program.timeout:g} s",
                              [f"a socket listening on port {port} (the port given for {{port}})"],
                              f"no listening socket{answered}")
        time.sleep(0.01)  # polling /proc: there is no event to wait on for another process's listen()
    return question


def open_connections(port: int) -> int:
    """Connections the process listening on `port` still holds open from its side (established,
    or closed by the peer but not yet by it), read from /proc."""
    return sum(1 for sock in tcp_sockets() if sock.state in ("01", "03", "08") and sock.port == port)


def held_connections(pid: int, port: int, known: frozenset[str] = frozenset()) -> int:
    """Connections on `port` that the tree of `pid` still holds, in any state but listening: one
    it has shut down and still drains (W-7) counts, one it has closed (TIME_WAIT, no inode) not.
    Sockets in `known` (those it held while listening, before any client) are none: when it holds
    no other, /proc/net/tcp (read in ms, tens of ms on a busy machine) need not be read."""
    mine = sockets(pid) - known
    if not mine:
        return 0
    return sum(1 for sock in tcp_sockets() if sock.port == port and sock.state != LISTEN and sock.inode in mine)
