#!/usr/bin/env bash
# Configures and builds one of the CMake presets (CMakePresets.json).
# Usage: scripts/build.sh [release|asan|tsan|dev]  (default release)
#   release -> build-release  Release, no tests (benchmarks, examples)
#   asan    -> build          Debug + ASan/UBSan, -Werror (scripts/test.sh)
#   tsan    -> build-tsan     Debug + ThreadSanitizer, -Werror; only the tests labelled `threads` (scripts/tsan.sh)
#   dev     -> build-dev      Debug, -Werror, no sanitizers
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
case "$kind" in
  release|asan|tsan|dev) ;;
  *) echo "usage: $0 [release|asan|tsan|dev]" >&2; exit 2 ;;
esac
cmake --preset "$kind" >/dev/null
cmake --build --preset "$kind"
