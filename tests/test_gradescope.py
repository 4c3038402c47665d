"""Gradescope, end to end: the zip that `gradescope-zip` builds is unpacked into a temporary
/autograder/{source,submission,results} tree, and its run_autograder grades the reference, a broken
copy (a server that lets a second client in: A-13) and a plain-text pair, with a course profile that
hides A-13 and shows A-8 after the due date. Each results.json must hold to Gradescope's published
format (tests/schemas/gradescope-results.schema.json), and nothing students see may name what is
hidden. run_autograder runs with the clone's suite (CONFORMANCE) instead of setup.sh's venv: setup.sh
installs packages, and tests/test_install.py installs the wheel.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "broken"))  # the tests' mutants (as test_batch.py)

from mutants import MUTANTS, mutated_source
from submissions import reference

from procs import ROOT

SCHEMA = json.loads((ROOT / "tests" / "schemas" / "gradescope-results.schema.json").read_text())
PROFILE = ROOT / "tests" / "profiles" / "gradescope.toml"
HIDDEN = "A-13"  # a second client gets BUSY: the srv-no-busy mutant FAILs its cases
BUSY_CASES = ("S-BUSY-1", "S-BUSY-2", "S-BUSY-3")
OPTIONS = ["--timeout-scale", "2"]  # the zip's options of grade: one factor, no calibration (test_batch.py calibrates)


# --- the schema, checked by hand (the few keywords it uses) ----------------------------------------

TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def problems(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """What in `value` breaks `schema` (type, enum, minimum, required, properties,
    additionalProperties, items, anyOf and local $ref: what the Gradescope schema uses)."""
    if "$ref" in schema:
        schema = SCHEMA["$defs"][schema["$ref"].removeprefix("#/$defs/")]
    found: list[str] = []
    if "type" in schema:
        kinds = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        if not any(isinstance(value, int | float) and not isinstance(value, bool) if kind == "number"
                   else isinstance(value, TYPES[kind]) for kind in kinds):
            return [f"{where}: {value!r} is not {' or '.join(kinds)}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        found.append(f"{where}: {value!r} is below {schema['minimum']}")
    if isinstance(value, dict):
        found += [f"{where}: {key!r} is missing" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key in schema.get("properties", {}):
                found += problems(item, schema["properties"][key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                found.append(f"{where}: unknown key {key!r}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += problems(item, schema["items"], f"{where}[{index}]")
    if "anyOf" in schema and all(problems(value, option, where) for option in schema["anyOf"]):
        found.append(f"{where}: matches none of anyOf")
    return found


def test_the_schema_check_catches_what_gradescope_would_not_take() -> None:
    good = {"score": 1.0, "tests": [{"name": "t", "score": 1, "max_score": 1, "status": "passed",
                                     "visibility": "hidden", "output_format": "md"}]}
    assert problems(good, SCHEMA) == []
    assert problems({"tests": [{"name": "no score anywhere"}]}, SCHEMA)
    assert problems({"score": 1, "tests": [{"visibility": "secret"}]}, SCHEMA)
    assert problems({"score": "1"}, SCHEMA)
    assert problems({"score": 1, "tests": [{"max_points": 1}]}, SCHEMA)


# --- the autograder, run as Gradescope runs it -----------------------------------------------------


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zip") / "autograder.zip"
    built = subprocess.run([sys.executable, "-m", "conformance", "gradescope-zip", str(out), "--profile", str(PROFILE),
                            "--", *OPTIONS], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    return out


def submission(kind: str, target: Path) -> None:
    if kind == "reference":
        reference(target)
    elif kind == "srv-no-busy":
        reference(target)
        mutant = next(m for m in MUTANTS if m.name == kind)
        (target / mutant.file).write_text(mutated_source(mutant), encoding="utf-8")
    else:
        target.mkdir(parents=True)
        for name in ("plain_server.py", "plain_client.py", "plainlines.py"):
            (target / name).write_bytes((ROOT / "tests" / "pairs" / name).read_bytes())
        (target / "conformance.toml").write_text('server = "python3 plain_server.py {port}"\n'
                                                 'client = "python3 plain_client.py {host} {port}"\n')


@pytest.fixture(scope="module")
def graded(autograder_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """results.json of each submission, run_autograder run on a fresh /autograder tree each (side by
    side, as Gradescope runs submissions each in a container of its own)."""
    runs = {}
    for kind in ("reference", "srv-no-busy", "plain-text-pair"):
        tree = tmp_path_factory.mktemp(kind) / "autograder"
        (tree / "source").mkdir(parents=True)
        with zipfile.ZipFile(autograder_zip) as archive:
            archive.extractall(tree / "source")
        submission(kind, tree / "submission")
        env = {**os.environ, "AUTOGRADER": str(tree), "CONFORMANCE": f"{sys.executable} -m conformance"}
        runs[kind] = (tree, subprocess.Popen(["bash", str(tree / "source" / "run_autograder")], cwd="/", env=env,
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                             stdin=subprocess.DEVNULL))
    found = {}
    for kind, (tree, proc) in runs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
        found[kind] = json.loads((tree / "results" / "results.json").read_text())
        found[kind]["stdout"] = out  # kept apart below: not part of results.json
    return found


def test_the_zip_holds_the_scripts_as_they_are(autograder_zip: Path) -> None:
    with zipfile.ZipFile(autograder_zip) as archive:
        names = set(archive.namelist())
        for script in ("setup.sh", "run_autograder"):
            assert archive.read(script) == (ROOT / "autograder" / "gradescope" / script).read_bytes()
            assert archive.getinfo(script).external_attr >> 16 & 0o111, f"{script} is not executable"
        assert archive.read("profile.toml") == PROFILE.read_bytes()
        assert archive.read("grade-options").decode().splitlines() == OPTIONS
    assert any(name.startswith("twochat_conformance-") and name.endswith(".whl") for name in names)
    for script in ("setup.sh", "run_autograder"):
        subprocess.run(["bash", "-n", str(ROOT / "autograder" / "gradescope" / script)], check=True)


@pytest.mark.parametrize("kind", ["reference", "srv-no-busy", "plain-text-pair"])
def test_results_json_holds_to_gradescopes_format(graded: dict[str, dict[str, Any]], kind: str) -> None:
    results = {key: value for key, value in graded[kind].items() if key != "stdout"}
    assert problems(results, SCHEMA) == []
    assert results["extra_data"]["status"] == "GRADED", graded[kind]["stdout"][-3000:]
    assert results["extra_data"]["mode"] == ("pair" if kind == "plain-text-pair" else "framed")
    tests = results["tests"]
    assert [t["number"] for t in tests] == [str(n) for n in range(1, len(tests) + 1)]
    assert {t["name"].split(":")[0] for t in tests} == {f"A-{n}" for n in range(1, 16)}
    assert results["score"] == pytest.approx(sum(t["score"] for t in tests))
    assert sum(t["max_score"] for t in tests) == 15  # the profile's default_points, one each
    for test in tests:
        assert test["status"] == ("passed" if test["score"] >= test["max_score"] else "failed")
        assert test["visibility"] == {"A-13": "hidden", "A-8": "after_due_date"}.get(test["name"][:4].rstrip(":"),
                                                                                    "visible")


def test_the_broken_copy_fails_the_hidden_requirement_and_nothing_shown_names_it(
        graded: dict[str, dict[str, Any]]) -> None:
    results = graded["srv-no-busy"]
    hidden = next(t for t in results["tests"] if t["name"].startswith(f"{HIDDEN}:"))
    assert hidden["status"] == "failed" and hidden["visibility"] == "hidden"
    assert "S-BUSY-1" in hidden["output"]  # the staff see the details
    shown = [results["output"]] + [t["output"] + t["name"] for t in results["tests"] if t["visibility"] != "hidden"]
    for text in shown:
        assert HIDDEN not in text and not any(case in text for case in BUSY_CASES), text
    assert "more points are graded by tests not shown yet" in results["output"]


def test_the_reference_loses_nothing_and_the_pair_is_graded_on_the_same_scale(
        graded: dict[str, dict[str, Any]]) -> None:
    for kind in ("reference", "plain-text-pair"):
        results = graded[kind]
        failed = [t["name"] for t in results["tests"] if t["status"] != "passed"]
        assert results["score"] == 15 and not failed, (failed, results["stdout"][-3000:])


# --- GitHub Classroom: the points command and the workflow --------------------------------------


def graded_row(status: str = "GRADED", a3: float = 15) -> dict[str, Any]:
    items = [{"id": "A-1", "kind": "requirement", "score": 8, "max_score": 8, "visibility": "visible", "passed": 1,
              "counted": 1, "cases": []},
             {"id": "A-3", "kind": "requirement", "score": a3, "max_score": 15, "visibility": "visible",
              "passed": 1, "counted": 1, "cases": []}]
    return {"name": "student", "status": status, "mode": "framed", "results": {},
            "points": {"score": 8 + a3, "max_score": 23, "items": items}}


@pytest.mark.parametrize(("row", "argv", "status"), [
    (graded_row(), ["--require", "A-1", "--require", "A-3"], 0),
    (graded_row(a3=14.5), ["--require", "A-1"], 0),
    (graded_row(a3=14.5), ["--require", "A-3"], 1),
    (graded_row(a3=14.5), ["--min-score", "22.5"], 0),
    (graded_row(a3=14.5), ["--min-score", "23"], 1),
    (graded_row("BUILD-FAIL"), ["--require", "A-1"], 1),
    (graded_row(), ["--require", "A-99"], 2),
])
def test_points_exits_by_what_was_earned(tmp_path: Path, row: dict[str, Any], argv: list[str], status: int) -> None:
    (tmp_path / "grade.json").write_text(json.dumps({"submissions": [row]}))
    ran = subprocess.run([sys.executable, "-m", "conformance", "points", str(tmp_path / "grade.json"), *argv],
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == status, ran.stdout + ran.stderr


def test_the_classroom_workflow_awards_the_default_profiles_points() -> None:
    """One command-grader step per A- requirement, worth its points in the default profile, each
    reported; the grade step writes the JSON they read and the step summary."""
    from conformance import profile as course

    text = (ROOT / ".github" / "classroom" / "autograding.yml").read_text()
    profile = course.load("default")
    steps = re.findall(r"- name: (A-\d+)\n +id: (a-\d+)\n(?: +.*\n)*? +command: twochat-conformance points grade\.json "
                       r"--require (A-\d+)\n(?: +.*\n)*? +max-score: (\d+)", text)
    assert [s[0] for s in steps] == [f"A-{n}" for n in range(1, 16)]
    for name, sid, required, points in steps:
        assert name == required and sid == name.lower()
        assert float(points) == profile.points.get(name, profile.scoring.default_points)
        assert f'{sid.upper()}_RESULTS: "${{{{steps.{sid}.outputs.result}}}}"' in text
    assert f"runners: {','.join(s[1] for s in steps)}\n" in text
    assert "--json grade.json --summary-md \"$GITHUB_STEP_SUMMARY\"" in text


def test_the_summary_is_appended_and_the_exit_status_is_by_points(tmp_path: Path) -> None:
    """--summary-md adds the student's feedback to what $GITHUB_STEP_SUMMARY already holds; grade's
    exit status is 0 from --min-score on (default: every point), for a graded submission only."""
    import argparse

    from conformance import grade
    from conformance import profile as course

    summary = tmp_path / "summary.md"
    summary.write_text("# an earlier step's summary\n")
    args = argparse.Namespace(json=None, gradescope=tmp_path / "results.json", summary_md=summary)
    row = graded_row(a3=7.5)
    grade.write_outputs(args, {"submissions": [row]}, row, course.load("default"), ("python3 s.py {port}", "./c"), 3.2)
    text = summary.read_text()
    assert text.startswith("# an earlier step's summary\n") and "# Conformance feedback: student" in text
    assert "**Points: 15.5 of 23**" in text
    results = json.loads((tmp_path / "results.json").read_text())
    assert problems(results, SCHEMA) == [] and results["execution_time"] == 3
    assert [t["status"] for t in results["tests"]] == ["passed", "failed"]
    assert grade.verdict(graded_row(), None) == 0
    assert grade.verdict(row, None) == 1
    assert grade.verdict(row, 15.5) == 0
    assert grade.verdict(graded_row("NO-START"), 0) == 1


def test_no_message_nor_blocked_case_names_a_hidden_case() -> None:
    """A HUNG submission's message names the last case to end, and a BLOCKED case the case it
    needed: neither is named where students see it when that case is hidden."""
    from conformance import gradescope
    from conformance import profile as course

    profile = course.Profile(visibility={"A-13": "hidden"})
    items = [{"id": "A-7", "kind": "requirement", "score": 0, "max_score": 1, "visibility": "visible", "passed": 0,
              "counted": 1, "cases": ["S-NEXT-1"]},
             {"id": "A-13", "kind": "requirement", "score": 0, "max_score": 1, "visibility": "hidden", "passed": 0,
              "counted": 1, "cases": ["S-BUSY-1"]}]
    row = {"name": "s", "status": "HUNG", "mode": "framed",
           "message": "no case ended for 40 s, and it was killed (the last to end: server S-BUSY-1)",
           "results": {"S-BUSY-1": {"id": "S-BUSY-1", "mode": "server", "verdict": "FAIL", "requirements": ["S-8"],
                                    "title": "busy", "details": ["expected: ERROR BUSY"]},
                       "S-NEXT-1": {"id": "S-NEXT-1", "mode": "server", "verdict": "BLOCKED", "root": "S-BUSY-1",
                                    "requirements": ["S-9"], "title": "next"}},
           "points": {"score": 0, "max_score": 2, "items": items}}
    results = gradescope.results(row, profile, ("python3 chatserve.py {port}", "./chatclient {host} {port}"),
                                 {}, 50)
    assert problems(results, SCHEMA) == []
    visible, hidden = results["tests"]
    assert "S-BUSY-1" not in results["output"] and "(a case not shown)" in results["output"]
    assert "S-BUSY-1" not in visible["output"] and "S-NEXT-1" in visible["output"]
    assert "S-BUSY-1" in hidden["output"]


def test_one_test_per_case_splits_each_requirements_points_as_the_profile_weighs_them() -> None:
    """A-3's 15 points over its base cases (S-MSG-1, S-MSG-3; SKIP left out), S-MSG-1's over its
    two variants: 3.75, 3.75 and 7.5; a case of a hidden requirement is a hidden test."""
    from conformance import gradescope
    from conformance import profile as course

    profile = course.Profile(visibility={"A-13": "hidden"})

    def case(cid: str, verdict: str, reqs: str) -> dict[str, Any]:
        return {"id": cid, "mode": "server", "verdict": verdict, "requirements": reqs.split(), "title": cid.lower(),
                "details": ["expected: x", "     got: y"]}

    results = {c["id"]: c for c in (case("S-MSG-1[whole]", "PASS", "S-5"), case("S-MSG-1[bytewise]", "FAIL", "S-5"),
                                    case("S-MSG-3", "PASS", "W-5"), case("S-MSG-9", "SKIP", "W-5"),
                                    case("S-BUSY-1", "FAIL", "S-8"))}
    items = [{"id": "A-3", "kind": "requirement", "score": 11.25, "max_score": 15, "visibility": "visible",
              "passed": 1.5, "counted": 2, "cases": ["S-MSG-1[whole]", "S-MSG-1[bytewise]", "S-MSG-3", "S-MSG-9"]},
             {"id": "A-13", "kind": "requirement", "score": 0, "max_score": 3, "visibility": "hidden", "passed": 0,
              "counted": 1, "cases": ["S-BUSY-1"]}]
    row = {"name": "s", "status": "GRADED", "mode": "framed", "message": "", "results": results,
           "points": {"score": 11.25, "max_score": 18, "items": items}}
    out = gradescope.results(row, profile, ("python3 chatserve.py {port}", "./chatclient {host} {port}"), {}, 9,
                             per_case=True)
    assert problems(out, SCHEMA) == []
    tests = {t["name"].split(":")[0]: t for t in out["tests"]}
    assert list(tests) == ["S-MSG-1[whole]", "S-MSG-1[bytewise]", "S-MSG-3", "S-BUSY-1"]
    assert [(t["score"], t["max_score"], t["status"]) for t in tests.values()] == [
        (3.75, 3.75, "passed"), (0, 3.75, "failed"), (7.5, 7.5, "passed"), (0, 3, "failed")]
    assert sum(t["score"] for t in out["tests"]) == out["score"] == 11.25
    assert [t["number"] for t in tests.values()] == ["1.1", "1.2", "1.3", "2.1"]
    assert tests["S-BUSY-1"]["visibility"] == "hidden" and tests["S-MSG-3"]["visibility"] == "visible"
    assert "expected: x" in tests["S-MSG-1[bytewise]"]["output"]
    assert "S-BUSY-1" not in out["output"]
