#!/usr/bin/env bash
# Must-show of issue 14: throughput for a 1 MB static file, CovetPy's StaticFiles (served by the engine) vs nginx
# (sendfile on) and FastAPI's StaticFiles under uvicorn.
#
#   bench/static_file.sh [ROUNDS]
#
# Each server runs on CPU 0 (one worker), wrk on CPU 1 (1 s warm-up, DURATION s timed, default 5; CONNS
# connections, default 16) fetching GET /static/1mb.bin. Reported per run: requests/s, MB/s, and the server's
# CPU time per request (utime+stime of its processes over the timed run / responses). Servers: SERVERS (default
# "nginx covet covet-threads1 covet-asio fastapi": covet run as is, i.e. the engine on the event-loop thread over
# io_uring; with --threads 1; on the epoll backend); covet from PYTHON (default .venv/bin/python), FastAPI from FASTAPI_PYTHON (default
# build/differential-venv/bin/python, made by tests/differential/run.sh); nginx from PATH or /usr/sbin/nginx
# (`apt-get install nginx-light`, as bench/servers.py does). Rounds interleave the servers, so the VM's drift
# hits all alike; the medians are printed last.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
duration=${DURATION:-5}
conns=${CONNS:-16}
servers=${SERVERS:-nginx covet covet-threads1 covet-asio fastapi}
python=${PYTHON:-$here/.venv/bin/python}
fastapi_python=${FASTAPI_PYTHON:-$here/build/differential-venv/bin/python}
nginx=$(command -v nginx || echo /usr/sbin/nginx)
work=$(mktemp -d)
results=$work/results
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/static"
head -c 1048576 /dev/urandom > "$work/static/1mb.bin"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# utime+stime of a process and all its descendants (covet run's worker process, nginx's worker)
cpu_ticks() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    if [ "$p" != "$1" ]; then total=$((total + $(cpu_ticks "$p"))); continue; fi
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}
wait_port() {
  for _ in $(seq 200); do
    if curl -sf -o /dev/null "http://127.0.0.1:$1/static/1mb.bin"; then return 0; fi
    sleep 0.05
  done
  echo "static_file.sh: the server on port $1 did not answer" >&2
  return 1
}

cat > "$work/covet_app.py" <<EOF
from covet import CovetPy
from covet.staticfiles import StaticFiles
app = CovetPy()
app.mount("/static", StaticFiles(directory="$work/static"))
EOF
cat > "$work/fastapi_app.py" <<EOF
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
app = FastAPI()
app.mount("/static", StaticFiles(directory="$work/static"))
EOF

# run SERVER: one timed wrk run; appends "SERVER rps mbps cpu_us_per_req" to $results
run() {
  local server=$1 port pid
  port=$(free_port)
  case $server in
    nginx)
      mkdir -p "$work/nginx"
      cat > "$work/nginx/nginx.conf" <<EOF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000000;
    client_body_temp_path $work/nginx/cb; proxy_temp_path $work/nginx/p; fastcgi_temp_path $work/nginx/f;
    uwsgi_temp_path $work/nginx/u; scgi_temp_path $work/nginx/s;
    types { application/octet-stream bin; }
    server { listen 127.0.0.1:$port; location /static/ { alias $work/static/; } }
}
EOF
      taskset -c 0 "$nginx" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
      ;;
    covet|covet-threads1|covet-asio)
      local extra=() backend=auto
      [ "$server" = covet-threads1 ] && extra=(--threads 1)  # the engine on its own thread (same CPU)
      [ "$server" = covet-asio ] && backend=asio             # epoll instead of io_uring
      (cd "$work" && COVET_BACKEND=$backend exec taskset -c 0 "$python" -m covet run covet_app:app --port "$port" \
         --log-level warning "${extra[@]}") &
      ;;
    fastapi)
      (cd "$work" && exec taskset -c 0 "$fastapi_python" -m uvicorn fastapi_app:app --port "$port" \
         --log-level warning --no-access-log) &
      ;;
  esac
  pid=$!
  wait_port "$port"
  local measured=$pid  # with its descendants: nginx's worker, covet run's worker process
  taskset -c 1 wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$port/static/1mb.bin" >/dev/null
  local before out after
  before=$(cpu_ticks "$measured")
  out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${duration}s" "http://127.0.0.1:$port/static/1mb.bin")
  after=$(cpu_ticks "$measured")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local requests rps
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  local hz; hz=$(getconf CLK_TCK)
  python3 - "$server" "$rps" "$requests" "$before" "$after" "$hz" <<'EOF' | tee -a "$results"
import sys
server, rps, requests, before, after, hz = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), *map(int, sys.argv[4:])
cpu_us = (after - before) / hz * 1e6 / max(requests, 1)
print(f"{server:8} {rps:9.1f} req/s {rps * 1.048576:9.1f} MB/s {cpu_us:8.1f} us CPU/request")
EOF
}

for round in $(seq "$rounds"); do
  echo "-- round $round"
  for server in $servers; do run "$server"; done
done
echo "-- medians over $rounds round(s) (1 MB file, $conns connections, wrk on CPU 1, the server on CPU 0)"
python3 - "$results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    rows.setdefault(f[0], []).append((float(f[1]), float(f[3]), float(f[5])))
for server, runs in rows.items():
    rps, mbps, cpu = (statistics.median(col) for col in zip(*runs))
    print(f"{server:8} {rps:9.1f} req/s {mbps:9.1f} MB/s {cpu:8.1f} us CPU/request")
EOF
