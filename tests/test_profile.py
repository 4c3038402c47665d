"""The course profile (conformance/profile.py), its check, its scoring and the feedback files
(conformance/feedback.py): on synthetic results, without running any program."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance import feedback
from conformance import profile as course
from conformance.profile import CaseInfo

ROOT = Path(__file__).resolve().parent.parent

# A small suite: two pair cases and framed cases that refine A-2 (S-5, C-5) and A-3 (W-5).
CASES = [
    CaseInfo("P-SHOW-1", "pair", ("A-2",), title="messages show after the handle"),
    CaseInfo("P-LONG-1", "pair", ("A-3",), title="500 characters arrive whole"),
    CaseInfo("S-MSG-1[whole]", "server", ("W-5", "S-5")),
    CaseInfo("S-MSG-1[bytewise]", "server", ("W-5", "S-5")),
    CaseInfo("C-MSG-1", "client", ("C-5",)),
    CaseInfo("S-ERR-1[a]", "server", ("E-3",)),
    CaseInfo("S-ERR-1[b]", "server", ("E-3",)),
]
REQS = ["A-2", "A-3", "W-5", "S-5", "C-5", "E-3"]


def profile(**tables: dict[str, Any]) -> course.Profile:
    data = {"points": {"A-2": 10, "A-3": 20}, **tables}
    made, problems = course.parse(data, name="test")
    assert problems == []
    return made


FRAMED = {"S-MSG-1[whole]": "PASS", "S-MSG-1[bytewise]": "FAIL", "C-MSG-1": "PASS", "S-ERR-1[a]": "FAIL",
          "S-ERR-1[b]": "PASS"}


def framed(**changes: str) -> dict[str, dict[str, Any]]:
    modes = {case.id: case.mode for case in CASES}
    return {cid: {"id": cid, "verdict": v, "mode": modes[cid]} for cid, v in {**FRAMED, **changes}.items()}


def pair(show: str = "PASS", long: str = "FAIL") -> dict[str, dict[str, Any]]:
    return {"P-SHOW-1": {"verdict": show, "mode": "pair"}, "P-LONG-1": {"verdict": long, "mode": "pair"}}


def by_id(points: dict[str, Any]) -> dict[str, tuple[float, float]]:
    return {item["id"]: (item["score"], item["max_score"]) for item in points["items"]}


# -- scoring


def test_framed_and_pair_are_scored_on_one_scale() -> None:
    made = profile()
    f = course.score(made, "framed", framed(), CASES)
    p = course.score(made, "pair", pair(), CASES)
    assert f["max_score"] == p["max_score"] == 30
    # S-MSG-1 (refines it through S-5: half its variants pass) and C-MSG-1 (C-5: passes) -> 3/4 of 10.
    # S-MSG-1 (W-5) -> 1/2 of 20. S-ERR-1 refines no A- requirement: it earns nothing, costs nothing.
    assert by_id(f) == {"A-2": (7.5, 10), "A-3": (10, 20)}
    assert f["score"] == 17.5
    assert by_id(p) == {"A-2": (10, 10), "A-3": (0, 20)}
    assert (p["score"], p["mode"], f["mode"]) == (10, "pair", "framed")


def test_framed_refinements_add_scores_every_other_requirement_of_a_framed_submission() -> None:
    made = profile(scoring={"framed_refinements": "add", "default_points": 2}, points={"A-2": 10, "A-3": 20, "E-3": 6})
    f = course.score(made, "framed", framed(), CASES)
    assert by_id(f) == {"A-2": (7.5, 10), "A-3": (10, 20), "W-5": (1, 2), "E-3": (3, 6), "S-5": (1, 2),
                        "C-5": (2, 2)}
    assert f["max_score"] == 30 + 2 + 6 + 2 + 2
    assert course.score(made, "pair", pair(), CASES)["max_score"] == 30  # a pair submission: the A- requirements


def test_credit_verdicts_and_cases_of_their_own() -> None:
    strict = profile(scoring={"credit": "all-or-nothing"})
    assert by_id(course.score(strict, "framed", framed(), CASES)) == {"A-2": (0, 10), "A-3": (0, 20)}
    assert by_id(course.score(strict, "framed", framed(**{"S-MSG-1[bytewise]": "WARN"}), CASES))["A-2"] == (10, 10)
    # FLAKY earns by default, not when the profile says only PASS does; SKIP is left out; BLOCKED earns nothing.
    flaky = framed(**{"S-MSG-1[bytewise]": "FLAKY"})
    assert by_id(course.score(profile(), "framed", flaky, CASES))["A-3"] == (20, 20)
    assert by_id(course.score(profile(scoring={"earning": ["PASS"]}), "framed", flaky, CASES))["A-3"] == (10, 20)
    assert by_id(course.score(profile(), "framed", framed(**{"S-MSG-1[bytewise]": "SKIP"}), CASES))["A-3"] == (20, 20)
    assert by_id(course.score(profile(), "framed", framed(**{"C-MSG-1": "BLOCKED"}), CASES))["A-2"] == (2.5, 10)
    # A case with points of its own leaves its requirements; with 0 it leaves the scoring.
    own = profile(points={"A-2": 10, "A-3": 20, "C-MSG-1": 4, "S-MSG-1[bytewise]": 0})
    assert by_id(course.score(own, "framed", framed(), CASES)) == {"A-2": (10, 10), "A-3": (20, 20), "C-MSG-1": (4, 4)}


def test_a_submission_that_did_not_finish_or_start() -> None:
    made = profile()
    hung = {cid: r for cid, r in framed().items() if cid != "C-MSG-1"}  # killed before its client cases
    assert by_id(course.score(made, "framed", hung, CASES, status="HUNG"))["A-2"] == (2.5, 10)
    nothing = course.score(made, "", {}, CASES, status="NO-START")
    assert (nothing["score"], nothing["max_score"]) == (0, 30)


def test_visibility_of_a_case() -> None:
    made = profile(visibility={"A-3": "hidden", "C-MSG-1": "after_due_date"})
    points = course.score(made, "framed", framed(), CASES)
    case = {c.id: c for c in CASES}
    assert course.case_visibility(made, case["S-MSG-1[whole]"], points) == "hidden"  # A-2 visible, A-3 hidden
    assert course.case_visibility(made, case["C-MSG-1"], points) == "after_due_date"  # its own entry
    assert course.case_visibility(made, case["S-ERR-1[a]"], points) == "visible"  # the default


# -- the profile's form and IDs


def test_the_default_profile_is_clean_and_describes_today() -> None:
    made, problems = course.read("default")
    assert problems == []
    assert made.assignment == course.Assignment()
    assert (made.assignment.message_limit, made.assignment.handle_limit, made.assignment.quit_word) == (500, 10,
                                                                                                         "\\quit")
    assert made.assignment.prompt.format(handle="HostA") == "HostA> "
    assert not made.assignment.split_long_lines
    cases, reqs = course.collect(), course.protocol_requirements()
    assert course.problems(made, cases, reqs) == []
    assert course.totals(made, cases, reqs) == {"framed": 100, "pair": 100}
    for rid, refined_by in course.REFINES.items():  # every refinement names something real, and some case
        assert all(r in reqs or any(r in (c.id, c.base) for c in cases) for r in refined_by), rid
    framed_items = {i.id: i for i in course.items(made, "framed", cases, reqs)}
    assert all(framed_items[f"A-{n}"].cases for n in range(1, 9))


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conformance", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_profile_check_passes_the_default() -> None:
    done = run("profile", "check", "default")
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = done.stdout.splitlines()
    assert "OK" in line and "framed submission is scored out of 100 points, a pair one out of 100" in line


BROKEN = """\
colour = "blue"
[assignment]
message_limit = "500"
prompt = "{name}: "
[scoring]
framed_refinements = "maybe"
bonus = 3
[points]
A-1 = "ten"
A-99 = 5
S-NOPE-1 = 2
"S-HELLO-1[bytewise]" = 1
S-5 = 3
[visibility]
A-2 = "secret"
[refinements]
A-1 = ["C-2", "C-99"]
"""


def test_profile_check_names_each_problem(tmp_path: Path) -> None:
    path = tmp_path / "course.toml"
    path.write_text(BROKEN, encoding="utf-8")
    done = run("profile", "check", str(path))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines)
    expected = [
        "unknown key 'colour'",
        "[assignment] message_limit: expected a whole number above 0, not '500'",
        "[assignment] prompt: unknown placeholder {name}",
        "[scoring] framed_refinements: unknown value 'maybe'",
        "[scoring] unknown key 'bonus'",
        "[points] A-1: the points must be a number of at least 0, not 'ten'",
        "[visibility] A-2: unknown visibility 'secret'",
        "[points] unknown requirement 'A-99' (not in PROTOCOL.md)",
        "[points] unknown requirement or case ID 'S-NOPE-1'",
        "[refinements] A-1: unknown requirement 'C-99'",
        "[points] S-5: 3 points that nothing earns",
    ]
    for text in expected:
        assert sum(text in line for line in lines) == 1, (text, lines)
    assert len(lines) == len(expected)  # "S-HELLO-1[bytewise]", a real case, is fine
    path.write_text("[points\n", encoding="utf-8")
    done = run("profile", "check", str(path))
    assert (done.returncode, done.stdout.count("not TOML")) == (1, 1)
    assert run("profile", "check", str(tmp_path / "missing.toml")).returncode == 2
    assert run("profile", "check").returncode == 2
    assert run("profile").returncode == 2


def test_a_run_with_a_broken_profile_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "course.toml"
    path.write_text("[points]\nA-1 = true\n", encoding="utf-8")
    done = run("pair", "--profile", str(path), "--server", "x {port}", "--client", "y {port}")
    assert done.returncode == 2
    assert "A-1: the points must be a number" in done.stderr


# -- feedback


def test_a_feedback_file_says_what_to_do(tmp_path: Path) -> None:
    made = profile(visibility={"A-3": "hidden"})
    found = {
        "P-SHOW-1": {"id": "P-SHOW-1", "mode": "pair", "verdict": "FAIL", "title": "messages show after the handle",
                     "requirements": ["A-2"], "details": ["expected: 'Chris> hi'", "came: ```Chris: hi\x1b[2J"],
                     "transcripts": {"server": "HostA> \x1b[31mhello\n"}},
        "P-LONG-1": {"id": "P-LONG-1", "mode": "pair", "verdict": "FAIL", "title": "500 characters arrive whole",
                     "requirements": ["A-3"], "details": ["the secret of the hidden case"], "transcripts": {}},
    }
    row = {"name": "zoë <b>", "status": "GRADED", "mode": "pair", "results": found,
           "points": course.score(made, "pair", found, CASES)}
    source = tmp_path / "zoe"
    source.mkdir()
    (source / "conformance.toml").write_text('server = "python3 srv.py {port}"\nclient = "./cli {host} {port}"\n')
    commands = {"zoë <b>": feedback.programs(source)}
    (path,) = feedback.write(tmp_path / "feedback", [row], made, commands)
    text = path.read_text(encoding="utf-8")
    assert path.name == "zoë__b_.md"
    assert "**Points: 0 of 10** in the requirements shown here; 20 more points" in text
    assert "| A-2: Each side shows" in text and "A-3" not in text.split("## What did not pass")[0]
    assert "### P-SHOW-1: messages show after the handle" in text
    assert "expected: 'Chris> hi'" in text and "````\nexpected" in text  # a fence longer than the student's ```
    assert "\x1b" not in text and "␛[2J" in text and "HostA> ␛[31mhello" in text
    rerun = ('python3 -m conformance pair --case P-SHOW-1 --server "python3 srv.py {port}" '
             '--client "./cli {host} {port}"')
    assert rerun in text
    assert "the secret of the hidden case" not in text and "P-LONG-1" not in text
    assert "1 more case of requirements not shown here did not pass." in text


def test_feedback_of_framed_and_ungraded_submissions() -> None:
    made = profile()
    found = {cid: {**r, "title": "t", "requirements": [], "details": ["d"]} for cid, r in framed().items()}
    row = {"name": "al", "status": "GRADED", "mode": "framed", "results": found,
           "points": course.score(made, "framed", found, CASES)}
    text = feedback.render(row, made, ("python3 chatserve.py {port}", "./chatclient {host} {port}"))
    assert "**Points: 17.5 of 30**" in text
    assert 'python3 -m conformance server --case "S-MSG-1[bytewise]" -- python3 chatserve.py {port}' in text
    assert "### S-ERR-1" in text and "no points of its own" in text  # shown, though it earns nothing
    built = {"name": "bo", "status": "BUILD-FAIL", "mode": "", "message": "cli.c:1: error", "log": "cc cli.c",
             "results": {}, "points": course.score(made, "", {}, CASES, status="BUILD-FAIL")}
    text = feedback.render(built, made, ("a {port}", "b {port}"))
    assert "**Points: 0 of 30**" in text and "**BUILD-FAIL**: cli.c:1: error" in text and "cc cli.c" in text


@pytest.mark.parametrize("text, problem", [
    ({"assignment": {"split_long_lines": "no"}}, "expected true or false"),
    ({"assignment": {"quit_word": "\\quit now"}}, "a word without spaces"),
    ({"assignment": {"prompt": "> "}}, "needs {handle}"),
    ({"assignment": {"dropped_line": "bye {address}"}}, "unknown placeholder {address}"),
    ({"scoring": {"earning": ["PASS", "GOOD"]}}, "expected a list of verdicts"),
    ({"points": {"A-1": -1}}, "at least 0"),
    ({"points": 3}, "must be a table"),
])
def test_form_problems(text: dict[str, Any], problem: str) -> None:
    _, problems = course.parse(text)
    assert len(problems) == 1 and problem in problems[0], problems


def test_the_framed_servers_status_lines_are_the_profiles(tmp_path: Path) -> None:
    """S-4's and S-9's lines are read from the profile in server mode too: a course whose lines
    differ from the reference's FAILs the reference on those lines, and only there."""
    course_file = tmp_path / "course.toml"
    course_file.write_text('[assignment]\nconnected_line = "Welcome, {address}!"\n'
                           'dropped_line = "Your client left."\n', encoding="utf-8")
    done = run("server", "--json", str(tmp_path / "run.json"), "--profile", str(course_file),
               "--case", "S-HELLO-3", "--case", "S-TEXT-4", "--", sys.executable, "chatserve.py", "{port}")
    verdicts = {c["id"]: c["verdict"] for c in json.loads((tmp_path / "run.json").read_text())["cases"]}
    assert verdicts == {"S-HELLO-3[ipv4]": "FAIL", "S-HELLO-3[ipv6]": "FAIL", "S-TEXT-4[dropped]": "FAIL",
                        "S-TEXT-4[lost]": "FAIL", "S-TEXT-4[you-closed]": "PASS"}, done.stdout
