#!/usr/bin/env bash
# The long fault-injection run (issue 12): graceful stop, SIGKILL of a worker, rolling restarts, slowloris
# heads and bodies, 10K idle connections, RSS drift over 5M requests, 30 min of request mutation fuzzing —
# on the native hello example (release build, both backends) and on a Python app under `covet run`.
#
#   scripts/soak.sh                 # full scale (about 1 h on 2 cores)
#   SOAK_SCALE=0.2 scripts/soak.sh  # size parameters x0.2 (requests, durations; idle/slow clients clamped)
#   scripts/soak.sh --only memory_drift --targets native-uring --set memory_drift.requests=1000000
#
# Results: bench/results/fault-<date>.json and .md (override with SOAK_OUT=path-prefix); a summary is printed.
# Needs the release hello (built here with scripts/build.sh release when missing) and .venv with covet.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${SOAK_SCALE:-1}
hello=${COVET_HELLO_BIN:-$PWD/build-release/examples/native/hello/hello}
if [[ ! -x $hello ]]; then
  echo "== building the release hello (scripts/build.sh release)"
  scripts/build.sh release
fi
export COVET_HELLO_BIN=$hello
py=${COVET_FAULT_PYTHON:-$PWD/.venv/bin/python}
if ! "$py" -c 'import covet._native' 2>/dev/null; then
  echo "soak: $py cannot import covet._native: run scripts/setup.sh (or set COVET_FAULT_PYTHON)" >&2
  exit 2
fi
out=${SOAK_OUT:-bench/results/fault-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$(dirname "$out")"
echo "== fault-injection soak: scale $scale, hello $hello, results $out.{json,md}"
rc=0
"$py" tests/fault/run.py --profile long --scale "$scale" --json "$out.json" --markdown "$out.md" "$@" || rc=$?
echo
cat "$out.md"
exit $rc
