#!/usr/bin/env python3
"""Writes a seed corpus for fuzz_decoder from vectors/frames.txt: each vector, alone and
followed by a QUIT, with the mask byte (all types allowed) and a chunk-size byte in front."""

import sys
from pathlib import Path

import vectors  # this project, installed in .venv by ./compileall


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    quit_frame = vectors.by_name("quit").data
    for vector in vectors.load():
        for chunk, tail in ((0, b""), (2, quit_frame)):
            (out / f"{vector.name}-{chunk}").write_bytes(bytes([0x07, chunk]) + vector.data + tail)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
