#!/usr/bin/env bash
# Generates the C++ messages of grpc-go's interop protos for tests/grpc/interop_server.cpp (CMake runs this):
# the descriptors come from tests/python/grpc_interop/descset (built by scripts/build-grpc-interop.sh from the
# Go module proxy), the code from protoc (Debian's protobuf-compiler). Usage: generate_interop.sh OUT_DIR PROTOC
set -euo pipefail
out=$1
protoc=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
tools=$("$root/scripts/build-grpc-interop.sh" | tail -n 1)
mkdir -p "$out"
"$tools/descset" > "$out/interop.pb"
"$protoc" --descriptor_set_in="$out/interop.pb" --cpp_out="$out" grpc_testing_pb/empty.proto grpc_testing_pb/messages.proto
