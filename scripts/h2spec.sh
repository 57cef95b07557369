#!/usr/bin/env bash
# HTTP/2 conformance: runs the full h2spec suite against the hello example, over TLS (h2 via ALPN,
# generated self-signed certificate) and over cleartext (h2c prior knowledge), on each backend.
# Fails if any h2spec case fails (one case that cannot apply to an h2c port shared with HTTP/1.1
# is listed and reported, not counted: see NOT_APPLICABLE below), if h2spec hangs, or if the server crashes, logs a sanitizer error
# or does not exit 0 on SIGTERM.
#
#   scripts/h2spec.sh                 # both backends, TLS and h2c
#   COVET_BACKEND=asio scripts/h2spec.sh
#
# Environment:
#   COVET_HELLO_BIN   server binary (default build/examples/native/hello/hello, the ASan build)
#   COVET_BACKEND     one backend instead of "uring asio"
#   H2SPEC            h2spec binary (default: on PATH, else installed with `go install` into
#                     ${XDG_CACHE_HOME:-$HOME/.cache}/covetpy/bin)
#   H2SPEC_STRICT=1   also run h2spec's strict cases (-S)
#   H2SPEC_TIMEOUT    seconds for one whole h2spec run (default 600)
set -euo pipefail
cd "$(dirname "$0")/.."

H2SPEC_MODULE=github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible
bin=${COVET_HELLO_BIN:-$PWD/build/examples/native/hello/hello}
backends=${COVET_BACKEND:-uring asio}
run_timeout=${H2SPEC_TIMEOUT:-600}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/covetpy/bin

if [ ! -x "$bin" ]; then
  echo "h2spec.sh: server binary $bin not found (build it, or set COVET_HELLO_BIN)" >&2
  exit 1
fi

# ---- h2spec itself ---------------------------------------------------------------------------
h2spec=${H2SPEC:-}
if [ -z "$h2spec" ]; then
  if command -v h2spec >/dev/null; then h2spec=$(command -v h2spec)
  elif [ -x "$cache/h2spec" ]; then h2spec=$cache/h2spec
  fi
fi
if [ -z "$h2spec" ]; then
  go=$(command -v go || true)
  [ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
  if [ -z "$go" ]; then
    echo "h2spec.sh: h2spec is not installed and there is no Go toolchain to build it (scripts/setup.sh installs one)" >&2
    exit 1
  fi
  echo "h2spec.sh: installing h2spec into $cache ($("$go" version))"
  mkdir -p "$cache"
  GOBIN=$cache GOFLAGS=-mod=mod "$go" install "$H2SPEC_MODULE"
  h2spec=$cache/h2spec
fi
echo "h2spec.sh: $("$h2spec" --version | head -1) from $h2spec; server $bin"

# ---- a certificate for the TLS runs ----------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/covet-h2spec.XXXXXX")
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
  -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Starts the server; sets server_pid and port. Returns 1 if it did not print its banner.
start_server() {  # backend mode
  local backend=$1 mode=$2 attempt
  local tls_flags=()
  [ "$mode" = tls ] && tls_flags=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
  for attempt in 1 2 3; do
    port=$(free_port)
    : >"$work/server.out"
    "$bin" --host 127.0.0.1 --port "$port" --threads 2 --backend "$backend" "${tls_flags[@]}" \
      >"$work/server.out" 2>"$work/server-$backend-$mode.err" &
    server_pid=$!
    for _ in $(seq 100); do
      grep -q "^listening on " "$work/server.out" && return 0
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  done
  echo "h2spec.sh: server ($backend, $mode) did not start; stderr:" >&2
  tail -n 30 "$work/server-$backend-$mode.err" >&2
  return 1
}

# Stops the server with SIGTERM; sets stop_problem unless it exits 0 within 15 s.
stop_server() {
  local rc=0
  stop_problem=""
  if ! kill -0 "$server_pid" 2>/dev/null; then
    wait "$server_pid" || rc=$?
    stop_problem="server died during the run (rc=$rc)"
    server_pid=""
    return 0
  fi
  kill -TERM "$server_pid"
  for _ in $(seq 150); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    stop_problem="server did not exit within 15 s of SIGTERM"
    kill -KILL "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    return 0
  fi
  wait "$server_pid" || rc=$?
  server_pid=""
  [ "$rc" -eq 0 ] || stop_problem="server exited with code $rc after SIGTERM"
}

summary=()
failed=0
strict=()
[ "${H2SPEC_STRICT:-0}" = 1 ] && strict=(-S)

for backend in $backends; do
  for mode in tls h2c; do
    label="$backend/$mode"
    echo "== h2spec $label"
    if ! start_server "$backend" "$mode"; then
      summary+=("$label: server did not start")
      failed=1
      continue
    fi
    flags=(-h 127.0.0.1 -p "$port" -P /plaintext -o 3 -j "$work/junit-$backend-$mode.xml" "${strict[@]}")
    [ "$mode" = tls ] && flags+=(-t -k)
    rc=0
    timeout --kill-after=10 "$run_timeout" "$h2spec" "${flags[@]}" >"$work/h2spec.out" 2>&1 || rc=$?
    # h2spec colours its output; strip the escapes for the log and the summary
    sed -e 's/\x1b\[[0-9;]*m//g' "$work/h2spec.out" >"$work/h2spec-$backend-$mode.txt"
    line=$(grep -E '^[0-9]+ tests, [0-9]+ passed' "$work/h2spec-$backend-$mode.txt" | tail -1 || true)
    # The failed cases from the JUnit report, minus the ones that do not apply to this mode.
    unexpected=$(python3 - "$work/junit-$backend-$mode.xml" "$mode" <<'PY' 2>&1 || echo "cannot read the JUnit report"
import sys, xml.etree.ElementTree as ET
# h2c on a port that also serves HTTP/1.1: bytes that are not the HTTP/2 preface are an HTTP/1.1
# request, and a malformed one gets an HTTP/1.1 400 before the close, where h2spec (written for
# h2-only endpoints) wants a silent close.
NOT_APPLICABLE = {"h2c": {("http2/3.5", "Sends invalid connection preface")}}
skip = NOT_APPLICABLE.get(sys.argv[2], set())
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    if case.find("failure") is None and case.find("error") is None:
        continue
    key = (case.get("package"), case.get("classname"))
    print(("not applicable here: " if key in skip else "") + f"{key[0]} {key[1]}")
PY
)
    problems=()
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
      problems+=("h2spec timed out after ${run_timeout}s")
    elif [ -z "$line" ]; then
      problems+=("no h2spec summary (rc=$rc)")
    elif echo "$unexpected" | grep -qv '^not applicable here: ' && [ -n "$unexpected" ]; then
      problems+=("failed cases: $(echo "$unexpected" | grep -v '^not applicable here: ' | paste -sd ';' -)")
    fi
    echo "$unexpected" | grep '^not applicable here: ' | sed 's/^/  h2spec (ignored) /' || true
    stop_server
    [ -n "$stop_problem" ] && problems+=("$stop_problem")
    if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$work/server-$backend-$mode.err"; then
      problems+=("sanitizer report in the server's stderr")
    fi
    if [ ${#problems[@]} -gt 0 ]; then
      failed=1
      summary+=("$label: FAIL ${line:-} [$(IFS=';'; echo "${problems[*]}")]")
      echo "---- h2spec failures ($label)"
      # h2spec prints a "Failures:" section listing each failed case with expected/actual
      sed -n '/^Failures:/,$p' "$work/h2spec-$backend-$mode.txt" | head -n 200
      [ -z "$line" ] && tail -n 40 "$work/h2spec-$backend-$mode.txt"
      echo "---- server stderr ($label, last 40 lines)"
      tail -n 40 "$work/server-$backend-$mode.err"
    else
      summary+=("$label: ok   $line")
    fi
  done
done

echo "== h2spec summary"
printf '  %s\n' "${summary[@]}"
exit "$failed"
