#!/usr/bin/env bash
# Configures and builds. Usage: scripts/build.sh [release|asan]  (default release)
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
case "$kind" in
  release) cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOVET_BUILD_TESTS=OFF >/dev/null
           cmake --build build-release ;;
  asan)    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCOVET_WERROR=ON \
                 -DCOVET_SANITIZE=address,undefined >/dev/null
           cmake --build build ;;
  *) echo "usage: $0 [release|asan]" >&2; exit 2 ;;
esac
