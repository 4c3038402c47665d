"""Terminal output as a person sees it: lines with escapes, carriage returns and backspaces applied."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from conformance.checks import CaseFailure

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


@dataclass
class Display:
    """How a pair shows handles and messages, as learnt: its form (from the first client's prompt),
    and the text shown before each side's messages once a message of that side was judged."""

    form: Form | None = None
    prefixes: dict[str, str] = field(default_factory=dict)  # sender's role -> text before its messages

    def prefix(self, role: str, handle: str | None) -> str | None:
        """What comes before a message from `role` (its handle `handle`): seen before, or the form's."""
        if role in self.prefixes:
            return self.prefixes[role]
        return self.form.show(handle) if self.form and self.form.handled and handle else None

    def expect(self, lines: list[str], role: str, handle: str | None, text: str, reqs: str, what: str,
               left: str | None = None) -> str:
        """`text` from `role` among the receiver's new `lines` exactly once, as one whole line,
        after the sender's handle in the pair's form; the line, else CaseFailure ("{what} once, as
        one line"). The first message from each side may show another prefix (learnt then: a pair
        may show messages otherwise than its prompts), with the handle in it if the pair's prompts
        show handles. With `left` (the receiver's own prompt), also after that prompt: a program
        that read a line typed ahead leaves its prompt alone on the line, since the terminal
        echoed the line earlier."""
        prefix = self.prefix(role, handle)

        def hits(start: str) -> list[str]:
            return [line for line in lines if line == start + text or (left and line == left + start + text)]

        if role not in self.prefixes and (prefix is None or not hits(prefix)):
            prefix = self.learn_prefix(lines, handle, text, left) or prefix
        found = hits(prefix) if prefix is not None else []
        if len(found) == 1:
            self.prefixes[role] = prefix or ""
            return found[0]
        if found:
            got = f"shown {len(found)} times"
        elif not lines:
            got = "no new line at all"
        else:
            got = f"{len(lines)} new line(s): " + ", ".join(short(line, 70) for line in lines[-6:])
        expected = short(prefix + text) if prefix is not None else f"{short(text)} after the {role}'s handle"
        raise CaseFailure(reqs, f"{what} once, as one line", [expected], got)

    def learn_prefix(self, lines: list[str], handle: str | None, text: str, left: str | None) -> str | None:
        """The one text shown before `text` at the end of a line (a prompt `left` aside), if there
        is one: with the handle in it, where the pair's prompts show handles."""
        starts = {line[: -len(text)] for line in lines if line.endswith(text)}
        starts = {s.removeprefix(left) for s in starts} if left else starts
        needs_handle = self.form is not None and self.form.handled and handle
        starts = {s for s in starts if len(s) <= 60 and not (needs_handle and handle not in s)}
        return starts.pop() if len(starts) == 1 else None


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
