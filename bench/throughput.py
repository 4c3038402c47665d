#!/usr/bin/env python3
"""chatwire's decoder throughput (frames per second) against a plain `struct` decoder of the same
frames, in the same process; median of repeated runs.

    .venv/bin/python bench/throughput.py [--frames 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time

from chatwire import NEED_DATA, Connection, Hello, Message, Role, State, encode


def stream(frames: int) -> bytes:
    """A conversation as the server receives it: HELLO, then the client's messages."""
    return encode(Hello("Chris")) + b"".join(encode(Message(f"message number {i} " * 3)) for i in range(frames))


def with_chatwire(data: bytes) -> int:
    conn = Connection(Role.SERVER)
    conn.receive_data(data)
    count = 0
    while conn.next_event() is not NEED_DATA:
        count += 1
        conn.state = State.CLIENT_TURN  # as if the server had answered: its sends are not measured
    return count


def with_struct(data: bytes) -> int:
    """The floor: header by struct, payload decoded as UTF-8, no other check."""
    count, pos, header = 0, 0, struct.Struct("!BH")
    while pos + 3 <= len(data):
        _, length = header.unpack_from(data, pos)
        data[pos + 3 : pos + 3 + length].decode("utf-8")
        pos += 3 + length
        count += 1
    return count


def rate(decode, data: bytes, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        frames = decode(data)
        runs.append(frames / (time.perf_counter() - start))
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = stream(args.frames)
    ours, floor = rate(with_chatwire, data, args.repeat), rate(with_struct, data, args.repeat)
    print(f"chatwire  {ours:12,.0f} frames/s")
    print(f"struct    {floor:12,.0f} frames/s")
    print(f"ratio     {floor / ours:12.1f}x slower than struct")


if __name__ == "__main__":
    main()
