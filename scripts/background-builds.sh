#!/usr/bin/env bash
# Builds the ThreadSanitizer tree, then the fuzz tree, at idle priority (SCHED_IDLE and nice 19: they get only
# the CPU that other work leaves), for scripts/test.sh, which starts it after the ASan build and runs the tests
# meanwhile. Each build's log goes to build/background-NAME.log and its exit status, when it ends, to
# build/background-NAME.rc (scripts/test.sh's await_build reads them).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
rm -f build/background-tsan.rc build/background-fuzz.rc
idle() { chrt --idle 0 nice -n 19 "$@"; }
idle scripts/build.sh tsan >build/background-tsan.log 2>&1
echo $? >build/background-tsan.rc
{ idle cmake --preset fuzz && idle cmake --build --preset fuzz; } >build/background-fuzz.log 2>&1
echo $? >build/background-fuzz.rc
