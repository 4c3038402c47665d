"""The HTML report of a conformance run: one self-contained page that a grader reads at a glance.

The page shows
- a header: the title, when the run was made, how long it took, how much its timeouts were stretched, the command
  that ran it, a legend of the verdicts, and the totals (submissions by status, case results by verdict);
- a matrix per kind of submission: framed ones (their server and client speak PROTOCOL.md's frames), then pair
  ones (a wire format of their own), each with the columns of its own cases first, so that a pair submission's
  row starts with its pair cases rather than dozens of server and client cells it never ran. One row per
  submission (its name, status, mode and verdict counts in a sticky first column, then its points when the data
  has them, from a course profile: conformance/profile.py; a submission that was not GRADED has its status and
  message written across its row) and one column per base case id (S-HELLO-1 stands for S-HELLO-1[whole],
  S-HELLO-1[bytewise], ...), grouped under server / client / pair; a text case (one that checks an exact text or
  exit status fixed by PROTOCOL.md) has a small "T" under its id.
  A cell takes the colour and mark of the worst verdict among its variants, with "passed/run" when they differ;
  a BLOCKED cell names the FAILed case that blocked it in its tooltip;
- a detail panel: clicking a cell that did not PASS (or Enter on it) shows each variant's verdict and, for those
  that did not PASS, the details (what was expected, what came), the root cause of a BLOCKED one, and what each
  program showed. A submission's name opens its own panel (status, message, points per requirement, log).
  `report.html#d-3-12` opens a panel when the page loads.

Every string of the data is untrusted (students choose their programs' output and names), so all of it is
HTML-escaped, and control characters are shown as Unicode control pictures (ESC as ␛) rather than passed to the
browser. There is no embedded JSON: the panels' contents are hidden elements, the script is the same for every
report, and a Content-Security-Policy lets nothing but that script and the style run or load: the page makes no
network request, even if something slipped through.

render(data) returns the page and write(path, data) writes it (conformance/plugin.py's document() makes the data).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.verdicts import RESULT_STATUSES, WORST_FIRST, Kind, Status, Verdict

VERDICTS = WORST_FIRST  # a cell shows its worst variant
STATUSES = RESULT_STATUSES

# The marks are those of docs/mutation-table.md, so that a cell reads the same without its colour.
MARKS = {Verdict.PASS: "✓", Verdict.FAIL: "F", Verdict.FLAKY: "~", Verdict.BLOCKED: "B", Verdict.WARN: "W",
         Verdict.SKIP: "S"}
MEANINGS = {
    Verdict.PASS: "passed",
    Verdict.FAIL: "a MUST broken",
    Verdict.FLAKY: "failed once, passed on re-run",
    Verdict.BLOCKED: "not run: a case it needs failed",
    Verdict.WARN: "a SHOULD broken",
    Verdict.SKIP: "not applicable",
}
KIND_MARK = "T"  # under the id of a text case
KIND_MEANING = "a text case: checks one exact text or exit status fixed by PROTOCOL.md"
UNKNOWN_MARK = "?"  # a verdict this page does not know; ranked worst, so that it is looked at

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


# -- the data, read defensively (a missing or mistyped field must not cost the grader the whole page)

@dataclass
class Column:
    """One base case id and its variants (full ids), in the order of the data's cases."""

    base: str
    mode: str
    title: str
    requirements: list[str]
    kind: str = Kind.BEHAVIOUR
    ids: list[str] = field(default_factory=list)


@dataclass
class Row:
    name: str
    status: str
    mode: str
    message: str
    log: str
    seconds: Any
    summary: dict[str, int]
    results: dict[str, dict[str, Any]]
    points: dict[str, Any] = field(default_factory=dict)  # the course profile's points, when the data has them


def _columns(data: dict[str, Any]) -> list[Column]:
    """The columns: the data's cases by base id, then any case id that only a submission's results name."""
    columns: dict[str, Column] = {}
    for case in _dicts(data.get("cases")):
        _add_variant(columns, str(case.get("id", "")), case)
    known = {case_id for column in columns.values() for case_id in column.ids}
    for submission in _dicts(data.get("submissions")):
        for case_id, result in _mapping(submission.get("results")).items():
            if str(case_id) not in known:  # a result must not go unseen because the case list lacks it
                _add_variant(columns, str(case_id), _mapping(result))
                known.add(str(case_id))
    return list(columns.values())


def _add_variant(columns: dict[str, Column], case_id: str, case: dict[str, Any]) -> None:
    base = str(case.get("base") or case_id.split("[", 1)[0])
    if base not in columns:
        columns[base] = Column(base, str(case.get("mode") or "other"), str(case.get("title", "")),
                               [str(req) for req in _list(case.get("requirements"))],
                               str(case.get("kind") or Kind.BEHAVIOUR))
    if case_id not in columns[base].ids:
        columns[base].ids.append(case_id)


def _rows(data: dict[str, Any]) -> list[Row]:
    return [Row(name=str(sub.get("name", "")), status=str(sub.get("status") or Status.GRADED),
                mode=str(sub.get("mode", "")),
                message=str(sub.get("message", "")), log=str(sub.get("log", "")), seconds=sub.get("seconds"),
                summary={str(k): _int(v) for k, v in _mapping(sub.get("summary")).items()},
                results={str(k): _mapping(v) for k, v in _mapping(sub.get("results")).items()},
                points=_mapping(sub.get("points")))
            for sub in _dicts(data.get("submissions"))]


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in _list(value) if isinstance(item, dict)]


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def verdict_of(result: dict[str, Any]) -> str:
    return str(result.get("verdict", "?"))


def rank(verdict: str) -> int:
    """0 for the worst; an unknown verdict is worse than FAIL (something went wrong that nobody foresaw)."""
    return VERDICTS.index(verdict) + 1 if verdict in VERDICTS else 0


def worst(verdicts: Iterable[str]) -> str:
    return min(verdicts, key=rank)


# -- text

def text(value: Any) -> str:
    """Any value as HTML text or attribute value: escaped, with control characters made visible."""
    return html.escape(_CONTROL.sub(_control_picture, str(value)), quote=True)


def _control_picture(found: re.Match[str]) -> str:
    code = ord(found.group())
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ ... ␟: ESC shows as ␛, CR as ␍
    return "\u2421" if code == 0x7F else "\ufffd"  # DEL; a lone surrogate cannot be written as UTF-8


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return text(seconds if seconds is not None else "?")
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def _mark(verdict: str) -> str:
    return MARKS.get(verdict, UNKNOWN_MARK)


def _verdict_class(verdict: str) -> str:
    return f"v-{verdict}" if verdict in VERDICTS else "v-unknown"


def _badge(verdict: str) -> str:
    return f'<span class="badge {_verdict_class(verdict)}">{_mark(verdict)} {text(verdict)}</span>'


def _status_badge(status: str) -> str:
    known = status if status in STATUSES else Status.ERROR
    return f'<span class="status st-{known}" data-status="{text(status)}">{text(status)}</span>'


# -- the header

def _header(data: dict[str, Any], columns: list[Column], rows: list[Row]) -> str:
    return (f'<header class="top"><h1>{text(data.get("title") or "Conformance report")}</h1>'
            f'{_meta(data)}{_legend()}{_totals(columns, rows)}</header>')


def _meta(data: dict[str, Any]) -> str:
    scale = data.get("timeout_scale", 1)
    return ('<dl class="meta">'
            f'<div><dt>Generated</dt><dd>{text(data.get("generated", ""))}</dd></div>'
            f'<div><dt>Run time</dt><dd>{_duration(data.get("seconds"))}</dd></div>'
            f'<div><dt>Timeout scale</dt><dd data-timeout-scale>&times;{text(scale)}</dd></div>'
            f'<div class="command"><dt>Command</dt><dd><code>{text(data.get("command", ""))}</code></dd></div>'
            '</dl>')


def _legend() -> str:
    items = "".join(f'<li>{_badge(verdict)} <span class="meaning">{MEANINGS[verdict]}</span></li>'
                    for verdict in VERDICTS)
    return (f'<ul class="legend" aria-label="Verdicts">{items}'
            '<li><span class="badge v-none">&nbsp;</span> <span class="meaning">not run</span></li>'
            f'<li><span class="kind-mark">{KIND_MARK}</span> <span class="meaning">{KIND_MEANING}</span></li></ul>')


def _totals(columns: list[Column], rows: list[Row]) -> str:
    statuses = Counter(row.status for row in rows)
    verdicts: Counter[str] = Counter()
    for row in rows:
        verdicts.update(row.summary)
    by_status = " ".join(f'<span class="total">{_status_badge(status)} <b data-status-total="{text(status)}">'
                         f'{statuses[status]}</b></span>'
                         for status in [*STATUSES, *sorted(set(statuses) - set(STATUSES))] if statuses[status])
    by_verdict = " ".join(f'<span class="total">{_badge(verdict)} <b data-total="{verdict}">{verdicts[verdict]}</b>'
                          '</span>' for verdict in VERDICTS)
    cases = sum(len(column.ids) for column in columns)
    return ('<div class="totals">'
            f'<p><span class="label">Submissions</span> <b data-submissions>{len(rows)}</b> {by_status}</p>'
            f'<p><span class="label">Cases</span> <b data-cases>{cases}</b> in {len(columns)} columns; '
            f'results of all submissions: {by_verdict}</p></div>')


# -- the matrix

GROUPS = (("framed", "Framed submissions"), ("pair", "Pair submissions"))


def _group_of(row: Row) -> str:
    """A row's table: pair submissions apart from the others, so that each shows its own cases first."""
    return "pair" if row.mode == "pair" else "framed"


def _in_group(column: Column, group: str) -> bool:
    return (column.mode == "pair") == (group == "pair")


def _matrix(columns: list[Column], rows: list[Row], panels: list[str]) -> str:
    """One table per group of submissions (framed, then pair), each with the columns of its own mode
    (and any other case one of its rows ran); a row keeps its index in the data, a column its number
    among all columns, so that a panel's id does not depend on the grouping."""
    points = any(row.points for row in rows)
    numbered = list(enumerate(columns))
    tables = []
    for group, title in GROUPS:
        members = [(index, row) for index, row in enumerate(rows) if _group_of(row) == group]
        if not members:
            continue
        ran = {case_id for _, row in members for case_id in row.results}
        own = [(n, c) for n, c in numbered if _in_group(c, group) or ran.intersection(c.ids)]
        own.sort(key=lambda nc: not _in_group(nc[1], group))  # its own mode's columns first
        tables.append(_table(group, f"{title} ({len(members)})", own, members, panels, points))
    if not tables:
        tables.append(_table("framed", "Submission", numbered, [], panels, points))
    return f'<div class="matrix-wrap">{"".join(tables)}</div>'


def _table(group: str, title: str, columns: list[tuple[int, Column]], members: list[tuple[int, Row]],
           panels: list[str], points: bool) -> str:
    rows = [row for _, row in members]
    body = "".join(_row(index, row, columns, panels, points) for index, row in members)
    if not members:
        body = f'<tr><td class="empty" colspan="{len(columns) + 1 + points}">No submissions in this run.</td></tr>'
    return (f'<table class="matrix{" with-points" if points else ""}" data-group="{group}"><thead>'
            f'{_group_headers([c for _, c in columns], title, points)}'
            f'{_column_headers([c for _, c in columns], rows)}</thead><tbody>{body}</tbody></table>')


def _group_headers(columns: list[Column], title: str = "Submission", points: bool = False) -> str:
    """One header per run of columns of the same mode (server cases, then client, then pair)."""
    groups: list[tuple[str, int]] = []
    for column in columns:
        if groups and groups[-1][0] == column.mode:
            groups[-1] = (column.mode, groups[-1][1] + 1)
        else:
            groups.append((column.mode, 1))
    cells = "".join(f'<th class="group g-{text(mode)}" colspan="{count}" scope="colgroup">'
                    f'<span>{text(mode)}</span></th>' for mode, count in groups)
    pts = ('<th class="pts-head" rowspan="2" scope="col" title="points earned of the total">Points</th>'
           if points else "")
    return f'<tr class="groups"><th class="corner" rowspan="2" scope="col">{text(title)}</th>{pts}{cells}</tr>'


def _column_headers(columns: list[Column], rows: list[Row]) -> str:
    cells = []
    for column in columns:
        failed = sum(1 for row in rows if any(verdict_of(row.results[i]) == Verdict.FAIL
                                              for i in column.ids if i in row.results))
        is_text = column.kind == Kind.TEXT
        tip = (f"{column.base}: {column.title}\nRequirements: {', '.join(column.requirements) or 'none'}\n"
               + (f"{KIND_MEANING[0].upper()}{KIND_MEANING[1:]}.\n" if is_text else "")
               + f"{len(column.ids)} variant(s); failed by {failed} submission(s)")
        mark = f'<span class="kind-mark" aria-label="text case">{KIND_MARK}</span>' if is_text else ""
        count = f'<span class="failed" data-failed="{failed}">{failed or ""}</span>'
        cells.append(f'<th class="col{" has-fail" if failed else ""}" scope="col" data-case="{text(column.base)}" '
                     f'data-kind="{text(column.kind)}" title="{text(tip)}"><span class="colid">{text(column.base)}'
                     f'</span>{mark}{count}</th>')
    return f'<tr class="cols">{"".join(cells)}</tr>'


def _row(index: int, row: Row, columns: list[tuple[int, Column]], panels: list[str], points: bool = False) -> str:
    """A submission's row; one that was not GRADED also gets its status and message across the table."""
    panels.append(_submission_panel(index, row))
    cells = "".join(_cell(index, number, row, column, panels) for number, column in columns)
    attrs = f'data-submission="{text(row.name)}" data-status="{text(row.status)}"'
    if row.status == Status.GRADED:
        return f'<tr class="sub-row" {attrs}>{_name_cell(index, row, 1)}{_points_cell(row, 1, points)}{cells}</tr>'
    notice = _notice(index, row, len(columns))
    if not row.results:
        return (f'<tr class="sub-row not-graded" {attrs}>{_name_cell(index, row, 1)}{_points_cell(row, 1, points)}'
                f'{notice}</tr>')
    return (f'<tr class="sub-row not-graded" {attrs}>{_name_cell(index, row, 2)}{_points_cell(row, 2, points)}{cells}'
            f'</tr><tr class="notice-row" {attrs}>{notice}</tr>')


def _points_cell(row: Row, rowspan: int, points: bool) -> str:
    """The submission's points under the course profile (conformance/profile.py), when the data has them."""
    if not points:
        return ""
    score, total = row.points.get("score"), row.points.get("max_score")
    if not _is_number(score) or not _is_number(total):
        return f'<td class="pts" rowspan="{rowspan}" data-points="" title="no points">-</td>'
    tip = f"{row.name}: {score:g} of {total:g} points (profile {row.points.get('profile', '?')})"
    return (f'<td class="pts" rowspan="{rowspan}" data-points="{score:g}" data-max-points="{total:g}" '
            f'title="{text(tip)}"><b>{score:g}</b><small>/{total:g}</small></td>')


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _name_cell(index: int, row: Row, rowspan: int) -> str:
    """The sticky first cell: the name (a button for the submission's panel), status, mode and verdict counts."""
    mode = f'<span class="mode">{text(row.mode)}</span>' if row.mode else '<span class="mode unknown">mode ?</span>'
    return (f'<th class="sub" scope="row" rowspan="{rowspan}"><div class="sub-line">'
            f'<button type="button" class="name" data-detail="s-{index}" title="{text(row.name)}: status, log">'
            f'{text(row.name)}</button>{_status_badge(row.status)}{mode}</div>{_counts(row)}</th>')


def _counts(row: Row) -> str:
    """The submission's summary, every verdict shown (a zero dimmed) so that the columns of counts line up."""
    spans = []
    for verdict in VERDICTS:
        count = row.summary.get(verdict, 0)
        spans.append(f'<span class="count {_verdict_class(verdict)}{"" if count else " zero"}" '
                     f'title="{count} {verdict}"><span class="mark" aria-hidden="true">{_mark(verdict)}</span>'
                     f'<span data-count="{verdict}">{count}</span></span>')
    return f'<div class="counts">{"".join(spans)}</div>'


def _notice(index: int, row: Row, width: int) -> str:
    log = (f' <button type="button" class="link" data-detail="s-{index}">show the log</button>' if row.log else "")
    message = text(row.message) or "(no message)"
    return (f'<td class="notice" colspan="{max(width, 1)}"><div class="notice-text">{_status_badge(row.status)} '
            f'<span class="message">{message}</span>{log}</div></td>')


def _cell(index: int, number: int, row: Row, column: Column, panels: list[str]) -> str:
    ids = [case_id for case_id in column.ids if case_id in row.results]
    where = f'data-submission="{text(row.name)}" data-case="{text(column.base)}"'
    if not ids:
        return f'<td class="cell v-none" {where} data-verdict="" title="{text(column.base)}: not run"></td>'
    verdicts = [verdict_of(row.results[case_id]) for case_id in ids]
    cell_worst = worst(verdicts)
    passed = verdicts.count(Verdict.PASS)
    label = _mark(cell_worst) + (f'<small>{passed}/{len(ids)}</small>' if len(set(verdicts)) > 1 else "")
    tally = ", ".join(f"{count} {verdict}" for verdict, count in sorted(Counter(verdicts).items(),
                                                                        key=lambda item: rank(item[0])))
    tip = f"{row.name} · {column.base}: {tally}"
    roots = _roots(row.results[case_id] for case_id in ids)
    attrs = f'class="cell {_verdict_class(cell_worst)}" {where} data-verdict="{text(cell_worst)}"'
    if roots:
        tip += f" (blocked by {', '.join(roots)}, which FAILed)"
        attrs += f' data-root="{text(" ".join(roots))}"'
    if cell_worst == Verdict.PASS:
        return f'<td {attrs} title="{text(tip)}">{label}</td>'
    panel = f"d-{index}-{number}"
    panels.append(_case_panel(panel, row, column, ids))
    return (f'<td {attrs} data-detail="{panel}" tabindex="0" role="button" aria-haspopup="dialog" '
            f'title="{text(tip + " (click for details)")}">{label}</td>')


def _roots(results: Iterable[dict[str, Any]]) -> list[str]:
    """The FAILed cases that BLOCKED these results, each once."""
    return list(dict.fromkeys(str(result["root"]) for result in results
                              if verdict_of(result) == Verdict.BLOCKED and result.get("root")))


# -- the panels: hidden in the page, shown in the dialog by the script

def _case_panel(panel: str, row: Row, column: Column, ids: Sequence[str]) -> str:
    requirements = ", ".join(column.requirements) or "none"
    variants = "".join(_variant(case_id, row.results[case_id], column.title) for case_id in ids)
    return (f'<section class="panel" id="{panel}" data-submission="{text(row.name)}" data-case="{text(column.base)}">'
            f'<h2><span class="who">{text(row.name)}</span> · <code>{text(column.base)}</code></h2>'
            f'<p class="case-title">{text(column.title)}</p>'
            f'<p class="reqs">Requirements: {text(requirements)} · mode {text(column.mode)}</p>'
            f'<ol class="variants">{variants}</ol></section>')


def _variant(case_id: str, result: dict[str, Any], case_title: str) -> str:
    verdict = verdict_of(result)
    head = (f'<div class="variant-head">{_badge(verdict)} <code>{text(case_id)}</code>'
            f'<span class="secs">{_duration(result.get("seconds"))}</span></div>')
    if verdict == Verdict.PASS:
        return f'<li class="variant" data-id="{text(case_id)}" data-verdict="PASS">{head}</li>'
    own_title = str(result.get("title") or "")
    title = f'<p class="variant-title">{text(own_title)}</p>' if own_title not in ("", case_title) else ""
    if verdict == Verdict.BLOCKED and result.get("root"):
        title += (f'<p class="root">Not run: it needs <code data-root>{text(result["root"])}</code>, '
                  'which FAILed.</p>')
    details = "\n".join(str(line) for line in _list(result.get("details")))
    shown = f'<pre class="details">{text(details)}</pre>' if details else '<p class="none">(no details)</p>'
    transcripts = "".join(f'<h4>what the {text(role)} showed</h4>'
                          f'<pre class="transcript" data-transcript="{text(role)}">{text(screen)}</pre>'
                          for role, screen in _mapping(result.get("transcripts")).items())
    return (f'<li class="variant" data-id="{text(case_id)}" data-verdict="{text(verdict)}">'
            f'{head}{title}{shown}{transcripts}</li>')


def _submission_panel(index: int, row: Row) -> str:
    counts = ", ".join(f"{row.summary.get(verdict, 0)} {verdict}" for verdict in VERDICTS)
    message = f'<h4>message</h4><pre class="message">{text(row.message)}</pre>' if row.message else ""
    log = f'<h4>log</h4><pre class="log">{text(row.log)}</pre>' if row.log else ""
    return (f'<section class="panel" id="s-{index}" data-submission="{text(row.name)}">'
            f'<h2><span class="who">{text(row.name)}</span> {_status_badge(row.status)}</h2>'
            f'<p>Mode: {text(row.mode or "not decided")} · run time {_duration(row.seconds)} · {counts}</p>'
            f'{_points_table(row)}{message}{log}</section>')


def _points_table(row: Row) -> str:
    """The submission's points per requirement (or case given points of its own), when the data has them."""
    items = _dicts(row.points.get("items"))
    if not items:
        return ""
    lines = "".join(f'<tr data-item="{text(item.get("id", ""))}"><td><code>{text(item.get("id", ""))}</code></td>'
                    f'<td>{text(item.get("score", ""))} / {text(item.get("max_score", ""))}</td>'
                    f'<td>{text(item.get("passed", ""))} of {text(item.get("counted", ""))} cases</td>'
                    f'<td>{text(item.get("visibility", ""))}</td></tr>' for item in items)
    return (f'<h4>points: {text(row.points.get("score", "?"))} of {text(row.points.get("max_score", "?"))} '
            f'(profile {text(row.points.get("profile", "?"))})</h4>'
            f'<table class="points-table"><tbody>{lines}</tbody></table>')


# -- the page

STYLE = """
:root { color-scheme: light; --line: #d0d7de; --muted: #57606a; --head: #f6f8fa; --group-h: 1.7rem;
  --name-w: 18rem; --pts-w: 5.5rem; }
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; }
body { display: flex; flex-direction: column; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto,
  "Helvetica Neue", Arial, "Noto Sans", "Liberation Sans", sans-serif; color: #1f2328; background: #fff; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", "DejaVu Sans Mono",
  monospace; font-size: 12px; }
.top { flex: none; padding: 12px 20px 8px; border-bottom: 1px solid var(--line); }
h1 { margin: 0 0 6px; font-size: 20px; }
.meta { display: flex; flex-wrap: wrap; gap: 4px 24px; margin: 0 0 8px; }
.meta div { display: flex; gap: 6px; min-width: 0; }
.meta dt { color: var(--muted); }
.meta dd { margin: 0; }
.meta .command { flex: 1 1 100%; }
.meta .command code { display: block; max-height: 4.4em; overflow: auto; white-space: pre-wrap;
  overflow-wrap: anywhere; background: var(--head); padding: 2px 6px; border-radius: 4px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; list-style: none; margin: 0 0 6px; padding: 0; }
.meaning, .label { color: var(--muted); }
.totals p { margin: 2px 0; }
.total { margin-right: 8px; white-space: nowrap; }
.badge, .status { display: inline-block; min-width: 1.6em; padding: 0 5px; border-radius: 3px; font-size: 11px;
  font-weight: 600; line-height: 1.6; text-align: center; white-space: nowrap; }
.v-PASS { background: #dcf3e2; color: #14532d; }
.v-FAIL { background: #c62828; color: #fff; }
.v-FLAKY { background: #e8710a; color: #fff; }
.v-BLOCKED { background: #6a3d9a; color: #fff; }
.v-WARN { background: #fde68a; color: #5c4300; }
.v-SKIP { background: #e2e8f0; color: #334155; }
.v-unknown { background: #111; color: #fff; }
.v-none { background: repeating-linear-gradient(45deg, #f3f4f6, #f3f4f6 3px, #e9ebee 3px, #e9ebee 6px);
  color: var(--muted); }
.st-GRADED { background: #ddeafe; color: #123f7a; }
.st-BUILD-FAIL, .st-NO-START { background: #c62828; color: #fff; }
.st-HUNG { background: #e8710a; color: #fff; }
.st-ERROR { background: #111; color: #fff; }
.matrix-wrap { flex: 1 1 auto; min-height: 8rem; overflow: auto; }
.matrix { border-collapse: separate; border-spacing: 0; }
.matrix th, .matrix td { border-right: 1px solid #fff; border-bottom: 1px solid #fff; }
.matrix thead th { position: sticky; background: var(--head); z-index: 2; font-weight: 600; }
.groups th { top: 0; height: var(--group-h); text-align: left; padding: 0 6px; border-bottom: 1px solid var(--line);
  text-transform: uppercase; letter-spacing: .04em; font-size: 11px; color: var(--muted); }
.groups th.group span { position: sticky; left: calc(var(--name-w) + 6px); }
.cols th { top: var(--group-h); padding: 4px 2px; vertical-align: bottom; border-bottom: 1px solid var(--line);
  font-weight: 500; cursor: help; }
.colid { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; font-size: 11px; }
.kind-mark { display: inline-block; margin-top: 2px; padding: 0 3px; border: 1px solid #8c959f; border-radius: 3px;
  font-size: 9px; line-height: 1.3; color: var(--muted); font-weight: 600; }
.root { margin: 4px 0 0; }
.failed { display: block; min-height: 1.3em; margin-top: 3px; text-align: center; font-size: 11px;
  color: #c62828; font-weight: 700; }
.has-fail .colid { color: #8f1d1d; }
.matrix .corner { left: 0; top: 0; z-index: 4; width: var(--name-w); text-align: left; vertical-align: bottom;
  padding: 4px 8px;
  border-right: 1px solid var(--line); }
.sub { position: sticky; left: 0; z-index: 1; background: #fff; text-align: left; font-weight: normal;
  padding: 3px 8px; border-right: 1px solid var(--line) !important; width: var(--name-w); min-width: var(--name-w);
  max-width: var(--name-w); }
.sub-row:hover .sub, .sub-row:hover + .notice-row .sub { background: #f6f8fa; }
.sub-line { display: flex; align-items: center; gap: 6px; }
.name { all: unset; cursor: pointer; font-weight: 700; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; min-width: 0; flex: 0 1 auto; }
.name:hover, .name:focus-visible { text-decoration: underline; outline: 2px solid #1565c0; outline-offset: 1px; }
.mode { color: var(--muted); font-size: 11px; }
.mode.unknown { font-style: italic; }
.counts { display: flex; gap: 3px; margin-top: 2px; }
.count { display: inline-flex; gap: 2px; padding: 0 4px; border-radius: 3px; font-size: 11px;
  font-variant-numeric: tabular-nums; }
.count.zero { background: none; color: #b0b7bf; }
.cell { min-width: 2.4em; height: 2.2em; padding: 0 3px; text-align: center; font-size: 12px; font-weight: 700;
  white-space: nowrap; font-variant-numeric: tabular-nums; }
.cell small { font-weight: 500; font-size: 10px; margin-left: 2px; }
.cell[data-detail] { cursor: pointer; }
.cell[data-detail]:hover { filter: brightness(1.12); }
.cell:focus-visible { outline: 3px solid #1565c0; outline-offset: -3px; }
.sub-row:hover > .cell { box-shadow: inset 0 -2px 0 rgba(0,0,0,.25); }
.notice { padding: 4px 8px; background: #fff4f4; border-bottom: 1px solid var(--line) !important; }
.notice-text { position: sticky; left: calc(var(--name-w) + 8px); max-width: min(70rem, 80vw); white-space: pre-wrap;
  overflow-wrap: anywhere; }
.notice .message { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.link { all: unset; cursor: pointer; color: #0b5cad; text-decoration: underline; margin-left: 6px; }
.link:focus-visible { outline: 2px solid #1565c0; }
.empty { padding: 24px; color: var(--muted); }
.matrix + .matrix { margin-top: 1.2rem; }
.corner { font-weight: 700; }
.pts, .pts-head { position: sticky; left: var(--name-w); z-index: 1; width: var(--pts-w); min-width: var(--pts-w);
  background: #fff; text-align: right; padding: 0 6px; border-right: 1px solid var(--line) !important;
  font-variant-numeric: tabular-nums; white-space: nowrap; }
.matrix thead th.pts-head { z-index: 4; top: 0; vertical-align: bottom; padding: 4px 6px; }
.pts small { color: var(--muted); margin-left: 1px; }
.with-points .groups th.group span { left: calc(var(--name-w) + var(--pts-w) + 6px); }
.with-points .notice-text { left: calc(var(--name-w) + var(--pts-w) + 8px); }
.points-table { border-collapse: collapse; margin: 2px 0 6px; }
.points-table td { padding: 1px 10px 1px 0; }
dialog { width: min(68rem, 94vw); max-height: 90vh; padding: 0; border: 0; border-radius: 8px;
  box-shadow: 0 12px 40px rgba(0,0,0,.35); }
dialog::backdrop { background: rgba(15,23,42,.45); }
.panel-inner { max-height: 90vh; overflow: auto; padding: 14px 20px 18px; }
.close { position: sticky; top: 0; float: right; font: inherit; font-size: 18px; line-height: 1; padding: 4px 9px;
  border: 1px solid var(--line); border-radius: 4px; background: #fff; cursor: pointer; }
.panel h2 { margin: 0 0 4px; font-size: 16px; }
.panel h4 { margin: 8px 0 2px; font-size: 12px; color: var(--muted); font-weight: 600; }
.case-title { margin: 0; font-weight: 600; }
.reqs { margin: 2px 0 8px; color: var(--muted); }
.variants { list-style: none; margin: 0; padding: 0; }
.variant { border-top: 1px solid var(--line); padding: 6px 0; }
.variant-head { display: flex; align-items: center; gap: 8px; }
.secs { margin-left: auto; color: var(--muted); font-size: 11px; }
.variant-title { margin: 4px 0 0; }
pre { margin: 4px 0 0; padding: 6px 8px; background: var(--head); border: 1px solid var(--line); border-radius: 4px;
  white-space: pre-wrap; overflow-wrap: anywhere; max-height: 45vh; overflow: auto; }
pre.details { background: #fff8f0; }
.none { color: var(--muted); margin: 4px 0 0; }
"""

# The same for every report: it reads nothing from the data but the hidden panels, found by id.
SCRIPT = """
(function () {
  "use strict";
  var dialog = document.getElementById("panel");
  var body = document.getElementById("panel-body");

  function open(id) {
    var source = document.getElementById(id);
    if (!source || source.closest("#panels") === null) { return; }
    var copy = source.cloneNode(true);
    copy.removeAttribute("id");
    body.replaceChildren(copy);
    if (!dialog.open) { dialog.showModal(); }
    body.parentNode.scrollTop = 0;
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target.closest("[data-detail]") : null;
    if (target && !dialog.contains(target)) { open(target.getAttribute("data-detail")); }
  });
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var cell = target instanceof Element && target.matches("td[data-detail]");
    if (cell && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      open(target.getAttribute("data-detail"));
    }
  });
  document.getElementById("panel-close").addEventListener("click", function () { dialog.close(); });
  // The dialog has no padding of its own, so a click on the dialog element itself is a click on the backdrop.
  dialog.addEventListener("click", function (event) { if (event.target === dialog) { dialog.close(); } });

  // report.html#d-3-12 opens that panel: a link a grader can send about one cell.
  if (location.hash.length > 1) { open(decodeURIComponent(location.hash.slice(1))); }
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
{header}
{matrix}
<div id="panels" hidden>{panels}</div>
<dialog id="panel" aria-label="Details"><div class="panel-inner"><button type="button" class="close" id="panel-close"
 aria-label="Close">&times;</button><div id="panel-body"></div></div></dialog>
<script>{script}</script>
</body>
</html>
"""


def _policy() -> str:
    """Nothing may load or run but this page's own style and script (named by their hashes)."""
    def digest(source: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"

    return (f"default-src 'none'; style-src {digest(STYLE)}; script-src {digest(SCRIPT)}; img-src data:; "
            "base-uri 'none'; form-action 'none'")


def render(data: dict[str, Any]) -> str:
    """The whole page for this data (see the module docstring for what it shows)."""
    columns, rows = _columns(data), _rows(data)
    panels: list[str] = []
    matrix = _matrix(columns, rows, panels)
    return PAGE.format(policy=_policy(), title=text(data.get("title") or "Conformance report"), style=STYLE,
                       header=_header(data, columns, rows), matrix=matrix, panels="".join(panels), script=SCRIPT)


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(render(data), encoding="utf-8")

