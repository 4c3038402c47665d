#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image, from the unpacked zip
# in /autograder/source (made by `python3 -m conformance gradescope-zip`): it installs a C compiler
# for the students' clients, bubblewrap for the suite's sandbox, a Python of 3.11 or later, and the
# conformance suite (the zip's wheel) with the versions it was tested with (constraints.txt).
set -euo pipefail
AUTOGRADER=${AUTOGRADER:-/autograder}
SOURCE="$AUTOGRADER/source"
export DEBIAN_FRONTEND=noninteractive

apt-get update -qq
apt-get install -y -qq build-essential make bubblewrap python3 python3-venv >/dev/null

python=""
for candidate in python3 python3.13 python3.12 python3.11; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    python=$(command -v "$candidate")
    break
  fi
done
if [ -z "$python" ]; then  # Ubuntu 22.04's python3 is 3.10: its 3.11 is a package of its own
  apt-get install -y -qq python3.11 python3.11-venv >/dev/null
  python=$(command -v python3.11)
fi

"$python" -m venv "$AUTOGRADER/venv"
"$AUTOGRADER/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  --constraint "$SOURCE/constraints.txt" "$SOURCE"/twochat_conformance-*.whl
"$AUTOGRADER/venv/bin/twochat-conformance" profile check "$SOURCE/profile.toml"
