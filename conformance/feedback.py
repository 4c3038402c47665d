"""Feedback a student can act on: one Markdown file per submission (`batch --feedback DIR`).

A file holds the submission's points under the course profile (conformance/profile.py), a table
of its requirements, and each case that did not pass: what was expected and what came, what each
program showed, and the command that re-runs that case against the student's own programs
(`python3 -m conformance pair --server "..." --client "..." --case ID`, or server/client mode with
their command). Visibility is respected: the cases of a requirement that is not released (hidden,
after_due_date, after_published: only "visible" is, unless the caller releases more) are not
detailed; a hidden requirement is not even named.

Everything in a submission's results is the student's own output, shown in fenced blocks whose
fence is longer than any run of backticks inside, with control characters as Unicode control
pictures (ESC as ␛), so that nothing of it is read as Markdown or reaches a terminal as an escape.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import tomllib
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from conformance import profile as course
from conformance.options import RunOptions
from conformance.plugin import Options
from conformance.verdicts import Status, Verdict

DEFAULT_SERVER = "python3 chatserve.py {port}"  # as conformance/runner.py finds a submission's programs
DEFAULT_CLIENT = "./chatclient {host} {port}"
CONFIG = "conformance.toml"
VARIANTS_SHOWN = 3  # variants of one case detailed; the others are named
RELEASED = frozenset({"visible"})
LATER = {"after_due_date": "shown after the due date", "after_published": "shown once the grades are published",
         "hidden": "not shown"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def programs(source: Path, server: str | None = None, client: str | None = None) -> tuple[str, str]:
    """A submission's server and client commands: its conformance.toml's, else the batch's
    --server/--client, else the defaults."""
    config: dict[str, Any] = {}
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
        config = tomllib.loads((source / CONFIG).read_text("utf-8", "replace"))
    found = []
    for role, given, default in (("server", server, DEFAULT_SERVER), ("client", client, DEFAULT_CLIENT)):
        value = config.get(role)
        found.append(value if isinstance(value, str) and value.strip() else given or default)
    return found[0], found[1]


def rerun(case_id: str, case_mode: str, server: str, client: str) -> str:
    """The command that runs one case against these programs, as the suite's own re-run line does."""
    run = RunOptions()
    if case_mode == "pair":
        opts = Options(mode="pair", server_command=shlex.split(server), client_command=shlex.split(client), run=run)
    else:
        opts = Options(mode=case_mode, command=shlex.split(server if case_mode == "server" else client), run=run)
    argv = opts.command_line([case_id])
    for option, command in (("--server", server), ("--client", client)):
        if case_mode == "pair" and option in argv:  # the student's command as written, not re-quoted
            argv[argv.index(option) + 1] = command
    return readable(argv)


def readable(argv: list[str]) -> str:
    """A command line for a shell that a student can read: a command in double quotes, not nested
    single ones, where that is safe; {port} and {host} are left as they are."""
    words = []
    for arg in argv:
        if re.fullmatch(r"[\w@%+=:./{}-]+", arg):
            words.append(arg)
        elif not re.search(r'["$`\\!]', arg):
            words.append(f'"{arg}"')
        else:
            words.append(shlex.quote(arg))
    return " ".join(words)


def shown(value: Any) -> str:
    return _CONTROL.sub(lambda found: chr(0x2400 + ord(found.group())) if found.group() != "\x7f" else "\u2421",
                        str(value))


def fenced(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{shown(text.rstrip(chr(10)))}\n{fence}"


def inline(text: Any) -> str:
    """One line of the student's text inside Markdown prose: no markup, no line ends."""
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", shown(text).replace("\n", " "))


def file_name(name: str, taken: Collection[str]) -> str:
    stem = re.sub(r"[^\w.-]", "_", name).strip(".") or "submission"
    candidate, number = f"{stem}.md", 1
    while candidate in taken:
        number += 1
        candidate = f"{stem}-{number}.md"
    return candidate


def render(row: Mapping[str, Any], profile: course.Profile, commands: tuple[str, str],
           requirements: Mapping[str, str] | None = None, released: Collection[str] = RELEASED) -> str:
    """The feedback of one submission (a row of the batch's JSON, with its "points")."""
    requirements = requirements or {}
    name, status, mode = str(row.get("name", "")), str(row.get("status", "")), str(row.get("mode", ""))
    results: dict[str, dict[str, Any]] = {str(k): v for k, v in (row.get("results") or {}).items()
                                          if isinstance(v, dict)}
    points = row.get("points") or {}
    items = [item for item in points.get("items", []) if isinstance(item, dict)]
    lines = [f"# Conformance feedback: {inline(name)}", ""]
    lines += _points(points, items, released)
    lines += [_how(mode, status, commands), ""]
    if status != Status.GRADED:
        lines += [f"**{inline(status)}**: {inline(row.get('message', '')) or '(no message)'}", ""]
        if row.get("log"):
            lines += ["What the grading showed:", "", fenced(str(row["log"])), ""]
    if items:
        lines += _table(items, requirements, released)
    lines += _cases(results, items, profile, commands, released)
    return "\n".join(lines).rstrip() + "\n"


def _points(points: Mapping[str, Any], items: list[dict[str, Any]], released: Collection[str]) -> list[str]:
    if not points:
        return []
    shown_items = [i for i in items if i.get("visibility") in released]
    later = sum(float(i.get("max_score", 0)) for i in items if i.get("visibility") not in released)
    if not later:
        return [f"**Points: {points.get('score', 0):g} of {points.get('max_score', 0):g}**", ""]
    score = sum(float(i.get("score", 0)) for i in shown_items)
    total = sum(float(i.get("max_score", 0)) for i in shown_items)
    return [f"**Points: {score:g} of {total:g}** in the requirements shown here; {later:g} more points are graded "
            "on requirements whose results are not shown yet.", ""]


def _how(mode: str, status: str, commands: tuple[str, str]) -> str:
    server, client = (f"`{inline(c)}`" for c in commands)
    if mode == "pair":
        return (f"Your server ({server}) and client ({client}) were graded together (`pair` mode: the "
                "assignment's rules at the terminal, PROTOCOL.md section 7a).")
    if mode == "framed":
        return (f"Your server ({server}) and client ({client}) speak PROTOCOL.md's frames, so each was graded on its "
                "own (`server` and `client` modes).")
    return f"Server: {server}; client: {client}."


def _table(items: list[dict[str, Any]], requirements: Mapping[str, str], released: Collection[str]) -> list[str]:
    lines = ["| requirement | points | cases passed |", "|---|---|---|"]
    for item in items:
        visibility = str(item.get("visibility", "visible"))
        if visibility == "hidden" and visibility not in released:
            continue
        what = (f"{item['id']}: {requirements[item['id']]}" if item.get("id") in requirements
                else f"{item.get('id')} (case)" if item.get("kind") == "case" else str(item.get("id")))
        if visibility in released:
            cells = (f"{item.get('score', 0):g} of {item.get('max_score', 0):g}",
                     f"{item.get('passed', 0):g} of {item.get('counted', 0)}")
        else:
            cells = (f"{item.get('max_score', 0):g} ({LATER.get(visibility, 'not shown')})", "")
        lines.append(f"| {shown(what).replace('|', '/')} | {cells[0]} | {cells[1]} |")
    return [*lines, ""]


def _cases(results: dict[str, dict[str, Any]], items: list[dict[str, Any]], profile: course.Profile,
           commands: tuple[str, str], released: Collection[str]) -> list[str]:
    not_passed = {cid: r for cid, r in results.items() if r.get("verdict") not in (Verdict.PASS, Verdict.SKIP)}
    if not results:
        return []
    if not not_passed:
        return ["Every case passed.", ""]
    points = {"items": items}
    counts_toward: dict[str, list[str]] = {}
    for item in items:
        for cid in item.get("cases", []):
            counts_toward.setdefault(cid, []).append(str(item["id"]))
    detailed: dict[str, list[str]] = {}
    blocked: dict[str, list[str]] = {}
    withheld = 0
    for cid, result in not_passed.items():
        info = course.CaseInfo(cid, str(result.get("mode", "")), tuple(result.get("requirements", []) or []))
        if course.case_visibility(profile, info, points) not in released:
            withheld += 1
        elif result.get("verdict") == Verdict.BLOCKED:
            blocked.setdefault(str(result.get("root") or "a case that did not pass"), []).append(cid)
        else:
            detailed.setdefault(info.base, []).append(cid)
    lines = ["## What did not pass", ""]
    for base, ids in detailed.items():
        lines += _case(base, ids, results, counts_toward, commands)
    for root, ids in blocked.items():
        named = ", ".join(f"`{inline(cid)}`" for cid in ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10
                                                                      else "")
        lines += [f"- **BLOCKED**, not run because `{inline(root)}` did not pass: {named}", ""]
    if withheld:
        lines += [f"{withheld} more case{'s' if withheld > 1 else ''} of requirements not shown here did not pass.", ""]
    return lines


def _case(base: str, ids: list[str], results: dict[str, dict[str, Any]], counts_toward: dict[str, list[str]],
          commands: tuple[str, str]) -> list[str]:
    first = results[ids[0]]
    toward = sorted({req for cid in ids for req in counts_toward.get(cid, [])})
    reqs = " ".join(str(r) for r in first.get("requirements", []) or [])
    lines = [f"### {inline(base)}: {inline(first.get('title', ''))}", "",
             f"Requirements: {inline(reqs) or 'none'}"
             + (f"; points of {', '.join(toward)}." if toward else "; no points of its own."), ""]
    for cid in ids[:VARIANTS_SHOWN]:
        result = results[cid]
        lines += [f"**{inline(result.get('verdict', '?'))}** `{inline(cid)}`", ""]
        details = "\n".join(str(line) for line in result.get("details", []) or [])
        if details:
            lines += ["What was expected, and what came:", "", fenced(details), ""]
        for role, screen in (result.get("transcripts") or {}).items():
            lines += [f"What the {inline(role)} showed:", "", fenced(str(screen)), ""]
        lines += ["Run it again against your programs:", "",
                  fenced(rerun(cid, str(result.get("mode", "")), *commands)), ""]
    if len(ids) > VARIANTS_SHOWN:
        rest = ", ".join(f"`{inline(cid)}`" for cid in ids[VARIANTS_SHOWN:])
        lines += [f"Also not passed: {rest} (run one with `--case ID`, or all with `--case {inline(base)}`).", ""]
    return lines


def write(folder: Path, rows: Iterable[Mapping[str, Any]], profile: course.Profile,
          commands: Mapping[str, tuple[str, str]], released: Collection[str] = RELEASED) -> list[Path]:
    """One file per submission in `folder` (made if missing); `commands` maps a submission's name
    to its server and client commands. Returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    requirements = course.protocol_requirements()
    taken: set[str] = set()
    written = []
    for row in rows:
        name = str(row.get("name", ""))
        path = folder / file_name(name, taken)
        taken.add(path.name)
        path.write_text(render(row, profile, commands.get(name, (DEFAULT_SERVER, DEFAULT_CLIENT)), requirements,
                               released), encoding="utf-8")
        written.append(path)
    return written


def write_batch(folder: Path, subs: Iterable[Any], profile: course.Profile, server: str | None = None,
                client: str | None = None) -> list[Path]:
    """`batch --feedback DIR`: a file for each graded submission (a batch Submission: its name, its
    source folder, its row() with points), its commands as the batch found them."""
    subs = list(subs)
    commands = {sub.name: programs(sub.source, server, client) for sub in subs}
    return write(folder, [sub.row() for sub in subs], profile, commands)
