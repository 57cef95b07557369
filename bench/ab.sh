#!/usr/bin/env bash
# A/B: CPU per request of two builds of CovetPy, measured interleaved so the VM's speed drift hits both alike
# (docs/benchmarks.md: the figures of separate runs hours apart differ by up to 20% on this machine).
#
#   bench/ab.sh A_ROOT B_ROOT [ROUNDS]
#
# A_ROOT/B_ROOT are checkouts, each with `build-release/examples/native/hello/hello` and a Python environment at
# `$ROOT/.venv` (or PY_A / PY_B) whose covet was built from that checkout. Per round, for each scenario, A then B
# are started fresh on CPU 0 and loaded by wrk on CPU 1 (1 s warm-up, DURATION s timed, default 3); the server's
# utime+stime over the timed run divided by the responses is the figure. Prints one line per run and the
# medians; SERVERS (default "native async"; "sync": the bench app's `def` handlers; "inline": the same run inline)
# and SCENARIOS (default "plaintext json pipelined16"; also "post-json", the matrix's 1 KB model-validated POST)
# narrow it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
a_root=$(cd "$1" && pwd); b_root=$(cd "$2" && pwd); rounds=${3:-5}
py_a=${PY_A:-$a_root/.venv/bin/python}; py_b=${PY_B:-$b_root/.venv/bin/python}
duration=${DURATION:-3}
servers=${SERVERS:-native async}
scenarios=${SCENARIOS:-plaintext json pipelined16}
pipeline_lua=$here/bench/tools/wrk/pipeline.lua
matrix_lua=$here/bench/tools/wrk/matrix.lua
results=$(mktemp)
item_body=$(mktemp)
trap 'rm -f "$results" "$item_body"' EXIT
(cd "$here" && python3 -c 'import sys; from bench.scenarios import item_payload; sys.stdout.buffer.write(item_payload())') \
  >"$item_body"
export BENCH_METHOD BENCH_BODY_FILE BENCH_CONTENT_TYPE=application/json

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run LABEL ROOT PY SERVER SCENARIO
run() {
  local label=$1 root=$2 py=$3 server=$4 scenario=$5 port pid path conns extra=()
  port=$(free_port)
  case $scenario in
    plaintext) path=/plaintext conns=64 ;;
    json) path=/json conns=64 ;;
    pipelined16) path=/plaintext conns=256 extra=(-s "$pipeline_lua") ;;
    post-json) path=/items conns=64 extra=(-s "$matrix_lua") ;;  # the matrix's 1 KB body (bench.scenarios)
    *) echo "ab.sh: unknown scenario $scenario" >&2; exit 2 ;;
  esac
  local tail_args=()
  [ "$scenario" = pipelined16 ] && tail_args=(-- 16)
  BENCH_METHOD=GET BENCH_BODY_FILE=
  [ "$scenario" = post-json ] && BENCH_METHOD=POST BENCH_BODY_FILE=$item_body
  case $server in
    native) taskset -c 0 "$root/build-release/examples/native/hello/hello" --port "$port" --threads 1 \
              --log-level warn >/dev/null 2>&1 & ;;
    async|sync|inline) (cd "$root" && exec taskset -c 0 "$py" -m covet _worker "app_$server:app" --port "$port" \
              --threads 0 --log-level warning --app-dir bench/peers/covet) >/dev/null 2>&1 & ;;
    *) echo "ab.sh: unknown server $server" >&2; exit 2 ;;
  esac
  pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port$path" && break; sleep 0.05; done
  taskset -c 1 wrk -t1 -c"$conns" -d1s "${extra[@]}" "http://127.0.0.1:$port$path" "${tail_args[@]}" >/dev/null
  local t0 t1 out n
  t0=$(cpu_ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${duration}s" "${extra[@]}" "http://127.0.0.1:$port$path" "${tail_args[@]}")
  t1=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  local us
  us=$(python3 -c "print(f'{($t1 - $t0) / 100 * 1e6 / $n:.2f}')")
  echo "$label $server $scenario $us" | tee -a "$results"
}

for r in $(seq "$rounds"); do
  for server in $servers; do
    for scenario in $scenarios; do
      run A "$a_root" "$py_a" "$server" "$scenario"
      run B "$b_root" "$py_b" "$server" "$scenario"
    done
  done
done

echo "CPU-µs per request, median of $rounds interleaved rounds (A = $a_root @ $(git -C "$a_root" rev-parse --short HEAD), B = $b_root @ $(git -C "$b_root" rev-parse --short HEAD)):"
python3 - "$results" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, server, scenario, us = line.split()
    runs[(server, scenario, label)].append(float(us))
print(f"{'server':8s} {'scenario':12s} {'A':>8s} {'B':>8s} {'B/A':>7s}")
for server, scenario in dict.fromkeys((s, c) for s, c, _ in runs):
    a = statistics.median(runs[(server, scenario, "A")])
    b = statistics.median(runs[(server, scenario, "B")])
    print(f"{server:8s} {scenario:12s} {a:8.2f} {b:8.2f} {b / a:7.3f}")
PY
