"""The pytest plugin that turns test outcomes into conformance verdicts.

pytest collects, selects, runs and writes JUnit XML; this plugin adds what a conformance
suite needs on top: case IDs tied to PROTOCOL.md requirements, the verdicts PASS / FAIL /
WARN / SKIP / BLOCKED, one line per case with the details of a failure, a JSON report, and
the exit status (0 iff nothing FAILed).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance import report
from conformance.checks import CaseFailure, ProgramDied, quote

VERDICTS = ("PASS", "FAIL", "WARN", "SKIP", "BLOCKED")
TRANSCRIPT_CHARS = 4000  # the end of a program's screen kept with a case that did not PASS
WARNINGS_KEY = pytest.StashKey[list[tuple[str, str]]]()
PROGRAMS_KEY = pytest.StashKey[list[Any]]()
VERDICT_KEY = pytest.StashKey[str]()
NOTES_KEY = pytest.StashKey[list[tuple[str, bool]]]()


@dataclass
class Options:
    """What the command line asked for; the cases read it through the `opts` fixture."""

    mode: str  # server, client, pair, or list
    command: list[str] = field(default_factory=list)  # the implementation, with {host} {port} ...
    server_command: list[str] = field(default_factory=list)  # pair mode
    client_command: list[str] = field(default_factory=list)  # pair mode
    host: str = "127.0.0.1"
    attach: tuple[str, int] | None = None
    timeout: float = 5.0
    timeout_scale: float = 1.0
    quiet: float = 0.25
    handshake_timeout: float = 1.0
    cases: list[str] = field(default_factory=list)
    json_path: Path | None = None
    report_path: Path | None = None  # the HTML page (conformance/report.py)
    untrusted: bool = False  # start the programs under test in the sandbox (conformance/sandbox.py)
    rerun_argv: list[str] = field(default_factory=list)  # the command line without selection

    @property
    def step(self) -> float:
        return self.timeout * self.timeout_scale

    @property
    def quiet_period(self) -> float:
        return self.quiet * self.timeout_scale


@dataclass
class Result:
    case_id: str
    title: str
    reqs: list[str]
    verdict: str = "PASS"
    details: list[str] = field(default_factory=list)
    root: str = ""  # for BLOCKED: the case whose failure blocked it
    duration: float = 0.0
    transcripts: dict[str, str] = field(default_factory=dict)  # what each program showed, if not PASS

    def as_json(self, mode: str) -> dict[str, Any]:
        return {"id": self.case_id, "title": self.title, "mode": mode, "requirements": self.reqs,
                "verdict": self.verdict, "details": self.details, "transcripts": self.transcripts,
                "seconds": round(self.duration, 3)}


def case_marker(item: pytest.Item) -> pytest.Mark | None:
    return item.get_closest_marker("case")


def case_id(item: pytest.Item) -> str:
    mark = case_marker(item)
    base = mark.args[0] if mark else item.name
    callspec = getattr(item, "callspec", None)
    return f"{base}[{callspec.id}]" if callspec else base


def base_id(full_id: str) -> str:
    return full_id.split("[", 1)[0]


class ConformancePlugin:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.results: dict[str, Result] = {}
        self.by_base: dict[str, list[str]] = {}
        self.by_node: dict[str, Result] = {}
        self.selected = 0
        self.started = time.monotonic()
        self.out = sys.stdout

    def write(self, text: str) -> None:
        """Output that survives a reader that went away (`... | head`)."""
        try:
            self.out.write(text)
            self.out.flush()
        except BrokenPipeError:
            self.out = open(os.devnull, "w")  # noqa: SIM115 (kept for the rest of the run)

    # -- collection and selection

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "case(id, reqs, title, needs=()): a conformance case")
        config.conformance_options = self.opts  # type: ignore[attr-defined]

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        keep, drop = [], []
        for item in items:
            cid = case_id(item)
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
                self.write(f"{case_id(item):40} {reqs:28} {title}\n")

    # -- running

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        item.stash[WARNINGS_KEY] = []
        item.stash[PROGRAMS_KEY] = []
        item.stash[NOTES_KEY] = []
        mark = case_marker(item)
        for needed in mark.kwargs.get("needs", ()) if mark else ():
            for other in self.by_base.get(needed, []):
                if self.results[other].verdict in ("FAIL", "BLOCKED"):
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
            result.verdict = "FAIL"
            exc = call.excinfo.value if call.excinfo else None
            if isinstance(exc, ProgramDied) and not exc.reqs and result.details:
                result.details.insert(0, exc.what)  # "the server was killed by SIGSEGV during ...": first
            else:
                result.details += self._failure(item, call)
        elif report.skipped and result.verdict == "PASS":
            reason = call.excinfo.value.msg if call.excinfo else ""
            result.verdict = "BLOCKED" if reason.startswith("BLOCKED:") else "SKIP"
            result.details.append(reason.removeprefix("BLOCKED: "))
        elif report.when == "call" and report.passed and item.stash.get(WARNINGS_KEY, []):
            result.verdict = "WARN"
            for reqs, what in item.stash[WARNINGS_KEY]:
                result.details += [what, *(quote(r) for r in reqs.split())]
        if report.when == "call":
            for text, in_title in item.stash.get(NOTES_KEY, []):
                result.details.insert(0, text)
                if in_title:
                    result.title += f" [{text}]"
        item.stash[VERDICT_KEY] = result.verdict
        if result.verdict != "PASS" and not result.transcripts:
            self._keep_screens(item, result)
        if report.when == "teardown":
            report.user_properties += [("verdict", result.verdict), ("requirements", " ".join(result.reqs))]
        return report

    def _result(self, item: pytest.Item) -> Result:
        cid = case_id(item)
        if cid not in self.results:
            mark = case_marker(item)
            reqs = mark.kwargs.get("reqs", "").split() if mark else []
            self.results[cid] = Result(cid, mark.kwargs.get("title", "") if mark else item.name, reqs)
            self.by_base.setdefault(base_id(cid), []).append(cid)
            self.by_node[item.nodeid] = self.results[cid]
        return self.results[cid]

    @staticmethod
    def _keep_screens(item: pytest.Item, result: Result) -> None:
        """What each program showed in this case, read to the end now: once the case's fixtures
        have stopped a program, what it wrote after the case's last wait is gone."""
        for program in item.stash.get(PROGRAMS_KEY, []):
            program.pump()
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
        for program in item.stash.get(PROGRAMS_KEY, []):
            lines.append(f"the {program.role}'s screen, last lines ({program.exit_description()}):")
            lines += [f"  | {line}" for line in program.tail()]
        return lines

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        result = self.by_node.get(nodeid)
        if result is None:
            return
        self.write(f"{result.verdict:7} {result.case_id:36} {result.title}\n")
        if result.verdict in ("FAIL", "WARN", "SKIP", "BLOCKED"):
            for line in result.details:
                self.write(f"          {line}\n")
        if result.verdict == "FAIL":
            self.write(f"          re-run: {self.rerun_command(result.case_id)}\n")

    def rerun_command(self, cid: str) -> str:
        argv = list(self.opts.rerun_argv)
        at = argv.index(self.opts.mode) + 1 if self.opts.mode in argv else len(argv)
        return shlex.join([*argv[:at], "--case", cid, *argv[at:]])

    # -- the end

    def counts(self) -> Counter[str]:
        return Counter(r.verdict for r in self.results.values())

    def summary(self) -> str:
        c = self.counts()
        return (f"{c['PASS']} passed, {c['FAIL']} failed, {c['WARN']} warned, "
                f"{c['SKIP']} skipped, {c['BLOCKED']} blocked")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.opts.mode == "list":
            return
        self.write(f"{self.summary()}\n")
        if self.opts.json_path:
            self.write_json(self.opts.json_path)
        if self.opts.report_path:
            report.write(self.opts.report_path, self.report_data())

    def write_json(self, path: Path) -> None:
        data = {
            "mode": self.opts.mode,
            "command": self.opts.rerun_argv,
            "seconds": round(time.monotonic() - self.started, 3),
            "summary": dict(self.counts()),
            "cases": [r.as_json(self.opts.mode) for r in self.results.values()],
        }
        with open(path, "w", encoding="utf-8") as out:  # also /dev/fd/N, a pipe (batch mode)
            out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def report_data(self) -> dict[str, Any]:
        """This run as the HTML report's one row (batch mode makes one row per submission)."""
        cases = [r.as_json(self.opts.mode) for r in self.results.values()]
        submission = {
            "name": self.implementation(),
            "status": "GRADED", "mode": "pair" if self.opts.mode == "pair" else "framed", "message": "",
            "log": "", "seconds": round(time.monotonic() - self.started, 3), "summary": dict(self.counts()),
            "results": {c["id"]: c for c in cases},
        }
        return document([submission], cases, command=shlex.join(self.opts.rerun_argv),
                        seconds=submission["seconds"], timeout_scale=self.opts.timeout_scale)

    def implementation(self) -> str:
        """What was tested, in a few words: the report's row name."""
        if self.opts.attach:
            return "server at {}:{}".format(*self.opts.attach)
        if self.opts.mode == "pair":  # joined plainly: shlex would quote every '{port}'
            return f"{' '.join(self.opts.server_command)} + {' '.join(self.opts.client_command)}"
        return " ".join(self.opts.command)

    def failed(self) -> bool:
        return self.counts()["FAIL"] > 0


def document(submissions: list[dict[str, Any]], cases: list[dict[str, Any]], *, command: str, seconds: float,
             timeout_scale: float) -> dict[str, Any]:
    """The data of an HTML report (conformance/report.py): the columns are the cases, each
    `{id, title, mode, requirements}` in suite order, and the rows the submissions."""
    columns = [{"id": c["id"], "base": base_id(c["id"]), "mode": c["mode"], "title": c["title"],
                "requirements": c["requirements"]} for c in cases]
    return {"title": "Conformance report", "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(seconds, 1), "timeout_scale": timeout_scale, "command": command,
            "cases": columns, "submissions": submissions}
