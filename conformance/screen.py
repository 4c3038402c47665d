"""Terminal output as a person sees it: lines with escapes, carriage returns and backspaces applied."""

from __future__ import annotations

import re

ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def visible(line: str) -> str:
    """What a terminal shows for one line of output: escape sequences dropped, and a carriage
    return or backspace letting later text overwrite earlier text."""
    cells: list[str] = []
    pos = 0
    for ch in ESCAPE.sub("", line):
        if ch == "\r":
            pos = 0
        elif ch == "\b":
            pos = max(0, pos - 1)
        elif (ch >= " " and ch != "\x7f") or ch == "\t":
            if pos < len(cells):
                cells[pos] = ch
            else:
                cells.append(ch)
            pos += 1
    return "".join(cells)


def handle_from_prompt(prompt: str) -> str | None:
    """`HostA> ` -> `HostA`; `John Henry> ` -> `John Henry`; None when it is not `handle> `."""
    if not prompt.endswith("> "):
        return None
    return prompt[:-2].strip() or None


def short(text: str, limit: int = 90) -> str:
    return repr(text) if len(text) <= limit else repr(text[: limit - 20]) + f"... ({len(text)} characters)"
