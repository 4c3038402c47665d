"""What a program under test is doing right now, read from /proc: running, waiting for its user
(a thread reading its terminal, or a poll, select or epoll wait that watches it), waiting on the
network, blocked otherwise, or gone. No event tells one process that another has blocked, so the
callers poll this, briefly and with bounds.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import struct
from dataclasses import dataclass
from pathlib import Path

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
