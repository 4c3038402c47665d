"""What a program under test is doing right now, read from /proc: running, waiting for its user
(a thread reading its terminal, or a poll, select or epoll wait that watches it), waiting on the
network, blocked otherwise, or gone. No event tells one process that another has blocked, so the
callers poll this, briefly and with bounds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import re
import socket
import struct
import termios
import time
from collections.abc import Iterator
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


# Where each multiplexing call keeps its timeout: ("ms", n) an int of milliseconds in argument n
# (negative: none); ("ts", n) a pointer to a timespec or timeval in argument n (NULL: none).
TIMEOUT_ARG = {"poll": ("ms", 2), "epoll_wait": ("ms", 3), "epoll_pwait": ("ms", 3), "ppoll": ("ts", 2),
               "select": ("ts", 4), "pselect6": ("ts", 4), "epoll_pwait2": ("ts", 3)}


def has_timeout(name: str, args: list[int]) -> bool:
    """Whether a poll/select/epoll wait will end by itself: a program in such a wait is on its own
    clock (a handshake timeout, a periodic tick), not simply idle."""
    how, at = TIMEOUT_ARG.get(name, ("", 0))
    if how == "ms":
        return (args[at] & 0xFFFFFFFF) < 0x80000000  # an int: -1 (all ones) waits forever
    return how == "ts" and args[at] != 0


# A sleep that ends further away than this is no clock the program is on: no wait of the suite
# lasts as long, so the program cannot act within it (a student's `time.sleep(3600)` after HELLO).
LONG_SLEEP = 60.0
TIMER_ABSTIME = 1


def sleep_left(pid: int, name: str, args: list[int]) -> float | None:
    """Seconds a nanosleep or clock_nanosleep has at most left; None if its request cannot be read.
    An absolute sleep (clock_nanosleep with TIMER_ABSTIME, as Python's time.sleep) names its end;
    a relative one its length, which bounds what is left."""
    clock, flags, request = (time.CLOCK_MONOTONIC, 0, args[0]) if name == "nanosleep" else args[:3]
    try:
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
            mem.seek(request)
            seconds, nanoseconds = struct.unpack("qq", mem.read(16))
        length = seconds + nanoseconds / 1e9
        return length - time.clock_gettime(clock) if flags & TIMER_ABSTIME else length
    except (OSError, ValueError, OverflowError, struct.error):
        return None


def sleeps_until(pid: int, name: str, args: list[int]) -> bool:
    """Whether a thread blocked outside poll/select/epoll will wake by itself within LONG_SLEEP: a
    sleep (an absolute one read to its end, a relative one of at most that length), or a futex
    wait with a timeout (FUTEX_WAIT's fourth argument)."""
    if name in ("nanosleep", "clock_nanosleep"):
        # A relative sleep of more than LONG_SLEEP is taken as long even if it began long ago: a
        # program that chose to sleep a minute or more is not answering anyone meanwhile.
        left = sleep_left(pid, name, args)
        return left is None or left <= LONG_SLEEP
    return name == "futex" and args[3] != 0


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
    timed: bool = False  # a waiting thread will wake by itself: its wait has a timeout (its own clock)


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


def thread_state(pid: int, tid: int) -> tuple[str, str, bool]:
    """(kind, detail, timed) for one thread: running, user, network or blocked; timed if its wait
    has a timeout."""
    base = f"/proc/{pid}/task/{tid}"
    stat = Path(f"{base}/stat").read_text()
    state = stat[stat.rindex(")") + 2]
    if state in "ZXxI":
        return "blocked", f"pid {pid} {state}", False
    if state in "RD":
        return "running", f"pid {pid} is running (state {state})", False
    try:
        fields = Path(f"{base}/syscall").read_text().split()
    except OSError:  # not ours to read: fall back to the kernel function it sleeps in
        fields = []
    if fields and fields[0] == "running":
        return "running", f"pid {pid} is running", False
    if not fields or fields[0] == "-1":
        wchan = ""
        with contextlib.suppress(OSError):
            wchan = Path(f"{base}/wchan").read_text()
        kind = "user" if any(w in wchan for w in MULTIPLEX_WCHAN) else "blocked"
        return kind, f"pid {pid} sleeping in {wchan or '?'}", False
    name = SYSCALLS.get(platform.machine(), {}).get(int(fields[0]), f"syscall {fields[0]}")
    args = [int(a, 16) for a in fields[1:7]]
    if name in MULTIPLEX:
        timed = has_timeout(name, args)
        fds = watched(pid, name, args)
        if fds is None:  # cannot see what it watches: it may be its terminal
            return "user", f"pid {pid} in {name}", timed
        targets = [fd_target(pid, fd) for fd in fds]
        shown = ", ".join(f"{fd} {t.split(':')[0]}" for fd, t in zip(fds, targets, strict=True))
        if any(t.startswith(TERMINAL) for t in targets):
            return "user", f"pid {pid} in {name}({shown})", timed
        kind = "network" if any(t.startswith("socket:") for t in targets) else "blocked"
        return kind, f"pid {pid} in {name}({shown}), not on its terminal", timed
    if name in READS or name.startswith(("recv", "accept")):
        target = fd_target(pid, args[0])
        if name in READS and target.startswith(TERMINAL):
            return "user", f"pid {pid} in {name}({args[0]} {target})", False
        if target.startswith("socket:"):
            return "network", f"pid {pid} in {name}({args[0]} socket)", False
        return "blocked", f"pid {pid} in {name}({args[0]} {target})", False
    return "blocked", f"pid {pid} in {name}", sleeps_until(pid, name, args)


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) used so far by `pid` and every process under it."""
    ticks = 0
    for member in descendants(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{member}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_state(pid: int) -> TreeState:
    """Running if any thread of the tree runs; else user if any may be reading its terminal; else
    network if any waits on a socket; else blocked (a wrapper in wait4, a thread in futex)."""
    kinds: list[tuple[str, str, bool]] = []
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
    timed = any(t for _, _, t in kinds)
    for wanted in ("running", "user", "network", "blocked"):
        details = [d for k, d, _ in kinds if k == wanted]
        if details:
            return TreeState(wanted, "; ".join(details), timed)
    return TreeState("blocked", "", timed)


def sockets(pid: int) -> set[str]:
    """The inodes of the sockets the tree holds open."""
    found = set()
    for member in descendants(pid):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{member}/fd"):
                target = fd_target(member, int(fd))
                if target.startswith("socket:["):
                    found.add(target[8:-1])
    return found


# TCP states as /proc/net/tcp writes them (01 ESTABLISHED, 03 SYN_RECV, 08 CLOSE_WAIT, ...), and
# TcpSocket.state whichever source it came from.
LISTEN = "0A"
TIME_WAIT = "06"


@dataclass(frozen=True)
class TcpSocket:
    """A TCP socket of this network namespace, as sock_diag or /proc/net/tcp and tcp6 show it."""

    state: str
    port: int  # its local port
    unread: int  # rx_queue: bytes not read yet, or for a listening socket connections not accepted
    inode: str


def tcp_sockets() -> list[TcpSocket]:
    """Every TCP socket of this network namespace (IPv4, then IPv6) but those in TIME_WAIT, which
    no process holds: asked of the kernel's sock_diag (netlink), else read from /proc/net/tcp*.
    The text tables list the TIME_WAIT ones too and cost about 10 us a socket to write: 15 ms a
    read with a test run's thousands, and the waits read them often."""
    with contextlib.suppress(OSError):
        return [sock for family in (socket.AF_INET, socket.AF_INET6) for sock in _diag_dump(family)]
    return [sock for sock in _proc_tables() if sock.state != TIME_WAIT]


_DIAG_REQUEST = struct.Struct("=IHHII BBBBI 48x")  # nlmsghdr, inet_diag_req_v2 (its sockid all zero)
_DIAG_MESSAGE = struct.Struct("=IHHII BBBB H46x IIIII")  # nlmsghdr, inet_diag_msg (sport, ..., inode)
_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY, _NLMSG_DONE, _NLMSG_ERROR = 4, 20, 3, 2
_NLM_F_REQUEST_DUMP = 0x1 | 0x300


def _diag_dump(family: int) -> Iterator[TcpSocket]:
    states = 0xFFF & ~(1 << int(TIME_WAIT, 16))
    request = _DIAG_REQUEST.pack(_DIAG_REQUEST.size, _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, 1, 0,
                                 family, socket.IPPROTO_TCP, 0, 0, states)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as diag:
        diag.sendall(request)
        while True:
            data, offset = diag.recv(65536), 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if kind == _NLMSG_DONE:
                    return
                if kind == _NLMSG_ERROR or length < 16:
                    raise OSError("sock_diag refused the dump")
                _, _, _, _, _, _, state, _, _, sport, _, rqueue, _, _, inode = _DIAG_MESSAGE.unpack_from(data, offset)
                yield TcpSocket(f"{state:02X}", socket.ntohs(sport), rqueue, str(inode))
                offset += (length + 3) & ~3


def _proc_tables() -> Iterator[TcpSocket]:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9:
                    yield TcpSocket(fields[3], int(fields[1].rsplit(":", 1)[1], 16),
                                    int(fields[4].split(":")[1], 16), fields[9])


def unread_input(pid: int) -> bool:
    """Whether one of the tree's TCP sockets holds bytes it has not read yet, or a connection it has
    not accepted yet (rx_queue of /proc/net/tcp*: a listening socket's backlog): then it has
    input to act on, though it may not have woken up yet."""
    mine = sockets(pid)
    return bool(mine) and any(sock.inode in mine and sock.unread > 0 for sock in tcp_sockets())


def terminal_unread(pid: int) -> int:
    """Bytes typed at the terminal of `pid` (its standard input, a pty) that it has not read yet: in
    canonical mode, those of complete lines (FIONREAD on the terminal, opened here without becoming
    ours). 0 when its input is no terminal or cannot be opened."""
    try:
        name = os.readlink(f"/proc/{pid}/fd/0")
        if not name.startswith(TERMINAL):
            return 0
        fd = os.open(name, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0
    finally:
        os.close(fd)
