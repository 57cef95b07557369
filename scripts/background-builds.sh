#!/usr/bin/env bash
# Builds, at idle priority (SCHED_IDLE and nice 19: they get only the CPU that other work leaves), what the later
# stages of scripts/test.sh need, in the order they need them: the Python package's wheel (build/wheel/, installed
# by the test command), the ThreadSanitizer tree, the fuzz tree. scripts/test.sh starts it after the ASan build and
# runs the C++ and integration tests meanwhile (they mostly wait on sockets). Each build's log goes to
# build/background-NAME.log and its exit status, when it ends, to build/background-NAME.rc (NAME: tsan, wheel,
# fuzz; scripts/test.sh's await_build reads them).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
rm -f build/background-*.rc  # scripts/test.sh removes them too, before it starts this: none of a previous run is read
idle() { chrt --idle 0 nice -n 19 "$@"; }
rm -rf build/wheel
idle .venv/bin/python -m pip wheel -q --disable-pip-version-check --no-deps --wheel-dir build/wheel . \
  >build/background-wheel.log 2>&1
echo $? >build/background-wheel.rc
idle scripts/build.sh tsan >build/background-tsan.log 2>&1
echo $? >build/background-tsan.rc
{ idle cmake --preset fuzz && idle cmake --build --preset fuzz; } >build/background-fuzz.log 2>&1
echo $? >build/background-fuzz.rc
