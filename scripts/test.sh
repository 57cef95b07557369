#!/usr/bin/env bash
# The full test suite from a clean clone: installs what is missing, checks formatting (clang-format) and the
# package's lint and types (ruff, mypy --strict), builds with -Werror and ASan/UBSan, runs the C++ tests (unit,
# real-socket on both backends, install/find_package), the Python real-socket suite against the example on both
# backends, the Python package (built with pip from the same CMake tree) and its tests, the container and
# Kubernetes files (tests/deploy), the C++ tests that cross threads under ThreadSanitizer, each fuzz target for a few
# seconds (tests/fuzz), then the benchmark harness's own tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each stage's line carries the wall-clock time and the seconds since the start (where the 30 minutes go).
stage() { printf '== [%s, +%ds] %s\n' "$(date -u +%H:%M:%S)" "$SECONDS" "$*"; }
scripts/setup.sh
stage "checks: C++ format (clang-format 18.1.8)"
scripts/format.sh --check
scripts/build.sh asan

# The package's wheel, the ThreadSanitizer tree and the fuzz tree build in the background at idle priority
# (scripts/background-builds.sh), in the order their stages come: their compiling takes the CPU the tests leave,
# most of it while the integration tests wait on sockets. Their stages wait for them (await_build). In its own
# session, so that the trap stops its compilers too.
rm -f build/background-tsan.rc build/background-wheel.rc build/background-fuzz.rc
setsid scripts/background-builds.sh &
background=$!
trap 'kill -- -$background 2>/dev/null || true' EXIT
await_build() {  # tsan | wheel | fuzz: wait for that background build, and fail with its log if it failed
  while [ ! -s "build/background-$1.rc" ]; do
    kill -0 "$background" 2>/dev/null || [ -s "build/background-$1.rc" ] ||
      { echo "the background builds stopped before the $1 build ended (build/background-$1.log)" >&2; exit 1; }
    sleep 1
  done
  if [ "$(cat "build/background-$1.rc")" != 0 ]; then
    cat "build/background-$1.log" >&2
    echo "the $1 build failed (build/background-$1.log)" >&2
    exit 1
  fi
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

stage "C++ tests (GoogleTest via ctest; real-socket tests run once per backend)"
ctest --test-dir build --output-on-failure -j2

stage "Python integration tests (real sockets; the two backends side by side)"
# The Node.js WebSocket client (npm ws, pinned by its package-lock.json) for test_websocket.py.
npm ci --prefix tests/integration/ws_node --no-audit --no-fund --loglevel=error
export COVET_HELLO_BIN=$PWD/build/examples/native/hello/hello COVET_REQUIRE_SERVER=1
# One pytest per backend, at once: each spends most of its time waiting on sockets (about 25% of a CPU), so
# together they take ~3.5 minutes instead of ~6.5 one after the other. Their output follows, one after the other.
COVET_BACKEND=uring .venv/bin/python -m pytest tests/integration -q -p no:cacheprovider > build/integration-uring.log 2>&1 &
uring_tests=$!
COVET_BACKEND=asio .venv/bin/python -m pytest tests/integration -q -p no:cacheprovider > build/integration-asio.log 2>&1 &
asio_tests=$!
integration_ok=1
wait "$uring_tests" || integration_ok=0
wait "$asio_tests" || integration_ok=0
for backend in uring asio; do
  echo "-- tests/integration, $backend backend"
  cat "build/integration-$backend.log"
done
[ "$integration_ok" = 1 ] || { echo "the integration tests failed (above)" >&2; exit 1; }

stage "HTTP/2 conformance (h2spec, TLS and h2c, both backends)"
scripts/h2spec.sh

stage "Python package: install the wheel (built in the background from this tree) into .venv, then its tests"
await_build wheel
# Uninstalled first: pip keeps an installed covetpy of the same version rather than a wheel file's.
.venv/bin/python -m pip uninstall -q -y covetpy 2>/dev/null || true
.venv/bin/python -m pip install -q --disable-pip-version-check build/wheel/covetpy-*.whl
stage "checks: ruff + mypy --strict on the covet package (after the install: mypy needs its dependencies)"
scripts/lint-python.sh
stage "deploy: Dockerfile, Kubernetes manifests (kubeconform), alerts and dashboard PromQL (promtool) (tests/deploy)"
# After the package install: the Dockerfile's runtime packages are checked against ldd of the installed covet/_native.
COVET_REQUIRE_DEPLOY_TOOLS=1 COVET_REQUIRE_NATIVE=1 .venv/bin/python -m pytest tests/deploy -q -p no:cacheprovider
stage "Python package tests (tests/python)"
# The OpenID provider of test_oidc.py (npm oidc-provider, pinned by its package-lock.json).
npm ci --prefix tests/python/oidc --no-audit --no-fund --loglevel=error
# The gRPC-Web client of test_grpc_web.py (Connect's grpc-web transport, protoc-gen-es; pinned by its package-lock.json).
npm ci --prefix tests/python/grpc_web --no-audit --no-fund --loglevel=error
scripts/services.sh start   # PostgreSQL + Redis on free 127.0.0.1 ports -> build/services.env (test_real_drivers.py)
trap 'scripts/services.sh stop; kill -- -$background 2>/dev/null || true' EXIT
# The pinned FastAPI reference (build/differential-venv): FastAPI mounted in CovetPy and CovetPy under FastAPI
# (test_asgi.py), the migrate sample's own tests on FastAPI (test_migrate.py).
tests/differential/venv.sh
(cd tests/python && COVET_REQUIRE_NATIVE=1 COVET_REQUIRE_SERVICES=1 COVET_REQUIRE_CHROMIUM=1 COVET_REQUIRE_JAEGER=1 \
    COVET_REQUIRE_FASTAPI_VENV=1 ../../.venv/bin/python -m pytest -q -p no:cacheprovider .)

stage "differential: the same FastAPI apps under FastAPI 0.165 (uvicorn) and CovetPy (tests/differential)"
tests/differential/run.sh
stage "differential, compat: the sample apps' FastAPI imports through covet run --compat fastapi (a subset)"
tests/differential/run-compat.sh -k "names or params or security or middleware_classes or responses or static or routers or testclient or sessions"

stage "hosting: real Starlette/FastAPI/Litestar/Django/Flask/Channels/connect-python apps under covet run and their reference servers (tests/hosting)"
tests/hosting/run.sh  # the covet it hosts with: the package just installed into .venv, linked into build/hosting-venv

stage "ThreadSanitizer: the C++ tests that cross threads (build-tsan, ctest -L threads)"
await_build tsan
scripts/tsan.sh

# After the package install: its Python-app targets run `covet run` from .venv (they skip without it).
stage "fault injection, short (both native backends + covet run; the long run is scripts/soak.sh)"
COVET_FAULT_REPORT=build/fault-short.jsonl COVET_REQUIRE_NATIVE=1 .venv/bin/python -m pytest tests/fault -q -p no:cacheprovider

# After the package install: the Python parsers' target (forms, atheris) imports covet and its dependencies.
stage "fuzzing: every fuzz target of tests/fuzz for 8 s from its seeds (libFuzzer with clang in build-fuzz; atheris; scripts/fuzz.sh)"
await_build fuzz
COVET_FUZZ_JOBS=2 scripts/fuzz.sh 8

stage "benchmark harness tests"
.venv/bin/python -m pytest bench/tests -q -p no:cacheprovider
stage "done"
