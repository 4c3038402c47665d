"""`python3 -m conformance batch`: a class of test submissions (tests/submissions.py) graded in
one run, its CSV and its HTML page in a real browser; a hostile submission that tries to
escape its sandbox; the helpers that decide a build and an error line."""

from __future__ import annotations

import csv
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pexpect
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "broken"))

from browser import Element, load, parse
from mutants import MUTANTS, expected_ids, mutated_source
from submissions import FAKE_PYTHON2, PAIR_DEFECTS, Expected, make_class, python2_server
from submissions import reference as reference_copy

from conformance import batch, procstate, runner
from procs import ROOT, conformance, listed

VERDICTS = ("PASS", "FAIL", "WARN", "SKIP", "BLOCKED", "FLAKY")
WALL_TIME = batch.WALL_TIME  # the default: the reference takes about 25 s here with two at once


@dataclass
class BatchRun:
    expected: dict[str, Expected]
    result: subprocess.CompletedProcess[str]
    seconds: float
    data: dict[str, Any]
    csv_path: Path
    report: Path

    def submission(self, name: str) -> dict[str, Any]:
        return next(s for s in self.data["submissions"] if s["name"] == name)


def run_batch(folder: Path, *options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return conformance("batch", str(folder), *options, env=env, timeout=600)


def sub_row(dom: Element, name: str) -> Element:
    """A submission's row of the matrix (a row not GRADED has a second one, its notice)."""
    (row,) = dom.find_all("tr", test=lambda e: "sub-row" in e.attrs.get("class", "").split(), data_submission=name)
    return row


PR_SET_CHILD_SUBREAPER = 36


@pytest.fixture(scope="module", autouse=True)
def subreaper() -> Any:
    """This test process adopts what its batches orphan, so that leftovers() sees the processes of
    its own batches (and only those: not a batch that someone else runs on this machine)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    yield
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> BatchRun:
    folder = tmp_path_factory.mktemp("class")
    out = tmp_path_factory.mktemp("out")
    expected = make_class(folder)
    start = time.monotonic()
    result = run_batch(folder, "--report", str(out / "report.html"), "--csv", str(out / "results.csv"),
                       "--json", str(out / "results.json"))  # the default --wall-time
    seconds = time.monotonic() - start
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((out / "results.json").read_text())
    return BatchRun(expected, result, seconds, data, out / "results.csv", out / "report.html")


# --- the verdicts -------------------------------------------------------------------------------


def test_every_submission_gets_its_status_and_mode(graded: BatchRun) -> None:
    assert sorted(s["name"] for s in graded.data["submissions"]) == sorted(graded.expected)
    for name, want in graded.expected.items():
        got = graded.submission(name)
        assert (got["status"], got["mode"] if want.mode else "") == (want.status, want.mode), (name, got["message"])
        assert want.message in got["message"], (name, got["message"])


def test_points_rank_framed_and_pair_submissions_on_one_scale(graded: BatchRun) -> None:
    points = {s["name"]: s["points"] for s in graded.data["submissions"]}
    assert {p["max_score"] for p in points.values()} == {100}
    for name in ("reference", "independent", "plain-text-pair"):
        assert points[name]["score"] == 100, name
    for name, _, _, _ in PAIR_DEFECTS:  # each defect costs its requirements' points, and only those
        assert 0 < points[name]["score"] < 100, name
    assert points["no-programs"]["score"] == 0


def test_correct_submissions_pass_every_case(graded: BatchRun) -> None:
    framed = listed("server") + listed("client")
    for name, cases in (("reference", framed), ("independent", framed), ("plain-text-pair", listed("pair")),
                        ("zipped-camel-stale", framed)):
        results = graded.submission(name)["results"]
        assert {cid: r["verdict"] for cid, r in results.items()} == dict.fromkeys(cases, "PASS"), name


def test_a_mutant_or_broken_pair_fails_exactly_its_cases(graded: BatchRun) -> None:
    for name, want in graded.expected.items():
        if not want.failing:
            continue
        results = graded.submission(name)["results"]
        failed = {cid for cid, r in results.items() if r["verdict"] == "FAIL"}
        assert failed == expected_ids(want.failing, list(results)), name
        assert {r["verdict"] for cid, r in results.items() if cid not in failed} <= {"PASS"} | want.others, name
        assert all(results[cid]["details"] for cid in failed), name  # what was expected, what came
        assert any(results[cid]["transcripts"] for cid in failed), name  # and what the program showed


def test_a_build_failure_names_the_compilers_first_error(graded: BatchRun) -> None:
    sub = graded.submission("does-not-compile")
    assert re.fullmatch(r"chatclient\.c:1:\d+: error: .*", sub["message"])
    assert "$ cc -O2 -o chatclient chatclient.c chatwire.c -lm" in sub["log"]
    assert sub["results"] == {}


def test_a_hanging_submission_is_killed_and_keeps_what_finished(graded: BatchRun) -> None:
    sub = graded.submission("hangs")
    scale = graded.data["timeout_scale"]
    stall, wall = batch.stall_limit(5 * scale), WALL_TIME * scale
    # Its server stops answering after HELLO: each server case waits out its steps, and none ends for
    # the stall limit (before the wall time, which would also do).
    assert re.match(rf"no case ended for {stall:g} s \(\d+ s in\)|the grading did not finish within {wall:g} s",
                    sub["message"]), sub["message"]
    assert sub["results"], "the cases that ended before the kill are kept"
    assert all(r["title"] and r["requirements"] and r["kind"] for r in sub["results"].values()), "each whole"
    assert stall - 0.1 <= sub["seconds"] < wall + 15  # seconds are rounded to 0.1


def leftovers() -> list[str]:
    """The command lines of processes of this test's batches still running: runners, or programs
    in their copies. Only this process's descendants (orphans included: it is a subreaper)."""
    found = []
    for pid in procstate.descendants(os.getpid()):
        if pid == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "conformance.runner" in cmdline or "conformance-batch-" in cmdline:
            found.append(cmdline)
    return found


def test_nothing_of_the_batch_is_left_running(graded: BatchRun) -> None:
    assert leftovers() == []
    assert "the copies are kept" not in graded.result.stdout


# --- what the grader sees -----------------------------------------------------------------------


def test_the_terminal_shows_progress_and_a_summary(graded: BatchRun) -> None:
    out = graded.result.stdout
    n = len(graded.expected)
    scale = graded.data["timeout_scale"]
    first = out.splitlines()[0]
    assert re.fullmatch(r"calibration: the reference took [\d.]+ s of CPU here \(best of \d+; baseline [\d.]+ s\); "
                        rf"timeouts x{scale:g}; a submission is HUNG after {WALL_TIME * scale:g} s, or after "
                        rf"{batch.stall_limit(5 * scale):g} s in which none of its cases ends", first)
    for name in graded.expected:
        assert f"/{n}] {name}: started" in out
        assert re.search(rf"^\[\d+/{n}\] {re.escape(name)}: (GRADED|BUILD-FAIL|NO-START|HUNG)", out, re.M)
    assert re.search(rf"^{n} submissions in [\d.]+ s$", out, re.M)
    failures = out[out.index("\nfailures:\n"):]  # after the table, each submission's FAILed cases
    busy = re.search(r"^  srv-no-busy: (.*)$", failures, re.M)
    assert busy and "S-BUSY-1[" in busy[1], failures
    assert "  reference:" not in failures
    print(f"\nbatch of {n} submissions: {graded.seconds:.1f} s")  # the figure quoted in bench/README.md


def test_the_csv_has_a_row_per_submission_and_a_column_per_case(graded: BatchRun) -> None:
    raw = graded.csv_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM: spreadsheets then read UTF-8
    rows = list(csv.reader(graded.csv_path.read_text(encoding="utf-8-sig").splitlines()))
    header, body = rows[0], rows[1:]
    ids = listed("server") + listed("client") + listed("pair")  # every case: known before grading
    assert header == ["submission", "status", "mode", *VERDICTS, "seconds", "message", *ids, "points", "max_points"]
    assert [c["id"] for c in graded.data["cases"]] == [cid for cid in ids if any(
        cid in s["results"] for s in graded.data["submissions"])]
    assert sorted(r[0] for r in body) == sorted(graded.expected)
    for row in body:
        sub = graded.submission(row[0])
        assert row[1:3] == [sub["status"], sub["mode"]]
        assert [int(n) for n in row[3:9]] == [sub["summary"][v] for v in VERDICTS]
        assert row[11:-2] == [sub["results"][cid]["verdict"] if cid in sub["results"] else "" for cid in ids]
        assert Counter(row[11:-2]) - Counter({"": 10**6}) == Counter({v: n for v, n in sub["summary"].items() if n})
        assert [float(n) for n in row[-2:]] == [sub["points"]["score"], sub["points"]["max_score"]]


def test_the_report_shows_the_verdicts_in_a_real_browser(graded: BatchRun) -> None:
    page = load(graded.report)
    assert page.console_errors == []
    dom = parse(page.dom)
    for sub in graded.data["submissions"]:
        row = sub_row(dom, sub["name"])
        counts = {e.attrs["data-count"]: int(e.text()) for e in row.find_all(test=lambda e: "data-count" in e.attrs)}
        assert counts == {v: sub["summary"][v] for v in VERDICTS}, sub["name"]
    cells = dom.find_all("td", test=lambda e: "data-verdict" in e.attrs)
    srv_busy = [c for c in cells if c.attrs["data-submission"] == "srv-no-busy" and c.attrs["data-case"] == "S-BUSY-1"]
    assert [c.attrs["data-verdict"] for c in srv_busy] == ["FAIL"]
    panel = dom.find(id=srv_busy[0].attrs["data-detail"])
    assert "BUSY" in panel.text() and "server" in panel.text()
    (notice,) = [td for td in sub_row(dom, "does-not-compile").find_all("td") if "notice" in td.attrs.get("class", "")]
    assert notice.text().startswith("BUILD-FAIL chatclient.c:1:")


def test_report_works_for_one_implementation_too(tmp_path: Path) -> None:
    page = tmp_path / "one.html"
    result = conformance("server", "--case", "S-HELLO-1", "--case", "S-LISTEN-1", "--report", str(page), "--",
                         "python3", "chatserve.py", "{port}")
    assert result.returncode == 0, result.stdout
    loaded = load(page)
    assert loaded.console_errors == []
    dom = parse(loaded.dom)
    row = sub_row(dom, "python3 chatserve.py {port}")
    assert int(row.find(data_count="PASS").text()) == 5  # S-LISTEN-1 and four deliveries of S-HELLO-1


# --- a hostile submission: tests/test_sandbox.py grades ten of them in one batch ------------------


# --- the parts ------------------------------------------------------------------------------------


def test_build_commands_follow_the_submission(tmp_path: Path) -> None:
    (tmp_path / "client.c").write_text("int\nmain(void) { return helper(); }\n")
    (tmp_path / "util.c").write_text("int helper(void) { return 0; }\n")
    (tmp_path / "srv.cpp").write_text("int main() {}\n")
    assert runner.build_commands(tmp_path) == [["cc", "-O2", "-o", "client", "client.c", "util.c", "-lm"],
                                               ["c++", "-O2", "-o", "srv", "srv.cpp", "-lm"]]
    (tmp_path / "Makefile").write_text("all:\n")
    assert runner.build_commands(tmp_path) == [["make", "-B"]]  # a binary committed with it is made again
    (tmp_path / "compileall").write_text("true\n")
    assert runner.build_commands(tmp_path) == [["sh", "compileall"]]


def test_first_error_is_the_line_to_read() -> None:
    out = ("make: entering\nx.c: In function 'main':\nx.c:3:5: warning: unused\nx.c:4:1: error: expected ';'\n"
           "x.c:9:1: error: later\nmake: *** [Makefile:2: all] Error 1\n")
    assert runner.first_error(out) == "x.c:4:1: error: expected ';'"
    assert runner.first_error("ld: cannot find -lfoo\ncollect2: error: ld returned 1\n") == (
        "collect2: error: ld returned 1")
    assert runner.first_error("") == ""


def test_spreadsheet_formulas_stay_text() -> None:
    assert [batch.spreadsheet_safe(v) for v in ("=HYPERLINK(1)", "+1", "-Werror", "@x", "plain", 3)] == [
        "'=HYPERLINK(1)", "'+1", "'-Werror", "'@x", "plain", 3]


def test_a_config_file_names_the_programs(tmp_path: Path) -> None:
    (tmp_path / "conformance.toml").write_text('server = "python3 s.py {port}"\nclient = "./c {host} {port}"\n'
                                               'mode = "pair"\n')
    assert runner.find_programs(tmp_path) == runner.Programs("python3 s.py {port}", "./c {host} {port}", "pair")
    (tmp_path / "conformance.toml").write_text('server = "python3 s.py"\n')
    with pytest.raises(runner.NotGradable, match=r"no server"):
        runner.find_programs(tmp_path)
    (tmp_path / "conformance.toml").write_text("server = \n")
    with pytest.raises(runner.NotGradable, match=r"conformance.toml: "):
        runner.find_programs(tmp_path)


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_batch(tmp_path / "missing").returncode == 2
    assert run_batch(tmp_path, "--jobs", "0").returncode == 2



FORGED = ('{"event": "result", "status": "GRADED", "mode": "framed", "message": "forged", "log": "", "cases": []}',
          '{"event": "case", "mode": "server", "rerun": false, "case": {"id": "S-FORGED-1", "verdict": "PASS"}}',
          'PASS    S-LISTEN-1', 'RESULT {"status": "GRADED", "mode": "framed", "message": "", "log": "", "cases": []}')
FLAKY_SERVER = f'''"""The reference server, but its second start (the first after the batch's probe) begins with
lines of its own, forged events of the runner: S-LISTEN-1 FAILs on the first run and passes on the re-run."""
import os
import sys
from pathlib import Path

starts = Path("starts")
count = int(starts.read_text()) + 1 if starts.exists() else 1
starts.write_text(str(count))
if count == 2:
    print({chr(10).join(FORGED)!r}, flush=True)
os.execvp("python3", ["python3", "chatserve.py", *sys.argv[1:]])
'''


def test_a_case_that_fails_once_then_passes_is_flaky_and_its_output_forges_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "class"
    reference_copy(folder / "flaky")
    (folder / "flaky" / "flaky.py").write_text(FLAKY_SERVER)
    (folder / "flaky" / "conformance.toml").write_text('server = "python3 flaky.py {port}"\n')
    result = run_batch(folder, "--timeout-scale", "1", "--case", "S-LISTEN-1", "--case", "C-PROMPT-1",
                       "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    (sub,) = json.loads((tmp_path / "r.json").read_text())["submissions"]
    assert {cid: r["verdict"] for cid, r in sub["results"].items()} == {"S-LISTEN-1": "FLAKY", "C-PROMPT-1": "PASS"}
    details = sub["results"]["S-LISTEN-1"]["details"]
    assert details[0].startswith("FAILed on the first run and passed on the re-run") and "forged" in str(details)
    assert sub["summary"]["FLAKY"] == 1
    assert (sub["status"], sub["message"]) == ("GRADED", "")


def test_without_the_sandbox_it_says_so_and_still_grades(tmp_path: Path) -> None:
    reference_copy(tmp_path / "class" / "ref")
    result = run_batch(tmp_path / "class", "--no-namespaces", "--unsafe-no-sandbox", "--timeout-scale", "1",
                       "--case", "S-MSG-1", "--case", "C-MSG-1", "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: --no-namespaces --unsafe-no-sandbox: submissions run WITHOUT the sandbox" in result.stdout
    (sub,) = json.loads((tmp_path / "r.json").read_text())["submissions"]
    assert (sub["status"], sub["summary"]["PASS"], sub["summary"]["FAIL"]) == ("GRADED", 5, 0)


def test_on_a_terminal_a_status_line_follows_the_work(tmp_path: Path) -> None:
    folder = tmp_path / "class"
    reference_copy(folder / "ref")
    child = pexpect.spawn("python3", ["-m", "conformance", "batch", str(folder), "--timeout-scale", "1", "--case",
                                      "S-LISTEN-1"], cwd=str(ROOT), encoding="utf-8", timeout=120)
    child.expect(r"\r\x1b\[K\[0/1 done\] ref: building")
    child.expect(r"\r\x1b\[K\[0/1 done\] ref: probing the server")
    child.expect(r"\[1/1\] ref: GRADED \(framed\), 1 pass")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_ctrl_c_stops_every_submission_and_writes_what_was_finished(tmp_path: Path) -> None:
    folder = tmp_path / "class"
    for name in ("a", "b", "c"):
        reference_copy(folder / name)
    report = tmp_path / "r.html"
    child = pexpect.spawn("python3", ["-m", "conformance", "batch", str(folder), "--timeout-scale", "1", "--report",
                                      str(report)], cwd=str(ROOT), encoding="utf-8", timeout=60)
    child.expect(r"\[0/3 done\] a: .*\| b: S-")  # two at work, both in their cases
    child.sendintr()
    child.expect(r"conformance: interrupted; the 0 of 3 submissions graded are written; --resume")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert "partial: 0 of 3 submissions graded" in report.read_text()
    assert leftovers() == []


RESUME_CASES = ("S-LISTEN-1", "S-BUSY-1", "S-MSG-1", "C-PROMPT-1", "C-MSG-1")


def csv_rows(path: Path) -> list[list[str]]:
    """The rows of a batch's CSV without the seconds (column 10), which differ run to run."""
    if not path.exists():
        return []
    rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    return [row[:9] + row[10:] for row in rows[1:]]


def outcomes(data: dict[str, Any]) -> dict[str, Any]:
    return {s["name"]: (s["status"], s["mode"], s["message"], {cid: r["verdict"] for cid, r in s["results"].items()})
            for s in data["submissions"]}


def test_an_interrupted_batch_keeps_its_rows_and_resume_finishes_it(tmp_path: Path) -> None:
    folder = tmp_path / "class"
    for name in ("a", "b", "c", "d"):
        reference_copy(folder / name)
    busy = next(m for m in MUTANTS if m.name == "srv-no-busy")
    (folder / "b" / busy.file).write_text(mutated_source(busy), encoding="utf-8")
    options = [arg for cid in RESUME_CASES for arg in ("--case", cid)] + ["--jobs", "1"]

    def files(where: Path) -> list[str]:
        where.mkdir(exist_ok=True)
        return ["--csv", str(where / "r.csv"), "--json", str(where / "r.json"), "--report", str(where / "r.html")]

    whole = run_batch(folder, *options, *files(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stdout + whole.stderr

    part = tmp_path / "part"
    proc = subprocess.Popen(["python3", "-m", "conformance", "batch", str(folder), *options, *files(part)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not csv_rows(part / "r.csv"):  # its first row: written the moment that submission is graded
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, out + err
    kept = csv_rows(part / "r.csv")
    assert 1 <= len(kept) < 4 and "interrupted; the" in err
    data = json.loads((part / "r.json").read_text())
    assert data["partial"] is True and [s["name"] for s in data["submissions"]] == [row[0] for row in kept]
    assert f"partial: {len(kept)} of 4 submissions graded" in (part / "r.html").read_text()
    assert leftovers() == []

    again = run_batch(folder, *options, *files(part), "--resume")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "the factor of the run being resumed" in again.stdout.splitlines()[0]
    assert f"resuming: {len(kept)} of 4 submissions already graded" in again.stdout
    assert again.stdout.count(": started") == 4 - len(kept)
    assert csv_rows(part / "r.csv") == csv_rows(tmp_path / "whole" / "r.csv")
    resumed, uninterrupted = (json.loads((where / "r.json").read_text()) for where in (part, tmp_path / "whole"))
    assert outcomes(resumed) == outcomes(uninterrupted) and resumed["cases"] == uninterrupted["cases"]
    assert resumed["partial"] is False and "partial:" not in (part / "r.html").read_text()
    assert "FAIL" in {v for cid, v in outcomes(resumed)["b"][3].items() if cid.startswith("S-BUSY-1")}


def test_resume_needs_the_files_of_the_run(tmp_path: Path) -> None:
    result = run_batch(tmp_path, "--resume")
    assert result.returncode == 2 and "--resume needs the --json or --csv file" in result.stderr


# --- real class folders -------------------------------------------------------------------------


def test_a_python2_server_runs_with_the_python2_the_grader_names(tmp_path: Path) -> None:
    """No Python 2 is on the test machine: a stand-in that knows the print statement (an honest
    Python 2 for this server, which has one) is given as --python2."""
    line = python2_server(tmp_path / "class" / "py2")
    fake = tmp_path / "bin" / "python2"
    fake.parent.mkdir()
    fake.write_text(FAKE_PYTHON2)
    fake.chmod(0o755)
    result = run_batch(tmp_path / "class", "--timeout-scale", "1", "--case", "S-LISTEN-1", "--case", "S-MSG-1",
                       "--python2", str(fake), "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    (sub,) = json.loads((tmp_path / "r.json").read_text())["submissions"]
    assert (sub["status"], sub["summary"]["PASS"]) == ("GRADED", 5), sub["message"]
    assert sub["message"] == f"server: chatserve.py is Python 2 (print statement, line {line}), run with {fake}"


def test_python2_is_told_by_the_line_python3_stops_at(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    for source, want in (('import sys\nprint "hi"\n', "print statement, line 2"),
                         ("try:\n    pass\nexcept ValueError, e:\n    pass\n", "except X, e, line 3"),
                         ("print('fine')\n", None), ("def broken(:\n    print 'not reached'\n", None)):
        script.write_text(source)
        assert runner.python2_reason(script) == want, source


def test_programs_are_found_by_other_names_and_one_folder_down(tmp_path: Path) -> None:
    (tmp_path / "chatserve").write_text("print('a server without .py')\n")
    (tmp_path / "client_bin").write_text("")
    found = runner.find_programs(tmp_path, made=["client_bin"])
    assert (found.server, found.client) == ("python3 chatserve {port}", "./client_bin {host} {port}")
    assert found.notes == ["server: chatserve", "client: client_bin (the program the build made)"]
    templates = runner.Templates(server="python3 chatserve 127.0.0.1 {port}", client="./c {port}")
    assert runner.find_programs(tmp_path, templates=templates).server == "python3 chatserve 127.0.0.1 {port}"
    (tmp_path / "conformance.toml").write_text('server = "python3 own.py {port}"\n')  # the folder's own wins
    assert runner.find_programs(tmp_path, templates=templates).server == "python3 own.py {port}"
    zipped = tmp_path / "zipped"
    (zipped / "alice-chat").mkdir(parents=True)
    (zipped / "README.md").write_text("")
    assert runner.top_folder(zipped) == zipped / "alice-chat"
    (zipped / "chatserve.py").write_text("")
    assert runner.top_folder(zipped) == zipped


def test_a_compiled_program_handed_in_is_built_again(tmp_path: Path) -> None:
    """A ./compileall that builds only what is missing would leave a binary handed in with the
    sources in place: it is removed before the build, which makes it from the sources."""
    from conformance import runner

    (tmp_path / "hello.c").write_text('#include <stdio.h>\nint main(void) { puts("built"); return 0; }\n')
    (tmp_path / "compileall").write_text("#!/bin/sh\n[ -x hello ] || cc -o hello hello.c\n")
    (tmp_path / "compileall").chmod(0o755)
    subprocess.run(["cc", "-x", "c", "-o", str(tmp_path / "hello"), "-"], check=True,
                   input='#include <stdio.h>\nint main(void) { puts("stale"); return 0; }\n', text=True)
    log, made = runner.build(tmp_path, runner.RunOptions())
    assert made == ["hello"]
    assert "removed before the build, as handed in compiled: hello" in log
    assert subprocess.run([str(tmp_path / "hello")], capture_output=True, text=True).stdout == "built\n"
