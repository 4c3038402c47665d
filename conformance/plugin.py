"""The pytest plugin that turns test outcomes into conformance verdicts.

pytest collects, selects, runs and writes JUnit XML; this plugin adds what a conformance
suite needs on top: case IDs tied to PROTOCOL.md requirements, the verdicts PASS / FAIL /
WARN / SKIP / BLOCKED, one line per case with the details of a failure (the BLOCKED ones
folded into one line per root cause), a JSON report, an event stream (one JSON object per
line as each case ends, for a program that follows the run: conformance/runner.py), and the
exit status (0 iff nothing FAILed).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from conformance import profile as course
from conformance import report
from conformance.assignment import DEFAULT, Assignment
from conformance.checks import CaseFailure, ProgramDied, quote
from conformance.options import RunOptions
from conformance.verdicts import RUN_VERDICTS, Kind, Status, Verdict

VERDICTS = RUN_VERDICTS
TRANSCRIPT_CHARS = 4000  # the end of a program's screen kept with a case that did not PASS
WARNINGS_KEY = pytest.StashKey[list[tuple[str, str]]]()
PROGRAMS_KEY = pytest.StashKey[list[Any]]()
VERDICT_KEY = pytest.StashKey[str]()
NOTES_KEY = pytest.StashKey[list[tuple[str, bool]]]()
SETTLED_KEY = pytest.StashKey[bool]()


@dataclass
class Options:
    """What the command line asked for; the cases read it through the `opts` fixture."""

    mode: str  # server, client, pair, or list
    command: list[str] = field(default_factory=list)  # the implementation, with {host} {port} ...
    server_command: list[str] = field(default_factory=list)  # pair mode
    client_command: list[str] = field(default_factory=list)  # pair mode
    host: str = "127.0.0.1"
    attach: tuple[str, int] | None = None
    run: RunOptions = field(default_factory=RunOptions)  # timeouts and the selection (conformance/options.py)
    quiet: float = 0.25
    json_path: Path | None = None
    report_path: Path | None = None  # the HTML page (conformance/report.py)
    events_path: Path | None = None  # one JSON object per line as each case ends (also /dev/fd/N)
    brief: bool = False  # -q: print only the cases that did not pass
    untrusted: bool = False  # start the programs under test in the sandbox (conformance/sandbox.py)
    profile: Any = None  # a course profile (conformance/profile.py, --profile): the run's points in its JSON
    profile_arg: str | None = None  # --profile as given, for the re-run line

    @property
    def assignment(self) -> Assignment:
        """What the course fixes (the run's --profile, else the default): limits, quit word, texts."""
        return self.profile.assignment if self.profile is not None else DEFAULT

    @property
    def timeout(self) -> float:
        return self.run.timeout

    @property
    def timeout_scale(self) -> float:
        return self.run.timeout_scale

    @property
    def handshake_timeout(self) -> float:
        return self.run.handshake_timeout

    @property
    def cases(self) -> tuple[str, ...]:
        return self.run.cases

    @property
    def step(self) -> float:
        return self.run.step

    @property
    def quiet_period(self) -> float:
        return self.quiet * self.timeout_scale

    def command_line(self, cases: tuple[str, ...] | list[str] = ()) -> list[str]:
        """The command that runs these options again on `cases` (all with none): without -k, the
        files written (--json, --junit-xml, --report, --events: re-running would overwrite them)
        and -q."""
        argv = ["python3", "-m", "conformance", self.mode, *RunOptions(cases=tuple(cases)).to_argv()]
        if self.attach:
            host, port = self.attach
            argv += ["--attach", f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
        if self.host != Options.host:
            argv += ["--host", self.host]
        if self.untrusted:
            argv.append("--untrusted")
        if self.profile_arg:  # its limits and texts are what the cases held the program to
            argv += ["--profile", self.profile_arg]
        argv += self.run.with_cases(()).to_argv()
        if self.mode == "pair":
            argv += ["--server", shell_join(self.server_command), "--client", shell_join(self.client_command)]
        elif self.command:
            argv += ["--", *self.command]
        return argv


PLAIN_WORD = re.compile(r"[\w@%+=:,./{}-]+")  # safe for a shell as it is: {port} needs no quotes


def shell_join(argv: list[str]) -> str:
    """A command line a shell reads back as `argv`, quoting only what needs it (shlex.join would
    quote every '{port}', which a person then has to read through)."""
    return " ".join(part if PLAIN_WORD.fullmatch(part) else shlex.quote(part) for part in argv)


@dataclass
class Result:
    case_id: str
    title: str
    reqs: list[str]
    verdict: Verdict = Verdict.PASS
    kind: Kind = Kind.BEHAVIOUR
    details: list[str] = field(default_factory=list)
    root: str = ""  # for BLOCKED: the case whose failure blocked it
    duration: float = 0.0
    transcripts: dict[str, str] = field(default_factory=dict)  # what each program showed, if not PASS

    def as_json(self, mode: str) -> dict[str, Any]:
        return {"id": self.case_id, "title": self.title, "mode": mode, "kind": self.kind,
                "requirements": self.reqs, "verdict": self.verdict, "root": self.root, "details": self.details,
                "transcripts": self.transcripts, "seconds": round(self.duration, 3)}


def case_marker(item: pytest.Item) -> pytest.Mark | None:
    return item.get_closest_marker("case")


def case_id(item: pytest.Item) -> str:
    mark = case_marker(item)
    base = mark.args[0] if mark else item.name
    callspec = getattr(item, "callspec", None)
    return f"{base}[{callspec.id}]" if callspec else base


def case_kind(item: pytest.Item) -> Kind:
    """The marker's kind= (behaviour when it has none); a kind the suite does not know is a usage error."""
    mark = case_marker(item)
    kind = mark.kwargs.get("kind", Kind.BEHAVIOUR) if mark else Kind.BEHAVIOUR
    try:
        return Kind(kind)
    except ValueError:
        raise pytest.UsageError(f"{case_id(item)}: kind={kind!r} is not one of {', '.join(Kind)}") from None


def base_id(full_id: str) -> str:
    return full_id.split("[", 1)[0]


def read_to_the_end(programs: list[Any], quiet: float, limit: float) -> None:
    """Takes in what the programs are still writing, until each has exited or is idle (waiting for
    input with nothing more to show: Program.idle), or none has written for `quiet` seconds, for
    at most `limit` seconds: a screen shown with a failure is then the whole of it, not the part
    the case happened to read."""
    deadline = time.monotonic() + limit
    last_output = time.monotonic()
    while True:
        if any([program.pump() for program in programs]):
            last_output = time.monotonic()
        live = [program for program in programs if not program.ended and program.fd >= 0]
        now = time.monotonic()
        if not live or now >= deadline or now - last_output >= quiet or all(p.idle() for p in live):
            return
        try:
            select.select([program.fd for program in live], [], [], min(0.02, deadline - now))
        except (OSError, ValueError):  # a descriptor closed under us: what was read is what there is
            return


def seal(path: Path | None) -> None:
    """A /dev/fd/N given to write to (a pipe of conformance/runner.py) is inherited by no process
    this run starts: no program under test can write there."""
    name = str(path or "")
    if name.startswith("/dev/fd/") and name[8:].isdigit():
        with contextlib.suppress(OSError):
            os.set_inheritable(int(name[8:]), False)


class ConformancePlugin:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.results: dict[str, Result] = {}
        self.by_base: dict[str, list[str]] = {}
        self.by_node: dict[str, Result] = {}
        self.blocked: dict[tuple[str, str], list[str]] = {}  # (root FAIL, or '' and why) -> the cases BLOCKED
        self.skipped: dict[str, list[str]] = {}  # why -> the cases SKIPped for it
        self.selected = 0
        self.started = time.monotonic()
        self.out = sys.stdout
        self.events: IO[str] | None = None

    def write(self, text: str) -> None:
        """Output that survives a reader that went away (`... | head`)."""
        try:
            self.out.write(text)
            self.out.flush()
        except BrokenPipeError:
            self.out = open(os.devnull, "w")  # noqa: SIM115 (kept for the rest of the run)

    # -- collection and selection

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "case(id, reqs, title, needs=(), kind='behaviour'): a conformance case")
        config.conformance_options = self.opts  # type: ignore[attr-defined]
        for path in (self.opts.json_path, self.opts.events_path):
            seal(path)
        if self.opts.events_path and self.opts.mode != "list":
            # also /dev/fd/N, a pipe (conformance/runner.py); line-buffered, so that a reader follows the run
            self.events = open(self.opts.events_path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115

    def event(self, event: str, **fields: Any) -> None:
        if self.events is not None:
            try:
                self.events.write(json.dumps({"event": event, **fields}, ensure_ascii=False) + "\n")
            except (BrokenPipeError, ValueError):
                self.events = None  # the reader went away: the run goes on without it

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        keep, drop = [], []
        for item in items:
            cid = case_id(item)
            case_kind(item)  # a mistyped kind= stops the run here
            item.extra_keyword_matches.add(cid)
            wanted = not self.opts.cases or any(sel in (cid, base_id(cid)) for sel in self.opts.cases)
            (keep if wanted else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.selected = len(session.items)
        if self.opts.mode == "list":
            for item in session.items:
                mark = case_marker(item)
                reqs, title = (mark.kwargs.get("reqs", ""), mark.kwargs.get("title", "")) if mark else ("", "")
                self.write(f"{case_id(item):40} {reqs:28} {case_kind(item):9} {title}\n")

    # -- running

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        item.stash[WARNINGS_KEY] = []
        item.stash[PROGRAMS_KEY] = []
        item.stash[NOTES_KEY] = []
        mark = case_marker(item)
        for needed in mark.kwargs.get("needs", ()) if mark else ():  # a base ID (every variant) or a full one
            for other in self.by_base.get(needed, [needed] if needed in self.results else []):
                if self.results[other].verdict in (Verdict.FAIL, Verdict.BLOCKED):
                    root = self.results[other].root or other
                    self._result(item).root = root
                    via = "" if root == other else f", through {needed}"
                    pytest.skip(f"BLOCKED: needs {needed}; {root} FAILed{via}")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]):
        report = yield
        result = self._result(item)
        result.duration += call.duration
        if report.failed:
            result.verdict = Verdict.FAIL
            exc = call.excinfo.value if call.excinfo else None
            if isinstance(exc, ProgramDied) and not exc.reqs and result.details:
                result.details.insert(0, exc.what)  # "the server was killed by SIGSEGV during ...": first
            else:
                result.details += self._failure(item, call)
        elif report.skipped and result.verdict == Verdict.PASS:
            reason = call.excinfo.value.msg if call.excinfo else ""
            result.verdict = Verdict.BLOCKED if reason.startswith("BLOCKED:") else Verdict.SKIP
            result.details.append(reason.removeprefix("BLOCKED: "))
            if result.verdict == Verdict.BLOCKED and not result.root:
                result.root = self._root_of(reason.removeprefix("BLOCKED: "))
        elif report.when == "call" and report.passed and item.stash.get(WARNINGS_KEY, []):
            result.verdict = Verdict.WARN
            for reqs, what in item.stash[WARNINGS_KEY]:
                result.details += [what, *(quote(r) for r in reqs.split())]
        if report.when == "call":
            for text, in_title in item.stash.get(NOTES_KEY, []):
                result.details.insert(0, text)
                if in_title:
                    result.title += f" [{text}]"
        item.stash[VERDICT_KEY] = result.verdict
        if result.verdict != Verdict.PASS and not result.transcripts:
            self._keep_screens(item, result)
        if report.when == "teardown":
            report.user_properties += [("verdict", result.verdict), ("requirements", " ".join(result.reqs))]
        return report

    def _root_of(self, reason: str) -> str:
        """For a case a fixture BLOCKED (a server command that cannot start blocks the rest): the
        FAILed case whose details say the same, else ''."""
        return next((r.case_id for r in self.results.values()
                     if r.verdict == Verdict.FAIL and reason in r.details), "")

    def _result(self, item: pytest.Item) -> Result:
        cid = case_id(item)
        if cid not in self.results:
            mark = case_marker(item)
            reqs = mark.kwargs.get("reqs", "").split() if mark else []
            self.results[cid] = Result(cid, mark.kwargs.get("title", "") if mark else item.name, reqs,
                                       kind=case_kind(item))
            self.by_base.setdefault(base_id(cid), []).append(cid)
            self.by_node[item.nodeid] = self.results[cid]
        return self.results[cid]

    def _read_screens(self, item: pytest.Item) -> list[Any]:
        """The programs this case watched, their output read to the end (once per case): output may
        still be arriving when a case fails, and what the case's waits did not read is not yet on
        the screen we show."""
        programs = item.stash.get(PROGRAMS_KEY, [])
        if not item.stash.get(SETTLED_KEY, False):
            item.stash[SETTLED_KEY] = True
            read_to_the_end(programs, self.opts.quiet_period, self.opts.step)
        return programs

    def _keep_screens(self, item: pytest.Item, result: Result) -> None:
        """What each program showed in this case, read to the end now: once the case's fixtures
        have stopped a program, what it wrote after the case's last wait is gone."""
        for program in self._read_screens(item):
            if text := program.output_since()[-TRANSCRIPT_CHARS:]:
                result.transcripts[program.role] = text

    def _failure(self, item: pytest.Item, call: pytest.CallInfo[None]) -> list[str]:
        exc = call.excinfo.value if call.excinfo else None
        if isinstance(exc, CaseFailure):
            lines = exc.details()
            lines += [quote(r) for r in (exc.reqs or self._result(item).reqs)]
        elif exc is not None:
            where = traceback.extract_tb(call.excinfo.tb)[-1]
            lines = [f"the suite could not run this case: {type(exc).__name__}: {exc} "
                     f"({Path(where.filename).name}:{where.lineno})"]
        else:
            lines = ["failed"]
        for program in self._read_screens(item):
            lines.append(f"the {program.role}'s screen, last lines ({program.exit_description()}):")
            lines += [f"  | {line}" for line in program.tail()]
        return lines

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        result = self.by_node.get(nodeid)
        if result is None:
            return
        self.event("case", **result.as_json(self.opts.mode))
        if result.verdict == Verdict.BLOCKED:  # shown at the end, one line per root cause
            why = "" if result.root else (result.details or ["for a reason not given"])[0]
            self.blocked.setdefault((result.root, why), []).append(result.case_id)
            return
        if result.verdict == Verdict.SKIP:  # likewise, one line per reason
            self.skipped.setdefault((result.details or ["for a reason not given"])[0], []).append(result.case_id)
            return
        if result.verdict == Verdict.PASS and self.opts.brief:
            return
        self.write(f"{result.verdict:7} {result.case_id:36} {result.title}\n")
        if result.verdict != Verdict.PASS:
            for line in result.details:
                self.write(f"          {line}\n")
        if result.verdict == Verdict.FAIL:
            self.write(f"          re-run: {self.rerun_command(result.case_id)}\n")

    def rerun_command(self, cid: str) -> str:
        return shell_join(self.opts.command_line([cid]))

    def blocked_lines(self) -> list[str]:
        """`BLOCKED 234 cases need C-HELLO-2[coalesced], which FAILed`: one line per root cause,
        and `SKIP    264 cases: WHY` one per reason, naming the cases themselves when they are few."""
        lines = []
        for (root, why), cases in self.blocked.items():
            if root:
                what = f"1 case needs {root}" if len(cases) == 1 else f"{len(cases)} cases need {root}"
                what += ", which FAILed"
            else:  # blocked for a reason that no FAILed case gave
                what = f"{len(cases)} case{'s' if len(cases) > 1 else ''}: {why}"
            named = f": {', '.join(cases)}" if len(cases) <= 3 else ""
            lines.append(f"{Verdict.BLOCKED:7} {what}{named}\n")
        for why, cases in self.skipped.items():
            named = ", ".join(cases) if len(cases) <= 3 else f"{len(cases)} cases"
            lines.append(f"{Verdict.SKIP:7} {named}: {why}\n")
        return lines

    # -- the end

    def counts(self) -> Counter[str]:
        return Counter(r.verdict for r in self.results.values())

    def summary(self) -> str:
        c = self.counts()
        return (f"{c[Verdict.PASS]} passed, {c[Verdict.FAIL]} failed, {c[Verdict.WARN]} warned, "
                f"{c[Verdict.SKIP]} skipped, {c[Verdict.BLOCKED]} blocked")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.opts.mode == "list":
            return
        for line in self.blocked_lines():
            self.write(line)
        self.write(f"{self.summary()}\n")
        if (points := self.points()) is not None:
            self.write(f"points: {points['score']:g} of {points['max_score']:g} (profile {points['profile']}, "
                       f"on the cases this run ran)\n")
        self.event("end", summary=dict(self.counts()), seconds=round(time.monotonic() - self.started, 3))
        if self.events is not None:
            with contextlib.suppress(BrokenPipeError):
                self.events.close()
            self.events = None
        if self.opts.json_path:
            self.write_json(self.opts.json_path)
        if self.opts.report_path:
            report.write(self.opts.report_path, self.report_data())

    def write_json(self, path: Path) -> None:
        data = {
            "mode": self.opts.mode,
            "command": self.opts.command_line(),
            "seconds": round(time.monotonic() - self.started, 3),
            "summary": dict(self.counts()),
            "cases": [r.as_json(self.opts.mode) for r in self.results.values()],
        }
        if (points := self.points()) is not None:
            data["points"] = points
        with open(path, "w", encoding="utf-8") as out:  # also /dev/fd/N, a pipe (batch mode)
            out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def report_data(self) -> dict[str, Any]:
        """This run as the HTML report's one row (batch mode makes one row per submission)."""
        cases = [r.as_json(self.opts.mode) for r in self.results.values()]
        submission = {
            "name": self.implementation(),
            "status": Status.GRADED, "mode": "pair" if self.opts.mode == "pair" else "framed", "message": "",
            "log": "", "seconds": round(time.monotonic() - self.started, 3), "summary": dict(self.counts()),
            "results": {c["id"]: c for c in cases},
        }
        if (points := self.points()) is not None:
            submission["points"] = points
        return document([submission], cases, command=shell_join(self.opts.command_line()),
                        seconds=submission["seconds"], timeout_scale=self.opts.timeout_scale)

    def implementation(self) -> str:
        """What was tested, in a few words: the report's row name."""
        if self.opts.attach:
            return "server at {}:{}".format(*self.opts.attach)
        if self.opts.mode == "pair":  # joined plainly: shlex would quote every '{port}'
            return f"{' '.join(self.opts.server_command)} + {' '.join(self.opts.client_command)}"
        return " ".join(self.opts.command)

    def points(self) -> dict[str, Any] | None:
        """This run's points under the course profile (--profile), scored on the cases it ran."""
        if self.opts.profile is None:
            return None
        results = {r.case_id: r.as_json(self.opts.mode) for r in self.results.values()}
        return course.score(self.opts.profile, self.opts.mode, results, course.catalogue_of(results))

    def failed(self) -> bool:
        return self.counts()[Verdict.FAIL] > 0


def document(submissions: list[dict[str, Any]], cases: list[dict[str, Any]], *, command: str, seconds: float,
             timeout_scale: float) -> dict[str, Any]:
    """The data of an HTML report (conformance/report.py): the columns are the cases, each
    `{id, title, mode, kind, requirements}` in suite order, and the rows the submissions."""
    columns = [{"id": c["id"], "base": base_id(c["id"]), "mode": c["mode"], "kind": c.get("kind", Kind.BEHAVIOUR),
                "title": c["title"], "requirements": c["requirements"]} for c in cases]
    return {"title": "Conformance report", "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(seconds, 1), "timeout_scale": timeout_scale, "command": command,
            "cases": columns, "submissions": submissions}
