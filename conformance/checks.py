"""The matcher: how a case says what it expected and what came, and how it is shown.

A case fails by raising CaseFailure (a MUST broken) and records a SHOULD broken with
Context.warn(); both carry the requirement IDs so that the report can quote PROTOCOL.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

PROTOCOL = Path(__file__).resolve().parent / "PROTOCOL.md"  # a link to the root's, a copy once installed


class CaseFailure(AssertionError):
    """A MUST of PROTOCOL.md is broken."""

    def __init__(self, reqs: str, what: str, expected: Sequence[str] = (), got: str | None = None) -> None:
        super().__init__(what)
        self.reqs = reqs.split()
        self.what = what
        self.expected = list(expected)
        self.got = got

    def details(self) -> list[str]:
        lines = [self.what]
        for i, alternative in enumerate(self.expected):
            lines.append(f"{'expected:' if i == 0 else '      or:'} {alternative}")
        if self.got is not None:
            lines.append(f"     got: {self.got}")
        return lines


class ProgramDied(CaseFailure):
    """The implementation under test exited or crashed when it should not have."""


def printable(data: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in data)


def hexdump(data: bytes, limit: int = 48) -> str:
    """`4d 00 04 74 65 73 74  |M..test|`, cut after `limit` bytes with the total said."""
    if not data:
        return "(no bytes)"
    shown = data[:limit]
    text = f"{shown.hex(' ')}  |{printable(shown)}|"
    return text if len(data) <= limit else f"{text} ... ({len(data)} bytes in all)"


@cache
def requirements() -> dict[str, str]:
    """Requirement ID -> its text, read from PROTOCOL.md (`- **S-8** A connection ...`)."""
    found: dict[str, str] = {}
    current: str | None = None
    for line in PROTOCOL.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"- \*\*([A-Z]-\d+)\*\* (.*)", line):
            current = match.group(1)
            found[current] = match.group(2)
        elif current and line.startswith("  ") and line.strip():
            found[current] += " " + line.strip()
        else:
            current = None
    return found


def quote(req: str, width: int = 300) -> str:
    text = requirements().get(req, "(not in PROTOCOL.md)")
    return f"{req}: {text if len(text) <= width else text[: width - 3] + '...'}"


def unknown_requirements(reqs: Iterable[str]) -> list[str]:
    """The IDs in `reqs` that PROTOCOL.md does not define (for the suite's self-test)."""
    return [r for r in reqs if r not in requirements()]
