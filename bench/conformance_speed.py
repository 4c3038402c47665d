#!/usr/bin/env python3
"""Wall time of whole conformance runs: the reference, and programs that are not the reference.

    .venv/bin/python bench/conformance_speed.py [--runs 3] [--only NAME ...]

Each run is one `python3 -m conformance MODE` against one implementation; the figure is the median
of --runs. The reference runs are the baseline of the same invocation, so the other rows carry
their ratio to it. Goals (issue "fair, fast verdicts"), on 2 cores:

- the README's `server` plus `client` commands, without {handshake_timeout}: < 15 s together;
- a copy that differs only in wording (tests/broken/reworded.py): within 2x of the reference;
- a server that accepts and never answers, and a client that never connects: < 30 s each;
- a plain-text server in `server` mode: the `pair` hint, and done within 10 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "broken"))  # the tests' helpers (reworded)

import reworded  # noqa: E402 (found through the path above)

PY = sys.executable


@dataclass(frozen=True)
class Run:
    name: str
    mode: str
    command: tuple[str, ...]  # after `--`; "reworded" is built first
    baseline: str = ""  # the row this one is compared with
    goal: float = 0.0  # seconds; 0 for none


RUNS = [
    Run("reference server, {handshake_timeout}", "server",
        ("python3", "chatserve.py", "{port}", "--handshake-timeout", "{handshake_timeout}")),
    Run("reference server (README command)", "server", ("python3", "chatserve.py", "{port}")),
    Run("reference client", "client", ("./chatclient", "{host}", "{port}")),
    Run("reworded server", "server", ("reworded-server",), "reference server, {handshake_timeout}"),
    Run("reworded client", "client", ("reworded-client",), "reference client"),
    Run("silent server", "server", (PY, "tests/fixtures/silent_server.py", "{port}"), goal=30),
    Run("client that never connects", "client", (PY, "tests/fixtures/unconnected_client.py", "{host}", "{port}"),
        goal=30),
    Run("plain-text server in server mode", "server", (PY, "tests/pairs/plain_server.py", "{port}"), goal=10),
]


def timed(mode: str, command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([PY, "-m", "conformance", mode, "--", *command], cwd=ROOT, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start, done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "(no output)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=[], help="rows whose name holds one of these words")
    args = parser.parse_args()
    rows = [r for r in RUNS if not args.only or any(word in r.name for word in args.only)]
    with tempfile.TemporaryDirectory() as tmp:
        built = {f"reworded-{t}": reworded.build(t, Path(tmp) / t) for t in ("server", "client")}
        times: dict[str, list[float]] = {r.name: [] for r in rows}
        last: dict[str, str] = {}
        for _ in range(args.runs):  # interleaved, so that a busy moment of the machine hits every row
            for row in rows:
                command = built.get(row.command[0], list(row.command))
                seconds, last[row.name] = timed(row.mode, command)
                times[row.name].append(seconds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for row in rows:
        line = f"{row.name:40} median {medians[row.name]:6.2f} s"
        if row.baseline in medians:
            line += f"  ({medians[row.name] / medians[row.baseline]:.2f}x {row.baseline})"
        if row.goal:
            line += f"  (goal < {row.goal:g} s: {'met' if medians[row.name] < row.goal else 'NOT met'})"
        print(f"{line}\n{'':40} runs {', '.join(f'{v:.2f}' for v in times[row.name])}; last: {last[row.name]}")
    readme = [medians.get("reference server (README command)"), medians.get("reference client")]
    if None not in readme:
        total = sum(readme)  # type: ignore[arg-type]
        print(f"README server + client commands: {total:.2f} s (goal < 15 s: {'met' if total < 15 else 'NOT met'})")


if __name__ == "__main__":
    main()
