#!/usr/bin/env bash
# Instructions per request of the native security headers and CORS middleware under valgrind --tool=callgrind:
# examples/native/hello (one thread, the asio backend) answering N pipelined keep-alive GET /plaintext on one
# connection, in three configurations: no middleware, --security-headers (SecurityHeadersMiddleware's defaults: five
# headers appended; HSTS is off on plain HTTP), --cors https://a.example. Every request carries
# `Origin: https://a.example` in all three, so the CORS run pays for its allowed-origin answer
# (Access-Control-Allow-Origin) and the baseline parses the same bytes. The per-request figure is the difference of
# the totals at N=SMALL and N=LARGE over the difference of N (start-up cancels out). Instruction counts do not
# depend on the machine's load (docs/benchmarks.md, "Security headers and CORS"). The harness: bench/callgrind_common.sh.
#
#   bench/security_cost.sh [SMALL LARGE]      (default 1000 6000; HELLO=path overrides the release build's hello)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
small=${1:-1000}; large=${2:-6000}; batch=50
# shellcheck source=bench/callgrind_common.sh
source "$here/bench/callgrind_common.sh"
cg_hello

# instructions CONFIG N: every request carries an Origin.
instructions() {
  local config=$1 n=$2 port flags=()
  port=$(free_port)
  case $config in
    headers) flags=(--security-headers) ;;
    cors) flags=(--cors https://a.example) ;;
  esac
  cg_measure "$cg_out/cg.$RANDOM" "$n" "$port" "GET /plaintext HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n\r\n" \
    "$batch" -- "$hello" --port "$port" --threads 1 --backend asio --log-level error "${flags[@]}"
}

cg_compare "plaintext batch $batch" "$small" "$large" none headers cors
python3 - "${per[none]}" "${per[headers]}" "${per[cors]}" <<'PY'
import sys
none, headers, cors = map(int, sys.argv[1:])
for name, v in (("security headers", headers), ("CORS", cors)):
    print(f"{name}: +{v - none} instructions per request ({100 * (v - none) / none:.2f}% of {none})")
PY
