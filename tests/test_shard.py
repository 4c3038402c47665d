"""A class spread over machines: `batch --shard K/N` on each slice, then `merge`, gives what one
unsharded batch gives, cell for cell, points included.

A small class (the reference, a mutant that lets a second client in, one that does not compile,
one whose server exits at once, one with no programs) is graded once whole and once in 3 shards
run side by side (as on three machines), with one timeout factor so that no calibration differs.
Two gradings may differ in time and ports (each submission's seconds, a message's "waited 0.4 s" and
free port): those are compared apart. And the merge alone, on the unsharded JSON cut into 3, must give its CSV byte for
byte.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "broken"))  # the tests' mutants (as test_batch.py)

from mutants import MUTANTS, mutated_source
from submissions import reference

from procs import ROOT

OPTIONS = ["--timeout-scale", "2"]  # one factor for every run: no calibration to differ
SHARDS = 3


def make_class(folder: Path) -> list[str]:
    reference(folder / "reference")
    mutant = next(m for m in MUTANTS if m.name == "srv-no-busy")
    reference(folder / "srv-no-busy")
    (folder / "srv-no-busy" / mutant.file).write_text(mutated_source(mutant), encoding="utf-8")
    reference(folder / "does-not-compile")
    source = (folder / "does-not-compile" / "chatclient.c").read_text()
    (folder / "does-not-compile" / "chatclient.c").write_text("static int forgotten = ;\n" + source)
    (folder / "exits-at-once").mkdir()
    (folder / "exits-at-once" / "chatserve.py").write_text("raise SystemExit(1)\n")
    (folder / "exits-at-once" / "chatclient.c").write_text("int main(void) { return 1; }\n")
    (folder / "no-programs").mkdir()
    (folder / "no-programs" / "README.txt").write_text("I ran out of time.\n")
    return sorted(p.name for p in folder.iterdir())


def conformance(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "conformance", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)


def finished(proc: subprocess.Popen[str], timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The class graded whole (full.*) and in shards (shard-K.json), then merged (merged.*)."""
    top = tmp_path_factory.mktemp("shards")
    names = make_class(top / "class")
    assert len(names) == 5
    finished(conformance("batch", str(top / "class"), "--json", str(top / "full.json"), "--csv", str(top / "full.csv"),
                         "--feedback", str(top / "feedback-full"), "--jobs", "2", *OPTIONS))
    shards = [conformance("batch", str(top / "class"), "--shard", f"{k}/{SHARDS}", "--json",
                          str(top / f"shard-{k}.json"), "--jobs", "1", *OPTIONS) for k in range(1, SHARDS + 1)]
    for proc in shards:
        finished(proc)
    shard_files = [str(top / f"shard-{k}.json") for k in range(1, SHARDS + 1)]
    finished(conformance("merge", str(top / "merged.json"), *shard_files, "--csv", str(top / "merged.csv"),
                         "--report", str(top / "merged.html"), "--feedback", str(top / "feedback-merged")))
    return top


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as file:
        return list(csv.reader(file))


def timeless(text: str) -> str:
    """A message as another run would say it: its times and the free port it was given aside."""
    return re.sub(r"port \d+", "port N", re.sub(r"\d+(\.\d+)? s\b", "N s", text))


def test_each_shard_grades_its_slice_in_name_order(graded: Path) -> None:
    names = sorted(p.name for p in (graded / "class").iterdir())
    for k in range(1, SHARDS + 1):
        shard = json.loads((graded / f"shard-{k}.json").read_text())
        assert [row["name"] for row in shard["submissions"]] == names[k - 1 :: SHARDS]


def test_the_merged_class_is_the_unsharded_one_cell_for_cell(graded: Path) -> None:
    full, merged = rows(graded / "full.csv"), rows(graded / "merged.csv")
    assert merged[0] == full[0]
    header = full[0]
    assert header[-2:] == ["points", "max_points"]
    seconds, message = header.index("seconds"), header.index("message")
    assert [row[0] for row in merged] == [row[0] for row in full]
    for got, want in zip(merged[1:], full[1:], strict=True):
        for column, (cell, expected) in enumerate(zip(got, want, strict=True)):
            if column == seconds:
                continue
            if column == message:
                cell, expected = timeless(cell), timeless(expected)
            assert cell == expected, f"{got[0]}, {header[column]}: {cell!r} merged, {expected!r} unsharded"
    statuses = {row[0]: row[1] for row in full[1:]}
    assert statuses == {"does-not-compile": "BUILD-FAIL", "exits-at-once": "NO-START", "no-programs": "NO-START",
                        "reference": "GRADED", "srv-no-busy": "GRADED"}


def test_the_merged_json_holds_every_record_with_its_points(graded: Path) -> None:
    full, merged = (json.loads((graded / name).read_text()) for name in ("full.json", "merged.json"))
    assert [c["id"] for c in merged["cases"]] == [c["id"] for c in full["cases"]]
    assert "--shard" not in merged["command"] and merged["partial"] is False
    assert [s["shard"] for s in merged["shards"]] == [f"{k}/{SHARDS}" for k in range(1, SHARDS + 1)]
    for got, want in zip(merged["submissions"], full["submissions"], strict=True):
        assert (got["name"], got["status"], got["mode"]) == (want["name"], want["status"], want["mode"])
        assert got["points"] == want["points"], got["name"]
        assert {cid: c["verdict"] for cid, c in got["results"].items()} == \
               {cid: c["verdict"] for cid, c in want["results"].items()}, got["name"]
    assert (graded / "merged.html").stat().st_size > 0
    files = sorted(p.name for p in (graded / "feedback-merged").iterdir())
    assert files == sorted(p.name for p in (graded / "feedback-full").iterdir())
    for name in files:
        got, want = ((graded / folder / name).read_text().splitlines()[2] for folder in ("feedback-merged",
                                                                                          "feedback-full"))
        assert got == want and got.startswith("**Points:"), name


def cut(full: dict[str, Any], top: Path) -> list[Path]:
    """The unsharded JSON cut into the files its shards would have written."""
    paths = []
    for k in range(1, SHARDS + 1):
        shard = {**full, "command": f"{full['command']} --shard {k}/{SHARDS}",
                 "submissions": full["submissions"][k - 1 :: SHARDS]}
        paths.append(top / f"cut-{k}.json")
        paths[-1].write_text(json.dumps(shard))
    return paths


def test_merging_the_cut_json_gives_back_the_csv_byte_for_byte(graded: Path, tmp_path: Path) -> None:
    paths = cut(json.loads((graded / "full.json").read_text()), tmp_path)
    finished(conformance("merge", str(tmp_path / "out.json"), *map(str, reversed(paths)), "--csv",
                         str(tmp_path / "out.csv")))
    assert (tmp_path / "out.csv").read_bytes() == (graded / "full.csv").read_bytes()


def test_a_class_that_is_not_whole_is_not_merged(graded: Path, tmp_path: Path) -> None:
    paths = cut(json.loads((graded / "full.json").read_text()), tmp_path)
    for given, said in (([paths[0], paths[2]], "slice 2/3 is missing"), ([paths[0], paths[0], paths[1], paths[2]],
                                                                          "slice 1/3 is given more than once")):
        proc = subprocess.run([sys.executable, "-m", "conformance", "merge", str(tmp_path / "out.json"),
                               *map(str, given)], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and said in proc.stderr, proc.stderr


FAKE_SBATCH = """#!/usr/bin/env bash
# sbatch, as far as submit.sh and grade-class.sbatch use it: an array's tasks and a --wrap job, run here.
array="" wrap="" script=""
while [ $# -gt 0 ]; do
  case "$1" in
    --array=*) array=${1#--array=} ;;
    --wrap) wrap=$2; shift ;;
    --parsable|--export=*|--dependency=*|--job-name=*|--output=*) ;;
    *) script=$1 ;;
  esac
  shift
done
if [ -n "$wrap" ]; then bash -c "$wrap"; echo 2; exit; fi
n=${array#1-}
for k in $(seq 1 "$n"); do SLURM_ARRAY_TASK_ID=$k SLURM_ARRAY_TASK_COUNT=$n bash "$script"; done
echo 1
"""


def test_the_slurm_scripts_grade_each_slice_then_merge(tmp_path: Path) -> None:
    """submit.sh and grade-class.sbatch under a stand-in sbatch, with a stand-in suite that notes
    its command lines: one batch per slice of the array, then the merge of every slice."""
    (tmp_path / "sbatch").write_text(FAKE_SBATCH)
    (tmp_path / "suite").write_text('#!/usr/bin/env bash\nprintf \'%s\\n\' "$*" >>"$CALLS"\n')
    for name in ("sbatch", "suite"):
        (tmp_path / name).chmod(0o755)
    calls = tmp_path / "calls"
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "CALLS": str(calls), "CONFORMANCE": str(tmp_path / "suite"),
           "SUBMISSIONS": "/class", "OUT": str(tmp_path / "out"), "PROFILE": "course.toml",
           "OPTIONS": "--timeout-scale 2"}
    ran = subprocess.run(["bash", str(ROOT / "autograder" / "slurm" / "submit.sh"), "3"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = tmp_path / "out"
    lines = calls.read_text().splitlines()
    assert lines[:3] == [f"batch /class --shard {k}/3 --jobs 1 --profile course.toml --json {out}/shard-{k}.json "
                         "--timeout-scale 2" for k in (1, 2, 3)]
    assert lines[3:] == [f"merge {out}/class.json {out}/shard-1.json {out}/shard-2.json {out}/shard-3.json --report "
                         f"{out}/report.html --csv {out}/results.csv --feedback {out}/feedback --submissions /class"]


def test_the_actions_matrix_has_a_job_per_slice_and_merges_them_all() -> None:
    text = (ROOT / ".github" / "examples" / "grade-class-matrix.yml").read_text()
    shards = int(re.search(r"^  SHARDS: (\d+)", text, re.M).group(1))
    matrix = re.search(r"^        shard: \[([\d, ]+)\]$", text, re.M).group(1)
    assert [int(k) for k in matrix.split(",")] == list(range(1, shards + 1))
    assert '--shard "${{ matrix.shard }}/$SHARDS"' in text and "merge class.json shard-*.json" in text
