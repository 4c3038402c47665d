#!/usr/bin/env python3
"""Idle CPU of both programs while they wait (PROTOCOL.md S-14, C-10): clock ticks used over a
window in each waiting state, read from /proc. Target: 0 ticks.

    .venv/bin/python bench/idle_cpu.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' helpers (procs)

from procs import Client, Server, cpu_ticks


def idle_ticks(pids: dict[str, int], seconds: float) -> dict[str, int]:
    before = {name: cpu_ticks(pid) for name, pid in pids.items()}
    time.sleep(seconds)  # the measuring window itself, not a synchronisation
    return {name: cpu_ticks(pid) - before[name] for name, pid in pids.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    srv = Server()
    try:
        pids = {"server": srv.child.pid}
        print(f"server waiting for a client: {idle_ticks(pids, args.seconds)}")
        cli = Client("plain", "127.0.0.1", srv.port)
        pids["client"] = cli.child.pid
        cli.expect_text("Enter client handle (length 10 or less): ")
        print(f"client at its handle prompt:  {idle_ticks(pids, args.seconds)}")
        cli.type("Chris")
        srv.expect_established()
        cli.expect_text("Chris> ")
        print(f"client's turn (prompt shown): {idle_ticks(pids, args.seconds)}")
        cli.type("test")
        srv.expect_text("HostA> ")
        print(f"server's turn (prompt shown): {idle_ticks(pids, args.seconds)}")
        cli.stop()
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
