"""Running untrusted programs: a student's build, server and client.

Three layers, each doing one job:

- `namespace_prefix()`: the `unshare` command line that gives one submission new network, PID
  and mount namespaces. Its network has only loopback, so nothing it runs can reach another
  host or another submission's ports; when the grading of a submission ends or is killed, the
  kernel kills every process left in its PID namespace.
- `enter(work)`: run once, as the first process in those namespaces, before anything of the
  student's runs. Every file system becomes read-only except the submission's own copy;
  /tmp, /run, /var/tmp and /dev/shm become new empty ones; /dev keeps only the harmless
  devices (null, zero, full, random, urandom, tty) and terminals of its own.
- `preexec()`: in each untrusted child, between fork and exec. Resource limits, no
  capabilities and no new privileges. Without capabilities, root cannot remount, override
  permissions, trace the suite or touch devices. The child's own session and process group
  come from the pty (pexpect) or from `start_new_session`. `environment()` gives it a clean
  environment, so nothing the grader exported (tokens, keys) is inherited.

Standard library only: mount(2) and prctl(2) through ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

# Where the submission's copy appears inside its namespace.
WORK = Path("/tmp/submission")

# Limits of every untrusted process (per process; RLIMIT_NPROC counts the user's tasks).
CPU_SECONDS = 120
MEMORY_BYTES = 2 << 30  # address space: a Python server takes ~250 MB, a C client ~10 MB
FILE_BYTES = 64 << 20
NPROC_MARGIN = 256  # tasks beyond those the user had when the batch started: a fork bomb stops there
NPROC_ENV = "CONFORMANCE_NPROC"

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": 1024,
               "nodiratime": 2048, "relatime": 1 << 21}
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 4, 24, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
COVERED = ("/tmp", "/var/tmp", "/run")  # new and empty in the sandbox
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

_libc = ctypes.CDLL(None, use_errno=True)


class SandboxError(Exception):
    """The sandbox could not be set up; the submission is not run without it."""


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(err)}")


def _c(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(_c(source), _c(target), _c(fstype), ctypes.c_ulong(flags), _c(data)), f"mount {target}")


# --- the namespaces ---------------------------------------------------------------------------


def namespace_prefix() -> tuple[list[str], str]:
    """The unshare command that isolates one submission, and '' (or why there is none)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return [], "unshare (util-linux) is not installed"
    base = [unshare, "--net", "--pid", "--mount", "--fork", "--kill-child", "--mount-proc"]
    tries = [base] if os.geteuid() == 0 else [[base[0], "--user", "--map-root-user", *base[1:]]]
    why = ""
    for prefix in tries:
        probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return prefix, ""
        why = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit {probe.returncode}"
    return [], f"new namespaces are not allowed here ({why})"


def enter(work: Path, suite: list[Path]) -> Path:
    """Seal this mount and network namespace around `work`; returns where `work` now is. The
    `suite` folders (the suite's code and its Python) stay where they are, read-only, even when
    they lie under a /tmp that is covered (a clone of the project in /tmp, say)."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Opened now, these stay reachable through /proc/self/fd once /tmp is covered.
    work_fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    host_dev = os.open("/dev", os.O_RDONLY | os.O_DIRECTORY)
    covered = [Path(p) for p in COVERED if os.path.isdir(p) and not os.path.islink(p)]
    under = {path: os.open(path, os.O_RDONLY | os.O_DIRECTORY) for path in {p.resolve() for p in suite}
             if any(path.is_relative_to(c) for c in covered)}
    for point, flags in _mount_points():
        if not point.startswith(("/proc", "/dev")):
            with contextlib.suppress(SandboxError):  # a mount that vanished meanwhile
                _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
    _read_only_bind("/proc/sys")
    _read_only_bind("/proc/sysrq-trigger")
    for tmp in covered:
        _mount("tmpfs", str(tmp), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=256m")
    for path, fd in under.items():
        _bind_fd(fd, path, writable=False)
    _minimal_dev(host_dev)
    _bind_fd(work_fd, WORK, writable=True)
    _loopback_up()
    return WORK


def _bind_fd(fd: int, target: Path, writable: bool) -> None:
    """The folder open as `fd`, mounted at `target` (made on a covering tmpfs)."""
    os.makedirs(target, exist_ok=True)
    _mount(f"/proc/self/fd/{fd}", str(target), None, MS_BIND)
    _mount(None, str(target), None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (0 if writable else MS_RDONLY))
    os.close(fd)


def _mount_points() -> list[tuple[str, int]]:
    """Every mount point with the flags a read-only remount must keep."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        flags = 0
        for option in fields[5].split(","):
            flags |= MOUNT_FLAGS.get(option, 0)
        points.append((fields[4].replace("\\040", " "), flags))
    return points


def _read_only_bind(path: str) -> None:
    if os.path.exists(path):
        _mount(path, path, None, MS_BIND)
        _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def _minimal_dev(host_dev: int) -> None:
    """A new /dev holding only the devices a chat program may need (no disks, no kvm, no
    consoles): a root without capabilities may still open a root-owned device node."""
    staging = "/tmp/.dev"
    os.mkdir(staging)
    _mount("tmpfs", staging, "tmpfs", MS_NOSUID, "mode=755,size=1m")
    for name in DEVICES:
        Path(staging, name).touch()
        _mount(f"/proc/self/fd/{host_dev}/{name}", f"{staging}/{name}", None, MS_BIND)
    for name in ("pts", "shm"):
        os.mkdir(f"{staging}/{name}")
    # Terminals of its own (a new devpts instance), as containers have: the suite's ptys.
    _mount("devpts", f"{staging}/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    os.symlink("pts/ptmx", f"{staging}/ptmx")
    _mount("tmpfs", f"{staging}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{staging}/{name}")
    os.close(host_dev)
    _mount(staging, "/dev", None, MS_MOVE)
    os.rmdir(staging)


def _loopback_up() -> None:
    """`ip link set lo up`, without needing iproute2: a new network namespace starts with lo down."""
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


# --- each untrusted process -------------------------------------------------------------------


def protect_self() -> None:
    """For the suite's own processes: the student's programs run as the same user, and a
    non-dumpable process cannot be traced, nor its descriptors opened through /proc."""
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def environment(home: Path | str) -> dict[str, str]:
    """A clean environment: no variable of the grader's is inherited. The suite's Python comes
    first on PATH, so `python3` has the assignment's packages (construct, pexpect, pytest)."""
    path = ["/usr/local/bin", "/usr/bin", "/bin"]
    if sys.prefix != sys.base_prefix:
        path.insert(0, str(Path(sys.prefix) / "bin"))
    return {"PATH": ":".join(path), "HOME": str(home), "TMPDIR": "/tmp", "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "TERM": "xterm", "PYTHONDONTWRITEBYTECODE": "1"}


def user_tasks() -> int:
    """Tasks (threads) of this user now: RLIMIT_NPROC counts them, across all namespaces."""
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                status = Path(entry.path, "status").read_text()
                fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                if int(fields["Uid"].split()[0]) == uid:
                    count += int(fields["Threads"])
    return count


def fix_task_limit() -> None:
    """RLIMIT_NPROC for every untrusted process of this run, decided once, here, in the parent:
    counting the user's tasks means reading all of /proc, too much for every program start."""
    os.environ.setdefault(NPROC_ENV, str(user_tasks() + NPROC_MARGIN))


def default_signals() -> None:
    """In the child before exec: Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays
    ignored across exec. A program under test must meet them as a shell would start it (a client
    that forgets to ignore SIGPIPE must be able to die of it, C-15)."""
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(signum, signal.SIG_DFL)


def preexec() -> None:
    """In the child, before exec: limits, then no way back to privilege. Must not raise for a
    missing feature (it would abort the start with an unreadable error); the tests check it."""
    default_signals()
    nproc = int(os.environ.get(NPROC_ENV, "0")) or user_tasks() + NPROC_MARGIN  # fix_task_limit() not called
    for limit, value in ((resource.RLIMIT_CPU, CPU_SECONDS), (resource.RLIMIT_AS, MEMORY_BYTES),
                         (resource.RLIMIT_FSIZE, FILE_BYTES), (resource.RLIMIT_NPROC, nproc),
                         (resource.RLIMIT_CORE, 0)):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(limit, (value, value))
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text()) if os.path.exists(
        "/proc/sys/kernel/cap_last_cap") else 63
    for cap in range(last + 1):
        # With an empty bounding set, exec gives even root no capability.
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.EPERM):
            break


def kill_group(pid: int) -> None:
    """The whole process group of `pid` (its session leader), whatever it forked."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
