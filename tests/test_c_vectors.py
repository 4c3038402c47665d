"""The C frame code (chatwire.c) against the same golden vectors as chatwire.py."""

import subprocess

import vectors
from procs import ROOT, SANITIZER_ENV


def test_c_decoder_and_encoder_agree_with_the_vectors() -> None:
    binary = ROOT / "build" / "test_vectors"
    assert binary.exists(), "run ./compileall"
    result = subprocess.run([str(binary), str(vectors.FRAMES_FILE)], capture_output=True, text=True, timeout=120,
                            env=SANITIZER_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == f"{len(vectors.load())} passed, 0 failed"
