"""Style gates that can fail: ruff over all Python (the C flags are enforced by ./compileall's -Werror)."""

import subprocess
import sys

from procs import ROOT


def test_ruff_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
