"""The conformance suite can fail: each mutant of tests/broken/mutants.py (the reference with one
documented defect) is FAILed by exactly the cases its entry names, and every case of the suite
is FAILed by some mutant.

All suite runs happen once, 8 at a time, in the session fixture `runs`: about 130 s on 2 cores
(tests/broken/README.md has the timings). The generated docs/mutation-table.md must match them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "broken"))

import mutants
import table

from procs import MUTATION_SUMMARY, SYSTEM_PYTHON3

README = Path(__file__).resolve().parent / "broken" / "README.md"


@pytest.fixture(scope="session")
def runs(request: pytest.FixtureRequest) -> dict[str, table.Run]:
    done = table.run_all()
    request.config.stash[MUTATION_SUMMARY] = summary(done)
    if hasattr(request.config, "workeroutput"):  # a pytest-xdist worker: the controller prints it
        request.config.workeroutput["mutation_summary"] = summary(done)
    return done


def summary(done: dict[str, table.Run]) -> list[str]:
    """One line per mutant (its verdict counts and defect), then the coverage; the full table is
    docs/mutation-table.md."""
    lines = []
    for name, run in done.items():
        counts = {v: len(run.with_verdict(v)) for v in ("FAIL", "BLOCKED", "PASS")}
        lines.append(f"{name:32} FAIL {counts['FAIL']:3}  BLOCKED {counts['BLOCKED']:3}  PASS {counts['PASS']:3}  "
                     f"{run.mutant.defect}")
    gaps = sorted({base for bases in table.uncovered(done).values() for base in bases})
    lines.append(f"cases FAILed by no mutant: {', '.join(gaps) or 'none'} (full table: docs/mutation-table.md)")
    return lines


# --- without running the suite -----------------------------------------------------------------


@pytest.mark.parametrize("m", mutants.MUTANTS, ids=lambda m: m.name)
def test_edits_apply_exactly_once(m: mutants.Mutant) -> None:
    """Each `old` is in the reference exactly once (build() checks it; this says which one broke
    when the reference changes), and the edits do change the file."""
    assert mutants.mutated_source(m) != (mutants.ROOT / m.file).read_text(encoding="utf-8")


def test_entries_are_documented() -> None:
    text = README.read_text(encoding="utf-8")
    assert [m.name for m in mutants.MUTANTS if f"`{m.name}`" not in text] == []


def test_server_copy_reexecutes_under_venv(tmp_path: Path) -> None:
    """The suite starts server mutants under .venv directly; started as the reference is, with the
    system python3, the copy must find the .venv beside it (a link) through venvboot."""
    mutants.build(mutants.SERVER_MUTANTS[0], tmp_path)
    out = subprocess.run([SYSTEM_PYTHON3, str(tmp_path / "chatserve.py"), "--help"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert "usage: chatserve.py" in out.stdout


# --- the suite against each mutant -------------------------------------------------------------


@pytest.mark.parametrize("name", [m.name for m in mutants.MUTANTS])
def test_mutant_is_failed_by_exactly_its_cases(runs: dict[str, table.Run], name: str) -> None:
    """FAIL exactly the listed cases; every other case PASS, or BLOCKED by a FAILed prerequisite;
    WARN and SKIP only where listed."""
    run = runs[name]
    found = table.problems(run)
    assert not found, f"{name} ({run.mutant.defect}):\n  " + "\n  ".join(found)


def test_every_case_is_failed_by_some_mutant(runs: dict[str, table.Run]) -> None:
    gaps = {base for bases in table.uncovered(runs).values() for base in bases}
    assert gaps == set(mutants.UNFAILABLE), "base case IDs no mutant FAILs (UNFAILABLE lists the known ones)"


def test_committed_table_matches_the_runs(runs: dict[str, table.Run]) -> None:
    committed = table.TABLE.read_text(encoding="utf-8") if table.TABLE.exists() else ""
    assert committed == table.render(runs), f"docs/mutation-table.md is stale: regenerate it with {table.REGENERATE}"
