"""Grading a whole class: `python3 -m conformance batch SUBMISSIONS/`.

Each subfolder of SUBMISSIONS is one student's server and client. For each, in parallel up to
the number of cores: copy it to a temporary folder, then start a runner (conformance/runner.py)
in new namespaces. The runner builds it, finds its programs, probes its server for the framed
protocol, and runs the suite. This module calibrates the timeouts on the reference first,
bounds each submission's wall time, shows progress, and writes the terminal summary, the CSV,
the JSON and the HTML report.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import stat
import statistics
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
from conformance import report, sandbox
from conformance.options import RunOptions
from conformance.plugin import document
from conformance.verdicts import Status, Verdict

ROOT = Path(__file__).resolve().parent.parent
VERDICTS = tuple(Verdict)  # a run's five, and FLAKY: only a batch re-runs its FAILs
MODE_ORDER = ("server", "client", "pair")
# Calibration: the reference's run of these cases took CALIBRATION_SECONDS (median of 5, idle) on
# the 2-core machine the suite was written on; a slower grading machine stretches every timeout.
CALIBRATION_CASES = ("S-LISTEN-1", "S-HELLO-1[whole]", "S-MSG-1[whole]", "S-QUIT-1", "S-NEXT-1")
CALIBRATION_SECONDS = 0.40
CALIBRATION_RUNS = 3
MAX_SCALE = 10.0

EPILOG = """Each subfolder of SUBMISSIONS is one submission. It is built with its own ./compileall,
else its Makefile, else by compiling each C/C++ file that has a main() with the other sources. Its
server is `python3 chatserve.py {port}` and its client `./chatclient {host} {port}`, unless a
conformance.toml in it says otherwise:

    server = "python3 myserver.py {port}"
    client = "./myclient {host} {port}"
    mode = "pair"          # optional; normally decided by probing the server with a HELLO

Exit status: 0 once every submission has a verdict, 2 for a usage error or when the reference
itself fails on this machine (grading would be unfair), 130 when interrupted (nothing is written)."""


def add_parser(modes: Any) -> None:
    parser = modes.add_parser("batch", help="grade every submission in a folder", epilog=EPILOG,
                              description="Grade a folder of submissions: one server and client each.",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", type=Path, metavar="SUBMISSIONS", help="a folder with one subfolder each")
    parser.add_argument("--report", type=Path, metavar="FILE", help="write the HTML report (one page) to FILE")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write one row per submission to FILE")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write everything, as JSON, to FILE")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="submissions graded at once (default: the number of cores)")
    RunOptions.add_arguments(parser, calibrated=True)
    parser.add_argument("--wall-time", type=float, default=300.0, metavar="SECONDS",
                        help="the most one submission may take, before scaling; then it is killed (default 300)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies (their path is printed)")
    parser.add_argument("--no-namespaces", action="store_true",
                        help="run without new namespaces (only limits, clean environments and process groups)")


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

    def summary(self) -> dict[str, int]:
        counts = Counter(case["verdict"] for case in self.cases.values())
        return {verdict: counts[verdict] for verdict in VERDICTS}

    def row(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "mode": self.mode, "message": self.message,
                "log": self.log, "seconds": round(self.seconds, 1), "summary": self.summary(), "results": self.cases}


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
    """The runs of a batch: settings, the namespace prefix, and the progress display."""

    def __init__(self, args: argparse.Namespace, run: RunOptions, prefix: list[str], temp: Path) -> None:
        self.args, self.run, self.prefix, self.temp = args, run, prefix, temp
        self.lock = threading.Lock()
        self.done = 0
        self.total = 0
        self.running: list[Submission] = []
        self.runners: set[int] = set()  # process groups of the runners going on
        self.cancelled = False
        self.tty = sys.stdout.isatty()
        sandbox.fix_task_limit()  # inherited by every runner, and so by every student's process
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}

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
        parts = " | ".join(f"{shown(s.name)}: {s.current}" for s in self.running)
        sys.stdout.write("\r\x1b[K" + f"[{self.done}/{self.total} done] {parts}"[: width - 1])

    # -- one submission

    def cancel(self) -> None:
        """Ctrl-C: no new submission starts, and every runner's namespace is killed."""
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
                copy_submission(sub.source, work)
            except OSError as exc:
                sub.status, sub.message = Status.ERROR, f"could not copy the submission: {exc}"
            else:
                self._run(sub, work)
        finally:
            sub.seconds = time.monotonic() - start
            with self.lock:
                self.running.remove(sub)
                self.done += 1
            self.say(f"[{index}/{self.total}] {sub.name}: {describe(sub)}")
        return sub

    def _run(self, sub: Submission, work: Path) -> None:
        """The runner in the submission's namespaces, killed with all it started at the wall time."""
        argv = [*self.prefix, sys.executable, "-m", "conformance.runner", str(work),
                *(["--isolated"] if self.prefix else []), *self.run.to_argv()]
        wall = self.args.wall_time * self.run.timeout_scale
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
        self.runners.add(proc.pid)
        expired = threading.Event()
        timer = threading.Timer(wall, lambda: (expired.set(), sandbox.kill_group(proc.pid)))
        timer.start()
        stdout, stderr = proc.stdout, proc.stderr
        assert stdout is not None and stderr is not None
        errors: list[str] = []  # read beside stdout, so that neither pipe can fill and stall the runner
        reader = threading.Thread(target=lambda: errors.append(stderr.read()), daemon=True)
        reader.start()
        result = self._follow(sub, stdout)
        proc.wait()
        timer.cancel()
        reader.join(timeout=5)
        self.runners.discard(proc.pid)
        if result is not None:
            sub.status = Status(result["status"])
            sub.mode, sub.message, sub.log = (result[k] for k in ("mode", "message", "log"))
            sub.cases = {case["id"]: case for case in result["cases"]}
        elif expired.is_set():
            where = ", ".join(f"{mode} {cid}" for mode, cid in sub.last.items()) or sub.current
            sub.status = Status.HUNG
            sub.message = f"the grading did not finish within {wall:g} s and was killed (the last to end: {where})"
        else:
            sub.status = Status.ERROR
            sub.message = f"the grading stopped with status {proc.returncode}"
            sub.log = "".join(errors)[-4000:]

    def _follow(self, sub: Submission, lines: Iterable[str]) -> dict[str, Any] | None:
        """The runner's events (JSON lines, runner.py): progress as they come, and its result, if it
        got that far. The cases of the first run are kept as they end, for a submission killed
        before its result."""
        result = None
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # not the runner's: it writes nothing else, but a line is not worth a crash
            kind = event.get("event") if isinstance(event, dict) else None
            if kind == "stage":
                self.update(sub, str(event["text"]))
            elif kind == "mode":
                sub.mode = str(event["mode"])
            elif kind == "case":
                case, mode = event["case"], str(event["mode"])
                if not event.get("rerun"):  # a re-run's verdict only decides FLAKY, in the result
                    sub.cases[case["id"]] = case
                sub.last[mode] = case["id"]
                self.update(sub, f"{case['id']} ({len(sub.cases)} done)")
            elif kind == "result":
                result = event
        return result


def describe(sub: Submission) -> str:
    counts = sub.summary()
    text = f"{sub.status}" + (f" ({sub.mode})" if sub.mode else "")
    if sub.cases:
        text += ", " + ", ".join(f"{n} {v.lower()}" for v, n in counts.items() if n)
    if sub.message:
        text += f": {sub.message}"
    return f"{text} [{sub.seconds:.1f} s]"


# --- before and after -------------------------------------------------------------------------


def calibrate(args: argparse.Namespace) -> float:
    """The timeout scale: how much slower than the baseline the reference runs here."""
    if args.timeout_scale:
        return args.timeout_scale
    argv = [sys.executable, "-m", "conformance", "server", *RunOptions(cases=CALIBRATION_CASES).to_argv(), "--",
            sys.executable, str(ROOT / "chatserve.py"), "{port}"]
    times = []
    for _ in range(CALIBRATION_RUNS):
        start = time.monotonic()
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        times.append(time.monotonic() - start)
        if proc.returncode != 0:
            print(f"conformance: the reference fails on this machine, so grading would be unfair:\n"
                  f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}", file=sys.stderr)
            raise SystemExit(2)
    took = statistics.median(times)
    scale = min(MAX_SCALE, max(1.0, round(took / CALIBRATION_SECONDS, 1)))
    print(f"calibration: the reference took {took:.2f} s here (baseline {CALIBRATION_SECONDS:.2f} s); "
          f"timeouts x{scale:g}")
    return scale


def columns(subs: list[Submission]) -> list[dict[str, Any]]:
    """Every case any submission ran, server cases first, then client, then pair."""
    seen: dict[str, dict[str, Any]] = {}
    for sub in subs:
        for cid, case in sub.cases.items():
            if cid not in seen or not seen[cid]["title"]:
                seen[cid] = case
    return sorted(seen.values(), key=lambda c: MODE_ORDER.index(c["mode"]))


def spreadsheet_safe(value: object) -> object:
    """A text a spreadsheet would take for a formula (=, +, -, @) is kept as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_csv(path: Path, subs: list[Submission], cases: list[dict[str, Any]]) -> None:
    ids = [case["id"] for case in cases]
    with open(path, "w", newline="", encoding="utf-8-sig") as out:  # the BOM: Excel then reads UTF-8
        writer = csv.writer(out)
        writer.writerow(["submission", "status", "mode", *VERDICTS, "seconds", "message", *ids])
        for sub in subs:
            counts = sub.summary()
            cells = [sub.cases[cid]["verdict"] if cid in sub.cases else "" for cid in ids]
            row = [sub.name, sub.status, sub.mode, *(counts[v] for v in VERDICTS), round(sub.seconds, 1),
                   sub.message, *cells]
            writer.writerow([spreadsheet_safe(value) for value in row])


def print_summary(subs: list[Submission], seconds: float) -> None:
    width = max([len(s.name) for s in subs] + [10])
    print(f"\n{'submission':{width}}  {'status':10} {'mode':6} " + " ".join(f"{v:>7}" for v in VERDICTS))
    for sub in subs:
        counts = sub.summary()
        print(f"{shown(sub.name):{width}}  {sub.status:10} {sub.mode:6} "
              + " ".join(f"{counts[v]:7}" for v in VERDICTS))
        if sub.message:
            print(f"{'':{width}}  {shown(sub.message)}")
    print(f"{len(subs)} submissions in {seconds:.1f} s")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    if not args.submissions.is_dir():
        print(f"conformance: {args.submissions} is not a folder", file=sys.stderr)
        return 2
    if args.jobs < 1 or args.wall_time <= 0:  # the run options are checked as they are parsed (options.py)
        print("conformance: --jobs and --wall-time must be positive", file=sys.stderr)
        return 2
    started = time.monotonic()
    subs = [Submission(p.name, p) for p in sorted(args.submissions.iterdir())
            if p.is_dir() and not p.name.startswith(".")]
    scale = calibrate(args)
    prefix, why = ([], "--no-namespaces") if args.no_namespaces else sandbox.namespace_prefix()
    if why:
        print(f"warning: {why}: submissions run without namespaces (so with the network and files of "
              "this machine); limits, clean environments and process groups still apply")
    temp = Path(tempfile.mkdtemp(prefix="conformance-batch-"))
    grading = Grading(args, RunOptions.from_args(args, timeout_scale=scale), prefix, temp)
    grading.total = len(subs)
    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            try:
                list(pool.map(grading.grade, subs, range(1, len(subs) + 1)))
            except KeyboardInterrupt:
                grading.cancel()
                pool.shutdown(wait=True, cancel_futures=True)
                print("\nconformance: interrupted; nothing written", file=sys.stderr)
                return 130
    finally:
        if args.keep:
            print(f"the copies are kept in {temp}")
        else:
            shutil.rmtree(temp, ignore_errors=True)
    seconds = time.monotonic() - started
    print_summary(subs, seconds)
    cases = columns(subs)
    data = document([s.row() for s in subs], cases, command=shlex.join(["python3", "-m", "conformance", *argv]),
                    seconds=seconds, timeout_scale=scale)
    for path, write in ((args.csv, lambda p: write_csv(p, subs, cases)), (args.report, lambda p: report.write(p, data)),
                        (args.json, lambda p: p.write_text(json.dumps(data, indent=1, ensure_ascii=False)))):
        if path:
            try:
                write(path)
                print(f"wrote {path}")
            except OSError as exc:
                print(f"conformance: could not write {path}: {exc.strerror}", file=sys.stderr)
                return 1
    return 0
