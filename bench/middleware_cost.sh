#!/usr/bin/env bash
# CPU per request of CORS + GZip middleware, CovetPy (native) vs FastAPI (Starlette's, in Python), interleaved.
#
#   bench/middleware_cost.sh [ROUNDS]
#
# One app (bench/peers/middleware/app.py) four ways: {covet, fastapi} x {no middleware, CORSMiddleware +
# GZipMiddleware}. Per round and scenario each is started fresh on CPU 0 and loaded by wrk on CPU 1 (64
# connections, 1 s warm-up, DURATION s timed, default 3); the figure is the server's utime+stime over the timed
# run per response. Scenarios: `json` (GET /json, 27-byte body, `Origin` sent: CORS headers added, too small to
# compress) and `gzip` (GET /text, 3.6 KB, `Origin` and `Accept-Encoding: gzip`: CORS headers and gzip level 9).
# COVET_PY (default .venv/bin/python) runs covet; FASTAPI_PY (default build/differential-venv/bin/python, or the
# main checkout's) runs uvicorn. Prints every run, then the medians and the middleware's cost (with - without).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
duration=${DURATION:-3}
covet_py=${COVET_PY:-$here/.venv/bin/python}
fastapi_py=${FASTAPI_PY:-$here/build/differential-venv/bin/python}
[ -x "$fastapi_py" ] || fastapi_py=/work/main/build/differential-venv/bin/python
results=$(mktemp); lua=$(mktemp --suffix .lua)
trap 'rm -f "$results" "$lua"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run FRAMEWORK MIDDLEWARE SCENARIO
run() {
  local framework=$1 mw=$2 scenario=$3 port pid path headers
  port=$(free_port)
  case $scenario in
    json) path=/json headers='wrk.headers["Origin"] = "https://app.example"' ;;
    gzip) path=/text headers='wrk.headers["Origin"] = "https://app.example"; wrk.headers["Accept-Encoding"] = "gzip"' ;;
  esac
  echo "$headers" > "$lua"
  if [ "$framework" = covet ]; then
    (cd "$here" && BENCH_FRAMEWORK=covet BENCH_MIDDLEWARE=$mw exec taskset -c 0 "$covet_py" -m covet _worker app:app \
       --port "$port" --threads 0 --log-level warning --app-dir bench/peers/middleware) >/dev/null 2>&1 &
  else
    (cd "$here/bench/peers/middleware" && BENCH_FRAMEWORK=fastapi BENCH_MIDDLEWARE=$mw exec taskset -c 0 "$fastapi_py" \
       -m uvicorn app:app --port "$port" --log-level warning) >/dev/null 2>&1 &
  fi
  pid=$!
  for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$port$path" && break; sleep 0.05; done
  taskset -c 1 wrk -t1 -c64 -d1s -s "$lua" "http://127.0.0.1:$port$path" >/dev/null
  local t0 t1 out n us
  t0=$(cpu_ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c64 -d"${duration}s" -s "$lua" "http://127.0.0.1:$port$path")
  t1=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  us=$(python3 -c "print(f'{($t1 - $t0) / 100 * 1e6 / $n:.2f}')")
  echo "$framework mw=$mw $scenario $us" | tee -a "$results"
}

for _ in $(seq "$rounds"); do
  for scenario in json gzip; do
    for framework in covet fastapi; do
      run "$framework" 0 "$scenario"
      run "$framework" 1 "$scenario"
    done
  done
done

python3 - "$results" <<'PY'
import statistics, sys
runs: dict[tuple[str, str, str], list[float]] = {}
for line in open(sys.argv[1]):
    framework, mw, scenario, us = line.split()
    runs.setdefault((framework, scenario, mw), []).append(float(us))
print("\n| framework | scenario | without CPU-µs/req | with CORS+GZip | middleware cost |")
print("|---|---|---:|---:|---:|")
for scenario in ("json", "gzip"):
    for framework in ("covet", "fastapi"):
        a = statistics.median(runs[framework, scenario, "mw=0"])
        b = statistics.median(runs[framework, scenario, "mw=1"])
        print(f"| {framework} | {scenario} | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
PY
