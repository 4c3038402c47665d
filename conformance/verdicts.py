"""The suite's words, each defined once: the verdict of a case, the status of a graded submission,
and the kind of a case. They are `StrEnum`s, so that JSON, CSV and the terminal show their plain
strings ("PASS", "BUILD-FAIL", "text")."""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """What a case came to. The first five are a suite run's; FLAKY only a batch gives (a FAIL
    that passed when the batch ran the case again)."""

    PASS = "PASS"
    FAIL = "FAIL"  # a MUST broken
    WARN = "WARN"  # a SHOULD broken
    SKIP = "SKIP"  # not applicable
    BLOCKED = "BLOCKED"  # not run: a case it needs FAILed
    FLAKY = "FLAKY"  # batch only: FAILed once, passed on the re-run


RUN_VERDICTS = (Verdict.PASS, Verdict.FAIL, Verdict.WARN, Verdict.SKIP, Verdict.BLOCKED)  # one suite run's
WORST_FIRST = (Verdict.FAIL, Verdict.FLAKY, Verdict.BLOCKED, Verdict.WARN, Verdict.SKIP, Verdict.PASS)


class Status(StrEnum):
    """What became of a submission in a batch."""

    WAITING = "WAITING"  # not started yet (never in a result)
    GRADED = "GRADED"  # its cases ran: see their verdicts
    BUILD_FAIL = "BUILD-FAIL"  # its build failed
    NO_START = "NO-START"  # no server or client, or the server never listened
    HUNG = "HUNG"  # its grading outlasted --wall-time and was killed
    ERROR = "ERROR"  # the grading itself went wrong (the suite gave no results, ...)


RESULT_STATUSES = (Status.GRADED, Status.BUILD_FAIL, Status.NO_START, Status.HUNG, Status.ERROR)


class Kind(StrEnum):
    """What a case checks (its marker's `kind=`)."""

    TEXT = "text"  # an exact text or exit status fixed by PROTOCOL.md
    BEHAVIOUR = "behaviour"  # what the program does: frames, turns, connections, timing


KIND_HELP = ("A text case checks one exact text or exit status that PROTOCOL.md fixes (a prompt, a closing "
             "line, a refusal's reason, an error line, a status). A behaviour case (the default) learns what a "
             "program shows and checks what it does: what goes on the wire, its turns, that it waits for its "
             "user, that it ends.")
