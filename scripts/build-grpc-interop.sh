#!/usr/bin/env bash
# Builds the Go programs the gRPC tests run, from the Go module proxy: grpc-go's interop test client
# (google.golang.org/grpc/interop/client, the gRPC project's own; tests/python/test_grpc_interop.py),
# tests/python/grpc_interop/descset, which writes the interop protos' descriptors (grpcio-tools generates the Python
# servicer from them), both at the grpc-go version pinned in tests/python/grpc_interop/go.mod, and grpcurl
# (GRPCURL_VERSION; tests/python/test_grpc.py). About two minutes on two cores from nothing.
# The binaries are cached in ${XDG_CACHE_HOME:-$HOME/.cache}/covetpy/bin/grpc-interop-<hash of go.mod, go.sum and
# descset/main.go>/; a second run does not rebuild. Prints that directory on stdout. scripts/setup.sh calls it.
set -euo pipefail
GRPCURL_VERSION=v1.9.4
src=$(cd "$(dirname "$0")/../tests/python/grpc_interop" && pwd)
hash=$( (cat "$src/go.mod" "$src/go.sum" "$src/descset/main.go"; echo "$GRPCURL_VERSION") | sha256sum | cut -c1-12)
out=${XDG_CACHE_HOME:-$HOME/.cache}/covetpy/bin/grpc-interop-$hash
if [ -x "$out/interop-client" ] && [ -x "$out/descset" ] && [ -x "$out/grpcurl" ]; then
  echo "$out"
  exit 0
fi
go=$(command -v go || true)
[ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
if [ -z "$go" ]; then
  echo "build-grpc-interop.sh: no Go toolchain (scripts/setup.sh installs one)" >&2
  exit 1
fi
echo "build-grpc-interop.sh: building grpc-go's interop client, descset and grpcurl with $("$go" version)" >&2
work=$(mktemp -d "${TMPDIR:-/tmp}/covet-grpc-interop.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Built into the scratch dir, then moved: an interrupted build never leaves a half-written cached binary.
(cd "$src" && nice -n 10 "$go" build -o "$work/descset" ./descset &&
  nice -n 10 "$go" build -o "$work/interop-client" google.golang.org/grpc/interop/client) >&2
GOBIN="$work" nice -n 10 "$go" install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION" >&2
mkdir -p "$(dirname "$out")"
rm -rf "$out.tmp" && mv "$work" "$out.tmp" && rm -rf "$out" && mv "$out.tmp" "$out"
trap - EXIT
echo "$out"
