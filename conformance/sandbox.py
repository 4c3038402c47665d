"""Running untrusted programs: a student's build, server and client.

Three layers, each doing one job:

- `Sandbox.command()`: the bubblewrap (`bwrap`) command line in which batch starts one
  submission's runner. New network, PID, IPC and UTS namespaces: its network has only loopback,
  and when its runner ends or is killed, the kernel kills every process left in its PID
  namespace. A file system of its own, built from nothing: the system's /usr (with /bin, /lib,
  /lib64 and /sbin as its links), a few files of /etc (the compiler's alternatives, the loader's
  cache, hosts), a new /proc, a /dev with only null, zero, full, random, urandom, tty and
  terminals of its own, the suite's code and Python read-only under /opt/conformance, the
  submission's folder read-only under /opt/submission, and a size-bounded tmpfs at /tmp (where
  its copy is made) and at /dev/shm. No /root, no /home, no /run, no /var, no /sys: no socket
  file of the host is reachable.
- `preexec()`: in each untrusted child (between fork and exec), run by the runner or the suite,
  which are root inside with a few capabilities: limits, then the submission's own uid (an
  unused one, one per submission being graded), no supplementary groups, no capabilities and
  no new privileges. Permissions, not only mounts, then keep the grader's files out, and the
  uid's RLIMIT_NPROC bounds its tasks (the kernel does not enforce it for root).
  `environment()` gives it a clean environment, so nothing the grader exported is inherited.
- `Uids`: the unused uids, one per submission at a time, held with a lock file so that two
  batches on one machine do not share one.

The batch refuses to grade when the sandbox cannot be set up (`check()` says why and how to fix
the machine) unless it is told to run without it (`--no-namespaces --unsafe-no-sandbox`); then
only the per-process part (limits, clean environment, process groups) applies.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import pwd
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Where things are inside the sandbox.
OPT = Path("/opt/conformance")
SUITE = OPT / "suite"  # the suite's code (PYTHONPATH)
VENV = OPT / "venv"  # its Python environment (construct, pexpect, pytest): the `python3` of PATH
BASE = OPT / "python"  # the interpreter that environment is made from, when it is not under /usr
SOURCE = Path("/opt/submission")  # the submission's folder, read-only
KEPT = Path("/opt/kept")  # --keep: where the copy is put back at the end (writable)
WORK = Path("/tmp/submission")  # its copy, on the bounded tmpfs
# The TMPDIR of the runner and the suite: what they hand to a program there (C-SCRIPT-1's script, made
# mode 600 by tempfile) is made readable to the submission's uid as the program starts. Only they
# can write in it.
HANDOFF = Path("/tmp/suite")

# What of the project the suite needs (the rest of it, the grader's outputs say, stays out).
SUITE_FILES = ("conformance", "chatwire.py", "venvboot.py", "PROTOCOL.md", "vectors")
# Of /etc: the compiler's links (cc -> /etc/alternatives/cc), the loader's cache, name lookup of
# localhost. Not passwd, shadow, ssh, ssl, nor anything of the grader's.
ETC_FILES = ("alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "hosts", "host.conf", "nsswitch.conf",
             "gai.conf", "localtime", "protocols", "services")
# What the runner and the suite (root inside, trusted) keep of root's capabilities: to start the
# programs as the submission's uid (SETUID, SETGID, SETPCAP to empty their bounding set), to see
# and kill them (KILL, SYS_PTRACE for /proc/PID/fd), to copy the submission in and out (CHOWN,
# FOWNER, DAC_OVERRIDE, DAC_READ_SEARCH). Not SYS_ADMIN (no mount), NET_*, SYS_MODULE, ...
RUNNER_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_KILL", "CAP_SYS_PTRACE", "CAP_CHOWN", "CAP_FOWNER",
               "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH")

# Limits of every untrusted process.
CPU_SECONDS = 120
MEMORY_BYTES = 2 << 30  # address space: a Python server takes ~250 MB, a C client ~10 MB
FILE_BYTES = 64 << 20
TASKS = 256  # processes and threads of one submission's uid together: a fork bomb stops there
TMP_BYTES = 512 << 20  # its /tmp, which holds its copy: the disk (and memory) its files may take
SHM_BYTES = 64 << 20
NPROC_MARGIN = 256  # without the sandbox: tasks beyond those the user had when the batch started
NPROC_ENV = "CONFORMANCE_NPROC"
UID_ENV = "CONFORMANCE_UID"  # the uid the untrusted programs run as (set by the runner)
# The unused uids: far above those of people (1000...) and of systemd's dynamic users and
# containers (up to 1879048191), in no /etc/passwd.
UID_FIRST = 1_900_000_000
UID_COUNT = 4096

PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 4, 24, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_libc = ctypes.CDLL(None, use_errno=True)


class SandboxError(Exception):
    """The sandbox cannot be set up here; the message says why and how to fix the machine."""


# --- the sandbox of one submission ---------------------------------------------------------------

FIX = ("install bubblewrap (as root: `apt-get install bubblewrap`, which ./compileall does when it runs as "
       "root), and run the batch as root")
UNSAFE = ("or, knowing that a submission then runs with your user's rights, your files and the network, "
          "give --no-namespaces --unsafe-no-sandbox")


def bwrap() -> str | None:
    return shutil.which("bwrap")


@dataclass(frozen=True)
class Python:
    """The suite's Python as the sandbox shows it: binds, the interpreter's path inside, and the
    pyvenv.cfg a virtual environment needs there (its home moved with it)."""

    binds: tuple[tuple[str, str], ...]
    links: tuple[tuple[str, str], ...]
    executable: str
    venv_cfg: str  # the text of VENV/pyvenv.cfg, or "" when not a virtual environment


def python_view() -> Python:
    """sys.prefix (a venv) and sys.base_prefix bound at readable paths: they may lie under /root
    (mode 700, pyenv), which the submission's uid cannot enter and the sandbox does not show."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    base = Path(sys.base_prefix).resolve()
    binds: list[tuple[str, str]] = []
    if base.is_relative_to("/usr"):
        base_inside = base
    else:
        binds.append((str(base), str(BASE)))
        base_inside = BASE
    interpreter = f"{base_inside}/bin/{version}"
    if sys.prefix == sys.base_prefix:
        return Python(tuple(binds), (), interpreter, "")
    prefix = Path(sys.prefix)
    binds.append((str(prefix / "lib"), str(VENV / "lib")))
    links = tuple((interpreter, str(VENV / "bin" / name)) for name in ("python", "python3", version))
    cfg = (f"home = {base_inside}/bin\ninclude-system-site-packages = false\n"
           f"version = {'.'.join(map(str, sys.version_info[:3]))}\n")
    return Python(tuple(binds), links, str(VENV / "bin" / "python3"), cfg)


class Sandbox:
    """The bubblewrap command of one submission's runner."""

    def __init__(self, root: Path, state: Path) -> None:
        """`root`: the project (the suite's code); `state`: a folder of the batch's own, for the
        files the sandbox shows (pyvenv.cfg)."""
        self.root = root
        self.python = python_view()
        self.cfg = state / "pyvenv.cfg"
        if self.python.venv_cfg:
            self.cfg.write_text(self.python.venv_cfg)

    def command(self, source: Path, kept: Path | None = None, program: str = "") -> list[str]:
        """The runner's sandbox for the submission folder `source` (shown read-only), with `kept`
        shown writable (--keep), and `program`, an interpreter of the grader's (--python2), shown
        at its own path, read-only. The runner's own command line comes after it."""
        tool = bwrap()
        if tool is None:
            raise SandboxError(f"bwrap (bubblewrap) is not installed: {FIX}; {UNSAFE}")
        argv = [tool, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--hostname", "sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        for cap in RUNNER_CAPS:
            argv += ["--cap-add", cap]
        argv += ["--ro-bind", "/usr", "/usr"]
        for name in ("bin", "lib", "lib64", "sbin", "lib32", "libx32"):
            top = Path("/") / name
            if top.is_symlink():
                argv += ["--symlink", os.readlink(top), str(top)]
            elif top.is_dir():
                argv += ["--ro-bind", str(top), str(top)]
        argv += ["--perms", "0755", "--dir", "/etc"]  # bwrap would make it mode 700
        for name in ETC_FILES:
            argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(SHM_BYTES), "--tmpfs",
                 "/dev/shm", "--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
        for folder in (OPT.parent, OPT, SUITE, VENV, VENV / "bin"):  # bwrap would make them mode 700
            argv += ["--perms", "0755", "--dir", str(folder)]
        for outside, inside in self.python.binds:
            argv += ["--ro-bind", outside, inside]
        if self.python.venv_cfg:
            argv += ["--ro-bind", str(self.cfg), str(VENV / "pyvenv.cfg")]
        for target, link in self.python.links:
            argv += ["--symlink", target, link]
        for name in SUITE_FILES:
            argv += ["--ro-bind-try", str(self.root / name), str(SUITE / name)]
        argv += interpreter_binds(program)
        argv += ["--ro-bind", str(source), str(SOURCE)]
        if kept is not None:
            argv += ["--bind", str(kept), str(KEPT)]
        argv += ["--chdir", "/tmp", "--"]
        return argv

    def runner_env(self) -> dict[str, str]:
        """The runner's environment: nothing of the grader's."""
        bin_folder = Path(self.python.executable).parent  # the venv's bin, or the interpreter's own
        return {"PATH": f"{bin_folder}:/usr/bin:/bin",
                "PYTHONPATH": str(SUITE), "PYTHONSAFEPATH": "1", "PYTHONDONTWRITEBYTECODE": "1",
                "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/tmp", "TMPDIR": "/tmp"}


def interpreter_binds(program: str) -> list[str]:
    """An interpreter outside /usr (--python2 /opt/py27/bin/python2) at its own path, read-only: its
    folder, and beside a bin/ its lib/; the folders above made readable on the way."""
    if not program or not os.path.isabs(program) or Path(program).is_relative_to("/usr"):
        return []
    folder = Path(program).parent
    shown = [folder, *([folder.parent / "lib"] if folder.name == "bin" else [])]
    argv = []
    for ancestor in reversed(folder.parents):
        if ancestor != Path("/") and ancestor not in (Path("/tmp"), Path("/opt"), OPT):
            argv += ["--perms", "0755", "--dir", str(ancestor)]
    for path in shown:
        argv += ["--ro-bind-try", str(path), str(path)]
    return argv


def check(root: Path) -> str:
    """'' when a submission can be sandboxed here, else why not and what to do."""
    if os.geteuid() != 0:
        return ("the batch runs each submission as an unused uid, which needs root: run it as root (sudo); "
                + UNSAFE)
    if bwrap() is None:
        return f"bwrap (bubblewrap) is not installed: {FIX}; {UNSAFE}"
    with tempfile.TemporaryDirectory(prefix="conformance-probe-") as temp:
        box = Sandbox(root, Path(temp))
        probe = (f"import os; os.setgroups([]); os.setresgid({UID_FIRST}, {UID_FIRST}, {UID_FIRST}); "
                 f"os.setresuid({UID_FIRST}, {UID_FIRST}, {UID_FIRST}); import conformance.runner, pexpect")
        argv = [*box.command(Path(temp)), box.python.executable, "-c", probe]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=box.runner_env(),
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bwrap could not start ({exc}); {UNSAFE}"
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        return (f"bwrap could not make the sandbox here ({why}): new namespaces and mounts must be allowed "
                f"(in a container: run it with --privileged, or allow unshare and mount); {UNSAFE}")
    return ""


class Uids:
    """Unused uids, one per submission being graded: its RLIMIT_NPROC then counts its own tasks
    only, and its programs cannot signal another's. A uid is held with a lock file (flock), so
    that another batch on the machine takes other ones; a uid of /etc/passwd is never taken."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or Path("/run/lock" if os.access("/run/lock", os.W_OK) else tempfile.gettempdir())
        self.held: dict[int, int] = {}  # uid: the lock file's descriptor

    def take(self) -> int:
        known = {entry.pw_uid for entry in pwd.getpwall()}
        for uid in range(UID_FIRST, UID_FIRST + UID_COUNT):
            if uid in self.held or uid in known:
                continue
            fd = os.open(self.folder / f"conformance-uid-{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.held[uid] = fd
            return uid
        raise SandboxError(f"no unused uid left in {UID_FIRST}..{UID_FIRST + UID_COUNT - 1}")

    def give_back(self, uid: int) -> None:
        fd = self.held.pop(uid, None)
        if fd is not None:
            os.close(fd)


# --- inside: the runner's copy --------------------------------------------------------------------


def copy_in(source: Path, work: Path, uid: int) -> None:
    """The submission's folder copied to `work` (files, folders and symbolic links only: a FIFO or
    device would block or leak the copy; a link is copied as a link, never followed), owned by
    `uid`: its programs may write there, and only there (and in /tmp)."""
    def specials(folder: str, names: list[str]) -> list[str]:
        keep = (stat.S_ISREG, stat.S_ISDIR, stat.S_ISLNK)
        return [n for n in names if not any(test(os.lstat(os.path.join(folder, n)).st_mode) for test in keep)]

    shutil.copytree(source, work, symlinks=True, ignore=specials)
    for folder, dirs, files in os.walk(work):
        for name in [*dirs, *files]:
            os.chown(os.path.join(folder, name), uid, uid, follow_symlinks=False)
    os.chown(work, uid, uid)


def copy_out(work: Path, kept: Path) -> None:
    """--keep: the copy as the grading left it, put back for the grader (links as links)."""
    with contextlib.suppress(OSError, shutil.Error):
        shutil.copytree(work, kept, symlinks=True, dirs_exist_ok=True,
                        ignore=lambda folder, names: [n for n in names if not (
                            os.path.isdir(os.path.join(folder, n)) or os.path.isfile(os.path.join(folder, n))
                            or os.path.islink(os.path.join(folder, n)))])


def kill_uid(uid: int) -> None:
    """Every process of `uid` that this process can see (its PID namespace): what a submission
    left running, before its copy is read back."""
    for _ in range(3):
        found = False
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if os.stat(entry.path).st_uid == uid:
                    found = True
                    os.kill(int(entry.name), signal.SIGKILL)
        if not found:
            return


# --- each untrusted process -------------------------------------------------------------------


def protect_self() -> None:
    """For the suite's own processes: not dumpable, so that a program of the same user (without
    the sandbox) cannot trace them nor open their descriptors through /proc."""
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
    counting the user's tasks means reading all of /proc, too much for every program start. In
    the sandbox the programs have a uid of their own, and TASKS is theirs."""
    if NPROC_ENV not in os.environ:
        os.environ[NPROC_ENV] = str(TASKS if UID_ENV in os.environ else user_tasks() + NPROC_MARGIN)


def default_signals() -> None:
    """In the child before exec: Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays
    ignored across exec. A program under test must meet them as a shell would start it (a client
    that forgets to ignore SIGPIPE must be able to die of it, C-15)."""
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(signum, signal.SIG_DFL)


def preexec() -> None:
    """In the child, before exec: limits, then the submission's uid (in the sandbox), then no way
    back to privilege. Must not raise for a missing feature (it would abort the start with an
    unreadable error); a uid that cannot be taken does raise: the program is then not run."""
    default_signals()
    uid = int(os.environ.get(UID_ENV, "0"))
    nproc = int(os.environ.get(NPROC_ENV, "0")) or (TASKS if uid else user_tasks() + NPROC_MARGIN)
    for limit, value in ((resource.RLIMIT_CPU, CPU_SECONDS), (resource.RLIMIT_AS, MEMORY_BYTES),
                         (resource.RLIMIT_FSIZE, FILE_BYTES), (resource.RLIMIT_NPROC, nproc),
                         (resource.RLIMIT_CORE, 0)):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(limit, (value, value))
    with contextlib.suppress(OSError):  # the first the kernel kills when memory runs out, not the suite
        Path("/proc/self/oom_score_adj").write_text("1000")
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text()) if os.path.exists(
        "/proc/sys/kernel/cap_last_cap") else 63
    for cap in range(last + 1):
        # With an empty bounding set, exec gives no capability, even to root or a file's own.
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.EPERM):
            break
    if uid:
        _hand_over()
        _clear_inheritable()
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # from root to another uid: every capability is gone
        if os.getuid() != uid or os.geteuid() != uid:
            raise OSError("the submission's uid could not be taken")
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def _hand_over() -> None:
    """The suite's own temporary files (of HANDOFF, its TMPDIR) made readable, not writable, by the
    program it starts: tempfile makes them mode 600, and the program runs as another uid."""
    if os.environ.get("TMPDIR") != str(HANDOFF):
        return
    with contextlib.suppress(OSError), os.scandir(HANDOFF) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_uid == 0:
                    os.chmod(entry.path, 0o644)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _clear_inheritable() -> None:
    """The inheritable capabilities (the runner's, from bwrap) emptied: setuid clears the others."""
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    if _libc.capget(ctypes.byref(header), data) == 0:
        for half in data:
            half.inheritable = 0
        _libc.capset(ctypes.byref(header), data)


def kill_group(pid: int) -> None:
    """The whole process group of `pid` (its session leader), whatever it forked."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# --- output of untrusted programs, read on the trusted side ------------------------------------


class Bounded:
    """What a stream said, within bounds: its first `head` and last `tail` bytes, and how many
    between them were left out. A program printing gigabytes costs the reader no more."""

    def __init__(self, head: int = 32 << 10, tail: int = 32 << 10) -> None:
        self.head_size, self.tail_size = head, tail
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.head_size - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        self.tail += data
        if len(self.tail) > self.tail_size:
            cut = len(self.tail) - self.tail_size
            self.dropped += cut
            del self.tail[:cut]

    def read_from(self, fd: int) -> None:
        """Everything until end of file on `fd` (closed after)."""
        try:
            while chunk := os.read(fd, 1 << 16):
                self.add(chunk)
        finally:
            os.close(fd)

    def text(self) -> str:
        middle = f"\n[... {self.dropped} bytes left out ...]\n" if self.dropped else ""
        return (bytes(self.head).decode("utf-8", "replace") + middle
                + bytes(self.tail).decode("utf-8", "replace"))
