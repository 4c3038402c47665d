"""The run options: how long a step may take, how much to stretch every wait, the value of
{handshake_timeout}, and which cases to run.

They are declared, validated and given their defaults here once (`add_arguments`), read back
from a parsed command line once (`RunOptions.from_args`), and turned back into a command line
once (`to_argv`). The front end (cli.py), the batch (batch.py), its runner (runner.py) and the
re-run line of a FAIL all go through this class.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass


def positive(text: str) -> float:
    """An argparse type: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def number(value: float) -> str:
    """A float as short as it reads back exactly: 5.0 -> '5', 1.25 -> '1.25'."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


@dataclass(frozen=True)
class RunOptions:
    timeout: float = 5.0  # seconds one step may take, before scaling
    timeout_scale: float = 1.0  # every wait is stretched by this
    handshake_timeout: float = 1.0  # the value of {handshake_timeout} in a command
    cases: tuple[str, ...] = ()  # the selected case IDs (base or full); empty for all

    @property
    def step(self) -> float:
        return self.timeout * self.timeout_scale

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, calibrated: bool = False,
                      selection: argparse._ArgumentGroup | None = None) -> None:
        """Declares --timeout, --timeout-scale, --handshake-timeout and --case on `parser` (--case on
        `selection` if given). With `calibrated`, --timeout-scale has no default: the batch measures it."""
        default_scale = number(RunOptions.timeout_scale)
        scale_help = ("stretch every wait by FACTOR instead of calibrating on the reference" if calibrated
                      else f"stretch every wait by FACTOR, for slow machines (default {default_scale})")
        parser.add_argument("--timeout", type=positive, default=RunOptions.timeout, metavar="SECONDS",
                            help=f"how long one step may take before it fails (default {number(RunOptions.timeout)})")
        parser.add_argument("--timeout-scale", type=positive, default=None if calibrated else RunOptions.timeout_scale,
                            metavar="FACTOR", help=scale_help)
        parser.add_argument("--handshake-timeout", type=positive, default=RunOptions.handshake_timeout,
                            metavar="SECONDS", help="value for {handshake_timeout} in a command "
                                                    f"(default {number(RunOptions.handshake_timeout)})")
        (selection or parser).add_argument(
            "--case", action="append", default=[], metavar="ID",
            help="run this case (an ID such as S-BUSY-1, or S-HELLO-1[bytewise]); repeatable")

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides: object) -> RunOptions:
        """The run options of a command line parsed with add_arguments() (`overrides` win, e.g. a
        calibrated timeout_scale)."""
        values: dict[str, object] = {"timeout": args.timeout, "timeout_scale": args.timeout_scale,
                                     "handshake_timeout": args.handshake_timeout, "cases": tuple(args.case)}
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def with_cases(self, cases: Iterable[str]) -> RunOptions:
        return dataclasses.replace(self, cases=tuple(cases))

    def to_argv(self) -> list[str]:
        """These options as a command line that add_arguments() reads back; a default is left out."""
        argv = []
        for field in ("timeout", "timeout_scale", "handshake_timeout"):
            value = getattr(self, field)
            if value != getattr(RunOptions, field):
                argv += ["--" + field.replace("_", "-"), number(value)]
        for case in self.cases:
            argv += ["--case", case]
        return argv
