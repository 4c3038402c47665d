#!/usr/bin/env python3
"""Wall time of a full conformance run against the reference: `server` mode plus `client` mode,
median of N runs (target: under 20 s on this 2-core machine).

    python3 bench/conformance_speed.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = {
    "server": ["server", "--", "python3", "chatserve.py", "{port}", "--handshake-timeout", "{handshake_timeout}"],
    "client": ["client", "--", "./chatclient", "{host}", "{port}"],
}


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(["python3", "-m", "conformance", *args], cwd=ROOT, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"conformance {args[0]} failed:\n{result.stdout}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    times: dict[str, list[float]] = {mode: [] for mode in RUNS}
    for _ in range(runs):
        for mode, args in RUNS.items():
            times[mode].append(timed(args))
    totals = [s + c for s, c in zip(times["server"], times["client"], strict=True)]
    for mode, values in times.items():
        print(f"{mode:7} median {statistics.median(values):6.2f} s  (runs: {', '.join(f'{v:.2f}' for v in values)})")
    print(f"total   median {statistics.median(totals):6.2f} s  over {runs} runs")


if __name__ == "__main__":
    main()
