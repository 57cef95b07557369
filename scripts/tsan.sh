#!/usr/bin/env bash
# ThreadSanitizer run of the C++ tests that cross threads (ctest label `threads`, tests/CMakeLists.txt): late
# Responders completed from other threads, completions posted back to a worker, the WebSocket hub, multi-threaded
# servers on both reactor backends. Builds only those tests in build-tsan (CMake preset tsan), then runs them.
# Any race report fails the run (TSAN_OPTIONS in the preset: halt_on_error=1). Extra arguments go to ctest
# (e.g. -R app_test).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh tsan

ctest --preset tsan "$@"
