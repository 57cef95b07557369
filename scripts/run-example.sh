#!/usr/bin/env bash
# Quick start: install what is missing, build (Release), run the native hello example on port 8000.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
exec build-release/examples/native/hello/hello --host 0.0.0.0 --port "${PORT:-8000}" "$@"
