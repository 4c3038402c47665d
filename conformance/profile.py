"""A course profile: what a course fixes about the assignment, and how a submission earns points.

A profile is a TOML file (read with the standard library's `tomllib`); the one shipped,
conformance/profiles/default.toml, documents every key and is what `--profile default` loads.
Its tables:

- `[assignment]`: the limits and texts the cases will read (today's values are the defaults):
  message_limit, handle_limit, quit_word, prompt (`{handle}> `), connected_line
  (`Established connection with {address}...`), dropped_line, split_long_lines.
- `[scoring]`: framed_refinements ("ignore" or "add"), credit ("partial" or "all-or-nothing"),
  earning (the verdicts that earn: PASS, WARN, FLAKY by default), default_points,
  default_visibility.
- `[points]` and `[visibility]`: keyed by a requirement ID of PROTOCOL.md (`A-3`) or a case ID,
  base (`P-LONG-1`) or full (`"S-HELLO-1[bytewise]"`); a number of points, and one of
  Gradescope's visibilities (visible, hidden, after_due_date, after_published).
- `[refinements]`: for an A- requirement, the requirements or cases of sections 5 and 6 that
  refine it, in place of REFINES below.

How points are earned (score()):

1. A submission is *framed* (its server and client speak PROTOCOL.md's frames: the `server` and
   `client` cases) or *pair* (a wire format of its own: the `pair` cases). Both are scored on the
   A- requirements (PROTOCOL.md 7a). A pair case counts toward each A- requirement it names; a
   framed case counts toward an A- requirement it names or *refines* (it names a requirement, or
   is a case, listed for it in REFINES / `[refinements]`). With `framed_refinements = "add"` a
   framed submission is also scored on every other requirement its cases name (so its total is
   higher than a pair one's); with "ignore" it is not, and both totals are the same.
2. A case given points of its own in `[points]` is an item of its own and counts toward no
   requirement; 0 points takes it out of the scoring.
3. An item (a requirement or such a case) is worth its `[points]` (default_points if absent). Its
   cases are weighed per base case: each base case counts once, as the fraction of its variants
   that earn (their verdict is one of `earning`). SKIP (not applicable) is left out; a case that
   did not run (a HUNG submission) earns nothing. With credit = "partial" the item earns its points
   times the mean over its base cases; with "all-or-nothing" its points only when every variant
   earns. An item with no case that counted earns 0.
4. An item that no case of the mode checks is left out of that mode's total (and `profile check`
   names it: its points could never be earned).
"""

from __future__ import annotations

import argparse
import re
import string
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.assignment import Assignment
from conformance.verdicts import Status, Verdict

PROTOCOL = Path(__file__).resolve().parent / "PROTOCOL.md"  # a link to the root's, a copy once installed
PROFILES = Path(__file__).resolve().parent / "profiles"
DEFAULT = PROFILES / "default.toml"

VISIBILITIES = ("visible", "after_due_date", "after_published", "hidden")  # Gradescope's, least hidden first
REFINEMENTS = ("ignore", "add")
CREDITS = ("partial", "all-or-nothing")
FRAMED_MODES = ("server", "client")

# PROTOCOL.md 7a: "Sections 5 and 6 refine each of them for this protocol." A framed case refines
# an A- requirement when it names one of these requirements, or is one of these cases.
REFINES: dict[str, tuple[str, ...]] = {
    "A-1": ("C-2", "C-HELLO-1"),  # the handle prompt and the handle's rules; the HELLO that carries it whole
    "A-2": ("S-5", "C-5", "C-6"),  # prompts and messages shown as HANDLE> TEXT
    "A-3": ("W-5", "S-MSG-3", "C-MSG-3"),  # reassembled however TCP cuts the bytes; 500 code points intact
    "A-4": ("F-1", "F-2"),  # the client first, then strict turns
    "A-5": ("C-8",),  # \quit at the client
    "A-6": ("S-QUIT-2", "C-11"),  # \quit at the server sends QUIT; the client, told, ends
    "A-7": ("S-3", "S-4", "S-9"),  # listens on its port; one client after another
    "A-8": ("S-DROP-1", "S-DROP-2"),  # a client that vanishes, in the server's turn or the client's
    "A-9": ("C-HANDLE-1[eleven]",),  # an 11-character handle refused, asked again
    "A-10": ("S-MSG-4", "C-MSG-4"),  # a line over the limit is not sent (nothing truncated)
    "A-11": ("S-MSG-3", "C-MSG-3"),  # 500 code points of UTF-8 intact
    "A-12": ("S-MSG-4", "C-MSG-4"),  # an empty line is refused, the turn goes on (behaviour, not wording)
    "A-13": ("S-8",),  # a second client gets BUSY; the conversation is not disturbed
    "A-14": ("S-HELLO-3",),  # Established connection with ('HOST', PORT)...
    "A-15": ("S-TEXT-4[dropped]",),  # The client has dropped the connection...
}

REQUIREMENT = re.compile(r"^- \*\*([A-Z]-\d+)\*\*\s*(.*)")
REQUIREMENT_ID = re.compile(r"[A-Z]-\d+")


# -- what PROTOCOL.md and the suite hold


def protocol_requirements(path: Path = PROTOCOL) -> dict[str, str]:
    """Every requirement ID of PROTOCOL.md with its first sentence."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := REQUIREMENT.match(line):
            current = found.setdefault(match.group(1), [])
            current.append(match.group(2))
        elif current is not None and line.startswith("  ") and line.strip() and not line.lstrip().startswith("|"):
            current.append(line.strip())
        else:
            current = None
    return {rid: first_sentence(" ".join(words)) for rid, words in found.items()}


def first_sentence(text: str, limit: int = 200) -> str:
    match = re.search(r"\.(\s|$)", text)
    text = text[: match.start() + 1] if match else text
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class CaseInfo:
    """A case of the suite, as `list` shows it."""

    id: str
    mode: str  # server, client or pair
    requirements: tuple[str, ...]
    kind: str = "behaviour"
    title: str = ""

    @property
    def base(self) -> str:
        return self.id.split("[", 1)[0]


def collect() -> list[CaseInfo]:
    """The suite's cases, from pytest's collection (what `python3 -m conformance list` shows)."""
    import pytest

    from conformance.cli import CASES, MODULES
    from conformance.plugin import ConformancePlugin, Options, case_id, case_kind, case_marker

    class Collector(ConformancePlugin):
        def __init__(self) -> None:
            super().__init__(Options(mode="list"))
            self.found: list[CaseInfo] = []

        def pytest_collection_finish(self, session: pytest.Session) -> None:
            self.selected = len(session.items)
            for item in session.items:
                mark = case_marker(item)
                reqs = str(mark.kwargs.get("reqs", "")).split() if mark else []
                mode = item.path.stem.removeprefix("test_")
                self.found.append(CaseInfo(case_id(item), mode, tuple(reqs), str(case_kind(item)),
                                           str(mark.kwargs.get("title", "")) if mark else ""))

    collector = Collector()
    args = [str(CASES / module) for module in MODULES.values() if (CASES / module).exists()]
    args += ["-c", str(CASES / "pytest.ini"), "--rootdir", str(CASES), "-p", "no:terminal", "--collect-only"]
    # Collected inside another pytest run (this project's tests), the cases' modules would meet that
    # run's own test_client, test_server and conftest in sys.modules: they are set aside meanwhile.
    names = {"conftest", *(Path(module).stem for module in MODULES.values())}
    aside = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    try:
        code = pytest.main(args, plugins=[collector])
    finally:
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(aside)
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED) or not collector.found:
        raise RuntimeError(f"the suite's cases could not be collected (pytest exit {int(code)})")
    return collector.found


def catalogue_of(results: Mapping[str, Mapping[str, Any]]) -> list[CaseInfo]:
    """The cases of a run's own results (a single run scores what it ran)."""
    return [CaseInfo(str(cid), str(r.get("mode", "")), tuple(str(x) for x in r.get("requirements", []) or []),
                     str(r.get("kind", "behaviour")), str(r.get("title", "")))
            for cid, r in results.items() if isinstance(r, Mapping)]


# -- the profile


PLACEHOLDERS = {"prompt": {"handle"}, "connected_line": {"address"}, "dropped_line": set()}


@dataclass(frozen=True)
class Scoring:
    framed_refinements: str = "ignore"
    credit: str = "partial"
    earning: tuple[str, ...] = (Verdict.PASS, Verdict.WARN, Verdict.FLAKY)
    default_points: float = 1.0  # as conformance/profiles/default.toml says
    default_visibility: str = "visible"


@dataclass(frozen=True)
class Profile:
    name: str = "default"
    assignment: Assignment = field(default_factory=Assignment)
    scoring: Scoring = field(default_factory=Scoring)
    points: dict[str, float] = field(default_factory=dict)  # requirement or case ID -> points
    visibility: dict[str, str] = field(default_factory=dict)  # requirement or case ID -> visibility
    refinements: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(REFINES))


class ProfileError(Exception):
    """A profile that cannot be used: one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


KEYS = {"assignment": set(Assignment.__dataclass_fields__), "scoring": set(Scoring.__dataclass_fields__),
        "points": None, "visibility": None, "refinements": None}


def resolve(name: str | Path) -> Path:
    """A profile's path: `default` is the one shipped."""
    if str(name) == "default":
        return DEFAULT
    return Path(name)


def read(path: str | Path) -> tuple[Profile, list[str]]:
    """The profile in this file and what is wrong with its form (not yet its IDs: see problems())."""
    path = resolve(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return Profile(name=path.stem), [f"{path}: cannot read: {exc.strerror or exc}"]
    except UnicodeDecodeError as exc:
        return Profile(name=path.stem), [f"{path}: not UTF-8: {exc.reason}"]
    except tomllib.TOMLDecodeError as exc:
        return Profile(name=path.stem), [f"{path}: not TOML: {exc}"]
    return parse(data, name=path.stem)


def parse(data: Mapping[str, Any], name: str = "profile") -> tuple[Profile, list[str]]:
    problems: list[str] = []
    for key, value in data.items():
        if key not in KEYS:
            problems.append(f"unknown key {key!r} (the tables are {', '.join(f'[{k}]' for k in KEYS)})")
        elif not isinstance(value, dict):
            problems.append(f"{key!r} must be a table: [{key}]")
    table = {key: value for key, value in data.items() if key in KEYS and isinstance(value, dict)}
    assignment = _assignment(table.get("assignment", {}), problems)
    scoring = _scoring(table.get("scoring", {}), problems)
    points: dict[str, float] = {}
    for key, value in table.get("points", {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 and value != float("inf"):
            points[key] = float(value)
        else:
            problems.append(f"[points] {key}: the points must be a number of at least 0, not {value!r}")
    visibility: dict[str, str] = {}
    for key, value in table.get("visibility", {}).items():
        if value in VISIBILITIES:
            visibility[key] = value
        else:
            problems.append(f"[visibility] {key}: unknown visibility {value!r} (one of {', '.join(VISIBILITIES)})")
    refinements = dict(REFINES)
    for key, value in table.get("refinements", {}).items():
        if not key.startswith("A-"):
            problems.append(f"[refinements] {key}: only an A- requirement is refined")
        elif not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"[refinements] {key}: expected a list of requirement or case IDs, not {value!r}")
        else:
            refinements[key] = tuple(value)
    return Profile(name, assignment, scoring, points, visibility, refinements), problems


def _assignment(values: dict[str, Any], problems: list[str]) -> Assignment:
    good: dict[str, Any] = {}
    for key, value in values.items():
        default = getattr(Assignment, key, None)
        if key not in Assignment.__dataclass_fields__:
            problems.append(f"[assignment] unknown key {key!r} (known: {', '.join(Assignment.__dataclass_fields__)})")
        elif isinstance(default, bool):
            if isinstance(value, bool):
                good[key] = value
            else:
                problems.append(f"[assignment] {key}: expected true or false, not {value!r}")
        elif isinstance(default, int):
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                good[key] = value
            else:
                problems.append(f"[assignment] {key}: expected a whole number above 0, not {value!r}")
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"[assignment] {key}: expected a text that is not empty, not {value!r}")
        elif "\n" in value or "\r" in value:
            problems.append(f"[assignment] {key}: one line, without a line end")
        elif key == "quit_word" and any(ch.isspace() for ch in value):
            problems.append(f"[assignment] quit_word: a word without spaces, not {value!r}")
        elif key in PLACEHOLDERS and (bad := _placeholders(value, PLACEHOLDERS[key])):
            problems.append(f"[assignment] {key}: {bad}")
        else:
            good[key] = value
    return Assignment(**good)


def _placeholders(text: str, allowed: set[str]) -> str:
    """What is wrong with the {placeholders} of a text, or ''."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        return f"{exc} (write {{{{ and }}}} for a brace)"
    if unknown := names - allowed:
        known = ", ".join(f"{{{n}}}" for n in sorted(allowed)) or "none"
        return f"unknown placeholder {', '.join(f'{{{n}}}' for n in sorted(unknown))} (known: {known})"
    if "handle" in allowed and "handle" not in names:
        return "the prompt needs {handle} where the handle goes"
    return ""


def _scoring(values: dict[str, Any], problems: list[str]) -> Scoring:
    good: dict[str, Any] = {}
    choices = {"framed_refinements": REFINEMENTS, "credit": CREDITS, "default_visibility": VISIBILITIES}
    for key, value in values.items():
        if key in choices:
            if value in choices[key]:
                good[key] = value
            else:
                problems.append(f"[scoring] {key}: unknown value {value!r} (one of {', '.join(choices[key])})")
        elif key == "default_points":
            if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < float("inf"):
                good[key] = float(value)
            else:
                problems.append(f"[scoring] default_points: the points must be a number of at least 0, not {value!r}")
        elif key == "earning":
            known = [str(v) for v in Verdict]
            if isinstance(value, list) and value and all(v in known for v in value):
                good[key] = tuple(Verdict(v) for v in value)
            else:
                problems.append(f"[scoring] earning: expected a list of verdicts ({', '.join(known)}), not {value!r}")
        else:
            problems.append(f"[scoring] unknown key {key!r} (known: {', '.join(Scoring.__dataclass_fields__)})")
    return Scoring(**good)


def problems(profile: Profile, cases: Iterable[CaseInfo], requirements: Iterable[str]) -> list[str]:
    """What is wrong with a profile's IDs: one that is neither a requirement of PROTOCOL.md nor a
    case of the suite, and points that could never be earned."""
    cases = list(cases)
    known_reqs = set(requirements)
    full = {case.id for case in cases}
    bases = {case.base for case in cases}
    found: list[str] = []

    def known(key: str) -> bool:
        return key in known_reqs or key in full or key in bases

    def what(key: str) -> str:
        if REQUIREMENT_ID.fullmatch(key):
            return f"unknown requirement {key!r} (not in PROTOCOL.md)"
        return f"unknown requirement or case ID {key!r} (not in PROTOCOL.md nor the suite's cases)"

    for table, keys in (("points", profile.points), ("visibility", profile.visibility)):
        for key in keys:
            if not known(key):
                found.append(f"[{table}] {what(key)}")
    for key, refined_by in profile.refinements.items():
        if key not in known_reqs:
            found.append(f"[refinements] {what(key)}")
        for ref in refined_by:
            if not known(ref):
                found.append(f"[refinements] {key}: {what(ref)}")
    for key, points in profile.points.items():
        if points and key in known_reqs and not key.startswith("A-") and profile.scoring.framed_refinements != "add":
            found.append(f"[points] {key}: {points:g} points that nothing earns: only A- requirements are scored "
                         "unless [scoring] framed_refinements = \"add\"")
    for mode in ("framed", "pair"):
        for item in items(profile, mode, cases, known_reqs):
            if item.points and not item.cases and known(item.id):
                found.append(f"[points] {item.id}: {item.points:g} points that no {mode} case can earn")
    return found


# -- scoring


@dataclass
class Item:
    """What earns points: a requirement, or a case given points of its own."""

    id: str
    kind: str  # requirement or case
    points: float
    visibility: str
    cases: list[str] = field(default_factory=list)  # full case IDs


def mode_cases(mode: str, cases: Iterable[CaseInfo]) -> list[CaseInfo]:
    """The cases of a submission mode: framed (server and client cases) or pair."""
    return [case for case in cases if (case.mode in FRAMED_MODES) == (mode != "pair")]


def own_entry(mapping: Mapping[str, Any], case: CaseInfo) -> Any:
    """A case's own entry in [points] or [visibility]: its full ID's, else its base ID's."""
    return mapping.get(case.id, mapping.get(case.base))


def items(profile: Profile, mode: str, cases: Iterable[CaseInfo], requirements: Iterable[str] = ()) -> list[Item]:
    """The items a submission of this mode is scored on, each with its cases."""
    cases = mode_cases(mode, cases)
    assessed = [case for case in cases if own_entry(profile.points, case) is None]
    reqs = sorted(set(requirements) | {r for case in cases for r in case.requirements} | set(profile.points),
                  key=_order)
    adding = mode != "pair" and profile.scoring.framed_refinements == "add"
    found: list[Item] = []
    for rid in reqs:
        if not REQUIREMENT_ID.fullmatch(rid) or not (rid.startswith("A-") or adding):
            continue
        points = profile.points.get(rid, profile.scoring.default_points)
        visibility = profile.visibility.get(rid, profile.scoring.default_visibility)
        refined_by = set(profile.refinements.get(rid, ())) if mode != "pair" else set()
        pool = [case.id for case in assessed
                if rid in case.requirements or refined_by & {case.id, case.base, *case.requirements}]
        if points or pool:
            found.append(Item(rid, "requirement", points, visibility, pool))
    own: dict[str, Item] = {}
    for case in cases:
        points = own_entry(profile.points, case)
        if points:
            key = case.id if case.id in profile.points else case.base
            if key not in own:
                own[key] = Item(key, "case", points, profile.visibility.get(key, profile.scoring.default_visibility))
            own[key].cases.append(case.id)
    return [item for item in found if item.points] + list(own.values())


def _order(rid: str) -> tuple[int, int, str]:
    """A- first, then PROTOCOL.md's order of sections, then by number."""
    if match := re.fullmatch(r"([A-Z])-(\d+)", rid):
        return ("AWTEFSCX".find(match.group(1)) % 9, int(match.group(2)), rid)
    return (9, 0, rid)


def score(profile: Profile, mode: str, results: Mapping[str, Mapping[str, Any]], cases: Iterable[CaseInfo],
          status: str = Status.GRADED, requirements: Iterable[str] = ()) -> dict[str, Any]:
    """A submission's points: {"score", "max_score", "mode", "profile", "items": [...]}, each item
    {"id", "kind", "score", "max_score", "visibility", "passed", "counted", "cases"} (see the module's
    docstring for the rules). A submission that was not graded, or has no mode, scores 0."""
    mode = "pair" if mode == "pair" else "framed"
    earning = set(profile.scoring.earning)
    scored = []
    for item in items(profile, mode, cases, requirements):
        if not item.cases:
            continue  # nothing of this mode checks it: not in this mode's total
        by_base: dict[str, list[str]] = {}
        for cid in item.cases:
            verdict = str(results.get(cid, {}).get("verdict", "")) if status in (Status.GRADED, Status.HUNG) else ""
            if verdict != Verdict.SKIP:
                by_base.setdefault(cid.split("[", 1)[0], []).append(verdict)
        fractions = [sum(v in earning for v in verdicts) / len(verdicts) for verdicts in by_base.values()]
        if not fractions:
            earned = 0.0
        elif profile.scoring.credit == "partial":
            earned = item.points * sum(fractions) / len(fractions)
        else:
            earned = item.points if all(f == 1 for f in fractions) else 0.0
        scored.append({"id": item.id, "kind": item.kind, "score": round(earned, 2), "max_score": item.points,
                       "visibility": item.visibility, "passed": round(sum(fractions), 2), "counted": len(fractions),
                       "cases": item.cases})
    return {"score": round(sum(i["score"] for i in scored), 2), "max_score": sum(i["max_score"] for i in scored),
            "mode": mode, "profile": profile.name, "items": scored}


def case_visibility(profile: Profile, case: CaseInfo, points: Mapping[str, Any]) -> str:
    """How much a student may see of a case: its own [visibility] entry, else the most hidden of the
    items it counts toward, else the profile's default."""
    own = own_entry(profile.visibility, case)
    if own:
        return str(own)
    counted = [str(i["visibility"]) for i in points.get("items", []) if case.id in i.get("cases", [])]
    if not counted:
        return profile.scoring.default_visibility
    return max(counted, key=lambda v: VISIBILITIES.index(v) if v in VISIBILITIES else len(VISIBILITIES))


def totals(profile: Profile, cases: list[CaseInfo], requirements: Iterable[str]) -> dict[str, float]:
    reqs = list(requirements)
    return {mode: sum(i.points for i in items(profile, mode, cases, reqs) if i.cases) for mode in ("framed", "pair")}


def load(path: str | Path) -> Profile:
    """A profile whose form is right (its IDs are checked by `profile check`), else ProfileError."""
    profile, found = read(path)
    if found:
        raise ProfileError(found)
    return profile


# -- python3 -m conformance profile check FILE


def add_parser(modes: Any) -> None:
    parser = modes.add_parser("profile", help="check a course profile (points, visibility, the assignment's texts)",
                              description="Check a course profile: one line per problem, exit 1 if any.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="name what is wrong in a profile; exit 0 if nothing is")
    check.add_argument("file", metavar="FILE", help="the profile (TOML), or 'default' for the one shipped")


def main(args: argparse.Namespace) -> int:
    path = resolve(args.file)
    if not path.is_file():
        print(f"conformance: {path}: no such file", file=sys.stderr)
        return 2
    profile, found = read(path)
    if not any(line.startswith(f"{path}:") for line in found):  # its TOML was read: check its IDs too
        cases = collect()
        reqs = protocol_requirements()
        found += problems(profile, cases, reqs)
    for line in found:
        print(line if line.startswith(f"{path}:") else f"{path}: {line}")
    if found:
        return 1
    total = totals(profile, cases, reqs)
    print(f"{path}: OK: a framed submission is scored out of {total['framed']:g} points, a pair one out of "
          f"{total['pair']:g} (framed_refinements = {profile.scoring.framed_refinements}, "
          f"credit = {profile.scoring.credit})")
    return 0



class Scorer:
    """A profile with the suite's cases, ready to score a batch's submissions (`batch --profile`)."""

    def __init__(self, profile: Profile, cases: list[CaseInfo], requirements: Iterable[str]) -> None:
        self.profile, self.cases, self.requirements = profile, cases, list(requirements)

    @classmethod
    def load(cls, name: str | Path, selection: Iterable[str] = ()) -> Scorer:
        """The profile checked as `profile check` does (ProfileError if anything is wrong), scoring the
        selected cases (every case with no selection)."""
        profile = load(name)
        cases, requirements = collect(), protocol_requirements()
        if found := problems(profile, cases, requirements):
            raise ProfileError(found)
        chosen = set(selection)
        if chosen:
            cases = [case for case in cases if case.id in chosen or case.base in chosen]
        return cls(profile, cases, requirements)

    def points(self, status: str, mode: str, results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        return score(self.profile, mode, results, self.cases, status, self.requirements)

    def score(self, sub: Any) -> None:
        """Sets a batch Submission's points (and those of the record --resume read back)."""
        sub.points = self.points(sub.status, sub.mode, sub.cases)
        if getattr(sub, "loaded", None) is not None:
            sub.loaded["points"] = sub.points
