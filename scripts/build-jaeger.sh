#!/usr/bin/env bash
# Builds Jaeger (all-in-one: OTLP receiver on :4317/:4318, query HTTP API on :16686) from the Go module
# proxy for tests/python/test_tracing_jaeger.py. The binary is cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/covetpy/bin/jaeger-<version>; a second run does not rebuild.
# Prints the binary's path on stdout. scripts/setup.sh calls it; COVET_SKIP_JAEGER=1 skips it there.
set -euo pipefail
JAEGER_VERSION=v1.75.0
JAEGER_MODULE_PATH=github.com/jaegertracing/jaeger
cache=${XDG_CACHE_HOME:-$HOME/.cache}/covetpy/bin
bin=$cache/jaeger-$JAEGER_VERSION
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
go=$(command -v go || true)
[ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
if [ -z "$go" ]; then
  echo "build-jaeger.sh: no Go toolchain to build Jaeger (scripts/setup.sh installs one)" >&2
  exit 1
fi
echo "build-jaeger.sh: building $JAEGER_MODULE_PATH/cmd/jaeger@$JAEGER_VERSION with $("$go" version) (large: several minutes)" >&2
work=$(mktemp -d "${TMPDIR:-/tmp}/covet-jaeger.XXXXXX")
trap 'rm -rf "$work"' EXIT
# `go install module@version` refuses modules whose go.mod has replace directives (Jaeger's has), so the
# module's source is fetched from the proxy and built as the main module, in a scratch copy (the module
# cache is read-only). Built into the scratch dir, then moved: an interrupted build never leaves a
# half-written cached binary.
src=$("$go" mod download -json "$JAEGER_MODULE_PATH@$JAEGER_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || { echo "build-jaeger.sh: go mod download gave no source directory" >&2; exit 1; }
cp -r "$src" "$work/src"
chmod -R u+w "$work/src"
(cd "$work/src" && GOFLAGS="${GOFLAGS:-} -mod=mod" nice -n 10 "$go" build -o "$work/jaeger" ./cmd/jaeger) >&2
mkdir -p "$cache"
mv "$work/jaeger" "$bin"
echo "$bin"
