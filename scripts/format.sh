#!/usr/bin/env bash
# C++ formatting with the house style in .clang-format, over the tracked *.cpp and *.hpp files.
#   scripts/format.sh                    rewrite the files in place
#   scripts/format.sh --check            change nothing; list the files that differ and exit 1 if there are any
#   scripts/format.sh [--check] FILE...  only these files (.pre-commit-config.yaml passes the staged ones)
# Uses the clang-format pinned in requirements-dev.txt (.venv, installed by scripts/setup.sh): another version
# formats differently. CLANG_FORMAT=/path/to/clang-format overrides it (it must still be that version).
set -euo pipefail
cd "$(dirname "$0")/.."
want=18.1.8
cf=${CLANG_FORMAT:-.venv/bin/clang-format}
if [ ! -x "$cf" ] && ! command -v "$cf" >/dev/null; then
  echo "format.sh: $cf not found; install it with: .venv/bin/python -m pip install clang-format==$want" >&2
  exit 2
fi
have=$("$cf" --version | grep -o '[0-9]\+\.[0-9]\+\.[0-9]\+' | head -1)
if [ "$have" != "$want" ]; then
  echo "format.sh: $cf is clang-format $have, the style is checked with $want;" \
       "install it with: .venv/bin/python -m pip install clang-format==$want" >&2
  exit 2
fi

check=0
if [ "${1:-}" = --check ]; then check=1; shift; fi
case "${1:-}" in -*) echo "usage: $0 [--check] [FILE...]" >&2; exit 2 ;; esac

if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(git ls-files -- '*.cpp' '*.hpp'); fi
[ ${#files[@]} -gt 0 ] || exit 0
if [ "$check" = 0 ]; then
  printf '%s\0' "${files[@]}" | xargs -0 -n 50 "$cf" -i --style=file
  exit 0
fi
differ=()
for f in "${files[@]}"; do
  [ -f "$f" ] || continue   # deleted in the work tree, not yet in the index
  "$cf" --style=file --dry-run -Werror "$f" >/dev/null 2>&1 || differ+=("$f")
done
if [ ${#differ[@]} -gt 0 ]; then
  echo "format.sh: ${#differ[@]} file(s) differ from .clang-format (fix: scripts/format.sh):" >&2
  printf '  %s\n' "${differ[@]}" >&2
  exit 1
fi
echo "format.sh: ${#files[@]} file(s) match .clang-format"
