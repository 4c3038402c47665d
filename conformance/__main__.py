"""python3 -m conformance: in a clone, under the system python3, it re-executes under .venv, where
./compileall installed this project (pyproject.toml); installed by pip, it is `twochat-conformance`."""

import sys

import venvboot

venvboot.ensure("pytest", "pexpect", "construct", program="conformance", argv0=["-m", "conformance"],
                distribution="twochat-conformance")

from conformance.cli import main  # noqa: E402 (after .venv is sure)

sys.exit(main(sys.argv[1:]))
