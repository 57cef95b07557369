#!/usr/bin/env bash
# Instructions per request of the engine's metrics and tracing under valgrind --tool=callgrind: one server (one
# thread, the asio backend), answering N keep-alive GETs on one connection, in four configurations: metrics off,
# metrics on (the default), metrics + tracing at 1% (parentbased_traceidratio:0.01) and at 100% (always_on).
# Each runs with N=SMALL and N=LARGE requests; the per-request figure is the difference of the two totals over the
# difference of N, so start-up and shut-down cancel out. Instruction counts do not depend on the machine's load
# (docs/benchmarks.md, "Observability overhead"); they count user space only. The harness: bench/callgrind_common.sh.
#
#   bench/observability_cost.sh [--python] [--path /plaintext|/json] [--batch B] [SMALL LARGE]
#
#   (default)   examples/native/hello (release build; HELLO=path overrides), N default 1000 6000
#   --python    bench/peers/covet/app_observed.py on `python -m covet _worker` (.venv; PYTHON=path overrides),
#               N default 200 1200 (the interpreter under valgrind is slow)
#   --batch B   requests per write (pipelined; default 50); --batch 1: one request per round trip, as a client
#               that waits for each answer
#   CONFIGS="off metrics" measures only those configurations (default all four); KEEP=dir keeps the callgrind
#   files there (for callgrind_annotate)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
server=native path=/plaintext batch=50
while [ $# -gt 0 ]; do
  case $1 in
    --python) server=python; shift ;;
    --path) path=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    *) break ;;
  esac
done
if [ "$server" = native ]; then small=${1:-1000}; large=${2:-6000}; else small=${1:-200}; large=${2:-1200}; fi
python=${PYTHON:-$here/.venv/bin/python}
# shellcheck source=bench/callgrind_common.sh
source "$here/bench/callgrind_common.sh"
if [ "$server" = native ]; then
  cg_hello
else
  "$python" -c 'import covet._native' 2>/dev/null || { echo "no covet in $python: pip install -e . first" >&2; exit 1; }
fi

# instructions CONFIG N
instructions() {
  local config=$1 n=$2 port file
  port=$(free_port)
  file="$cg_out/cg.$RANDOM"
  if [ "$server" = native ]; then
    local flags=()
    case $config in
      off) flags=(--no-metrics) ;;
      trace1) flags=(--trace parentbased_traceidratio:0.01) ;;
      trace100) flags=(--trace always_on) ;;
    esac
    cg_measure "$file" "$n" "$port" "GET $path HTTP/1.1\r\nHost: x\r\n\r\n" "$batch" -- "$hello" --port "$port" \
      --threads 1 --backend asio --log-level error "${flags[@]}"
  else
    local metrics="" trace=off
    case $config in
      off) metrics=0 ;;
      trace1) trace=0.01 ;;
      trace100) trace=1 ;;
    esac
    # Python's own allocator (pymalloc), as deployed: with PYTHONMALLOC=malloc every object went through glibc
    # malloc, whose fastbin consolidations then moved with the heap's layout (+-1K instructions per request between
    # configurations). A fixed hash seed: the same dict probe sequences in every run (docs/benchmarks.md).
    COVET_BACKEND=asio COVET_RECORD_METRICS=$metrics COVET_BENCH_TRACE=$trace PYTHONHASHSEED=0 \
      cg_measure "$file" "$n" "$port" "GET $path HTTP/1.1\r\nHost: x\r\n\r\n" "$batch" -- "$python" -m covet \
      _worker app_observed:app --port "$port" --threads 0 --log-level error --app-dir "$here/bench/peers/covet"
  fi
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$file" "$KEEP/callgrind.$server.$config.$n"; fi
}

# shellcheck disable=SC2086  # CONFIGS is a list of words
cg_compare "$server $path batch $batch" "$small" "$large" ${CONFIGS:-off metrics trace1 trace100}
python3 - "${per[off]:-0}" "${per[metrics]:-0}" "${per[trace1]:-0}" "${per[trace100]:-0}" <<'PY'
import sys
off, metrics, t1, t100 = map(int, sys.argv[1:])  # 0: not measured (CONFIGS)
if off and metrics:
    print(f"metrics: +{metrics - off} instructions per request ({100 * (metrics - off) / off:.2f}% of {off})")
for name, v in (("tracing 1%", t1), ("tracing 100%", t100)):
    if v and metrics:
        print(f"{name}: +{v - metrics} instructions per request ({100 * (v - metrics) / metrics:.2f}% of "
              f"{metrics}, metrics on)")
PY
