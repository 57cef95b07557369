#!/usr/bin/env bash
# Quick start: install what is missing, build, and serve an example on port 8000 (PORT to change it).
#   scripts/run-example.sh          the native C++ example (examples/native/hello)
#   scripts/run-example.sh python   the Python example (examples/python/hello.py), pip-installed into .venv
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
case "${1:-native}" in
  native)
    scripts/build.sh release
    exec build-release/examples/native/hello/hello --host 0.0.0.0 --port "${PORT:-8000}" ;;
  python)
    .venv/bin/python -m pip install -q --disable-pip-version-check .
    exec .venv/bin/python -m covet run hello:app --app-dir examples/python --host 0.0.0.0 --port "${PORT:-8000}" ;;
  *) echo "usage: $0 [native|python]" >&2; exit 2 ;;
esac
