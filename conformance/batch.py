"""Grading a whole class: `python3 -m conformance batch SUBMISSIONS/`.

Each subfolder of SUBMISSIONS is one student's server and client. For each, in parallel up to
the number of cores: start a runner (conformance/runner.py) in its sandbox
(conformance/sandbox.py: bubblewrap, an unused uid). The runner copies it, builds it, finds its
programs, probes its server for the framed protocol, and runs the suite, and tells the batch on a
pipe of its own (JSON lines). This module calibrates the timeouts on the reference first,
bounds each submission's wall time, shows progress, and writes the terminal summary, the CSV,
the JSON and the HTML report.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import resource
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatwire import printable
from conformance import feedback, report, sandbox
from conformance import profile as course
from conformance.options import RunOptions
from conformance.plugin import document
from conformance.verdicts import Status, Verdict

ROOT = Path(__file__).resolve().parent.parent
VERDICTS = tuple(Verdict)  # a run's five, and FLAKY: only a batch re-runs its FAILs
MODE_ORDER = ("server", "client", "pair")
# Calibration: the reference's run of these cases took about 2 x CALIBRATION_SECONDS of CPU (user
# and system, of the suite and all it started) on the 2-core machine the suite was written on, where
# timeouts x2 make it pass whatever else runs there; a slower grading machine stretches every
# timeout more. CPU time, not wall time: another load on the machine changes it little (0.59 s there
# idle, 0.66 to 0.71 s at load 10, where the wall time went from 1.2 to 1.5 s and the suite's own
# time from 0.45 to 0.99 s), so that one machine gives one factor; the baseline puts that machine in
# the middle of x2's band (0.51 to 0.77 s). The best of CALIBRATION_RUNS is taken, and the factor is
# one of SCALE_STEPS.
CALIBRATION_CASES = ("S-LISTEN-1", "S-HELLO-1[whole]", "S-MSG-1[whole]", "S-QUIT-1", "S-NEXT-1")
CALIBRATION_SECONDS = 0.32
CALIBRATION_RUNS = 2
SCALE_STEPS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0)
SCALE_TOLERANCE = 1.25  # a measured ratio up to 25% above a step still gives that step
CALIBRATION_CACHE = ".conformance-calibration.json"  # beside the output files, for --resume
# Grading is mostly waiting (for a program to come to rest, for a timeout): on 2 cores the test class
# took 126 s at 4 jobs against 214 s at 2 (bench/README.md).
JOBS_PER_CORE = 2
WALL_TIME = 45.0  # seconds, before scaling: a framed submission takes about 15 s, a pair one 20 s, and a pair
# with a defect up to 35 s (its FAILs waited out, then re-run once)
# Once its cases run, a submission none of whose cases ends for STALL_STEPS steps (--timeout, scaled),
# and at least STALL_FLOOR seconds, is HUNG: on a server that stops answering, each case waits out
# its steps (three: 30 s per case at x2), so that the wall time alone would let it hold a worker
# for long. One case of a defective program may take those three steps too (a wait that times out,
# then its teardown's), and must not make it HUNG; the longest case of a working program is
# S-TIMEOUT-1's, about 11 s (the protocol's own 10 s).
STALL_STEPS = 4
STALL_FLOOR = 15.0

EPILOG = """Each subfolder of SUBMISSIONS is one submission. It is built with its own ./compileall,
else its Makefile, else by compiling each C/C++ file that has a main() with the other sources. Its
server is `python3 chatserve.py {port}` and its client `./chatclient {host} {port}`, unless a
conformance.toml in it says otherwise:

    server = "python3 myserver.py {port}"
    client = "./myclient {host} {port}"
    mode = "pair"          # optional; normally decided by probing the server with a HELLO

Each submission's CSV row and JSON record are written as soon as it is graded; the HTML report at
the end. Interrupted (Ctrl-C, SIGTERM), the batch writes what it finished (the report marked
partial); --resume, with the same output files, grades only the submissions they do not hold yet.

Exit status: 0 once every submission has a verdict, 2 for a usage error or when the reference
itself fails on this machine (grading would be unfair), 130 after Ctrl-C and 143 after SIGTERM
(what was finished is written)."""


def add_parser(modes: Any) -> None:
    parser = modes.add_parser("batch", help="grade every submission in a folder", epilog=EPILOG,
                              description="Grade a folder of submissions: one server and client each.",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", type=Path, metavar="SUBMISSIONS", help="a folder with one subfolder each")
    parser.add_argument("--report", type=Path, metavar="FILE", help="write the HTML report (one page) to FILE")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write one row per submission to FILE")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write everything, as JSON, to FILE")
    parser.add_argument("--jobs", type=int, default=JOBS_PER_CORE * (os.cpu_count() or 1), metavar="N",
                        help=f"submissions graded at once (default: {JOBS_PER_CORE} per core: grading is mostly "
                             "waiting for the programs)")
    RunOptions.add_arguments(parser, calibrated=True)
    parser.add_argument("--wall-time", type=float, default=WALL_TIME, metavar="SECONDS",
                        help="the most one submission may take, before scaling; then it is killed and HUNG "
                             f"(default {WALL_TIME:g})")
    # -- real class folders and --resume (issue "Grade a real class")
    parser.add_argument("--resume", action="store_true",
                        help="grade only the submissions that the --json (else --csv) file does not hold yet, "
                             "then write every output as one uninterrupted run would")
    parser.add_argument("--server", metavar="COMMAND",
                        help="the server command of every submission, e.g. \"python3 server.py {port}\" "
                             "(a folder's conformance.toml still wins)")
    parser.add_argument("--client", metavar="COMMAND",
                        help="the client command of every submission, e.g. \"./client {host} {port}\" "
                             "(a folder's conformance.toml still wins)")
    parser.add_argument("--python2", metavar="PATH",
                        help="a Python 2 interpreter, run instead of python3 for a program written in Python 2")
    # -- points and feedback (issue "Grade a real class": conformance/profile.py, conformance/feedback.py)
    parser.add_argument("--profile", metavar="FILE",
                        help="a course profile (TOML; 'default' for the one shipped): each submission's points "
                             "in the CSV, the JSON and the report")
    parser.add_argument("--feedback", type=Path, metavar="DIR",
                        help="write one Markdown file per submission to DIR: its points, each case that did not "
                             "pass and the command that re-runs it (scored with --profile, else the default)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies (their path is printed)")
    parser.add_argument("--no-namespaces", action="store_true",
                        help="run without the sandbox: refused unless --unsafe-no-sandbox is given too")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="with --no-namespaces: grade without the sandbox, knowing that each submission then "
                             "runs with this user's rights, files and network (only limits, clean environments "
                             "and process groups remain)")
    # -- past one machine (issue 15): `merge` (conformance/merge.py) joins the shards' --json files
    parser.add_argument("--shard", type=shard_spec, metavar="K/N",
                        help="grade only the K-th of N slices of the class: every N-th submission in name order, "
                             "from the K-th (the same on every machine); `merge` joins the slices' --json files")


# --- one submission ---------------------------------------------------------------------------


@dataclass
class Submission:
    name: str
    source: Path
    status: Status = Status.WAITING
    mode: str = ""
    message: str = ""
    log: str = ""
    seconds: float = 0.0
    current: str = "waiting"  # what it is doing now, for the progress line
    last: dict[str, str] = field(default_factory=dict)  # the last case to end, by mode
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    loaded: dict[str, Any] | None = None  # its record, as --resume read it back from the JSON
    progress: float = 0.0  # when its last case ended (or its cases began), for the stall limit
    points: dict[str, Any] | None = None  # with a course profile: its points (conformance/profile.py)

    def summary(self) -> dict[str, int]:
        counts = Counter(case["verdict"] for case in self.cases.values())
        return {verdict: counts[verdict] for verdict in VERDICTS}

    def row(self) -> dict[str, Any]:
        if self.loaded is not None:
            return self.loaded
        return {"name": self.name, "status": self.status, "mode": self.mode, "message": self.message,
                "log": self.log, "seconds": round(self.seconds, 1), "summary": self.summary(), "results": self.cases,
                **({"points": self.points} if self.points is not None else {})}


def shown(text: str) -> str:
    return printable(text.encode("utf-8", "replace"))


def copy_submission(source: Path, target: Path) -> None:
    """Files, folders and symbolic links only: a FIFO or device in a submission would block or
    leak the copy."""
    def specials(folder: str, names: list[str]) -> list[str]:
        keep = (stat.S_ISREG, stat.S_ISDIR, stat.S_ISLNK)
        return [n for n in names if not any(test(os.lstat(os.path.join(folder, n)).st_mode) for test in keep)]

    shutil.copytree(source, target, symlinks=True, ignore=specials)


class Grading:
    """The runs of a batch: settings, the sandbox, and the progress display."""

    def __init__(self, args: argparse.Namespace, run: RunOptions, box: sandbox.Sandbox | None, temp: Path) -> None:
        self.args, self.run, self.box, self.temp = args, run, box, temp
        self.uids = sandbox.Uids()  # one unused uid per submission being graded (its programs run as it)
        self.lock = threading.Lock()
        self.done = 0
        self.total = 0
        self.running: list[Submission] = []
        self.runners: set[int] = set()  # process groups of the runners going on
        self.cancelled = False
        self.outputs: Outputs | None = None
        self.scorer: course.Scorer | None = None  # --profile / --feedback
        self.tty = sys.stdout.isatty()
        sandbox.fix_task_limit()  # inherited by every runner, and so by every student's process
        # The suite is installed (pip, or ./compileall's editable install): no folder a runner or its
        # suite starts in (a student's) comes first on sys.path, where its chatwire.py would be ours.
        self.env = {**os.environ, "PYTHONSAFEPATH": "1"}

    # -- progress

    def say(self, text: str) -> None:
        """A line of progress. Names and messages are the students': no escape reaches the terminal."""
        with self.lock:
            if self.tty:
                sys.stdout.write("\r\x1b[K")
            sys.stdout.write(shown(text) + "\n")
            self._status_line()
            sys.stdout.flush()

    def update(self, sub: Submission, current: str) -> None:
        with self.lock:
            sub.current = current
            self._status_line()
            sys.stdout.flush()

    def _status_line(self) -> None:
        if not self.tty:
            return
        width = shutil.get_terminal_size().columns
        parts = " | ".join(f"{shown(s.name)}: {shown(s.current)}" for s in self.running)  # a stage names its files
        sys.stdout.write("\r\x1b[K" + f"[{self.done}/{self.total} done] {parts}"[: width - 1])

    # -- one submission

    def cancel(self) -> None:
        """Ctrl-C or SIGTERM: no new submission starts, no submission is recorded any more (one whose
        runner is killed now was not graded), and every runner's namespace is killed."""
        with self.lock:
            self.cancelled = True
        for pid in list(self.runners):
            sandbox.kill_group(pid)

    def grade(self, sub: Submission, index: int) -> Submission:
        if self.cancelled:
            return sub
        start = time.monotonic()
        with self.lock:
            self.running.append(sub)
        self.say(f"[{index}/{self.total}] {sub.name}: started")
        try:
            work = self.temp / f"{index:03d}"
            try:
                if self.box is None:  # --unsafe-no-sandbox: a copy on this machine's disk
                    copy_submission(sub.source, work)
                elif self.args.keep:  # the sandbox copies it in itself, and back here at the end
                    work.mkdir()
            except OSError as exc:
                sub.status, sub.message = Status.ERROR, f"could not copy the submission: {exc}"
            else:
                self._run(sub, work)
        finally:
            sub.seconds = time.monotonic() - start
            with self.lock:
                self.running.remove(sub)
                graded = not self.cancelled
                if graded:
                    self.done += 1
            if graded:
                self.record(sub)
                self.say(f"[{index}/{self.total}] {sub.name}: {describe(sub)}")
        return sub

    # -- a submission's result is recorded (issue "Grade a real class", part 1)

    def record(self, sub: Submission) -> None:
        """The moment a submission is graded: its CSV row and JSON record are written and flushed."""
        if self.scorer is not None:
            self.scorer.score(sub)
        if self.outputs is not None:
            self.outputs.add(sub)

    def _run(self, sub: Submission, work: Path) -> None:
        """The runner in the submission's sandbox, killed with all it started at the wall time. Its
        events come through a pipe of their own (--events-fd), which no program of the submission
        can write to; its stdout and stderr are only read for a runner that fails, within bounds."""
        events, events_write = os.pipe()
        output, output_write = os.pipe()
        uid = 0
        profile_fds: list[int] = []
        try:
            if self.box is None:
                prefix, env, source = [sys.executable], self.env, work
            else:
                if sub.source.is_symlink() or not sub.source.is_dir():
                    raise sandbox.SandboxError(f"{sub.source} is not a folder of its own (a symbolic link?)")
                uid = self.uids.take()
                prefix = [*self.box.command(sub.source.resolve(), work if self.args.keep else None,
                                            getattr(self.args, "python2", None) or ""), self.box.python.executable]
                env, source = self.box.runner_env(), sandbox.SOURCE
            argv = [*prefix, "-m", "conformance.runner", str(source), "--events-fd", str(events_write),
                    *(["--uid", str(uid)] if uid else []), *(["--keep"] if uid and self.args.keep else []),
                    *self.run.to_argv(), *self.program_options()]
            profile_fds = profile_pipe(argv)
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output_write,
                                    stderr=output_write, pass_fds=(events_write, *profile_fds), start_new_session=True)
        except (OSError, sandbox.SandboxError) as exc:
            os.close(events)
            os.close(output)
            sub.status, sub.message = Status.ERROR, f"could not start its sandbox: {exc}"
            self.uids.give_back(uid)
            return
        finally:
            os.close(events_write)
            os.close(output_write)
            for fd in profile_fds:
                os.close(fd)
        try:
            self._watch(sub, proc, events, output)
        finally:
            self.uids.give_back(uid)

    def _watch(self, sub: Submission, proc: subprocess.Popen[bytes], events: int, output: int) -> None:
        wall = self.args.wall_time * self.run.timeout_scale
        self.runners.add(proc.pid)
        stall = stall_limit(self.run.step)
        expired: list[str] = []  # why it was killed, once it is
        done = threading.Event()

        def watch() -> None:
            """The wall time, and a run of its cases in which none has ended for `stall` seconds."""
            began = time.monotonic()
            while not done.wait(0.5):
                now = time.monotonic()
                if now - began >= wall:
                    expired.append(f"the grading did not finish within {wall:g} s")
                elif sub.progress and now - sub.progress >= stall:
                    expired.append(f"no case ended for {stall:g} s ({now - began:.0f} s in)")
                else:
                    continue
                sandbox.kill_group(proc.pid)
                return

        timer = threading.Thread(target=watch, daemon=True)
        timer.start()
        errors = sandbox.Bounded(head=2000, tail=2000)  # read beside, so that no pipe fills and stalls the runner
        reader = threading.Thread(target=errors.read_from, args=(output,), daemon=True)
        reader.start()
        with open(events, "rb") as stream:
            result = self._follow(sub, bounded_lines(stream))
        proc.wait()
        done.set()
        reader.join(timeout=5)
        self.runners.discard(proc.pid)
        if result is not None:
            sub.status = Status(result["status"])
            sub.mode, sub.message, sub.log = (str(result[k]) for k in ("mode", "message", "log"))
            sub.cases = {str(case["id"]): case for case in result["cases"]}
        elif expired:
            where = ", ".join(f"{mode} {cid}" for mode, cid in sub.last.items()) or sub.current
            sub.status = Status.HUNG
            sub.message = f"{expired[0]}, and it was killed (the last to end: {where})"
        else:
            sub.status = Status.ERROR
            sub.message = f"the grading stopped with status {proc.returncode}"
            sub.log = errors.text()

    def program_options(self) -> list[str]:
        """The batch-wide --server, --client, --python2 and --profile, passed on to each runner (the
        profile's limits and texts are what the pair cases hold a pair to)."""
        argv = []
        for option in ("server", "client", "python2"):
            value = getattr(self.args, option, None)
            if value:
                argv += [f"--{option}", str(value)]
        if profile := getattr(self.args, "profile", None):
            argv += ["--profile", "default" if profile == "default" else str(Path(profile).resolve())]
        return argv

    def _follow(self, sub: Submission, lines: Iterable[str]) -> dict[str, Any] | None:
        """The runner's events (JSON lines, runner.py): progress as they come, and its result, if it
        got that far. The cases of the first run are kept as they end, for a submission killed
        before its result."""
        result = None
        for line in lines:
            try:
                event = json.loads(line)
                kind = event.get("event") if isinstance(event, dict) else None
                if kind == "result":
                    Status(event["status"])
                    if not all(isinstance(c, dict) and "id" in c for c in event["cases"]):
                        raise ValueError("a case without its ID")
                elif kind == "case" and not isinstance(event["case"], dict):
                    raise ValueError("a case that is not one")
            except (ValueError, KeyError, TypeError):
                continue  # not the runner's: it writes nothing else, but a line is not worth a crash
            if kind == "stage":
                self.update(sub, str(event["text"]))
            elif kind == "mode":
                sub.mode = str(event["mode"])
                sub.progress = time.monotonic()  # its cases begin: from now on, one must end now and then
            elif kind == "case":
                case, mode = event["case"], str(event["mode"])
                if not event.get("rerun"):  # a re-run's verdict only decides FLAKY, in the result
                    sub.cases[case["id"]] = case
                sub.last[mode] = case["id"]
                sub.progress = time.monotonic()
                self.update(sub, f"{case['id']} ({len(sub.cases)} done)")
            elif kind == "result":
                result = event
        return result


EVENT_BYTES = 64 << 20  # the longest line of events read (a case's details and screens are far shorter)


def bounded_lines(stream: Any) -> Iterable[bytes]:
    """The lines of a binary stream, a line longer than EVENT_BYTES skipped (never held whole)."""
    while line := stream.readline(EVENT_BYTES):
        if line.endswith(b"\n"):
            yield line
            continue
        while line and not line.endswith(b"\n"):  # the rest of an overlong line
            line = stream.readline(EVENT_BYTES)


def profile_pipe(argv: list[str]) -> list[int]:
    """A course profile's file is not in the sandbox: the runner reads its text from a pipe instead
    (argv's last --profile FILE becomes /dev/fd/N). The descriptors to pass on, then close."""
    if "--profile" not in argv:
        return []
    at = len(argv) - argv[::-1].index("--profile")
    if argv[at] == "default":
        return []
    read, write = os.pipe()
    with open(write, "w", encoding="utf-8") as out:  # a profile is far below a pipe's 64 KiB
        out.write(Path(argv[at]).read_text(encoding="utf-8"))
    argv[at] = f"/dev/fd/{read}"
    return [read]


def shard_spec(text: str) -> tuple[int, int]:
    """--shard K/N: the K-th (from 1) of N slices."""
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit()) or not 1 <= int(k) <= int(n):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, not {text!r}")
    return int(k), int(n)


def stall_limit(step: float) -> float:
    """How long a submission's cases may go without one ending (see STALL_STEPS)."""
    return max(STALL_STEPS * step, STALL_FLOOR)


def describe(sub: Submission) -> str:
    counts = sub.summary()
    text = f"{sub.status}" + (f" ({sub.mode})" if sub.mode else "")
    if sub.cases:
        text += ", " + ", ".join(f"{n} {v.lower()}" for v, n in counts.items() if n)
    if sub.message:
        text += f": {sub.message}"
    return f"{text} [{sub.seconds:.1f} s]"


# --- before and after -------------------------------------------------------------------------


def scale_step(ratio: float) -> float:
    """The coarse factor of a measured ratio: the largest of SCALE_STEPS at most SCALE_TOLERANCE
    above it (1.0 to 1.19 give x1, 1.2 to 1.59 x1.5, 1.6 to 2.39 x2, ...)."""
    return max([step for step in SCALE_STEPS if step <= ratio * SCALE_TOLERANCE] or [SCALE_STEPS[0]])


def cpu_seconds() -> float:
    """User and system CPU time of this process's waited-for children (and theirs), so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def calibrate(args: argparse.Namespace, cache: Path | None = None) -> tuple[float, str]:
    """The timeout scale, and how it was found: --timeout-scale; or, on --resume, the factor of the
    run being resumed (kept in `cache`, on this machine); or measured on the reference."""
    if args.timeout_scale:
        return args.timeout_scale, "--timeout-scale given"
    if getattr(args, "resume", False) and cache is not None and cache.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            saved = json.loads(cache.read_text())
            if saved["host"] == socket.gethostname():
                return float(saved["timeout_scale"]), f"the factor of the run being resumed ({cache})"
    times = []
    argv = [sys.executable, "-m", "conformance", "server", *RunOptions(cases=CALIBRATION_CASES).to_argv(), "--",
            sys.executable, str(ROOT / "chatserve.py"), "{port}"]
    for _ in range(CALIBRATION_RUNS):
        before = cpu_seconds()
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        times.append(cpu_seconds() - before)
        if proc.returncode != 0:
            print(f"conformance: the reference fails on this machine, so grading would be unfair:\n"
                  f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}", file=sys.stderr)
            raise SystemExit(2)
    best = min(times)
    scale = scale_step(best / CALIBRATION_SECONDS)
    if cache is not None:
        with contextlib.suppress(OSError):
            cache.write_text(json.dumps({"host": socket.gethostname(), "timeout_scale": scale,
                                         "seconds": [round(t, 3) for t in times]}) + "\n")
    return scale, (f"the reference took {best:.2f} s of CPU here (best of {len(times)}; baseline "
                   f"{CALIBRATION_SECONDS:.2f} s)")


def start_listing(run: RunOptions) -> subprocess.Popen[str]:
    """`python3 -m conformance list` with the --case selection, started (beside the calibration)."""
    argv = [sys.executable, "-m", "conformance", "list", *RunOptions(cases=run.cases).to_argv()]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def listed_cases(run: RunOptions, listing: subprocess.Popen[str] | None = None) -> list[str]:
    """Every case ID the suite has (`python3 -m conformance list`, with the --case selection), in
    its order: server, client, pair. The CSV's columns, known before anything is graded."""
    proc = listing or start_listing(run)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise UsageError(f"could not list the cases: {(err or out).strip()[-500:]}")
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def mode_of(case_id: str) -> str:
    return {"S": "server", "C": "client", "P": "pair"}.get(case_id[:1], "server")


class UsageError(Exception):
    """A batch that cannot start: exit status 2, with this message."""


def columns(subs: list[Submission], order: list[str] | None = None) -> list[dict[str, Any]]:
    """Every case any submission ran, server cases first, then client, then pair (in `order`, the
    suite's, when given: the same run after run)."""
    seen: dict[str, dict[str, Any]] = {}
    for sub in subs:
        for cid, case in sub.cases.items():
            if cid not in seen or not seen[cid]["title"]:
                seen[cid] = case
    rank = {cid: i for i, cid in enumerate(order or [])}
    return sorted(seen.values(), key=lambda c: (MODE_ORDER.index(c["mode"]), rank.get(c["id"], len(rank))))


SPECIAL = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A text a spreadsheet would take for a formula (=, +, -, @) is kept as text."""
    if isinstance(value, str) and value[:1] in SPECIAL:
        return "'" + value
    return value


def spreadsheet_unsafe(value: str) -> str:
    """spreadsheet_safe(), undone: for --resume reading a CSV back."""
    return value[1:] if value[:1] == "'" and value[1:2] in SPECIAL else value


POINTS_COLUMNS = ("points", "max_points")  # last, with a course profile (--profile)


def csv_header(ids: list[str], points: bool = False) -> list[str]:
    """The header row, each cell formula-safe too (a case ID is the suite's, but a cell is a cell)."""
    return [str(spreadsheet_safe(cell)) for cell in ("submission", "status", "mode", *VERDICTS, "seconds", "message",
                                                     *ids, *(POINTS_COLUMNS if points else ()))]


def csv_row(sub: Submission, ids: list[str]) -> list[object]:
    counts = sub.summary()
    cells = [sub.cases[cid]["verdict"] if cid in sub.cases else "" for cid in ids]
    row = [sub.name, sub.status, sub.mode, *(counts[v] for v in VERDICTS), round(sub.seconds, 1), sub.message, *cells]
    if sub.points is not None:
        row += [sub.points["score"], sub.points["max_score"]]
    return [spreadsheet_safe(value) for value in row]


def write_csv(path: Path, subs: list[Submission], cases: list[str] | list[dict[str, Any]],
              points: bool = False) -> None:
    """The whole CSV, replaced at once (a reader never sees half of it)."""
    ids = [c if isinstance(c, str) else c["id"] for c in cases]
    with replacing(path, newline="", encoding="utf-8-sig") as out:  # the BOM: Excel then reads UTF-8
        writer = csv.writer(out)
        writer.writerow(csv_header(ids, points))
        for sub in subs:
            writer.writerow(csv_row(sub, ids))


@contextlib.contextmanager
def replacing(path: Path, **how: Any) -> Any:
    """A file written beside `path`, flushed to disk, then renamed over it."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "w", **how) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()


def read_csv(path: Path, ids: list[str], sources: dict[str, Path], points: bool = False) -> dict[str, Submission]:
    """The submissions a CSV of an earlier run holds (verdicts only: no details)."""
    with open(path, newline="", encoding="utf-8-sig") as file:
        rows = list(csv.reader(file))
    if not rows:
        return {}
    if rows[0] != csv_header(ids, points):
        raise UsageError(f"{path} has other columns than this run would write (other --case options?): "
                         "resume with the options of the run that wrote it, or grade afresh")
    done: dict[str, Submission] = {}
    first = 3 + len(VERDICTS)  # seconds, message, then the cases
    for raw in rows[1:]:
        row = [spreadsheet_unsafe(value) for value in raw]
        if len(row) != len(rows[0]) or row[0] not in sources:
            continue
        try:
            sub = Submission(row[0], sources[row[0]], Status(row[1]), row[2], row[first + 1],
                             seconds=float(row[first]))
        except ValueError:
            continue  # not a row this batch wrote: graded again
        cells = zip(ids, row[first + 2:first + 2 + len(ids)], strict=True)
        sub.cases = {cid: {"id": cid, "mode": mode_of(cid), "verdict": verdict, "title": "", "requirements": [],
                           "details": [], "transcripts": {}} for cid, verdict in cells if verdict}
        done[sub.name] = sub
    return done


def read_json(path: Path, sources: dict[str, Path]) -> dict[str, Submission]:
    """The submissions the JSON of an earlier run holds, each record kept as it was written."""
    data = json.loads(path.read_text("utf-8"))
    done: dict[str, Submission] = {}
    for row in data.get("submissions", []):
        if not isinstance(row, dict) or row.get("name") not in sources:
            continue
        try:
            sub = Submission(row["name"], sources[row["name"]], Status(row["status"]), str(row.get("mode", "")),
                             str(row.get("message", "")), str(row.get("log", "")), float(row.get("seconds", 0)))
        except (KeyError, ValueError, TypeError):
            continue
        sub.cases, sub.loaded = dict(row.get("results") or {}), row
        done[sub.name] = sub
    return done


def resumed(args: argparse.Namespace, ids: list[str], subs: list[Submission]) -> tuple[dict[str, Submission], str]:
    """--resume: the submissions already graded, from the --json file (whole records), else from
    the --csv file (verdicts); and which file said so."""
    sources = {s.name: s.source for s in subs}
    try:
        if args.json and args.json.is_file():
            return read_json(args.json, sources), str(args.json)
        if args.csv and args.csv.is_file():
            return read_csv(args.csv, ids, sources, points=scored(args)), str(args.csv)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--resume could not read the earlier run's file: {exc}") from None
    return {}, ""


class Outputs:
    """The files of a batch. The CSV and the JSON are written as each submission is graded (the
    CSV a row appended and flushed, the JSON the whole document replaced at once, marked
    "partial" until the end), so that nothing finished is lost; the HTML report at the end, or
    when the batch is interrupted (then marked partial)."""

    def __init__(self, args: argparse.Namespace, subs: list[Submission], ids: list[str], command: str,
                 scale: float, started: float) -> None:
        self.args, self.subs, self.ids, self.command = args, subs, ids, command
        self.scale, self.started = scale, started
        self.lock = threading.Lock()
        self.recorded: dict[str, Submission] = {}

    def begin(self, done: dict[str, Submission]) -> None:
        """Before grading: the CSV with its header (and the rows of a resumed run), the JSON."""
        self.recorded.update(done)
        if self.args.csv:
            write_csv(self.args.csv, self.finished(), self.ids, points=scored(self.args))
        if self.args.json:
            self._write_json(partial=True)

    def add(self, sub: Submission) -> None:
        with self.lock:
            self.recorded[sub.name] = sub
            try:
                if self.args.csv:
                    with open(self.args.csv, "a", newline="", encoding="utf-8") as out:
                        csv.writer(out).writerow(csv_row(sub, self.ids))
                        out.flush()
                        os.fsync(out.fileno())
                if self.args.json:
                    self._write_json(partial=True)
            except OSError as exc:
                print(f"conformance: could not write {exc.filename}: {exc.strerror}", file=sys.stderr)

    def finished(self) -> list[Submission]:
        """The submissions graded, in the order of the folder (whatever order they ended in)."""
        return [s for s in self.subs if s.name in self.recorded]

    def document(self, partial: bool) -> dict[str, Any]:
        finished = self.finished()
        data = document([s.row() for s in finished], columns(finished, self.ids), command=self.command,
                        seconds=time.monotonic() - self.started, timeout_scale=self.scale)
        data["partial"] = partial
        if partial:
            data["title"] = (f"Conformance report (partial: {len(finished)} of {len(self.subs)} submissions "
                             "graded; --resume grades the rest)")
        return data

    def _write_json(self, partial: bool) -> None:
        assert self.args.json is not None
        with replacing(self.args.json, encoding="utf-8") as out:
            out.write(json.dumps(self.document(partial), indent=1, ensure_ascii=False))

    def finish(self, partial: bool) -> list[Path]:
        """Every output, complete (or partial); the paths written. Raises OSError."""
        written = []
        with self.lock:
            if self.args.csv:
                write_csv(self.args.csv, self.finished(), self.ids, points=scored(self.args))  # in the folder's order
                written.append(self.args.csv)
            if self.args.report:
                report.write(self.args.report, self.document(partial))
                written.append(self.args.report)
            if self.args.json:
                self._write_json(partial)
                written.append(self.args.json)
        return written


def folded_failures(sub: Submission, ids: list[str], most: int = 8) -> str:
    """A submission's FAILed cases, variants of one case together, the first `most` of them."""
    rank = {cid: i for i, cid in enumerate(ids)}
    failed = sorted((cid for cid, c in sub.cases.items() if c["verdict"] == Verdict.FAIL),
                    key=lambda cid: rank.get(cid, len(rank)))
    groups: dict[str, list[str]] = {}
    for cid in failed:
        base, _, variant = cid.partition("[")
        groups.setdefault(base, []).append(variant.rstrip("]"))
    items = []
    for base, variants in groups.items():
        named = [v for v in variants if v]
        if not named:
            items.append(base)
        elif len(named) <= 2:
            items.append(f"{base}[{','.join(named)}]")
        else:
            items.append(f"{base}[{len(named)} variants]")
    text = ", ".join(items[:most])
    return text + (f", and {len(items) - most} more" if len(items) > most else "")


def print_failures(subs: list[Submission], ids: list[str]) -> None:
    """After the table: each submission's FAILed cases."""
    lines = [f"  {shown(sub.name)}: {folded_failures(sub, ids)}" for sub in subs
             if any(c["verdict"] == Verdict.FAIL for c in sub.cases.values())]
    if lines:
        print("failures:")
        print("\n".join(lines))


def print_summary(subs: list[Submission], seconds: float) -> None:
    width = max([len(s.name) for s in subs] + [10])
    print(f"\n{'submission':{width}}  {'status':10} {'mode':6} {'points':>9} " + " ".join(f"{v:>7}" for v in VERDICTS))
    for sub in subs:
        counts = sub.summary()
        points = f"{sub.points['score']:g}/{sub.points['max_score']:g}" if sub.points else ""
        print(f"{shown(sub.name):{width}}  {sub.status:10} {sub.mode:6} {points:>9} "
              + " ".join(f"{counts[v]:7}" for v in VERDICTS))
        if sub.message:
            print(f"{'':{width}}  {shown(sub.message)}")
    print(f"{len(subs)} submissions in {seconds:.1f} s")


class Stopped:
    """The signal that interrupted the batch: Ctrl-C (SIGINT) or SIGTERM."""

    signum = signal.SIGINT

    @classmethod
    def on_signal(cls, signum: int, frame: object) -> None:
        cls.signum = signal.Signals(signum)
        raise KeyboardInterrupt


def scored(args: argparse.Namespace) -> bool:
    """Whether the batch gives points: always, with --profile or else the default profile, so that
    framed and pair submissions are ranked on one scale."""
    return True


def output_folder(args: argparse.Namespace) -> Path | None:
    """Where the first output file goes: the calibration is kept there for --resume."""
    first = next((p for p in (args.json, args.csv, args.report) if p), None)
    return Path(first).resolve().parent if first else None


def main(args: argparse.Namespace, argv: list[str]) -> int:
    if not args.submissions.is_dir():
        print(f"conformance: {args.submissions} is not a folder", file=sys.stderr)
        return 2
    if args.jobs < 1 or args.wall_time <= 0:  # the run options are checked as they are parsed (options.py)
        print("conformance: --jobs and --wall-time must be positive", file=sys.stderr)
        return 2
    if args.resume and not (args.json or args.csv):
        print("conformance: --resume needs the --json or --csv file of the run to resume", file=sys.stderr)
        return 2
    if args.no_namespaces != args.unsafe_no_sandbox:
        print("conformance: --no-namespaces grades without the sandbox: each submission would run as this user, "
              "read and write its files (the suite, the other submissions, the outputs), reach the network and "
              "leave processes behind. Give --unsafe-no-sandbox with it to do so anyway "
              "(the two go together)", file=sys.stderr)
        return 2
    if not args.no_namespaces and (why := sandbox.check(ROOT)):
        print(f"conformance: the sandbox cannot be set up, so nothing is graded: {why}", file=sys.stderr)
        return 2
    for option in ("server", "client"):
        if getattr(args, option) and "{port}" not in getattr(args, option):
            print(f"conformance: --{option} needs {{port}} where the port goes", file=sys.stderr)
            return 2
    if args.python2:
        found = shutil.which(args.python2)
        if found is None:
            print(f"conformance: --python2 {args.python2}: no such program", file=sys.stderr)
            return 2
        args.python2 = str(Path(found).resolve())
    try:  # the course profile, checked as `profile check` does (conformance/profile.py)
        scorer = course.Scorer.load(args.profile or "default", args.case) if scored(args) else None
    except course.ProfileError as exc:
        print("\n".join(f"conformance: --profile {args.profile}: {line}" for line in exc.problems), file=sys.stderr)
        return 2
    started = time.monotonic()
    subs = [Submission(p.name, p) for p in sorted(args.submissions.iterdir())
            if p.is_dir() and not p.name.startswith(".")]
    if args.shard:
        subs = subs[args.shard[0] - 1 :: args.shard[1]]
    Stopped.signum = signal.SIGINT
    signal.signal(signal.SIGTERM, Stopped.on_signal)
    run = RunOptions.from_args(args, timeout_scale=1.0)  # the selection; the scale is calibrated below
    folder = output_folder(args)
    listing = start_listing(run)  # its CPU time is counted once it is waited for: after the calibration's
    try:
        scale, how = calibrate(args, folder / CALIBRATION_CACHE if folder else None)
        ids = listed_cases(run, listing)
        done, source = resumed(args, ids, subs) if args.resume else ({}, "")
    except UsageError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nconformance: interrupted before grading began; nothing written", file=sys.stderr)
        return 128 + Stopped.signum
    wall = args.wall_time * scale
    stall = stall_limit(args.timeout * scale)
    print(f"calibration: {how}; timeouts x{scale:g}; a submission is HUNG after {wall:g} s, "
          f"or after {stall:g} s in which none of its cases ends")
    if args.no_namespaces:
        print("warning: --no-namespaces --unsafe-no-sandbox: submissions run WITHOUT the sandbox, as this user: "
              "they can read and write its files (the suite's, other submissions', the outputs), reach the "
              "network and outlive the batch; only limits, clean environments and process groups apply")
    subs = [done.get(s.name, s) for s in subs]
    for sub in done.values() if scorer else ():  # resumed: scored with this run's profile
        scorer.score(sub)
    todo = [(index, s) for index, s in enumerate(subs, 1) if s.name not in done]
    if args.resume:
        print(f"resuming: {len(done)} of {len(subs)} submissions already graded"
              + (f" (in {source})" if source else "") + f"; {len(todo)} to grade")
    outputs = Outputs(args, subs, ids, shlex.join(["python3", "-m", "conformance", *argv]), scale, started)
    try:
        outputs.begin(done)
    except OSError as exc:
        print(f"conformance: could not write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    temp = Path(tempfile.mkdtemp(prefix="conformance-batch-"))
    box = None if args.no_namespaces else sandbox.Sandbox(ROOT, temp)
    grading = Grading(args, RunOptions.from_args(args, timeout_scale=scale), box, temp)
    grading.total, grading.done, grading.outputs = len(subs), len(done), outputs
    grading.scorer = scorer
    interrupted = False
    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            try:
                list(pool.map(grading.grade, [s for _, s in todo], [i for i, _ in todo]))
            except KeyboardInterrupt:
                interrupted = True
                for signum in (signal.SIGINT, signal.SIGTERM):  # what is finished gets written, whole
                    signal.signal(signum, signal.SIG_IGN)
                grading.cancel()
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        if args.keep:
            print(f"the copies are kept in {temp}")
        else:
            shutil.rmtree(temp, ignore_errors=True)
    finished = outputs.finished()
    print_summary(finished, time.monotonic() - started)
    print_failures(finished, ids)
    try:
        written = outputs.finish(partial=interrupted)
    except OSError as exc:
        print(f"conformance: could not write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}" + (" (partial)" if interrupted else ""))
    if args.feedback and scorer is not None:  # one file per submission graded (conformance/feedback.py)
        try:
            files = feedback.write_batch(args.feedback, finished, scorer.profile, args.server, args.client)
            print(f"wrote {len(files)} feedback files in {args.feedback}")
        except OSError as exc:
            print(f"conformance: could not write feedback: {exc.strerror or exc}", file=sys.stderr)
            return 1
    if interrupted:
        print(f"\nconformance: interrupted; the {len(finished)} of {len(subs)} submissions graded are written"
              + ("; --resume with the same files grades the rest" if written else ""), file=sys.stderr)
        return 128 + Stopped.signum
    return 0
