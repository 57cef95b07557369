#!/usr/bin/env bash
# clang-tidy over the engine (src/, its headers in include/covet/) and examples/native, with the checks in .clang-tidy
# (any finding fails). Uses build/compile_commands.json from the asan preset (configured here if missing) and the
# clang-tidy pinned in requirements-dev.txt (.venv). Usage: scripts/tidy.sh [FILE.cpp...]  (default: all of them)
# JOBS=N runs N clang-tidy processes at once (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
want=18.1.8
ct=${CLANG_TIDY:-.venv/bin/clang-tidy}
if ! have=$("$ct" --version 2>/dev/null | grep -o '[0-9]\+\.[0-9]\+\.[0-9]\+' | head -1) || [ "$have" != "$want" ]; then
  echo "tidy.sh: need clang-tidy $want at $ct (found: ${have:-none}); install it with:" \
       ".venv/bin/python -m pip install clang-tidy==$want" >&2
  exit 2
fi
[ -f build/compile_commands.json ] || cmake --preset asan >/dev/null

if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(python3 - <<'PY'
import json, os
root = os.getcwd()
for entry in json.load(open("build/compile_commands.json")):
    path = os.path.relpath(os.path.join(entry["directory"], entry["file"]), root)
    if path.endswith(".cpp") and (path.startswith("src/") or path.startswith("examples/native/")):
        print(path)
PY
)
fi
echo "tidy.sh: ${#files[@]} files, ${JOBS:-2} at a time"
# -Wno-unknown-warning-option: the database holds GCC's flags (-Wshadow=local, -Wno-restrict) that clang lacks.
printf '%s\0' "${files[@]}" | xargs -0 -n 1 -P "${JOBS:-2}" \
  "$ct" -p build --quiet --extra-arg=-Wno-unknown-warning-option \
  2> >(grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' >&2) \
  || { echo "tidy.sh: findings above (checks: .clang-tidy; docs/contributing.md)" >&2; exit 1; }
echo "tidy.sh: clean"
