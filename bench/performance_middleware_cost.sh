#!/usr/bin/env bash
# Instructions per request of PerformanceMiddleware (native), under valgrind --tool=callgrind: a covet worker
# (bench/peers/performance/app.py: a constant route, answered by the engine) with PERF=0 (no middleware) and PERF=1
# (PerformanceMiddleware, thresholds never reached), answering N pipelined keep-alive GET /plaintext (50 at a time).
# Per-request figure: (total(LARGE) - total(SMALL)) / (LARGE - SMALL), so start-up and shut-down cancel out.
# Instruction counts do not depend on the machine's load. The harness: bench/callgrind_common.sh.
#
#   bench/performance_middleware_cost.sh [SMALL LARGE]     (default 500 10500)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
small=${1:-500}
large=${2:-10500}
py=${COVET_PY:-$here/.venv/bin/python}
# shellcheck source=bench/callgrind_common.sh
source "$here/bench/callgrind_common.sh"

# instructions PERF N
instructions() {
  local port
  port=$(free_port)
  PYTHONHASHSEED=0 PERF=$1 COVET_BACKEND=asio cg_measure "$cg_out/cg.$1.$2" "$2" "$port" \
    "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n" 50 -- "$py" -m covet _worker app:app --port "$port" --threads 0 \
    --log-level warning --app-dir "$here/bench/peers/performance"
}

cg_compare "batch 50" "$small" "$large" 0 1
for perf in 0 1; do echo "PERF=$perf: ${per[$perf]} instructions per request"; done
echo "PerformanceMiddleware: $(( per[1] - per[0] )) instructions per request"
