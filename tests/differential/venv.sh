#!/usr/bin/env bash
# Creates or refreshes the pinned FastAPI reference venv (build/differential-venv, from
# tests/differential/requirements.txt; pip runs only when that file changed). The differential test (run.sh) serves
# the sample apps with it, and tests/python uses it for FastAPI next to CovetPy (mounting one in the other, the
# migrate sample's tests before its migration).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=build/differential-venv
REQS=tests/differential/requirements.txt
if [[ ! -x $VENV/bin/python ]] || ! cmp -s "$REQS" "$VENV/requirements.installed"; then
    echo "== differential: installing the pinned FastAPI reference into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS"
    cp "$REQS" "$VENV/requirements.installed"
fi
