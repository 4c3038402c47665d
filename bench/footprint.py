#!/usr/bin/env python3
"""Server time from start to its `Listening` line and to its first HELLO answered, and resident
memory in a conversation, against a baseline measured in the same run: the server of another
revision (default HEAD), started the same way, the two starts interleaved (ABBA). Both run under
the system's python3 interpreter itself: where `python3` on PATH is a shim (pyenv's, a shell
script that then executes the interpreter), the shim's own time is not the server's and is shown
apart. The floor, `python3 -c pass` under that interpreter, is measured beside them: its own
start, which the server's start includes (it re-executes itself under .venv once it needs
construct, S-2, after it listens).

    .venv/bin/python bench/footprint.py [--starts 20] [--baseline REV]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' helpers (procs)

from chatwire import Hello, Message, Role  # noqa: E402
from procs import Peer, Screen, conversation  # noqa: E402

SERVER_FILES = ("chatserve.py", "chatwire.py", "venvboot.py")
# The interpreter that `python3` on PATH runs (through a shim or not).
PYTHON3 = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"], capture_output=True, text=True,
                         check=True).stdout.strip()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def checkout(rev: str, into: Path) -> Path:
    """The server files of `rev` in `into`, with a link to this .venv (as tests/broken does)."""
    for name in SERVER_FILES:
        (into / name).write_bytes(subprocess.run(["git", "show", f"{rev}:{name}"], cwd=ROOT, check=True,
                                                 capture_output=True).stdout)
    (into / ".venv").symlink_to(ROOT / ".venv", target_is_directory=True)
    return into / "chatserve.py"


def start_times(server: Path) -> tuple[float, float]:
    """Seconds from spawn to the `Listening` line, and to the server's HELLO to a client that
    connects as soon as it has read that line."""
    start = time.perf_counter()
    proc = subprocess.Popen([PYTHON3, str(server), "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    listening = time.perf_counter() - start
    assert line.startswith("Listening on port "), line
    peer = Peer(socket.create_connection(("127.0.0.1", int(line.split()[3].rstrip(".")))), Role.CLIENT)
    peer.send(Hello("Chris"))
    assert peer.receive() == Hello("HostA")
    answered = time.perf_counter() - start
    peer.close()
    proc.kill()
    proc.wait()
    return listening, answered


def floor_time(python3: str = PYTHON3) -> float:
    start = time.perf_counter()
    subprocess.run([python3, "-c", "pass"], check=True)
    return time.perf_counter() - start


def floor_rss() -> int:
    """Resident memory of the system python3 doing nothing: what its own start (site, .pth
    files) takes, which a server running in that interpreter carries too."""
    proc = subprocess.Popen([PYTHON3, "-c", "import sys; print(flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        proc.stdout.readline()  # its start is over
        return rss_kib(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def conversation_rss(server: Path) -> int:
    """The server's resident memory once a client is past its handshake and a message has come."""
    srv = Screen([PYTHON3, str(server), "0"], role="server")
    try:
        port = int(srv.expect_re(r"Listening on port (\d+)\.\.\.\r\n").group(1))
        peer = Peer(socket.create_connection(("127.0.0.1", port)), Role.CLIENT)
        peer.send(Hello("Chris"))
        assert peer.receive() == Hello("HostA")
        peer.send(Message("test"))
        srv.expect_text("HostA> ")
        kib = rss_kib(srv.pid)
        peer.close()
        return kib
    finally:
        srv.stop()


def median_ms(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"median {statistics.median(ms):.0f} ms (min {ms[0]:.0f}, max {ms[-1]:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--baseline", default="HEAD", metavar="REV", help="the revision to compare with (default HEAD)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        servers = {"baseline": checkout(args.baseline, Path(tmp)), "this": ROOT / "chatserve.py"}
        listening: dict[str, list[float]] = {name: [] for name in servers}
        answered: dict[str, list[float]] = {name: [] for name in servers}
        floor: list[float] = []
        on_path: list[float] = []  # `python3 -c pass` as PATH finds it: the shim, if any, included
        for i in range(args.starts):
            for name in ("baseline", "this") if i % 2 == 0 else ("this", "baseline"):  # ABBA
                until_listening, until_answered = start_times(servers[name])
                listening[name].append(until_listening)
                answered[name].append(until_answered)
            floor.append(floor_time())
            on_path.append(floor_time("python3"))
        rss = {name: statistics.median(conversation_rss(path) for _ in range(3)) for name, path in servers.items()}
        print(f"{args.starts} starts each, interleaved; baseline: {args.baseline}; interpreter: {PYTHON3}")
        print(f"python3 -c pass through PATH:         {median_ms(on_path)} (a shim's own time included)")
        print(f"floor, the interpreter's -c pass:     {median_ms(floor)}; resident memory "
              f"{floor_rss() / 1024:.1f} MiB")
        for name in servers:
            print(f"{name:8} start to 'Listening':      {median_ms(listening[name])}")
            print(f"{name:8} start to its first HELLO:  {median_ms(answered[name])}")
            print(f"{name:8} resident memory in a conversation: {rss[name] / 1024:.1f} MiB (median of 3)")
    with conversation() as (_, cli):
        print(f"client resident memory in a conversation: {rss_kib(cli.pid) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
