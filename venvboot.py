"""Lets a script run under the system python3 by re-executing it under .venv (made by
./compileall) when its dependencies are missing there. Standard library only."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent / ".venv"


def ensure(*modules: str, program: str, argv0: list[str], distribution: str = "") -> None:
    """Return if every module imports here (and `distribution` is installed here: this project, which
    ./compileall installs into .venv); else re-execute `argv0 + sys.argv[1:]` under .venv, or say in
    one line what to do and exit 1."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if distribution and not missing:
        try:
            importlib.metadata.distribution(distribution)
        except importlib.metadata.PackageNotFoundError:
            missing.append(distribution)
    if not missing:
        return
    venv_python = VENV / "bin" / "python"
    if venv_python.exists() and Path(sys.prefix).resolve() != VENV.resolve():
        os.execv(venv_python, [str(venv_python), *argv0, *sys.argv[1:]])
    print(f"{program}: the Python package '{missing[0]}' is missing; run ./compileall first", file=sys.stderr)
    sys.exit(1)
