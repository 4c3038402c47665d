"""The C frame code (chatwire.c): the golden vectors of chatwire.py, and seeded random frames."""

import os
import subprocess
from pathlib import Path

import vectors
from procs import ROOT, SANITIZER_ENV


def test_c_decoder_and_encoder_agree_with_the_vectors() -> None:
    binary = ROOT / "build" / "test_vectors"
    assert binary.exists(), "run ./compileall"
    result = subprocess.run([str(binary), str(vectors.FRAMES_FILE)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **SANITIZER_ENV})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == f"{len(vectors.load())} passed, 0 failed"


def test_c_decoder_survives_100000_random_frames_in_every_split() -> None:
    """Fixed seed, under ASan/UBSan; the fuzzer's saved crashes (fuzz/regressions/) replayed too."""
    regressions = sorted(str(p) for p in Path(ROOT / "fuzz" / "regressions").glob("*") if p.is_file())
    result = subprocess.run([str(ROOT / "build" / "test_random_frames"), "100000", *regressions],
                            capture_output=True, text=True, timeout=300, env={**os.environ, **SANITIZER_ENV})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == f"{100000 + len(regressions)} passed, 0 failed"
