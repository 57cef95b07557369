#!/usr/bin/env bash
# The differential test (tests/differential): creates or refreshes the pinned FastAPI venv (venv.sh:
# build/differential-venv, from tests/differential/requirements.txt; pip runs only when that file changed), then
# runs every sample app under FastAPI (uvicorn) and under CovetPy (`python -m covet run`, from $PYTHON, default
# .venv/bin/python) and compares their answers. Extra arguments go to pytest (e.g. -k params, -x).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}
[[ $PYTHON == /* ]] || PYTHON=$PWD/$PYTHON  # absolute, without resolving the venv's symlink
VENV=build/differential-venv
tests/differential/venv.sh
cd tests/differential
DIFF_REQUIRE=1 DIFF_FASTAPI_PYTHON="$PWD/../../$VENV/bin/python" \
    exec "$PYTHON" -m pytest -q -p no:cacheprovider -rxX "$@" .
