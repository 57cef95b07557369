#!/usr/bin/env bash
# Proves the installed package works for a consumer: install covet into a temporary prefix, then build
# examples/native against it with find_package(covet CONFIG) and check that it serves a request.
# Usage: run.sh [BUILD_DIR [SANITIZE]]
#   no BUILD_DIR: configure and build the library from scratch in Release (what a packager does), then install it;
#   BUILD_DIR: install that build tree (ctest passes its own: the test command builds the library once, and a
#   second build from scratch took ~140 s of its 30 minutes). SANITIZE: the tree's COVET_SANITIZE, which the
#   consumer then builds with too (a sanitized static library needs the sanitizer's runtime at link time).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
from=${1:-}
sanitize=${2:-}
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
pid=

if [ -z "$from" ]; then
  from=$work/build
  cmake -S "$src" -B "$from" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCOVET_BUILD_TESTS=OFF -DCOVET_BUILD_EXAMPLES=OFF > "$work/configure.log"
  cmake --build "$from" > "$work/build.log"
fi
cmake --install "$from" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/lib/cmake/covet/covetConfig.cmake" || { echo "FAIL: no covetConfig.cmake installed"; exit 1; }
test -f "$work/prefix/include/covet/covet.hpp" || { echo "FAIL: headers not installed"; exit 1; }

flags=()
[ -z "$sanitize" ] || flags=("-DCMAKE_CXX_FLAGS=-fsanitize=$sanitize" "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=$sanitize")
cmake -S "$src/examples/native" -B "$work/consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" "${flags[@]}" > "$work/consumer-configure.log"
cmake --build "$work/consumer" > "$work/consumer-build.log"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$work/consumer/hello/hello" --port "$port" --threads 1 > "$work/hello.out" 2>&1 &
pid=$!
for _ in $(seq 50); do grep -q listening "$work/hello.out" && break; sleep 0.1; done
body=$(curl -sS "http://127.0.0.1:$port/plaintext")
[ "$body" = "Hello, World!" ] || { echo "FAIL: installed example answered '$body'"; cat "$work/hello.out"; exit 1; }
kill -TERM "$pid"
wait "$pid"
echo "install test passed: find_package(covet) consumer built and served /plaintext"
