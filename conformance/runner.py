"""One submission's grading: build, find the programs, choose the mode, run the suite.

`batch` starts one runner per submission, inside the submission's sandbox (conformance/sandbox.py):
there the runner copies the submission to a bounded tmpfs, owned by an unused uid that every
program of the submission runs as. The runner writes one JSON object per line to the descriptor
given as --events-fd (a pipe from the batch; its own stdout and stderr are only diagnostics),
each with its "event":

    {"event": "stage", "text": "building: make"}     what it is doing now
    {"event": "mode", "mode": "framed"}              the mode chosen: framed (PROTOCOL.md) or pair
    {"event": "case", "mode": "server", "rerun": false, "case": {"id": "S-MSG-1", "verdict": "FAIL", ...}}
                                                     a case has ended (the suite's JSON of it)
    {"event": "result", "status": "GRADED", "mode": "framed", "message": "", "log": "", "cases": [...]}
                                                     the last line: the submission's result

It learns of each case from the suite's own event stream (`--events`, conformance/plugin.py),
read through a pipe, never from the suite's terminal output (where the students' screens are).
Nothing of the student's can write to either: no program of theirs inherits either pipe (both are
close-on-exec in the runner and the suite), and their programs run as another uid than the runner
and the suite, which are not dumpable besides: they cannot be traced, signalled, nor their
descriptors opened through /proc.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatwire import NEED_DATA, Connection, Hello, ProtocolError, Role
from conformance import profile as course_profile
from conformance import sandbox
from conformance.checks import CaseFailure
from conformance.options import RunOptions
from conformance.pair import PairRun
from conformance.plugin import Options
from conformance.programs import Policy, Program, listening_ports
from conformance.verdicts import Status, Verdict

CONFIG = "conformance.toml"
DEFAULT_SERVER = ("chatserve.py", "python3 chatserve.py {port}")
DEFAULT_CLIENT = ("chatclient", "./chatclient {host} {port}")
BUILD_SECONDS = 120.0
LOG_CHARS = 4000
MAKEFILES = ("Makefile", "makefile", "GNUmakefile")
# What a build that installs packages runs: the sandbox has no network, so it cannot.
INSTALLS = re.compile(r"\b(pip3?\s+install|python3?\s+-m\s+pip\b|npm\s+(install|ci|i)\b|yarn\b|apt(-get)?\s+install|"
                      r"gem\s+install|cargo\s+(build|install)|go\s+(get|mod\s+download)|curl\s|wget\s)")
NO_NETWORK = ("the sandbox has no network, so the build cannot install packages: hand in what it needs with the "
              "sources (a vendored copy), or install it on the grading machine and build without installing")


class NotGradable(Exception):
    """The submission ends before its cases: BUILD-FAIL or NO-START (or ERROR, when the suite
    itself gave no results), with one line why."""

    def __init__(self, status: Status, message: str, log: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.log = status, message, log


@dataclass
class Outcome:
    status: Status = Status.GRADED
    mode: str = ""
    message: str = ""
    log: str = ""
    cases: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "mode": self.mode, "message": self.message, "log": clipped(self.log),
                "cases": self.cases}


def clipped(text: str, most: int = LOG_CHARS) -> str:
    """`text`, or its head and tail when longer than `most`, saying how much is left out."""
    if len(text) <= most:
        return text
    return f"{text[:most // 2]}\n[... {len(text) - most} characters left out ...]\n{text[-(most // 2):]}"


EMIT_LOCK = threading.Lock()  # the server and client suites run side by side
EVENTS: list[int] = [1]  # the descriptor of the events: --events-fd, else stdout


def emit(event: str, **fields: Any) -> None:
    """One line to the batch: a JSON object with its "event" (see the module docstring)."""
    line = (json.dumps({"event": event, **fields}, ensure_ascii=True) + "\n").encode()
    with EMIT_LOCK:
        view = memoryview(line)
        while view:
            view = view[os.write(EVENTS[0], view):]


# --- building ---------------------------------------------------------------------------------


OWN_BYTES = 4 << 20  # the most the runner reads of one file of a submission's


def read_own(path: Path, strict: bool = False) -> str:
    """A file of the submission's, read by the runner (root inside the sandbox): not through a
    link (the runner would read what a link points to with its rights), at most OWN_BYTES. ''
    for one it cannot read, unless `strict` (then OSError)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{path.name} is not a regular file")
            data = os.read(fd, OWN_BYTES)
        finally:
            os.close(fd)
    except OSError:
        if strict:
            raise
        return ""
    return data.decode("utf-8", "replace")


def run_bounded(argv: list[str], cwd: Path, seconds: float) -> tuple[int | None, str]:
    """An untrusted command with its output; None for the status when it ran out of time (then
    its whole process group is killed, so a compiler it started cannot hold the pipe open)."""
    read, write = os.pipe()
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=sandbox.environment(cwd), stdin=subprocess.DEVNULL,
                                stdout=write, stderr=write, preexec_fn=sandbox.preexec, start_new_session=True)
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)
    out = sandbox.Bounded()  # a build that prints gigabytes: its head and tail are kept
    reader = threading.Thread(target=out.read_from, args=(read,), daemon=True)
    reader.start()
    try:
        proc.wait(timeout=seconds)
        status: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        status = None
    sandbox.kill_group(proc.pid)  # what it started and left behind holds the pipe no longer
    proc.wait()
    reader.join(timeout=5)
    return status, out.text()


def build_commands(work: Path) -> list[list[str]]:
    """Its own ./compileall, else its Makefile (`make -B`: every target is made again, so that a
    binary committed with the sources is not taken for one built from them), else one program per
    C/C++ file with a main()."""
    if (work / "compileall").is_file():
        return [["./compileall"] if os.access(work / "compileall", os.X_OK) else ["sh", "compileall"]]
    if any((work / name).is_file() for name in MAKEFILES):
        return [["make", "-B"]]
    commands = []
    for compiler, pattern in (("cc", "*.c"), ("c++", "*.cpp")):
        sources = sorted(p.name for p in work.glob(pattern))
        mains = [s for s in sources if re.search(r"\bmain\s*\(", read_own(work / s))]
        others = [s for s in sources if s not in mains]
        for main in mains:
            commands.append([compiler, "-O2", "-o", Path(main).stem, main, *others, "-lm"])
    return commands


def first_error(output: str) -> str:
    """The line a student should read first: the compiler's first error."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for pattern in (r":\d+(:\d+)?: (fatal )?error:", r"\berror\b"):
        for line in lines:
            if re.search(pattern, line, re.IGNORECASE):
                return line[:300]
    return lines[-1][:300] if lines else ""


def installs_packages(work: Path, output: str) -> bool:
    """Whether a build (its files, its output) installs packages: pip, npm, apt..."""
    scripts = [work / "compileall", *(work / name for name in MAKEFILES)]
    texts = [output] + [read_own(p) for p in scripts if p.is_file()]
    return any(INSTALLS.search(text) for text in texts)


def executables(work: Path) -> dict[str, int]:
    """The executable files at the top of `work`, with their modification times."""
    found = {}
    for entry in os.scandir(work):
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mode & 0o111:
                found[entry.name] = entry.stat().st_mtime_ns
    return found


def committed_binaries(work: Path) -> list[str]:
    """The compiled programs (ELF files) handed in at the top of `work`, beside what builds them."""
    found = []
    for name in executables(work):
        with contextlib.suppress(OSError):
            if read_own(work / name, strict=True).startswith("\x7fELF"):
                found.append(name)
    return sorted(found)


def build(work: Path, run: RunOptions) -> tuple[str, list[str]]:
    """Runs the build; returns its output and the executables it made (new, or written again), or
    raises NotGradable('BUILD-FAIL'). A compiled program handed in with what builds it is removed
    first: a build that skips what exists (a ./compileall that builds only what is missing, a
    Makefile older than it) would leave it in place, graded for sources it was not built from."""
    log = []
    commands = build_commands(work)
    if commands and (stale := committed_binaries(work)):
        for name in stale:
            (work / name).unlink()
        log.append(f"removed before the build, as handed in compiled: {', '.join(stale)}\n")
    before = executables(work)
    for argv in commands:
        emit("stage", text="building: " + shlex.join(argv))
        status, out = run_bounded(argv, work, BUILD_SECONDS * run.timeout_scale)
        log.append(f"$ {shlex.join(argv)}\n{out}")
        if status is None:
            raise NotGradable(Status.BUILD_FAIL, f"{shlex.join(argv)} did not finish within "
                                                 f"{BUILD_SECONDS * run.timeout_scale:g} s", "".join(log))
        if status != 0:
            why = first_error(out) or f"{shlex.join(argv)} exited with status {status}"
            if installs_packages(work, out):
                why += f"; {NO_NETWORK}"
            raise NotGradable(Status.BUILD_FAIL, why, "".join(log))
    made = [name for name, mtime in executables(work).items() if before.get(name) != mtime
            and not name.endswith((".o", ".a", ".so", ".sh", ".py")) and name not in ("compileall", *MAKEFILES)]
    return "".join(log), sorted(made)


# --- the programs and the mode ----------------------------------------------------------------


@dataclass
class Programs:
    server: str
    client: str
    mode: str  # "framed", "pair", or "" to probe
    notes: list[str] = field(default_factory=list)  # how a program was found, when not by its usual name


@dataclass(frozen=True)
class Templates:
    """What the grader said for the whole batch: --server, --client, --python2, --profile."""

    server: str = ""
    client: str = ""
    python2: str = ""
    course: str = ""  # the course profile's TOML, read before the sandbox hides its file


def named(work: Path, name: str) -> str | None:
    """The file of `work` called `name`, in any case (chatClient for chatclient)."""
    if (work / name).is_file():
        return name
    return next((p.name for p in sorted(work.iterdir()) if p.is_file() and p.name.lower() == name.lower()), None)


def default_server(work: Path) -> tuple[str, str] | None:
    """chatserve.py, or a Python file named chatserve without .py (any case)."""
    for name in ("chatserve.py", "chatserve"):
        found = named(work, name)
        if found:
            return f"python3 {shlex.quote(found)} {{port}}", "" if found == DEFAULT_SERVER[0] else found
    return None


def default_client(work: Path, made: list[str], server: str) -> tuple[str, str] | None:
    """chatclient (any case), chatclient.py, or the one program the build made (not the server)."""
    found = named(work, "chatclient")
    if found:
        return f"./{shlex.quote(found)} {{host}} {{port}}", "" if found == DEFAULT_CLIENT[0] else found
    found = named(work, "chatclient.py")
    if found:
        return f"python3 {shlex.quote(found)} {{host}} {{port}}", found
    others = [name for name in made if name not in server.split()]
    clients = [name for name in others if "client" in name.lower()] or others
    if len(clients) == 1:
        return f"./{shlex.quote(clients[0])} {{host}} {{port}}", f"{clients[0]} (the program the build made)"
    return None


def find_programs(work: Path, made: list[str] | None = None, templates: Templates = Templates()) -> Programs:
    """What the submission's conformance.toml says, else the batch's --server and --client, else
    the usual names (in any case, chatserve without .py, or the one program its build made)."""
    config: dict[str, Any] = {}
    if (work / CONFIG).is_file():
        try:
            config = tomllib.loads(read_own(work / CONFIG))
        except tomllib.TOMLDecodeError as exc:
            raise NotGradable(Status.NO_START, f"{CONFIG}: {exc}") from None
    found: list[str] = []
    notes: list[str] = []
    for role, (default_file, _) in (("server", DEFAULT_SERVER), ("client", DEFAULT_CLIENT)):
        command = config.get(role)
        if command is None and getattr(templates, role):
            command = getattr(templates, role)
        if command is None:
            usual = default_server(work) if role == "server" else default_client(work, made or [], found[0])
            if usual is not None:
                command, note = usual
                if note:
                    notes.append(f"{role}: {note}")
        if not isinstance(command, str) or "{port}" not in command:
            raise NotGradable(Status.NO_START, f"no {role}: {default_file} not found, and {CONFIG} does not name one "
                                          f"({role} = \"COMMAND with {{port}}\")")
        command, note = python2_checked(work, command, templates.python2)
        found.append(command)
        notes += [f"{role}: {note}"] if note else []
    mode = config.get("mode", "")
    if mode not in ("", "framed", "pair"):
        raise NotGradable(Status.NO_START, f"{CONFIG}: mode must be \"framed\" or \"pair\", not {mode!r}")
    return Programs(found[0], found[1], mode, notes)


# Python 2 only: what Python 3 cannot compile (a heuristic, tried on the line where compile() fails).
PYTHON2 = ((re.compile(r"^\s*print\s+(?![\s(=.,)\]}:;+*/%&|^<>!-])"), "print statement"),
           (re.compile(r"^\s*print\s*$"), "print statement"),
           (re.compile(r"^\s*except\s+[\w.]+\s*,\s*\w+\s*:"), "except X, e"),
           (re.compile(r"^\s*raise\s+[\w.]+\s*,"), "raise X, text"),
           (re.compile(r"^\s*exec\s+[\"'\w]"), "exec statement"),
           (re.compile(r"\b0[0-7]+[lL]?\b|\b\d+[lL]\b"), "Python 2 number"),
           (re.compile(r"`[^`]+`"), "backquotes"),
           (re.compile(r"<>"), "<> operator"))


def python2_reason(path: Path) -> str | None:
    """Why `path` is Python 2 ("print statement, line 12"), or None: it compiles under Python 3, or
    what breaks it is not Python 2 syntax."""
    try:
        source = read_own(path, strict=True)
    except OSError:
        return None
    try:
        compile(source, str(path), "exec", dont_inherit=True)
        return None
    except SyntaxError as exc:
        broken = exc.lineno or 0
    except ValueError:
        return None
    lines = source.splitlines()
    if 1 <= broken <= len(lines):  # Python 3 stops at the first line of Python 2 syntax
        line = lines[broken - 1].split("#")[0]
        for pattern, what in PYTHON2:
            if pattern.search(line):
                return f"{what}, line {broken}"
    return None


def python2_checked(work: Path, command: str, python2: str) -> tuple[str, str]:
    """`command`, run with --python2 where the Python file it runs is Python 2 (and a note that
    says so); NotGradable when it is and no Python 2 was given."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command, ""
    if not words or not re.fullmatch(r"(.*/)?python[0-9.]*", words[0]):
        return command, ""
    script = next((w for w in words[1:] if not w.startswith("-")), "")
    if not script or not (work / script).is_file():
        return command, ""
    why = python2_reason(work / script)
    if why is None:
        return command, ""
    if not python2:
        raise NotGradable(Status.NO_START, f"{script} is Python 2 ({why}); give --python2 PATH")
    return shlex.join([python2, *words[1:]]), f"{script} is Python 2 ({why}), run with {python2}"


def start_server(command: str, run: RunOptions) -> tuple[Program, int]:
    """The server on a free port once it listens, started as pair mode starts one (its handle
    question answered, if it asks one first); NotGradable('NO-START') if it never listens, saying
    what was seen (a port of its own it listens on instead) and how long it was waited for."""
    opts = Options(mode="pair", server_command=shlex.split(command), run=run)
    started: list[Program] = []
    pair = PairRun(opts, started.append)
    began = time.monotonic()
    try:
        side = pair.start_server()
    except CaseFailure as exc:  # ProgramDied too: it could not start, or exited
        waited = time.monotonic() - began
        seen = []
        if started and started[0].child.isalive():
            others = [p for p in listening_ports(started[0].pid) if p != pair.port]
            if others:
                seen.append(f"it listens on port {', '.join(map(str, others))} instead (the port must come from "
                            "{port} in its command: give its real arguments with --server or a conformance.toml)")
        transcript = started[0].transcript if started else ""
        if "SyntaxError" in transcript and "print" in transcript:
            seen.append("its SyntaxError looks like Python 2: give --python2 PATH")
        for program in started:
            program.stop()
        message = f"{exc.what} (waited {waited:.1f} s)" + "".join(f"; {s}" for s in seen)
        raise NotGradable(Status.NO_START, message, transcript) from None
    return side.program, pair.port


PROBE_LOOK = 0.05  # how often the probe asks whether a server that has not answered is at rest


def speaks_framed(port: int, run: RunOptions, server: Program) -> bool:
    """Whether the server answers a HELLO of PROTOCOL.md with its own HELLO; not if it comes to
    rest without one (a plain-text server waits for its operator, or for a line of the client's)."""
    conn = Connection(Role.CLIENT)
    deadline = time.monotonic() + run.step
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=run.step) as sock:
            sock.sendall(conn.send(Hello("Grader")))
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(min(left, PROBE_LOOK))
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    if server.idle():
                        return False
                    continue
                if not data:
                    return False
                conn.receive_data(data)
                event = conn.next_event()
                if event is not NEED_DATA:
                    return isinstance(event, Hello)
    except (OSError, ProtocolError):
        pass
    return False


def choose_mode(programs: Programs, run: RunOptions) -> str:
    emit("stage", text="probing the server")
    server, port = start_server(programs.server, run)
    try:
        framed = speaks_framed(port, run, server)
    finally:
        server.stop()
    return programs.mode or ("framed" if framed else "pair")


# --- the suite --------------------------------------------------------------------------------


def run_suite(mode: str, programs: Programs, run: RunOptions, rerun: bool = False,
              course: str = "", passed_on: bool = True) -> list[dict[str, Any]]:
    """One `python3 -m conformance MODE` run; its cases, from its event stream (read through a
    pipe that no program under test inherits), each passed on to the batch as it ends. A course
    profile goes to it through a pipe of its own too: no file a student's program could change.
    Without `passed_on`, the cases are only returned."""
    if mode == "pair":
        target = ["--server", programs.server, "--client", programs.client]
    else:
        target = ["--", *shlex.split(programs.server if mode == "server" else programs.client)]
    read, write = os.pipe()
    passed = [write]
    profile: list[str] = []
    if course:
        profile_read, profile_write = os.pipe()
        with open(profile_write, "w", encoding="utf-8") as out:  # a profile is far below a pipe's 64 KiB
            out.write(course)
        passed.append(profile_read)
        profile = ["--profile", f"/dev/fd/{profile_read}"]
    argv = [sys.executable, "-m", "conformance", mode, "--untrusted", *run.to_argv(), *profile,
            "--events", f"/dev/fd/{write}", *target]
    out_read, out_write = os.pipe()
    proc = subprocess.Popen(argv, stdout=out_write, stderr=out_write, stdin=subprocess.DEVNULL,
                            pass_fds=tuple(passed), preexec_fn=suite_limits)
    for fd in [*passed[1:], out_write]:
        os.close(fd)
    os.close(write)
    # The suite's own output, for a run that ends without its results: read beside, so that its pipe
    # never fills, within bounds (its head and tail).
    tail = sandbox.Bounded(head=4 << 10, tail=8 << 10)
    reader = threading.Thread(target=tail.read_from, args=(out_read,), daemon=True)
    reader.start()
    cases: list[dict[str, Any]] = []
    ended = False
    with open(read, encoding="utf-8", errors="replace") as events:
        for line in events:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "case":
                case = {key: value for key, value in event.items() if key != "event"}
                cases.append(case)
                if passed_on:
                    emit("case", mode=mode, rerun=rerun, case=case)
            elif event.get("event") == "end":
                ended = True
    proc.wait()
    reader.join(timeout=5)
    if not ended:
        raise NotGradable(Status.ERROR, f"the suite's {mode} run ended with status {proc.returncode} and no results",
                          tail.text())
    return cases


SUITE_MEMORY = 6 << 30  # the suite's address space: it keeps each program's screen, which a flood could grow


def suite_limits() -> None:
    """The suite run's own bound: a program that floods its screen ends that run (ERROR for its
    submission) before it takes the machine's memory."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (SUITE_MEMORY, SUITE_MEMORY))


PAIR_GATE = "P-INFER-1"  # every other pair case needs it (the pair starts, as the suite inferred)
PAIR_SLICES = 3  # the other pair cases run in this many suites side by side: each is mostly waiting


def pair_suite(programs: Programs, run: RunOptions, course: str = "") -> list[dict[str, Any]]:
    """The pair cases: PAIR_GATE alone first; once it passes, the others in PAIR_SLICES runs side
    by side (each case starts a pair of its own, on ports of its own). Where it does not pass, one
    run of them all, in which the suite itself BLOCKs what needs it."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        listed = pool.submit(lambda: [c.id for c in course_profile.collect() if c.mode == "pair"])
        gate = run_suite("pair", programs, run.with_cases([PAIR_GATE]), course=course, passed_on=False)
        ids = listed.result()
    if [c["verdict"] for c in gate] not in ([Verdict.PASS], [Verdict.WARN]):
        return run_suite("pair", programs, run, course=course)
    emit("case", mode="pair", rerun=False, case=gate[0])
    others = [cid for cid in ids if cid != PAIR_GATE]
    slices = [others[k::PAIR_SLICES] for k in range(PAIR_SLICES) if others[k::PAIR_SLICES]]
    with ThreadPoolExecutor(max_workers=len(slices)) as pool:
        parts = list(pool.map(lambda part: run_suite("pair", programs, run.with_cases(part), course=course), slices))
    order = {cid: i for i, cid in enumerate(ids)}
    return sorted(gate + [c for part in parts for c in part], key=lambda c: order.get(c["id"], len(order)))


def with_reruns(mode: str, programs: Programs, run: RunOptions, course: str = "") -> list[dict[str, Any]]:
    """The suite, then its FAILed cases once more: one that passes the second time is FLAKY."""
    emit("stage", text=f"{mode} cases")
    if mode == "pair" and not run.cases:
        cases = pair_suite(programs, run, course)
    else:
        cases = run_suite(mode, programs, run, course=course)
    failed = [c["id"] for c in cases if c["verdict"] == Verdict.FAIL]
    if not failed:
        return cases
    emit("stage", text=f"re-running {len(failed)} failed {mode} case(s)")
    again = {c["id"]: c for c in run_suite(mode, programs, run.with_cases(failed), rerun=True, course=course)}
    for case in cases:
        second = again.get(case["id"])
        if case["verdict"] == Verdict.FAIL and second and second["verdict"] in (Verdict.PASS, Verdict.WARN):
            case["verdict"] = Verdict.FLAKY
            case["details"] = ["FAILed on the first run and passed on the re-run; the first run said:",
                               *case["details"]]
    return cases


def top_folder(work: Path) -> Path:
    """`work`, or its single folder when the programs are one folder down (a zip's top folder)."""
    entries = [p for p in work.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
    folders = [p for p in entries if p.is_dir() and not p.is_symlink()]
    if len(folders) == 1 and not any(p.is_file() for p in entries if p.name != "README.txt" and p.suffix != ".md"):
        return folders[0]
    return work


def grade(work: Path, run: RunOptions, templates: Templates = Templates()) -> Outcome:
    outcome = Outcome()
    notes = []
    try:
        inner = top_folder(work)
        if inner != work:  # its programs are one folder down: that folder is built and graded
            notes.append(f"programs in its folder {inner.name}/")
            os.chdir(inner)
            work = inner
        outcome.log, made = build(work, run)
        programs = find_programs(work, made, templates)
        outcome.message = "; ".join(notes + programs.notes)
        outcome.mode = choose_mode(programs, run)
        emit("mode", mode=outcome.mode)
        modes = ["pair"] if outcome.mode == "pair" else ["server", "client"]
        # Side by side: most of a run is waiting (for a 10 s handshake TIMEOUT, for quiet).
        with ThreadPoolExecutor(max_workers=len(modes)) as pool:
            for cases in pool.map(lambda mode: with_reruns(mode, programs, run, templates.course), modes):
                outcome.cases += cases
    except NotGradable as exc:
        outcome.status, outcome.log = exc.status, exc.log or outcome.log
        outcome.message = "; ".join([exc.message, *notes])
    return outcome


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m conformance.runner", description=__doc__.split("\n")[0])
    parser.add_argument("work", type=Path, help="the submission's copy (made by batch), or in the sandbox its "
                                                "folder, read-only, which the runner copies first")
    parser.add_argument("--uid", type=int, default=0, help="in the sandbox: the unused uid its programs run as")
    parser.add_argument("--events-fd", type=int, default=1, metavar="FD", help="where the events go (a pipe)")
    parser.add_argument("--keep", action="store_true", help="in the sandbox: put the copy back at the end")
    parser.add_argument("--server", default="", metavar="COMMAND", help="the server command, if no conformance.toml")
    parser.add_argument("--client", default="", metavar="COMMAND", help="the client command, if no conformance.toml")
    parser.add_argument("--python2", default="", metavar="PATH", help="a Python 2, for programs in Python 2")
    parser.add_argument("--profile", default="", metavar="FILE", help="the course profile (its limits and texts)")
    RunOptions.add_arguments(parser)
    args = parser.parse_args(argv)
    EVENTS[0] = args.events_fd
    if args.events_fd > 2:
        os.set_inheritable(args.events_fd, False)  # no program, nor the suite, inherits it
    course = course_profile.resolve(args.profile).read_text(encoding="utf-8") if args.profile else ""
    sandbox.protect_self()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # batch stops us; a student's kill -INT must not
    Policy.untrusted = True
    work = args.work
    if args.uid:  # in the sandbox: a copy of its own on the bounded tmpfs, its programs as its uid
        os.environ[sandbox.UID_ENV] = str(args.uid)
        os.environ[sandbox.NPROC_ENV] = str(sandbox.TASKS)
        os.umask(0o022)
        sandbox.HANDOFF.mkdir(mode=0o755, exist_ok=True)
        os.environ["TMPDIR"] = str(sandbox.HANDOFF)
        work = sandbox.WORK
        try:
            sandbox.copy_in(args.work, work, args.uid)
        except (OSError, shutil.Error) as exc:
            emit("result", **Outcome(Status.ERROR, message=f"could not copy the submission: {exc}").as_json())
            return 0
    os.chdir(work)
    try:
        outcome = grade(work, RunOptions.from_args(args), Templates(args.server, args.client, args.python2, course))
    except Exception as exc:  # the runner's own failure: the batch hears of it as ERROR, with why
        import traceback
        outcome = Outcome(Status.ERROR, message=f"the runner failed: {type(exc).__name__}: {exc}",
                          log=traceback.format_exc())
    if args.uid:
        sandbox.kill_uid(args.uid)  # whatever the student left behind, before its copy is read
        if args.keep and sandbox.KEPT.is_dir():
            sandbox.copy_out(work, sandbox.KEPT)
    emit("result", **outcome.as_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
