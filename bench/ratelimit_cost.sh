#!/usr/bin/env bash
# Instructions per request of the native rate limiter under valgrind --tool=callgrind: examples/native/hello (one
# thread, the asio backend, metrics on as by default) answering N keep-alive GET /plaintext on one connection,
# pipelined BATCH per write, three ways: without the limiter, with RateLimitMiddleware (one per-client-address
# GCRA rule no request reaches: every request is checked and charged in the shared table) sending the RateLimit /
# RateLimit-Policy fields, and without those fields. The per-request figure is the difference of the totals at
# N=SMALL and N=LARGE over the difference of N (start-up cancels out; bench/callgrind_common.sh). Target: < 2%
# (issue 17).
#
#   bench/ratelimit_cost.sh [--batch B] [SMALL LARGE]      (defaults: batch 50, N 1000 6000)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
batch=50
if [ "${1:-}" = --batch ]; then batch=$2; shift 2; fi
small=${1:-1000}; large=${2:-6000}
# shellcheck source=bench/callgrind_common.sh
source "$here/bench/callgrind_common.sh"
cg_hello

# instructions CONFIG N (a 429 fails the run: the benchmark's limit must never be reached)
instructions() {
  local config=$1 n=$2 port flags=()
  port=$(free_port)
  case $config in
    limiter) flags=(--rate-limit) ;;
    limiter-no-headers) flags=(--rate-limit-no-headers) ;;
  esac
  cg_measure "$cg_out/cg.$RANDOM" "$n" "$port" "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n" "$batch" -- "$hello" \
    --port "$port" --threads 1 --backend asio --log-level error "${flags[@]}"
}

cg_compare "batch $batch" "$small" "$large" off limiter limiter-no-headers
python3 - "${per[off]}" "${per[limiter]}" "${per[limiter-no-headers]}" <<'PY'
import sys
off, on, bare = map(int, sys.argv[1:])
print(f"rate limiter with RateLimit fields: +{on - off} instructions per request ({100 * (on - off) / off:.2f}% of {off})")
print(f"rate limiter without the fields: +{bare - off} instructions per request ({100 * (bare - off) / off:.2f}% of {off})")
PY
