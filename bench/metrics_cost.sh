#!/usr/bin/env bash
# Instructions per request of the engine's metrics: `hello` (release build) under valgrind --tool=callgrind,
# metrics recorded (default) vs --no-metrics, answering N keep-alive GET /plaintext (pipelined in batches of 50 on
# one connection). Each configuration runs with N=SMALL and N=LARGE requests; the per-request figure is the
# difference of the two totals over the difference of N, so start-up and shut-down cancel out. Instruction
# counts do not depend on the machine's load (docs/benchmarks.md, "Metrics overhead").
#
#   bench/metrics_cost.sh [SMALL LARGE]     (default 1000 6000)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
small=${1:-1000}
large=${2:-6000}
hello=${HELLO:-$here/build-release/examples/native/hello/hello}
[ -x "$hello" ] || { echo "build it first: scripts/build.sh release (or cmake --build build-release --target hello)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# load PORT N: N pipelined keep-alive requests, 50 at a time, every response read.
load() {
  python3 - "$1" "$2" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(600):
    try:
        s = socket.create_connection(("127.0.0.1", port)); break
    except OSError:
        time.sleep(0.1)
req = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
done = 0
buf = b""
while done < n:
    k = min(50, n - done)
    s.sendall(req * k)
    got = 0
    while got < k:
        data = s.recv(1 << 16)
        assert data, "server closed"
        buf += data
        while True:
            i = buf.find(b"Hello, World!")
            if i < 0: break
            buf = buf[i + 13:]; got += 1
    done += k
s.close()
PY
}

# instructions CONFIG N
instructions() {
  local flags=$1 n=$2 port pid file
  port=$(free_port)
  file="$out/cg.$RANDOM"
  COVET_BACKEND=asio valgrind --tool=callgrind --callgrind-out-file="$file" "$hello" --port "$port" --threads 1 \
    --backend asio --log-level error $flags >/dev/null 2>&1 &
  pid=$!
  load "$port" "$n"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^summary:/ {print $2}' "$file"
}

declare -A per
for config in on off; do
  flags=""; [ "$config" = off ] && flags="--no-metrics"
  a=$(instructions "$flags" "$small")
  b=$(instructions "$flags" "$large")
  per[$config]=$(( (b - a) / (large - small) ))
  echo "metrics $config: $a instructions at N=$small, $b at N=$large: ${per[$config]} per request"
done
python3 -c "on, off = ${per[on]}, ${per[off]}; print(f'metrics cost: {on - off} instructions per request ({100 * (on - off) / off:.2f}% of {off})')"
