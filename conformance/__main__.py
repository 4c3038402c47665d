"""python3 -m conformance: runs under the system python3 by re-executing under .venv."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # chatwire, vectors and venvboot live at the project root

import venvboot  # noqa: E402

venvboot.ensure("pytest", "pexpect", "construct", program="conformance", argv0=["-m", "conformance"])

from conformance.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
