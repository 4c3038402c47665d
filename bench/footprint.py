#!/usr/bin/env python3
"""Server time from start to its `Listening` line (median of N starts, with the system python3
and its re-execution under .venv), and resident memory of both programs while they wait.

    .venv/bin/python bench/footprint.py [--starts 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' helpers (procs)

from procs import conversation  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_time() -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(["python3", str(ROOT / "chatserve.py"), "0"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.kill()
    proc.wait()
    assert line.startswith("Listening on port "), line
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=10)
    starts = [start_time() for _ in range(parser.parse_args().starts)]
    print(f"server start to 'Listening': median {statistics.median(starts) * 1000:.0f} ms "
          f"(min {min(starts) * 1000:.0f}, max {max(starts) * 1000:.0f})")
    with conversation() as (srv, cli):
        print(f"resident memory in a conversation: server {rss_kib(srv.pid)} KiB, client {rss_kib(cli.pid)} KiB")


if __name__ == "__main__":
    main()
