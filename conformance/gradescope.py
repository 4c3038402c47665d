"""Gradescope: a graded submission as Gradescope's autograder results (results.json), and the
autograder zip a course uploads.

Gradescope's format (https://gradescope-autograders.readthedocs.io/en/latest/specs/): the
overall `score`, `execution_time`, `output`, and one entry of `tests` per item the course profile
scores (conformance/profile.py): a requirement with the cases that count toward it, or a case
given points of its own. Each test has its `name`, `number`, `score`, `max_score`, `status`
(passed: every point earned), `visibility` (the profile's) and `output` in Markdown: its cases
with their verdicts and, for each that did not pass, what was expected and what came (with the
hex of the bytes), what each program showed, and the command that re-runs it.

Hidden stays hidden: Gradescope hides a test whose visibility says so, and nothing the students
see names what it hides. A test's output details only the cases whose own visibility (the most
hidden of the items they count toward, or their own [visibility] entry) is no more hidden than
the test's, and the overall output gives the points of the visible tests only.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conformance import feedback
from conformance import profile as course
from conformance.verdicts import Status, Verdict

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "autograder" / "gradescope"  # setup.sh and run_autograder, as a course uploads them
RANK = {visibility: rank for rank, visibility in enumerate(course.VISIBILITIES)}  # visible first, hidden last
PASSED = (Verdict.PASS, Verdict.SKIP)
OPTIONS_FILE = "grade-options"  # the zip's extra options of `grade`, one argument a line
PROFILE_FILE = "profile.toml"
CONSTRAINTS_FILE = "constraints.txt"  # the versions .venv pins (requirements.txt), for setup.sh's pip


def hidden_from(visibility: str, shown_in: str) -> bool:
    """Whether what has `visibility` must not be detailed where `shown_in` is what students see."""
    return RANK.get(visibility, len(RANK)) > RANK.get(shown_in, len(RANK))


def results(row: Mapping[str, Any], profile: course.Profile, commands: tuple[str, str],
            requirements: Mapping[str, str], seconds: float, per_case: bool = False) -> dict[str, Any]:
    """Gradescope's results.json of one submission: a row of the batch's JSON, with its points. One
    test per item the profile scores, or with `per_case` one per case that counts toward one."""
    points = row.get("points") or {}
    items = [item for item in points.get("items", []) if isinstance(item, dict)]
    tests = case_tests(row, profile, commands, items) if per_case else []
    for number, item in enumerate([] if per_case else items, 1):
        earned, worth = float(item.get("score", 0)), float(item.get("max_score", 0))
        tests.append({"name": test_name(item, requirements), "number": str(number), "score": earned,
                      "max_score": worth, "status": "passed" if earned >= worth else "failed",
                      "visibility": str(item.get("visibility", "visible")), "output_format": "md",
                      "output": test_output(item, row, profile, commands), "tags": [str(item.get("kind", ""))]})
    return {"score": float(points.get("score", 0)), "execution_time": round(seconds), "output_format": "md",
            "output": overall_output(row, items, withheld(row, profile, "visible")), "stdout_visibility": "hidden",
            "tests": tests,
            "extra_data": {"status": str(row.get("status", "")), "mode": str(row.get("mode", "")),
                           "profile": str(points.get("profile", profile.name))}}


def case_tests(row: Mapping[str, Any], profile: course.Profile, commands: tuple[str, str],
               items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One test per case that counts toward an item, worth its share of the item's points as
    profile.score() weighs it with credit = "partial" (the item's points over its base cases, a
    base case's over its variants; SKIP is left out), and earning it when its verdict earns."""
    if profile.scoring.credit != "partial":
        raise ValueError('one test per case needs [scoring] credit = "partial" (all-or-nothing is per requirement)')
    results: dict[str, dict[str, Any]] = {str(k): v for k, v in (row.get("results") or {}).items()
                                          if isinstance(v, dict)}
    ran = row.get("status") in (Status.GRADED, Status.HUNG)
    earning = set(profile.scoring.earning)
    worth: dict[str, float] = {}
    toward: dict[str, list[str]] = {}
    numbers: dict[str, str] = {}
    for index, item in enumerate(items, 1):
        by_base: dict[str, list[str]] = {}
        for cid in item.get("cases", []):
            if not ran or results.get(cid, {}).get("verdict") != Verdict.SKIP:
                by_base.setdefault(cid.split("[", 1)[0], []).append(cid)
        for ids in by_base.values():
            for cid in ids:
                worth[cid] = worth.get(cid, 0.0) + float(item.get("max_score", 0)) / len(by_base) / len(ids)
                toward.setdefault(cid, []).append(str(item.get("id")))
                numbers.setdefault(cid, f"{index}.{sum(n.startswith(f'{index}.') for n in numbers.values()) + 1}")
    points = row.get("points") or {}
    tests = []
    for cid, share in worth.items():
        result = results.get(cid, {})
        verdict = str(result.get("verdict", "")) if ran else ""
        info = course.CaseInfo(cid, str(result.get("mode", "")), tuple(result.get("requirements", []) or []))
        visibility = course.case_visibility(profile, info, points)
        earned = share if verdict in earning else 0.0
        if not ran:
            output = f"Not run: the submission is **{feedback.inline(row.get('status', ''))}** (see the overview)."
        elif verdict in PASSED:
            output = f"**{feedback.inline(verdict)}** `{feedback.inline(cid)}`\n"
        else:
            output = "\n".join(case_details(cid.split("[", 1)[0], [cid], results, commands,
                                            withheld(row, profile, visibility)))
        title = str(result.get("title", ""))
        tests.append({"name": f"{cid}: {title}" if title else cid, "number": numbers[cid],
                      "score": round(earned, 4), "max_score": round(share, 4),
                      "status": "passed" if earned >= share else "failed", "visibility": visibility,
                      "output_format": "md", "output": output, "tags": toward[cid]})
    return tests


def withheld(row: Mapping[str, Any], profile: course.Profile, shown_in: str) -> list[str]:
    """The case IDs more hidden than `shown_in` (a base ID too when all its variants are), longest
    first: a message or a BLOCKED case's root that names one is said without it."""
    points = row.get("points") or {}
    hidden: set[str] = set()
    bases: dict[str, bool] = {}
    for cid, result in (row.get("results") or {}).items():
        info = course.CaseInfo(str(cid), str(result.get("mode", "")), tuple(result.get("requirements", []) or []))
        secret = hidden_from(course.case_visibility(profile, info, points), shown_in)
        if secret:
            hidden.add(info.id)
        bases[info.base] = bases.get(info.base, True) and secret
    hidden |= {base for base, secret in bases.items() if secret}
    return sorted(hidden, key=len, reverse=True)


def redacted(text: str, hidden: list[str]) -> str:
    for cid in hidden:
        text = re.sub(rf"(?<![\w-]){re.escape(cid)}(?![\w\[-])", "(a case not shown)", text)
    return text


def test_name(item: Mapping[str, Any], requirements: Mapping[str, str]) -> str:
    rid = str(item.get("id", ""))
    if item.get("kind") == "case":
        return f"{rid} (a case with points of its own)"
    return f"{rid}: {requirements[rid]}" if rid in requirements else rid


def test_output(item: Mapping[str, Any], row: Mapping[str, Any], profile: course.Profile,
                commands: tuple[str, str]) -> str:
    """A test's Markdown: its cases by base case, then each one that did not pass, detailed."""
    status = str(row.get("status", ""))
    if status not in (Status.GRADED, Status.HUNG):
        return f"Not run: the submission is **{feedback.inline(status)}** (see the overview above)."
    results: dict[str, dict[str, Any]] = {str(k): v for k, v in (row.get("results") or {}).items()
                                          if isinstance(v, dict)}
    visibility = str(item.get("visibility", "visible"))
    points = row.get("points") or {}
    secret = withheld(row, profile, visibility)
    shown: list[str] = []
    unshown = 0
    for cid in item.get("cases", []):
        result = results.get(cid, {})
        info = course.CaseInfo(cid, str(result.get("mode", "")), tuple(result.get("requirements", []) or []))
        if hidden_from(course.case_visibility(profile, info, points), visibility):
            unshown += 1
        else:
            shown.append(cid)
    lines = [f"**{float(item.get('score', 0)):g} of {float(item.get('max_score', 0)):g} points**: "
             f"{float(item.get('passed', 0)):g} of {item.get('counted', 0)} cases earned (variants of a case "
             "count as a fraction of it; SKIP, not applicable, is left out).", ""]
    by_base: dict[str, list[str]] = {}
    for cid in shown:
        by_base.setdefault(cid.split("[", 1)[0], []).append(cid)
    for base, ids in by_base.items():
        verdicts = [str(results.get(cid, {}).get("verdict", "not run")) for cid in ids]
        counts = ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))
        title = str(results.get(ids[0], {}).get("title", ""))
        lines.append(f"- `{feedback.inline(base)}`" + (f" ({len(ids)} variants)" if len(ids) > 1 else "")
                     + f": {counts}" + (f": {feedback.inline(title)}" if title else ""))
    if unshown:
        lines.append(f"- and {unshown} case{'s' if unshown > 1 else ''} not shown here")
    lines.append("")
    for base, ids in by_base.items():
        failed = [cid for cid in ids if results.get(cid, {}).get("verdict") not in PASSED]
        lines += case_details(base, failed, results, commands, secret)
    return "\n".join(lines).rstrip() + "\n"


def case_details(base: str, ids: list[str], results: Mapping[str, Mapping[str, Any]],
                 commands: tuple[str, str], secret: list[str]) -> list[str]:
    """What did not pass in one base case: expected and got (with hex), the screens, the re-run."""
    if not ids:
        return []
    lines = [f"### {feedback.inline(base)}: {feedback.inline(results.get(ids[0], {}).get('title', ''))}", ""]
    for cid in ids[:feedback.VARIANTS_SHOWN]:
        result = results.get(cid, {})
        verdict = str(result.get("verdict", "not run"))
        lines += [f"**{feedback.inline(verdict)}** `{feedback.inline(cid)}`", ""]
        if verdict == Verdict.BLOCKED:
            root = redacted(str(result.get("root") or "a case it needs"), secret)
            lines += [f"Not run: `{feedback.inline(root)}` did not pass.", ""]
            continue
        details = "\n".join(str(line) for line in result.get("details", []) or [])
        if details:
            lines += ["What was expected, and what came:", "", feedback.fenced(details), ""]
        for role, screen in (result.get("transcripts") or {}).items():
            lines += [f"What the {feedback.inline(role)} showed:", "", feedback.fenced(str(screen)), ""]
        if result.get("mode"):
            lines += ["Run it again against your programs:", "",
                      feedback.fenced(feedback.rerun(cid, str(result["mode"]), *commands)), ""]
    if len(ids) > feedback.VARIANTS_SHOWN:
        rest = ", ".join(f"`{feedback.inline(cid)}`" for cid in ids[feedback.VARIANTS_SHOWN:])
        lines += [f"Also not passed: {rest}.", ""]
    return lines


def overall_output(row: Mapping[str, Any], items: list[dict[str, Any]], secret: list[str]) -> str:
    """The text above the tests: what became of the submission (no hidden case named: a HUNG one's
    message names the last case to end), and the points students may see."""
    message = redacted(str(row.get("message", "")), secret)
    status, mode = str(row.get("status", "")), str(row.get("mode", ""))
    lines = []
    visible = [i for i in items if i.get("visibility") == "visible"]
    later = sum(float(i.get("max_score", 0)) for i in items if i.get("visibility") != "visible")
    score = sum(float(i.get("score", 0)) for i in visible)
    total = sum(float(i.get("max_score", 0)) for i in visible)
    lines.append(f"**{score:g} of {total:g} points** in the tests shown"
                 + (f"; {later:g} more points are graded by tests not shown yet." if later else "."))
    lines.append("")
    if mode == "pair":
        lines.append("Your server and client were graded together (`pair` mode: the assignment's rules at the "
                     "terminal, PROTOCOL.md section 7a).")
    elif mode == "framed":
        lines.append("Your server and client speak PROTOCOL.md's frames, so each was graded on its own "
                     "(`server` and `client` modes).")
    if status != Status.GRADED:
        lines += ["", f"**{feedback.inline(status)}**: {feedback.inline(message) or '(no message)'}"]
        if row.get("log"):
            lines += ["", "What the grading showed:", "", feedback.fenced(str(row["log"])[-4000:])]
    elif message:
        lines += ["", f"Note: {feedback.inline(message)}"]
    return "\n".join(lines).rstrip() + "\n"


# --- the autograder zip ---------------------------------------------------------------------------


def build_wheel(target: Path) -> Path:
    """A wheel of this project, built from a copy of its tree (a build writes build/ and *.egg-info
    beside its sources) with this Python's setuptools, offline."""
    if not (ROOT / "pyproject.toml").is_file():
        raise OSError(f"{ROOT} is not a clone of the project (no pyproject.toml): the zip is built from a clone")
    with tempfile.TemporaryDirectory(prefix="conformance-wheel-") as temp:
        source = Path(temp) / "source"
        shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
            ".venv", "build", ".git", "__pycache__", ".*_cache", ".hypothesis", "*.egg-info"))
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                                "--disable-pip-version-check", "-w", str(target), str(source)],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if built.returncode != 0:
            raise OSError(f"the wheel could not be built:\n{built.stdout[-2000:]}{built.stderr[-2000:]}")
    wheels = sorted(target.glob("twochat_conformance-*.whl"))
    if not wheels:
        raise OSError("pip built no wheel")
    return wheels[-1]


def build_zip(out: Path, profile_name: str, options: list[str]) -> list[str]:
    """The zip a course uploads: setup.sh and run_autograder at its root, as they are in
    autograder/gradescope/, the course profile, the extra options of `grade`, the wheel of this
    project and the pinned versions of its dependencies. Returns the names it holds."""
    profile_path = course.resolve(profile_name)
    with tempfile.TemporaryDirectory(prefix="conformance-zip-") as temp:
        wheel = build_wheel(Path(temp))
        files = {"setup.sh": SCRIPTS / "setup.sh", "run_autograder": SCRIPTS / "run_autograder",
                 PROFILE_FILE: profile_path, CONSTRAINTS_FILE: ROOT / "requirements.txt", wheel.name: wheel}
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, path in files.items():
                info = zipfile.ZipInfo.from_file(path, name)
                info.compress_type = zipfile.ZIP_DEFLATED
                if name in ("setup.sh", "run_autograder"):
                    info.external_attr = (0o100755 & 0xFFFF) << 16
                archive.writestr(info, path.read_bytes())
            archive.writestr(OPTIONS_FILE, "".join(f"{option}\n" for option in options))
    return [*files, OPTIONS_FILE]


def add_zip_parser(modes: Any) -> None:
    parser = modes.add_parser(
        "gradescope-zip", help="build the autograder zip a course uploads to Gradescope",
        description="Build the Gradescope autograder zip: setup.sh and run_autograder (autograder/gradescope/), "
                    "the course profile, the wheel of this project. Run from a clone.",
        epilog="Options after -- are given to `grade` on every submission, e.g. -- --timeout-scale 2.")
    parser.add_argument("out", type=Path, metavar="OUT.zip", help="the zip to write")
    parser.add_argument("--profile", default="default", metavar="FILE",
                        help="the course profile (TOML; 'default' for the one shipped): points and visibility")


def zip_main(args: argparse.Namespace, options: list[str]) -> int:
    try:
        course.Scorer.load(args.profile)  # checked as `profile check` does: no zip of a profile that cannot grade
    except course.ProfileError as exc:
        print("\n".join(f"conformance: --profile {args.profile}: {line}" for line in exc.problems), file=sys.stderr)
        return 2
    try:
        names = build_zip(args.out, args.profile, options)
    except OSError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {', '.join(names)}")
    return 0
