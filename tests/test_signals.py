"""Signals always stop the server (PROTOCOL.md S-12), whatever it is blocked in: its loop, a read
of its terminal in the foreground or in the background (a job started with `&`, stopped by
SIGTTIN, brought back with `fg`), a write to a terminal whose output is stopped, a job stopped
with Ctrl-Z and brought back. Real processes in ptys: an interactive bash for job control.

Every wait is on something observable: a line on a screen, a frame, an exit, or what /proc says
the server is doing (its state, the system call it is blocked in)."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import signal
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatwire import Hello, Message, Quit
from conformance.procstate import SYSCALLS
from procs import ROOT, Screen, Server, connect

PROMPT = "sh14$ "
SERVER = f"python3 {ROOT / 'chatserve.py'} 0"
STOPPED = re.compile(r"\[1\]\+\s+Stopped")
DONE = re.compile(r"\[1\]\+\s+Done")
# System call numbers procstate does not name: write, and the restart of a poll that a stop
# (Ctrl-Z, SIGTTIN) interrupted.
MORE_SYSCALLS = {"x86_64": {1: "write", 219: "restart_syscall"}, "aarch64": {64: "write", 128: "restart_syscall"}}
IN_LOOP = ("poll", "restart_syscall")


def state(pid: int) -> str:
    """The process state letter of /proc/PID/stat: S sleeping, T stopped, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def syscall(pid: int) -> tuple[str, int | None]:
    """The system call `pid` is blocked in and its first argument (a descriptor for read and
    write), from /proc/PID/syscall; ("running", None) or ("?", None) otherwise."""
    fields = Path(f"/proc/{pid}/syscall").read_text().split()
    if not fields or not fields[0].lstrip("-").isdigit() or fields[0] == "-1":
        return (fields[0] if fields else "?"), None
    number, machine = int(fields[0]), platform.machine()
    name = MORE_SYSCALLS.get(machine, {}).get(number) or SYSCALLS.get(machine, {}).get(number, str(number))
    return name, int(fields[1], 16)


def wait_for(predicate, what: str, timeout: float = 15) -> None:
    """Another process's state has no event to wait on: /proc is polled, bounded."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Shell(Screen):
    """An interactive bash in a pty: job control, as a user has it."""

    def __init__(self) -> None:
        env = {"PS1": PROMPT, "TERM": "dumb", "INPUTRC": "/dev/null", "HISTFILE": "/dev/null"}
        super().__init__(["bash", "--norc", "--noprofile", "-i"], env, role="shell")
        self.expect_text(PROMPT)
        self.type("set -b")  # report a job's end or stop at once, not at the next prompt
        self.expect_text(PROMPT)

    def status_of_last(self) -> int:
        """$? of the last foreground job, once the shell prompts again."""
        self.expect_text(PROMPT)
        self.type("echo status=$?")
        return int(self.expect_re(r"status=(\d+)\r\n").group(1))


@pytest.fixture
def shell() -> Iterator[tuple[Shell, list[int]]]:
    """The shell, and the pids of the servers started in it: each is in a process group of its own
    (job control), so stopping the shell's group would not stop it; it is killed by its pid."""
    sh, pids = Shell(), []
    yield sh, pids
    for pid in pids:
        with contextlib.suppress(OSError):  # gone already (its pid is then not reused as ours)
            if b"chatserve.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
    sh.stop()


def start_in_background(sh: Shell, pids: list[int], then: str = "") -> int:
    sh.type(f"{SERVER} &{then}")
    pid = int(sh.expect_re(r"\[1\] (\d+)\r\n").group(1))
    pids.append(pid)
    sh.expect_re(r"Listening on port \d+\.\.\.\r\n")
    return pid


def stop_in_its_read(sh: Shell, pids: list[int]) -> int:
    """A background server that reads its terminal is stopped by SIGTTIN inside the read: the
    shell waits (`wait`, so that it does not read the terminal itself) while a line is typed."""
    pid = start_in_background(sh, pids, " wait")
    wait_for(lambda: syscall(sh.pid)[0] == "wait4" and syscall(pid)[0] == "poll",
             "the shell in `wait` and the server in its loop")
    sh.type("x")  # wakes the server's poll; its read in the background stops it
    sh.expect_re(STOPPED)
    sh.expect_text("x: command not found")  # then the shell took the line
    sh.expect_text(PROMPT)
    wait_for(lambda: state(pid) == "T", "the server stopped")
    return pid


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_a_job_brought_back_with_fg_into_a_blocked_terminal_read(shell, how: str) -> None:
    """`fg` continues the read that stopped the job, and the line that woke it is gone (the shell
    read it): the server is blocked in a read of its terminal in the foreground. Python retries a
    read a signal interrupted once the handler has returned, so a handler that only wakes the loop
    left it there until Enter."""
    sh, pids = shell
    pid = stop_in_its_read(sh, pids)
    sh.type("fg")
    wait_for(lambda: state(pid) == "S" and syscall(pid) == ("read", 0), "the server blocked in read(0)")
    if how == "ctrl-c":
        sh.send("\x03")
    else:
        os.kill(pid, signal.SIGTERM)
    assert sh.status_of_last() == 0  # 0 after Ctrl-C or SIGTERM, not 130 or 143


@pytest.mark.parametrize("where", ["in-its-loop", "stopped-in-its-read"])
def test_a_background_job_ends_on_kill(shell, where: str) -> None:
    """`kill %1` sends SIGTERM (and, to a stopped job, SIGCONT): the server ends with status 0,
    which the shell reports as Done."""
    sh, pids = shell
    if where == "in-its-loop":
        pid = start_in_background(sh, pids)  # the shell's prompt came before the server's line
        wait_for(lambda: syscall(pid)[0] == "poll", "the server in its loop")
    else:
        stop_in_its_read(sh, pids)
    sh.type("kill %1")
    sh.expect_re(DONE)  # 'Exit N' for another status, 'Terminated' if the signal had killed it


def test_a_job_stopped_with_ctrl_z_and_brought_back(shell) -> None:
    sh, pids = shell
    sh.type(SERVER)
    sh.expect_re(r"Listening on port \d+\.\.\.\r\n")
    wait_for(lambda: server_pid(sh) != 0, "the server's pid")
    pid = server_pid(sh)
    pids.append(pid)
    wait_for(lambda: syscall(pid)[0] == "poll", "the server in its loop")
    sh.send("\x1a")  # Ctrl-Z
    sh.expect_re(STOPPED)
    sh.expect_text(PROMPT)
    sh.type("fg")
    wait_for(lambda: state(pid) == "S" and syscall(pid)[0] in IN_LOOP, "the server back in its loop")
    sh.send("\x03")
    assert sh.status_of_last() == 0


def server_pid(sh: Shell) -> int:
    """The shell's child running chatserve.py (a foreground job has no `[1] PID` line)."""
    for task in Path(f"/proc/{sh.pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"chatserve.py" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
    return 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_ends_a_write_to_a_stopped_terminal(server, signum: int) -> None:
    """Output stopped (Ctrl-S) while a conversation goes on: the server blocks writing a line. A
    signal still ends it at once, QUIT to the client, status 0."""
    srv: Server = server()
    peer = connect(srv.port)
    peer.send(Hello("Chris"))
    assert peer.receive() == Hello("HostA")
    srv.expect_established()
    peer.send(Message("hi"))
    srv.expect_line("Chris> hi")
    srv.expect_text("HostA> ")
    srv.type("out")
    assert peer.receive() == Message("out")
    # Ctrl-S and a line in one write: the terminal stops its output before the line can be read,
    # so the line's answer ("Not your turn ...") is a write that blocks.
    srv.send("\x13x\n")
    wait_for(lambda: syscall(srv.pid) == ("write", 1), "the server blocked writing to its terminal")
    started = time.monotonic()
    os.kill(srv.pid, signum)
    assert peer.receive() == Quit()  # S-12: the client is told, though the terminal is stuck
    assert srv.wait_exit() == 0
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_ends_the_server_at_rest(server, signum: int) -> None:
    srv: Server = server()
    wait_for(lambda: syscall(srv.pid)[0] == "poll", "the server in its loop")
    os.kill(srv.pid, signum)
    assert srv.wait_exit() == 0
    assert "Traceback" not in srv.transcript


def test_a_signal_at_rest_with_output_stopped_ends_the_server(server) -> None:
    """The stop itself would write ('You have closed the connection...') to a terminal whose output
    is stopped: the signal came while the server was at rest, so no write was there for it to end.
    Once a stop signal has come, the server does not wait for a terminal that cannot take output
    (and a watchdog would end a write that blocks after all); it exits 0 at once."""
    srv: Server = server()
    peer = connect(srv.port)
    peer.send(Hello("Chris"))
    assert peer.receive() == Hello("HostA")
    srv.expect_established()
    wait_for(lambda: syscall(srv.pid)[0] in IN_LOOP, "the server at rest in its loop")
    pty = os.open(os.readlink(f"/proc/{srv.pid}/fd/1"), os.O_RDWR | os.O_NOCTTY)
    try:
        termios.tcflow(pty, termios.TCOOFF)  # output stopped when this returns (as Ctrl-S does)
        started = time.monotonic()
        os.kill(srv.pid, signal.SIGTERM)
        assert peer.receive() == Quit()
        wait_for(lambda: not srv.alive(), "the server's exit", timeout=10)
        assert time.monotonic() - started < 3
    finally:
        os.close(pty)  # the terminal's last holder but the test's pty: its end of output can come
    assert srv.wait_exit() == 0
