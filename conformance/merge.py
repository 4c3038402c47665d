"""A class graded on many machines: `merge OUT shard-*.json --report --csv --feedback`.

`batch --shard K/N` grades the K-th of N slices of a class (conformance/batch.py: every N-th
submission in name order, from the K-th), each slice where the course has room: a job of a GitHub
Actions matrix, a task of a Slurm array. Each writes its --json. `merge` reads them all and writes
what one unsharded batch would have written: the JSON (OUT), the CSV, the HTML report and the
feedback files, the submissions in the folder's order and the columns every case of the suite's
listing, each submission's record (its verdicts, details and points) as its shard graded it.

It checks that the files belong together: slices of one split (the same N, each K once, none
missing), graded with the same options (the case selection, the profile, the batch-wide --server
and --client), each submission in one slice only. The options come from each file's own command
line. A shard's timeouts were calibrated on its own machine: the merged JSON keeps each shard's
factor and time under "shards".
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from conformance import batch, feedback, report
from conformance import profile as course
from conformance.options import RunOptions
from conformance.plugin import document

SAME = ("case", "profile", "server", "client", "python2")  # what the slices of one class must share


class MergeError(Exception):
    """Files that cannot be merged: exit status 2, with this message."""


def add_parser(modes: Any) -> None:
    parser = modes.add_parser("merge", help="join the --json files of batch --shard K/N into one class",
                              description="Join the JSON files of `batch --shard K/N` into what one batch of the "
                                          "whole class writes: the JSON, the CSV, the HTML report, the feedback.")
    parser.add_argument("out", type=Path, metavar="OUT.json", help="the merged JSON to write")
    parser.add_argument("shards", type=Path, nargs="+", metavar="SHARD.json", help="each shard's --json file")
    parser.add_argument("--report", type=Path, metavar="FILE", help="write the HTML report to FILE")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write one row per submission to FILE")
    parser.add_argument("--feedback", type=Path, metavar="DIR", help="write one Markdown file per submission to DIR")
    parser.add_argument("--submissions", type=Path, metavar="DIR",
                        help="where the class's folders are here, for the feedback's commands (their "
                             "conformance.toml); default: the folder the shards' command lines name")


def batch_options(command: str) -> argparse.Namespace:
    """The batch options a shard was graded with, read back from its JSON's command line."""
    from conformance.cli import build_parser  # the CLI imports this module

    argv = shlex.split(command)
    at = argv.index("batch") if "batch" in argv else len(argv)
    try:
        args = build_parser().parse_args(argv[at:])
    except SystemExit:
        raise MergeError(f"not the command line of a batch: {command}") from None
    return args


def load(paths: list[Path]) -> tuple[list[dict[str, Any]], list[argparse.Namespace]]:
    docs, options = [], []
    for path in paths:
        try:
            doc = json.loads(path.read_text("utf-8"))
            options.append(batch_options(str(doc["command"])))
            docs.append(doc)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MergeError(f"{path}: not the --json file of a batch ({exc})") from None
    splits = {args.shard[1] if args.shard else 1 for args in options}
    if len(splits) != 1:
        raise MergeError(f"the files are slices of different splits: N = {', '.join(map(str, sorted(splits)))}")
    total = splits.pop()
    slices = [args.shard[0] if args.shard else 1 for args in options]
    if duplicated := sorted({k for k in slices if slices.count(k) > 1}):
        raise MergeError(f"slice {', '.join(f'{k}/{total}' for k in duplicated)} is given more than once")
    if missing := [k for k in range(1, total + 1) if k not in slices]:
        raise MergeError(f"slice {', '.join(f'{k}/{total}' for k in missing)} is missing: the class is not whole")
    for key in SAME:
        values = {json.dumps(getattr(args, key, None)) for args in options}
        if len(values) > 1:
            raise MergeError(f"the shards were graded with different --{key.replace('_', '-')}: {', '.join(values)}")
    return docs, options


def unsharded(command: str) -> str:
    """The shard's command line as one batch of the whole class would be: without --shard K/N."""
    argv = shlex.split(command)
    for at, arg in enumerate(argv):
        if arg == "--shard":
            return shlex.join(argv[:at] + argv[at + 2:])
        if arg.startswith("--shard="):
            return shlex.join(argv[:at] + argv[at + 1:])
    return command


def main(args: argparse.Namespace) -> int:
    try:
        docs, options = load(args.shards)
    except MergeError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    first = options[0]
    folder = args.submissions or first.submissions
    names: dict[str, Path] = {}
    for doc, path in zip(docs, args.shards, strict=True):
        for row in doc.get("submissions", []):
            name = str(row.get("name", "")) if isinstance(row, dict) else ""
            if name in names:
                print(f"conformance: {name} is in both {names[name]} and {path}", file=sys.stderr)
                return 2
            names[name] = path
    sources = {name: Path(folder) / name for name in names}
    subs: list[batch.Submission] = []
    for path in args.shards:
        for sub in batch.read_json(path, sources).values():
            sub.points = (sub.loaded or {}).get("points")
            subs.append(sub)
    subs.sort(key=lambda sub: sub.name)  # the folder's order, as batch lists it
    try:
        ids = batch.listed_cases(RunOptions(cases=tuple(first.case)))
    except batch.UsageError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    seconds = sum(float(doc.get("seconds", 0)) for doc in docs)
    data = document([sub.row() for sub in subs], batch.columns(subs, ids), command=unsharded(str(docs[0]["command"])),
                    seconds=seconds, timeout_scale=max(float(doc.get("timeout_scale", 1)) for doc in docs))
    data["partial"] = any(doc.get("partial") for doc in docs)
    data["shards"] = [{"file": str(path), "shard": f"{opts.shard[0]}/{opts.shard[1]}" if opts.shard else "1/1",
                       "submissions": len(doc.get("submissions", [])), "seconds": doc.get("seconds"),
                       "timeout_scale": doc.get("timeout_scale"), "generated": doc.get("generated")}
                      for path, doc, opts in zip(args.shards, docs, options, strict=True)]
    try:
        with batch.replacing(args.out, encoding="utf-8") as out:
            out.write(json.dumps(data, indent=1, ensure_ascii=False))
        written = [args.out]
        if args.csv:
            batch.write_csv(args.csv, subs, ids, points=True)
            written.append(args.csv)
        if args.report:
            report.write(args.report, data)
            written.append(args.report)
        if args.feedback:
            profile = course.load(first.profile or "default")
            files = feedback.write_batch(args.feedback, subs, profile, first.server, first.client)
            print(f"wrote {len(files)} feedback files in {args.feedback}")
    except (OSError, course.ProfileError) as exc:
        print(f"conformance: could not write the merged class: {exc}", file=sys.stderr)
        return 1
    batch.print_summary(subs, seconds)
    batch.print_failures(subs, ids)
    for path in written:
        print(f"wrote {path}" + (" (partial: a shard was interrupted)" if data["partial"] else ""))
    return 0
