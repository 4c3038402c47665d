"""Loads vectors/frames.txt, the golden frames shared by the Python tests, the C tests and
the conformance suite (the file's header describes the format)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FRAMES_FILE = Path(__file__).with_name("frames.txt")


@dataclass(frozen=True)
class Vector:
    name: str
    data: bytes
    error: str | None  # an E-1 error name, or None for a valid frame
    at_header: bool  # the error is decided from the 3-byte header alone

    @property
    def ok(self) -> bool:
        return self.error is None


def _token_bytes(token: str) -> bytes:
    hex_part, _, count = token.partition("*")
    return bytes.fromhex(hex_part) * (int(count) if count else 1)


def parse_line(line: str) -> Vector | None:
    fields = line.split("#", 1)[0].split()
    if not fields:
        return None
    name, expect, *tokens = fields
    data = b"".join(map(_token_bytes, tokens))
    if expect == "ok":
        return Vector(name, data, None, False)
    error, where = expect.split("/")
    if where not in ("header", "payload"):
        raise ValueError(f"{name}: bad EXPECT {expect!r}")
    return Vector(name, data, error, where == "header")


def load(path: Path = FRAMES_FILE) -> list[Vector]:
    vectors = [v for line in path.read_text().splitlines() if (v := parse_line(line))]
    names = [v.name for v in vectors]
    if len(names) != len(set(names)):
        raise ValueError(f"{path}: duplicate vector names")
    return vectors


def by_name(name: str) -> Vector:
    return next(v for v in load() if v.name == name)
