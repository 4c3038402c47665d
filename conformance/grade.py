"""One submission, graded where a course grades: `grade SUBMISSION_DIR` and `points FILE.json`.

`grade` grades one folder exactly as `batch` grades each of a class (it runs the batch on a class of
one: the calibration on the reference, the build, the probe for the framed protocol, the sandbox,
the course profile's points), then writes it for the platform:

- `--gradescope FILE`: Gradescope's results.json (conformance/gradescope.py);
- `--summary-md FILE`: the student's Markdown feedback (conformance/feedback.py), fit for
  $GITHUB_STEP_SUMMARY;
- `--json FILE`: the batch's JSON of it (its cases, verdicts, details and points).

Its exit status is what GitHub Classroom's command grader scores by: 0 when the submission was
graded and earned at least --min-score points (default: all of them), 1 when not, 2 for a usage
error (or a reference that fails on this machine). `points FILE.json --require ID` reads such a
JSON back, with no grading, and exits 0 only when each named requirement (or case with points of
its own) earned all its points: one command-grader step per requirement, after one `grade`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from conformance import batch, feedback, gradescope
from conformance import profile as course
from conformance.verdicts import Status

DESCRIPTION = "Grade one submission as batch grades each, and write it for Gradescope or GitHub Classroom."
EPILOG = """Any other option is the batch's (python3 -m conformance batch --help): --timeout-scale, --case,
--wall-time, --python2, --no-namespaces... The exit status is 0 when the submission was graded and
earned at least --min-score points (default: every point), 1 when not, 2 for a usage error."""


def add_parsers(modes: Any) -> None:
    """`grade` and `points` in the top-level help; each is parsed by its own parser below."""
    modes.add_parser("grade", help="grade one submission for Gradescope (--gradescope) or GitHub Classroom "
                                   "(--summary-md, exit status)", add_help=False)
    modes.add_parser("points", help="check the points of a graded submission's JSON (GitHub Classroom)",
                     add_help=False)


def grade_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m conformance grade", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submission", type=Path, metavar="SUBMISSION_DIR", help="the student's folder")
    parser.add_argument("--gradescope", type=Path, metavar="FILE", help="write Gradescope's results.json to FILE")
    parser.add_argument("--gradescope-tests", choices=("requirement", "case"), default="requirement",
                        help="Gradescope's tests: one per item the profile scores (a requirement, or a case with "
                             "points of its own: the default), or one per case, each worth its share of its "
                             "requirement's points (needs credit = \"partial\")")
    parser.add_argument("--summary-md", type=Path, metavar="FILE",
                        help="write the Markdown feedback to FILE (appended: $GITHUB_STEP_SUMMARY is shared)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the batch's JSON of this submission to FILE")
    parser.add_argument("--name", metavar="NAME", help="the submission's name (default: its folder's)")
    parser.add_argument("--min-score", type=float, metavar="POINTS",
                        help="exit 0 from this many points on (default: the most it can earn)")
    parser.add_argument("--profile", default="default", metavar="FILE",
                        help="the course profile (TOML; 'default' for the one shipped): points and visibility")
    parser.add_argument("--server", metavar="COMMAND", help="its server command, if no conformance.toml")
    parser.add_argument("--client", metavar="COMMAND", help="its client command, if no conformance.toml")
    return parser


def main(argv: list[str]) -> int:
    parser = grade_parser()
    args, rest = parser.parse_known_args(argv)
    if not args.submission.is_dir():
        parser.error(f"{args.submission} is not a folder")
    try:
        profile = course.load(args.profile)
    except course.ProfileError as exc:
        print("\n".join(f"conformance: --profile {args.profile}: {line}" for line in exc.problems), file=sys.stderr)
        return 2
    if args.gradescope_tests == "case" and profile.scoring.credit != "partial":
        parser.error('--gradescope-tests case needs the profile\'s [scoring] credit = "partial"')
    started = time.monotonic()
    name = (args.name or args.submission.resolve().name).lstrip(".") or "submission"  # batch skips a .folder
    with tempfile.TemporaryDirectory(prefix="conformance-grade-") as temp:
        folder = Path(temp) / "class"
        folder.mkdir()
        try:
            batch.copy_submission(args.submission, folder / name)
        except OSError as exc:
            print(f"conformance: could not copy {args.submission}: {exc}", file=sys.stderr)
            return 2
        data_path = Path(temp) / "batch.json"
        code = run_batch(folder, data_path, args, rest)
        if code != 0:
            return code
        try:
            data = json.loads(data_path.read_text("utf-8"))
            row = data["submissions"][0]
        except (OSError, ValueError, KeyError, IndexError) as exc:
            print(f"conformance: the batch wrote no result: {exc}", file=sys.stderr)
            return 1
    commands = feedback.programs(args.submission, args.server, args.client)
    try:
        write_outputs(args, data, row, profile, commands, time.monotonic() - started)
    except OSError as exc:
        print(f"conformance: could not write {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return verdict(row, args.min_score)


def run_batch(folder: Path, data_path: Path, args: argparse.Namespace, rest: list[str]) -> int:
    """`batch` on the class of one, its JSON to `data_path`."""
    from conformance.cli import build_parser  # the CLI imports this module

    argv = ["batch", str(folder), "--json", str(data_path), "--jobs", "1", "--profile", args.profile]
    for option in ("server", "client"):
        if getattr(args, option):
            argv += [f"--{option}", getattr(args, option)]
    argv += rest
    return batch.main(build_parser().parse_args(argv), argv)


def write_outputs(args: argparse.Namespace, data: dict[str, Any], row: dict[str, Any], profile: course.Profile,
                  commands: tuple[str, str], seconds: float) -> None:
    requirements = course.protocol_requirements()
    if args.json:
        args.json.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
        print(f"wrote {args.json}")
    if args.gradescope:
        results = gradescope.results(row, profile, commands, requirements, seconds,
                                     per_case=getattr(args, "gradescope_tests", "") == "case")
        args.gradescope.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
        print(f"wrote {args.gradescope}")
    if args.summary_md:
        with open(args.summary_md, "a", encoding="utf-8") as out:  # the step summary may hold others' already
            out.write(feedback.render(row, profile, commands, requirements) + "\n")
        print(f"wrote {args.summary_md}")


def verdict(row: dict[str, Any], min_score: float | None) -> int:
    """The exit status: 0 graded with enough points, else 1 (and the line that says so)."""
    points = row.get("points") or {}
    score, most = float(points.get("score", 0)), float(points.get("max_score", 0))
    needed = most if min_score is None else min_score
    ok = row.get("status") == Status.GRADED and score >= needed
    print(f"points: {score:g} of {most:g} ({row.get('status')}); {'enough' if ok else 'not enough'}: "
          f"{needed:g} needed")
    return 0 if ok else 1


# --- points FILE.json --------------------------------------------------------------------------


def points_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m conformance points",
        description="Read a graded submission's JSON (grade --json, or a batch's) and exit 0 when it earned the "
                    "points asked for: one step of GitHub Classroom's command grader each.")
    parser.add_argument("file", type=Path, metavar="FILE.json")
    parser.add_argument("--name", metavar="NAME", help="the submission, in a batch's JSON (default: the first)")
    parser.add_argument("--require", action="append", default=[], metavar="ID",
                        help="a requirement (A-3) or case with points of its own that must earn all its points; "
                             "repeatable")
    parser.add_argument("--min-score", type=float, metavar="POINTS", help="at least this many points in all")
    return parser


def points_main(argv: list[str]) -> int:
    parser = points_parser()
    args = parser.parse_args(argv)
    try:
        rows = json.loads(args.file.read_text("utf-8"))["submissions"]
        row = next(r for r in rows if args.name in (None, r.get("name")))
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        print(f"conformance: {args.file}: no graded submission{f' named {args.name}' if args.name else ''} ({exc})",
              file=sys.stderr)
        return 2
    points = row.get("points") or {}
    items = {str(item.get("id")): item for item in points.get("items", [])}
    ok = row.get("status") == Status.GRADED
    for rid in args.require:
        item = items.get(rid)
        if item is None:
            print(f"conformance: {rid}: not scored for this submission (its mode: {row.get('mode') or 'none'})",
                  file=sys.stderr)
            return 2
        earned = float(item["score"]) >= float(item["max_score"])
        ok = ok and earned
        print(f"{rid}: {float(item['score']):g} of {float(item['max_score']):g}")
    if args.min_score is not None:
        ok = ok and float(points.get("score", 0)) >= args.min_score
    print(f"points: {float(points.get('score', 0)):g} of {float(points.get('max_score', 0)):g} "
          f"({row.get('status')}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1

