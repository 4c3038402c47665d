#!/usr/bin/env python3
"""Runs the conformance suite against every mutant and writes docs/mutation-table.md.

    .venv/bin/python tests/broken/table.py            # run all mutants, check them, rewrite the table
    .venv/bin/python tests/broken/table.py --check    # run all mutants, exit 1 if the committed table differs
    .venv/bin/python tests/broken/table.py srv-no-busy cli-sigpipe   # run only these, print their verdicts

tests/test_conformance_mutants.py runs the same code and checks the same things.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mutants  # beside this file (the project's vectors: installed in .venv by ./compileall)
from mutants import ROOT, Mutant, expected_ids

TABLE = ROOT / "docs" / "mutation-table.md"
REGENERATE = ".venv/bin/python tests/broken/table.py"
WORKERS = 8  # on 2 cores: a run mostly waits (ptys, sockets, timeouts), so 8 overlap; 4 took 105 s, 12 took 70 s
RUN_TIMEOUT = 300.0  # seconds for one whole suite run: far above any real run, so a hang is reported
LETTER = {"PASS": ".", "FAIL": "F", "BLOCKED": "B", "WARN": "W", "SKIP": "S"}
CASE_TOKEN = re.compile(r"[A-Z]-[A-Z0-9]+-\d+(?:\[[^\]\s]*\])?")


@dataclass
class Run:
    """One suite run against one mutant: the verdict of every case, in the suite's order."""

    mutant: Mutant
    verdicts: dict[str, str]
    details: dict[str, list[str]]
    seconds: float
    output: str  # the suite's own output, or why there was no run
    error: bool = False  # the mutant could not be built, or the suite wrote no results

    def with_verdict(self, *verdicts: str) -> set[str]:
        return {cid for cid, v in self.verdicts.items() if v in verdicts}


def suite_command(mode: str, command: list[str], json_path: Path, timeout_scale: float) -> list[str]:
    # The interpreter running us: under .venv the suite starts at once; under the system python3
    # conformance/__main__.py re-executes itself under .venv, as `python3 -m conformance` does.
    # A 3 s step (not 5): a mutant's failing cases each wait one out, and every step of a passing
    # case takes milliseconds, but with 8 runs on 2 cores an exit can take 2 s (seen once).
    return [sys.executable, "-m", "conformance", mode, "--json", str(json_path), "--timeout", "3",
            "--timeout-scale", f"{timeout_scale:g}", "--", *command]


def run_mutant(m: Mutant, workroot: Path, timeout_scale: float = 1.0) -> Run:
    """One suite run; a mutant that cannot be built or run gives a Run with `error` set, so that
    one broken entry is reported as itself instead of stopping the whole batch."""
    workdir = workroot / m.name
    started = time.monotonic()
    try:
        command = mutants.build(m, workdir)
    except mutants.BuildError as exc:
        return Run(m, {}, {}, 0.0, str(exc), error=True)
    json_path = workdir / "result.json"
    try:
        proc = subprocess.run(suite_command(m.target, command, json_path, timeout_scale), cwd=ROOT,
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        return Run(m, {}, {}, time.monotonic() - started, f"the suite run took over {exc.timeout:g} s", error=True)
    seconds = time.monotonic() - started
    if not json_path.exists():
        return Run(m, {}, {}, seconds, f"the suite wrote no JSON (exit {proc.returncode}):\n"
                   f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}", error=True)
    data = json.loads(json_path.read_text(encoding="utf-8"))
    cases = data["cases"]
    return Run(m, {c["id"]: c["verdict"] for c in cases}, {c["id"]: c["details"] for c in cases}, seconds,
               proc.stdout + proc.stderr)


def run_all(selected: Iterable[Mutant] = mutants.MUTANTS, workers: int = WORKERS,
            timeout_scale: float = 1.0) -> dict[str, Run]:
    """Every selected mutant once, `workers` suite runs at a time; results in table order."""
    selected = list(selected)
    # Longest first, so that no long run starts last and stretches the whole batch.
    ordered = sorted(selected, key=lambda m: -expected_seconds(m))
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp, ThreadPoolExecutor(workers) as pool:
        futures = {m.name: pool.submit(run_mutant, m, Path(tmp), timeout_scale) for m in ordered}
        return {m.name: futures[m.name].result() for m in selected}


# Scheduling hints only (seconds a run took on a 2-core machine under load): the runs that wait
# out several timeouts go first, so that none of them starts last and stretches the batch.
LONG_RUNS = {"srv-mapped-address": 30, "cli-no-timeout": 26, "srv-silent-drop": 25, "srv-one-message-per-read": 25,
             "cli-no-prompt": 22, "srv-no-timeout": 22, "cli-ignores-hello-timeout-env": 20,
             "cli-message-off-by-one": 18}


def expected_seconds(m: Mutant) -> float:
    return LONG_RUNS.get(m.name, 12.0 if m.target == "server" else 8.0)


# --- judging a run ---------------------------------------------------------------------------


def problems(run: Run) -> list[str]:
    """What differs from the mutant's entry; empty when the run is exactly as expected."""
    m, ids = run.mutant, list(run.verdicts)
    if run.error:
        return [run.output]
    found: list[str] = []
    for label, patterns in (("fails", m.fails), ("warns", m.warns), ("skips", m.skips), ("flaky", m.flaky)):
        found += [f"{label}: {p!r} names no case of the suite" for p in sorted(patterns) if not expected_ids({p}, ids)]
    flaky = expected_ids(m.flaky, ids)
    found += [f"{cid}: expected FAIL or PASS (flaky), got {run.verdicts[cid]}" for cid in sorted(flaky)
              if run.verdicts[cid] not in ("FAIL", "PASS")]
    for verdict, patterns in (("FAIL", m.fails), ("WARN", m.warns), ("SKIP", m.skips)):
        want, got = expected_ids(patterns, ids), run.with_verdict(verdict) - flaky
        found += [f"{cid}: expected {verdict}, got {run.verdicts[cid]}" for cid in sorted(want - got)]
        found += [f"{cid}: unexpected {verdict}: {' / '.join(run.details[cid][:3])}" for cid in sorted(got - want)]
    for cid in sorted(run.with_verdict("BLOCKED")):
        if not blocked_by_a_failure(run, cid):
            found.append(f"{cid}: BLOCKED without a FAILed prerequisite: {run.details[cid]}")
    return found


def blocked_by_a_failure(run: Run, cid: str, seen: frozenset[str] = frozenset()) -> bool:
    """The plugin's BLOCKED details name the case that did not pass ("needs S-HELLO-1;
    S-HELLO-1[whole] FAILed"); the wording is not an interface, so any case ID named there counts,
    and a BLOCKED one is followed on to its own cause."""
    named = {token for line in run.details.get(cid, []) for token in CASE_TOKEN.findall(line)}
    causes = named & run.verdicts.keys() - seen - {cid}
    return any(run.verdicts[c] == "FAIL" for c in causes) or any(
        run.verdicts[c] == "BLOCKED" and blocked_by_a_failure(run, c, seen | {cid}) for c in causes)


def solid_fails(run: Run) -> set[str]:
    """The FAILed cases that do not depend on timing: what coverage counts."""
    return run.with_verdict("FAIL") - expected_ids(run.mutant.flaky, list(run.verdicts))


def base_id(cid: str) -> str:
    return cid.split("[", 1)[0]


def uncovered(runs: dict[str, Run]) -> dict[str, list[str]]:
    """Per mode, the base case IDs that no mutant FAILs."""
    out: dict[str, list[str]] = {}
    for mode in ("server", "client"):
        mode_runs = [r for r in runs.values() if r.mutant.target == mode]
        if not mode_runs:
            continue
        bases = dict.fromkeys(base_id(cid) for cid in mode_runs[0].verdicts)
        failed = {base_id(cid) for r in mode_runs for cid in solid_fails(r)}
        out[mode] = [b for b in bases if b not in failed]
    return out


# --- the table -------------------------------------------------------------------------------


def render(runs: dict[str, Run]) -> str:
    """docs/mutation-table.md: verdict letters only, so that equal behaviour renders equal text."""
    lines = [
        "# Mutation table",
        "",
        f"Generated by `{REGENERATE}`: do not edit. Each column is a mutant of",
        "[tests/broken/mutants.py](../tests/broken/mutants.py) (the reference with one defect; see",
        "[tests/broken/README.md](../tests/broken/README.md)); each row is a conformance case; each cell is",
        "the case's verdict against that mutant: `F` FAIL, `B` BLOCKED (a prerequisite FAILed),",
        "`W` WARN, `S` SKIP, `.` PASS, `~` FAIL or PASS as timing decides (a mutant's `flaky` cases,",
        "not counted as coverage; none now). tests/test_conformance_mutants.py checks that the runs",
        "still produce exactly this table.",
        "",
    ]
    for mode, prefix in (("server", "S"), ("client", "C")):
        mode_runs = [r for r in runs.values() if r.mutant.target == mode]
        if not mode_runs:
            continue
        labels = {r.mutant.name: f"{prefix}{i}" for i, r in enumerate(mode_runs, 1)}
        lines += [f"## {mode.capitalize()} mutants", "", "| col | mutant | defect |", "|---|---|---|"]
        lines += [f"| {labels[r.mutant.name]} | `{r.mutant.name}` | {escape(r.mutant.defect)} |" for r in mode_runs]
        lines += ["", f"## {mode.capitalize()} cases", ""]
        lines.append("| case | " + " | ".join(labels.values()) + " |")
        lines.append("|---|" + "---|" * len(mode_runs))
        for cid in mode_runs[0].verdicts:
            cells = [cell(r, cid) for r in mode_runs]
            lines.append(f"| `{cid}` | " + " | ".join(cells) + " |")
        lines += ["", f"## {mode.capitalize()} cases FAILed, by base ID", "", "| case | FAILed by |", "|---|---|"]
        bases = dict.fromkeys(base_id(cid) for cid in mode_runs[0].verdicts)
        for b in bases:
            killers = [labels[r.mutant.name] for r in mode_runs if any(base_id(cid) == b for cid in solid_fails(r))]
            none = f"**none**: {mutants.UNFAILABLE[b]}" if b in mutants.UNFAILABLE else "**none**"
            lines.append(f"| `{b}` | {', '.join(killers) if killers else none} |")
        lines.append("")
    return "\n".join(lines)


def cell(run: Run, cid: str) -> str:
    # A case the mutant's entry marks flaky renders the same whichever way timing went.
    return "~" if cid in expected_ids(run.mutant.flaky, [cid]) else LETTER[run.verdicts.get(cid, "SKIP")]


def escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\\quit", "`\\quit`")


# --- the command line --------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="only these mutants (the table is then not written)")
    parser.add_argument("--check", action="store_true", help="do not write: exit 1 if the table differs")
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--timeout-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in mutants.BY_NAME]
    if unknown:
        parser.error(f"unknown mutants: {', '.join(unknown)}")
    selected = [mutants.BY_NAME[n] for n in args.names] if args.names else mutants.MUTANTS
    started = time.monotonic()
    runs = run_all(selected, args.workers, args.timeout_scale)
    status = 0
    for run in runs.values():
        found = problems(run)
        status |= bool(found)
        print(f"{'ok  ' if not found else 'BAD '} {run.seconds:6.1f} s  {run.mutant.name}")
        for line in found:
            print(f"        {line}")
    print(f"{len(runs)} runs in {time.monotonic() - started:.1f} s")
    if args.names:
        return status
    for mode, bases in uncovered(runs).items():
        unknown = [b for b in bases if b not in mutants.UNFAILABLE]
        if unknown:
            status = 1
            print(f"{mode} cases FAILed by no mutant: {', '.join(unknown)}")
        if known := [b for b in bases if b in mutants.UNFAILABLE]:
            print(f"{mode} cases the suite cannot FAIL (mutants.UNFAILABLE): {', '.join(known)}")
    text = render(runs)
    if args.check:
        if TABLE.exists() and TABLE.read_text(encoding="utf-8") == text:
            return status
        print(f"{TABLE.relative_to(ROOT)} differs from the runs; regenerate it with {REGENERATE}")
        return 1
    TABLE.parent.mkdir(exist_ok=True)
    TABLE.write_text(text, encoding="utf-8")
    print(f"wrote {TABLE.relative_to(ROOT)}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
