"""Behaviour apart from wording: the reference with every fixed text and exit status of PROTOCOL.md
changed (tests/broken/reworded.py) FAILs exactly the text cases in `server` and `client` modes,
PASSes every behaviour case, and has nothing BLOCKED."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "broken"))

import reworded

from procs import ROOT


@pytest.mark.parametrize("target", ["server", "client"])
def test_a_reworded_reference_fails_only_the_text_cases(tmp_path: Path, target: str) -> None:
    command = reworded.build(target, tmp_path / "copy")
    report = tmp_path / "r.json"
    done = subprocess.run([sys.executable, "-m", "conformance", target, "--json", str(report), "--", *command],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    cases = json.loads(report.read_text())["cases"]
    text_cases = {c["id"] for c in cases if c.get("kind") == "text"}
    verdicts = {c["id"]: c["verdict"] for c in cases}
    assert text_cases, "no case is marked as a text case"
    assert {cid for cid, v in verdicts.items() if v == "FAIL"} == text_cases, done.stdout
    assert {cid for cid, v in verdicts.items() if v not in ("FAIL", "PASS")} == set(), done.stdout
    assert done.returncode == 1
