#!/usr/bin/env bash
# Installs what is missing to build and test CovetPy on Debian/Ubuntu (bookworm or newer), and a Python
# virtualenv (.venv) with the Python test tools. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build pkg-config git curl
          liburing-dev libboost-dev libspdlog-dev libfmt-dev node-llhttp libssl-dev libnghttp2-dev zlib1g-dev libbrotli-dev libzstd-dev openssl
          libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp3-dev libgnutls28-dev  # HTTP/3 (src/http3): QUIC, HTTP/3, GnuTLS
          libsimdjson-dev  # covet::json (typed JSON bodies): simdjson's DOM parser
          nghttp2-client
          clang libclang-rt-dev  # libFuzzer targets (tests/fuzz, scripts/fuzz.sh): clang's fuzzer and sanitizer runtimes
          libgtest-dev libgmock-dev googletest
          libprotobuf-dev protobuf-compiler  # the C++ gRPC interop server (tests/grpc): its protobuf messages
          python3 python3-venv python3-dev
          postgresql redis-server  # throwaway servers for tests/python/test_real_drivers.py (scripts/services.sh)
          prometheus)  # promtool (tests/deploy) and a real Prometheus server (tests/python/test_prometheus.py)
# scripts/h2spec.sh builds h2spec with `go install`: Debian's Go unless a toolchain is already there.
command -v go >/dev/null || [ -x /usr/local/go/bin/go ] || packages+=(golang-go)
# WebSocket interoperability tests (tests/integration/test_websocket.py): headless Chromium, and Node.js
# with npm for the npm `ws` client (scripts/test.sh runs `npm ci` in tests/integration/ws_node). A Node.js
# from elsewhere (e.g. NodeSource, which bundles npm) is kept as it is.
packages+=(chromium)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
# Benchmarks only (bench/): load generator and the C reference server.
[ "${COVET_SETUP_BENCH:-0}" = 1 ] && packages+=(wrk nginx-light libgrpc++-dev protobuf-compiler-grpc)  # bench peers (grpc-cpp: the bench's gRPC scenarios)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# nginx's Debian package starts a server on port 80 when installed; the benchmark runs its own.
if [ "${COVET_SETUP_BENCH:-0}" = 1 ] && pgrep -x nginx >/dev/null && [ -x /usr/sbin/service ]; then
  service nginx stop >/dev/null 2>&1 || true
fi

# Debian's prometheus package starts a server on port 9090 where systemd runs; tests/deploy needs only promtool.
# Only a server this run installed is stopped (one that was there before is someone's).
if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
# The npm packages of the tests, pinned by their package-lock.json (npm keeps the tarballs in ~/.npm: a second
# run installs offline): the `ws` client (tests/integration), `oidc-provider`, the real OpenID provider of
# tests/python/test_oidc.py (it needs Node.js >= 20.19: Debian trixie's nodejs, or NodeSource's on bookworm), and
# the gRPC-Web client of tests/python/test_grpc_web.py.
# scripts/test.sh runs the same `npm ci` before the tests.
npm ci --prefix tests/integration/ws_node --no-audit --no-fund --loglevel=error
npm ci --prefix tests/python/oidc --no-audit --no-fund --loglevel=error
npm ci --prefix tests/python/grpc_web --no-audit --no-fund --loglevel=error
# tests/deploy: kubeconform and the Prometheus Operator's CRDs, built/downloaded once into ~/.cache/covetpy.
scripts/deploy-tools.sh

# Jaeger for tests/python/test_tracing_jaeger.py: its components built from the Go module proxy (about 3 minutes
# the first time) and cached in ~/.cache/covetpy, so a second run does not rebuild. COVET_SKIP_JAEGER=1 skips it
# (the test then fails under scripts/test.sh, which requires it, and skips elsewhere).
if [ "${COVET_SKIP_JAEGER:-0}" != 1 ]; then
  scripts/build-jaeger.sh >/dev/null || echo "setup: building Jaeger failed (scripts/build-jaeger.sh); the Jaeger test will fail" >&2
fi

# grpc-go's interop test client and the interop protos' descriptors for tests/python/test_grpc_interop.py, built
# from the Go module proxy (about a minute the first time) and cached in ~/.cache/covetpy.
scripts/build-grpc-interop.sh >/dev/null || echo "setup: building grpc-go's interop client failed (scripts/build-grpc-interop.sh); the gRPC interop test will fail" >&2
