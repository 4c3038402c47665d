"""One submission's grading: build, find the programs, choose the mode, run the suite.

`batch` starts one runner per submission, inside the submission's own namespaces when the
machine allows them (conformance/sandbox.py). The runner prints one JSON object per line on
stdout, each with its "event":

    {"event": "stage", "text": "building: make"}     what it is doing now
    {"event": "mode", "mode": "framed"}              the mode chosen: framed (PROTOCOL.md) or pair
    {"event": "case", "mode": "server", "rerun": false, "case": {"id": "S-MSG-1", "verdict": "FAIL", ...}}
                                                     a case has ended (the suite's JSON of it)
    {"event": "result", "status": "GRADED", "mode": "framed", "message": "", "log": "", "cases": [...]}
                                                     the last line: the submission's result

It learns of each case from the suite's own event stream (`--events`, conformance/plugin.py),
read through a pipe, never from the suite's terminal output (where the students' screens are).
Nothing of the student's can write to either: no program of theirs inherits this stdout nor that
pipe, and the runner and the suite are not dumpable, so they cannot be traced nor their
descriptors opened through /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatwire import NEED_DATA, Connection, Hello, ProtocolError, Role
from conformance import sandbox
from conformance.checks import CaseFailure
from conformance.options import RunOptions
from conformance.pair import PairRun
from conformance.plugin import Options
from conformance.programs import Policy, Program
from conformance.verdicts import Status, Verdict

ROOT = Path(__file__).resolve().parent.parent  # the suite, which must stay visible in the sandbox
CONFIG = "conformance.toml"
DEFAULT_SERVER = ("chatserve.py", "python3 chatserve.py {port}")
DEFAULT_CLIENT = ("chatclient", "./chatclient {host} {port}")
BUILD_SECONDS = 120.0
LOG_CHARS = 4000


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
        return {"status": self.status, "mode": self.mode, "message": self.message, "log": self.log[-LOG_CHARS:],
                "cases": self.cases}


EMIT_LOCK = threading.Lock()  # the server and client suites run side by side


def emit(event: str, **fields: Any) -> None:
    """One line to the batch: a JSON object with its "event" (see the module docstring)."""
    line = json.dumps({"event": event, **fields}, ensure_ascii=False)
    with EMIT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


# --- building ---------------------------------------------------------------------------------


def run_bounded(argv: list[str], cwd: Path, seconds: float) -> tuple[int | None, str]:
    """An untrusted command with its output; None for the status when it ran out of time (then
    its whole process group is killed, so a compiler it started cannot hold the pipe open)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=sandbox.environment(cwd), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=sandbox.preexec,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=seconds)
        return proc.returncode, out.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        sandbox.kill_group(proc.pid)
        out, _ = proc.communicate()
        return None, out.decode("utf-8", "replace")


def build_commands(work: Path) -> list[list[str]]:
    """Its own ./compileall, else its Makefile, else one program per C/C++ file with a main()."""
    if (work / "compileall").is_file():
        return [["./compileall"] if os.access(work / "compileall", os.X_OK) else ["sh", "compileall"]]
    if any((work / name).is_file() for name in ("Makefile", "makefile", "GNUmakefile")):
        return [["make"]]
    commands = []
    for compiler, pattern in (("cc", "*.c"), ("c++", "*.cpp")):
        sources = sorted(p.name for p in work.glob(pattern))
        mains = [s for s in sources if re.search(r"\bmain\s*\(", (work / s).read_text("utf-8", "replace"))]
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


def build(work: Path, run: RunOptions) -> str:
    """Runs the build; returns its output, or raises NotGradable('BUILD-FAIL')."""
    log = []
    for argv in build_commands(work):
        emit("stage", text="building: " + shlex.join(argv))
        status, out = run_bounded(argv, work, BUILD_SECONDS * run.timeout_scale)
        log.append(f"$ {shlex.join(argv)}\n{out}")
        if status is None:
            raise NotGradable(Status.BUILD_FAIL, f"{shlex.join(argv)} did not finish within "
                                                 f"{BUILD_SECONDS * run.timeout_scale:g} s", "".join(log))
        if status != 0:
            why = first_error(out) or f"{shlex.join(argv)} exited with status {status}"
            raise NotGradable(Status.BUILD_FAIL, why, "".join(log))
    return "".join(log)


# --- the programs and the mode ----------------------------------------------------------------


@dataclass
class Programs:
    server: str
    client: str
    mode: str  # "framed", "pair", or "" to probe


def find_programs(work: Path) -> Programs:
    """The defaults, or what the submission's conformance.toml says."""
    config: dict[str, Any] = {}
    if (work / CONFIG).is_file():
        try:
            config = tomllib.loads((work / CONFIG).read_text("utf-8", "replace"))
        except tomllib.TOMLDecodeError as exc:
            raise NotGradable(Status.NO_START, f"{CONFIG}: {exc}") from None
    found = []
    for role, (default_file, default_command) in (("server", DEFAULT_SERVER), ("client", DEFAULT_CLIENT)):
        command = config.get(role)
        if command is None and (work / default_file).exists():
            command = default_command
        if not isinstance(command, str) or "{port}" not in command:
            raise NotGradable(Status.NO_START, f"no {role}: {default_file} not found, and {CONFIG} does not name one "
                                          f"({role} = \"COMMAND with {{port}}\")")
        found.append(command)
    mode = config.get("mode", "")
    if mode not in ("", "framed", "pair"):
        raise NotGradable(Status.NO_START, f"{CONFIG}: mode must be \"framed\" or \"pair\", not {mode!r}")
    return Programs(found[0], found[1], mode)


def start_server(command: str, run: RunOptions) -> tuple[Program, int]:
    """The server on a free port once it listens, started as pair mode starts one (its handle
    question answered, if it asks one first); NotGradable('NO-START') if it never listens."""
    opts = Options(mode="pair", server_command=shlex.split(command), run=run)
    started: list[Program] = []
    pair = PairRun(opts, started.append)
    try:
        side = pair.start_server()
    except CaseFailure as exc:  # ProgramDied too: it could not start, or exited
        for program in started:
            program.stop()
        raise NotGradable(Status.NO_START, exc.what, started[0].transcript if started else "") from None
    return side.program, pair.port


def speaks_framed(port: int, run: RunOptions) -> bool:
    """Whether the server answers a HELLO of PROTOCOL.md with its own HELLO."""
    conn = Connection(Role.CLIENT)
    deadline = time.monotonic() + run.step
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=run.step) as sock:
            sock.sendall(conn.send(Hello("Grader")))
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                data = sock.recv(4096)
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
        framed = speaks_framed(port, run)
    finally:
        server.stop()
    return programs.mode or ("framed" if framed else "pair")


# --- the suite --------------------------------------------------------------------------------


def run_suite(mode: str, programs: Programs, run: RunOptions, rerun: bool = False) -> list[dict[str, Any]]:
    """One `python3 -m conformance MODE` run; its cases, from its event stream (read through a
    pipe that no program under test inherits), each passed on to the batch as it ends."""
    if mode == "pair":
        target = ["--server", programs.server, "--client", programs.client]
    else:
        target = ["--", *shlex.split(programs.server if mode == "server" else programs.client)]
    read, write = os.pipe()
    argv = [sys.executable, "-m", "conformance", mode, "--untrusted", *run.to_argv(), "--events", f"/dev/fd/{write}",
            *target]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            pass_fds=(write,), text=True, errors="replace")
    os.close(write)
    assert proc.stdout is not None
    output = proc.stdout
    tail: deque[str] = deque(maxlen=40)  # the suite's own lines, for a run that ends without its results
    reader = threading.Thread(target=lambda: tail.extend(output), daemon=True)  # so that its pipe never fills
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
                emit("case", mode=mode, rerun=rerun, case=case)
            elif event.get("event") == "end":
                ended = True
    proc.wait()
    reader.join()
    if not ended:
        raise NotGradable(Status.ERROR, f"the suite's {mode} run ended with status {proc.returncode} and no results",
                          "".join(tail))
    return cases


def with_reruns(mode: str, programs: Programs, run: RunOptions) -> list[dict[str, Any]]:
    """The suite, then its FAILed cases once more: one that passes the second time is FLAKY."""
    emit("stage", text=f"{mode} cases")
    cases = run_suite(mode, programs, run)
    failed = [c["id"] for c in cases if c["verdict"] == Verdict.FAIL]
    if not failed:
        return cases
    emit("stage", text=f"re-running {len(failed)} failed {mode} case(s)")
    again = {c["id"]: c for c in run_suite(mode, programs, run.with_cases(failed), rerun=True)}
    for case in cases:
        second = again.get(case["id"])
        if case["verdict"] == Verdict.FAIL and second and second["verdict"] in (Verdict.PASS, Verdict.WARN):
            case["verdict"] = Verdict.FLAKY
            case["details"] = ["FAILed on the first run and passed on the re-run; the first run said:",
                               *case["details"]]
    return cases


def grade(work: Path, run: RunOptions) -> Outcome:
    outcome = Outcome()
    try:
        outcome.log = build(work, run)
        programs = find_programs(work)
        outcome.mode = choose_mode(programs, run)
        emit("mode", mode=outcome.mode)
        modes = ["pair"] if outcome.mode == "pair" else ["server", "client"]
        # Side by side: most of a run is waiting (for a 10 s handshake TIMEOUT, for quiet).
        with ThreadPoolExecutor(max_workers=len(modes)) as pool:
            for cases in pool.map(lambda mode: with_reruns(mode, programs, run), modes):
                outcome.cases += cases
    except NotGradable as exc:
        outcome.status, outcome.message, outcome.log = exc.status, exc.message, exc.log
    return outcome


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m conformance.runner", description=__doc__.split("\n")[0])
    parser.add_argument("work", type=Path, help="the submission's copy (made by batch)")
    parser.add_argument("--isolated", action="store_true", help="seal the namespaces made by unshare first")
    RunOptions.add_arguments(parser)
    args = parser.parse_args(argv)
    sandbox.protect_self()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # batch stops us; a student's kill -INT must not
    Policy.untrusted = True
    suite = [ROOT, Path(sys.prefix), Path(sys.base_prefix)]
    work = sandbox.enter(args.work, suite) if args.isolated else args.work
    os.chdir(work)
    outcome = grade(work, RunOptions.from_args(args))
    emit("result", **outcome.as_json())
    if args.isolated and os.getpid() == 1:
        os.kill(-1, signal.SIGKILL)  # first in its PID namespace: whatever the student left behind
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
