#!/usr/bin/env python3
"""Message latency through both real programs, against the floor of a raw loopback socket.

From a line entering the client's terminal to its `Chris> ` line on the server's terminal (and
back, from the server's terminal to the client's), over N messages, against the same payload
sent through a plain TCP connection on 127.0.0.1 in the same process. Prints medians, p99 and
the ratio to the floor.

    .venv/bin/python bench/latency.py [--messages 1000] [--size 100]
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' helpers (procs)

from procs import conversation  # noqa: E402


def read_until(fd: int, needle: bytes, buffer: bytearray, timeout: float = 10.0) -> None:
    """Read the pty until `needle` has appeared; what follows it stays in `buffer`."""
    deadline = time.perf_counter() + timeout
    while (at := buffer.find(needle)) < 0:
        left = deadline - time.perf_counter()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"{needle!r} did not appear")
        buffer += os.read(fd, 65536)
    del buffer[: at + len(needle)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def through_programs(messages: int, size: int) -> tuple[list[float], list[float]]:
    with conversation() as (srv, cli):
        sfd, cfd = srv.fd, cli.fd
        sbuf, cbuf = bytearray(), bytearray()
        up, down = [], []
        for i in range(messages):
            text = f"{i:06d}" + "x" * (size - 6)
            start = time.perf_counter()
            os.write(cfd, text.encode() + b"\n")
            read_until(sfd, f"Chris> {text}\r\n".encode(), sbuf)
            up.append(time.perf_counter() - start)
            read_until(sfd, b"HostA> ", sbuf)
            start = time.perf_counter()
            os.write(sfd, text.encode() + b"\n")
            read_until(cfd, f"HostA> {text}\r\n".encode(), cbuf)
            down.append(time.perf_counter() - start)
            read_until(cfd, b"Chris> ", cbuf)
        return up, down


def floor(messages: int, size: int) -> list[float]:
    """The same payload over a raw loopback TCP connection: send, then receive it whole."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    payload = b"x" * (size + 3)  # the frame's size
    with a, b:
        for _ in range(messages):
            start = time.perf_counter()
            a.sendall(payload)
            got = 0
            while got < len(payload):
                got += len(b.recv(65536))
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=100, help="characters per message (default 100)")
    args = parser.parse_args()
    up, down = through_programs(args.messages, args.size)
    base = floor(args.messages, args.size)
    base_median = statistics.median(base)
    for name, values in (("client -> server", up), ("server -> client", down), ("raw loopback floor", base)):
        median = statistics.median(values)
        print(f"{name:19} median {median * 1e6:8.0f} us   p99 {percentile(values, 0.99) * 1e6:8.0f} us"
              f"   x{median / base_median:6.1f} the floor")


if __name__ == "__main__":
    main()
