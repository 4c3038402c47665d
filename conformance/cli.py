"""The command line: a thin front end that turns options into a pytest run with our plugin."""

from __future__ import annotations

import argparse
import shlex
import sys
import textwrap
from pathlib import Path
from typing import NoReturn

import pytest

from conformance import batch, grade, gradescope, merge, sandbox
from conformance import profile as course
from conformance.options import RunOptions
from conformance.plugin import ConformancePlugin, Options
from conformance.programs import Policy
from conformance.verdicts import KIND_HELP

CASES = Path(__file__).resolve().parent / "cases"
MODULES = {"server": "test_server.py", "client": "test_client.py", "pair": "test_pair.py"}

EPILOG = """examples:
  python3 -m conformance server -- python3 chatserve.py {port}
  python3 -m conformance server --attach 127.0.0.1:39919
  python3 -m conformance client -- ./chatclient {host} {port}
  python3 -m conformance pair --server "python3 theirserve.py {port}" --client "./theirclient {host} {port}"
  python3 -m conformance list
  python3 -m conformance batch SUBMISSIONS/ --report report.html --csv results.csv
  python3 -m conformance batch SUBMISSIONS/ --profile course.toml --csv results.csv --feedback feedback/
  python3 -m conformance profile check course.toml
  python3 -m conformance grade SUBMISSION/ --profile course.toml --gradescope results.json
  python3 -m conformance gradescope-zip autograder.zip --profile course.toml
  python3 -m conformance batch SUBMISSIONS/ --shard 2/3 --json shard-2.json
  python3 -m conformance merge class.json shard-*.json --report report.html --csv results.csv

In a command, {port} and {host} are replaced by the port and address the suite chose, and
{handshake_timeout} by --handshake-timeout (so that the TIMEOUT cases need not wait 10 s).

{kinds}

Exit status: 0 if no case FAILed, 1 if one did, 2 for a usage error."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"conformance: {message} (see --help)\n")


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def build_parser() -> Parser:
    common = Parser(add_help=False)
    sel = common.add_argument_group("selection and output")
    run = common.add_argument_group("timing and network")
    RunOptions.add_arguments(run, selection=sel)
    sel.add_argument("-k", metavar="EXPR", help="run the cases whose IDs or names match a pytest -k expression")
    sel.add_argument("-q", "--quiet", action="store_true",
                     help="print only the cases that did not pass, and the summary line")
    sel.add_argument("--junit-xml", metavar="FILE", help="write JUnit XML results to FILE")
    sel.add_argument("--json", metavar="FILE", help="write JSON results to FILE")
    sel.add_argument("--report", metavar="FILE", help="write a self-contained HTML report to FILE")
    sel.add_argument("--events", metavar="FILE",
                     help="write one JSON object per line to FILE as each case ends, then an \"end\" one "
                          "(FILE may be /dev/fd/N, a pipe)")
    sel.add_argument("--profile", metavar="FILE",
                     help="a course profile (TOML; 'default' for the one shipped): the run's points, scored on the "
                          "cases it ran, in its JSON, its report and its last line")
    run.add_argument("--host", default="127.0.0.1", help="loopback address to use: 127.0.0.1 (default) or ::1")
    run.add_argument("--untrusted", action="store_true",
                     help="start the programs under test with limits, no privileges and a clean environment")

    parser = Parser(prog="python3 -m conformance", description="Conformance suite for PROTOCOL.md.",
                    epilog=EPILOG.replace("{kinds}", textwrap.fill(KIND_HELP, 95)),
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", required=True, metavar="MODE")
    server = modes.add_parser("server", parents=[common], help="test a server: -- COMMAND... or --attach HOST:PORT")
    server.add_argument("--attach", type=address, metavar="HOST:PORT",
                        help="test a server that is already running, on the wire only")
    modes.add_parser("client", parents=[common], help="test a client: -- COMMAND...")
    pair = modes.add_parser("pair", parents=[common], help="test a server and a client of any wire format together")
    pair.add_argument("--server", required=True, metavar="COMMAND", help="the server command, one string")
    pair.add_argument("--client", required=True, metavar="COMMAND", help="the client command, one string")
    listing = modes.add_parser("list", parents=[common], help="print every case with its requirements")
    listing.add_argument("which", nargs="?", choices=sorted(MODULES), help="only this mode's cases")
    batch.add_parser(modes)
    course.add_parser(modes)
    grade.add_parsers(modes)
    gradescope.add_zip_parser(modes)
    merge.add_parser(modes)
    return parser


def parse(argv: list[str]) -> tuple[Options, argparse.Namespace]:
    parser = build_parser()
    command: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, command = argv[:at], argv[at + 1 :]
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error(f"--host must be a loopback address, not {args.host!r}")
    if args.mode == "server" and bool(command) == bool(args.attach):
        parser.error("server mode needs either -- COMMAND... or --attach HOST:PORT")
    if args.mode == "client" and not command:
        parser.error("client mode needs -- COMMAND... with {host} and {port} in it")
    if args.mode in ("list", "pair") and command:
        parser.error(f"{args.mode} mode takes no -- COMMAND")
    if args.mode == "server" and command and not any("{port}" in part for part in command):
        parser.error("the server command needs {port} where the port goes")
    if args.mode == "client" and not any("{port}" in part for part in command):
        parser.error("the client command needs {port} where the port goes")
    if args.mode == "pair" and not ("{port}" in args.server and "{port}" in args.client):
        parser.error("both pair commands need {port} where the port goes")
    return Options(
        mode=args.mode,
        command=command,
        server_command=shlex.split(args.server) if args.mode == "pair" else [],
        client_command=shlex.split(args.client) if args.mode == "pair" else [],
        host=args.host,
        attach=getattr(args, "attach", None),
        run=RunOptions.from_args(args),
        json_path=Path(args.json) if args.json else None,
        report_path=Path(args.report) if args.report else None,
        events_path=Path(args.events) if args.events else None,
        brief=args.quiet,
        untrusted=args.untrusted,
        profile=load_profile(parser, args.profile) if args.profile and args.mode != "list" else None,
        profile_arg=args.profile if args.mode != "list" else None,
    ), args


def load_profile(parser: Parser, name: str) -> course.Profile:
    """The course profile named on the command line; one that cannot be used is a usage error."""
    try:
        return course.load(name)
    except course.ProfileError as exc:
        for line in exc.problems:
            print(f"conformance: --profile {name}: {line}", file=sys.stderr)
        parser.error(f"--profile {name} cannot be used (python3 -m conformance profile check {name})")


def main(argv: list[str]) -> int:
    if argv[:1] == ["batch"]:
        return batch.main(build_parser().parse_args(argv), argv)
    if argv[:1] == ["profile"]:
        return course.main(build_parser().parse_args(argv))
    if argv[:1] == ["merge"]:
        return merge.main(build_parser().parse_args(argv))
    if argv[:1] == ["grade"]:
        return grade.main(argv[1:])
    if argv[:1] == ["points"]:
        return grade.points_main(argv[1:])
    if argv[:1] == ["gradescope-zip"]:
        at = argv.index("--") if "--" in argv else len(argv)
        return gradescope.zip_main(build_parser().parse_args(argv[:at]), argv[at + 1:])
    opts, args = parse(argv)
    if opts.untrusted:
        Policy.untrusted = True
        sandbox.protect_self()
        sandbox.fix_task_limit()
    if opts.mode == "list":
        modes = [args.which] if args.which else [m for m in MODULES if (CASES / MODULES[m]).exists()]
    else:
        modes = [opts.mode]
    pytest_args = [str(CASES / MODULES[m]) for m in modes]
    pytest_args += ["-c", str(CASES / "pytest.ini"), "--rootdir", str(CASES), "-p", "no:terminal"]
    if args.k:
        pytest_args += ["-k", args.k]
    if args.junit_xml:
        pytest_args += ["--junitxml", args.junit_xml]
    if opts.mode == "list":
        pytest_args.append("--collect-only")
    plugin = ConformancePlugin(opts)
    code = pytest.main(pytest_args, plugins=[plugin])
    if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
        print(f"conformance: pytest could not run the suite (exit {int(code)})", file=sys.stderr)
        return 2
    if plugin.selected == 0:
        print("conformance: no case matches the selection", file=sys.stderr)
        return 2
    if code == pytest.ExitCode.INTERRUPTED:
        return 2
    return 1 if plugin.failed() else 0


def run() -> None:
    """The `twochat-conformance` command that `pip install` makes (pyproject.toml): this same CLI."""
    sys.exit(main(sys.argv[1:]))
