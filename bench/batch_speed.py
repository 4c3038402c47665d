#!/usr/bin/env python3
"""Wall time of `conformance batch` on the test class of tests/submissions.py, in seconds per
submission (goal: under 6 s on average on this 2-core machine, the hanging one included, with the
default --wall-time), median of N runs, against a baseline measured in the same run: a batch of
the reference alone.

    .venv/bin/python bench/batch_speed.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "broken")]  # the tests' helpers (submissions, mutants)

from submissions import make_class, reference  # noqa: E402

GOAL = 6.0  # seconds per submission, on average


def timed(folder: Path) -> float:
    """One batch with the default options (--wall-time included: the hanging submission is HUNG then)."""
    start = time.perf_counter()
    result = subprocess.run(["python3", "-m", "conformance", "batch", str(folder)],
                            cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"the batch failed:\n{result.stdout}{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as temp:
        klass, alone = Path(temp, "class"), Path(temp, "alone")
        count = len(make_class(klass))
        reference(alone / "reference")
        times: dict[str, list[float]] = {"reference alone": [], f"class of {count}": []}
        for _ in range(runs):
            times["reference alone"].append(timed(alone))
            times[f"class of {count}"].append(timed(klass))
    for name, values in times.items():
        print(f"{name:16} median {statistics.median(values):6.1f} s  (runs: {', '.join(f'{v:.1f}' for v in values)})")
    base, whole = (statistics.median(v) for v in times.values())
    print(f"ratio: the class takes {whole / base:.1f}x the reference alone, for {count} submissions")
    print(f"per submission: {whole / count:.1f} s (goal: under {GOAL:g} s)")


if __name__ == "__main__":
    main()
