#!/usr/bin/env bash
# The differential test in compat mode: the CovetPy side serves each sample app with its FastAPI imports
# (DIFF_FRAMEWORK=fastapi: apps/_framework.py's `from fastapi import ...` and `from starlette... import ...`)
# through the compatibility shim, `covet run --compat fastapi`, and must answer as FastAPI does under uvicorn.
# Same reference venv, cases and known differences as run.sh; extra arguments go to pytest (e.g. -k params; only
# the apps of the selected cases start). scripts/test.sh runs a subset (the whole doubles the differential time).
set -euo pipefail
DIFF_COVET_MODE=compat exec "$(dirname "$0")/run.sh" "$@"
