#!/usr/bin/env bash
# Builds Jaeger v2 for tests/python/test_tracing_jaeger.py and scripts/screenshot-trace.py from the Go module proxy:
# Jaeger's module source at JAEGER_VERSION with scripts/jaeger/main.go as its main package, which links only the
# components the tests configure (OTLP receiver, memory storage, query API and UI): about 3 minutes on two cores
# from nothing, where Jaeger's full cmd/jaeger takes more than 25. The binary is cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/covetpy/bin/jaeger-covet-<version>-<main.go's hash>; a second run does not
# rebuild.
# Prints the binary's path on stdout. scripts/setup.sh calls it; COVET_SKIP_JAEGER=1 skips it there.
set -euo pipefail
JAEGER_VERSION=v1.75.0
JAEGER_MODULE_PATH=github.com/jaegertracing/jaeger
cache=${XDG_CACHE_HOME:-$HOME/.cache}/covetpy/bin
main_go=$(cd "$(dirname "$0")" && pwd)/jaeger/main.go
# The name carries main.go's hash: a changed main.go builds anew (tests/python/jaegerproc.py computes the same).
bin=$cache/jaeger-covet-$JAEGER_VERSION-$(sha256sum "$main_go" | cut -c1-12)
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
echo "build-jaeger.sh: building $JAEGER_MODULE_PATH@$JAEGER_VERSION's components (scripts/jaeger/main.go) with $("$go" version) (a few minutes)" >&2
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
# Inside cmd/jaeger, since Go lets only that tree import cmd/jaeger/internal (the query and storage extensions).
mkdir -p "$work/src/cmd/jaeger/covetslim"
cp "$main_go" "$work/src/cmd/jaeger/covetslim/main.go"
(cd "$work/src" && GOFLAGS="${GOFLAGS:-} -mod=mod" nice -n 10 "$go" build -o "$work/jaeger" ./cmd/jaeger/covetslim) >&2
mkdir -p "$cache"
mv "$work/jaeger" "$bin"
echo "$bin"
