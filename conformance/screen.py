"""Terminal output as a person sees it: lines with escapes, carriage returns and backspaces applied."""

from __future__ import annotations

import re
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Form:
    """How a pair shows a handle: `before` + handle + `after`, learnt from the client's prompt once
    it was given a handle (`Chris> ` is ('', '> '), `[Chris] ` is ('[', '] '), `Chris:` is ('', ':')).
    A prompt without the handle (`> `) gives a form without one: `before` is the whole prompt."""

    before: str
    after: str
    handled: bool = True

    @classmethod
    def learn(cls, prompt: str, handle: str) -> Form:
        at = prompt.rfind(handle)
        return cls(prompt[:at], prompt[at + len(handle):]) if at >= 0 else cls(prompt, "", False)

    def show(self, handle: str) -> str:
        return self.before + handle + self.after if self.handled else self.before

    def handle_in(self, prompt: str) -> str | None:
        """The handle that a prompt in this form shows (`Server> ` -> `Server`); None if it does
        not fit the form (trailing spaces aside)."""
        text, after = prompt.rstrip(), self.after.rstrip()
        if not self.handled or not (text.startswith(self.before) and text.endswith(after)):
            return None
        return text[len(self.before): len(text) - len(after)].strip() or None

    def __str__(self) -> str:
        return repr(self.show("HANDLE")) if self.handled else f"{self.before!r} (no handle)"


def handle_piece(line: str, handle: str) -> str | None:
    """A proper start of `handle` that `line` shows as a word of its own (`C` in `C> hris`, for
    `Chris`): the handle was read in pieces, or cut. None if the line shows no such piece."""
    for n in range(len(handle) - 1, 0, -1):
        for match in re.finditer(re.escape(handle[:n]), line):
            left, right = line[match.start() - 1: match.start()], line[match.end(): match.end() + 1]
            if not left.isalnum() and not right.isalnum() and right != handle[n]:
                return handle[:n]
    return None


def handle_from_prompt(prompt: str) -> str | None:
    """`HostA> ` -> `HostA`; `John Henry> ` -> `John Henry`; None when it is not `handle> `."""
    if not prompt.endswith("> "):
        return None
    return prompt[:-2].strip() or None


def short(text: str, limit: int = 90) -> str:
    return repr(text) if len(text) <= limit else repr(text[: limit - 20]) + f"... ({len(text)} characters)"
