# The harness the callgrind cost scripts share (bench/observability_cost.sh, ratelimit_cost.sh, security_cost.sh,
# performance_middleware_cost.sh): sourced, never run. A server runs under valgrind --tool=callgrind, answers N
# pipelined keep-alive requests on one connection, and is stopped; the per-request figure is the difference of the
# totals at N=SMALL and N=LARGE over the difference of N, so start-up and shut-down cancel out. Instruction counts do
# not depend on the machine's load; they count user space only.
#
# The sourcing script sets `here` (the checkout) and defines `instructions CONFIG N` (prints one total, usually with
# cg_measure); cg_compare then runs every configuration at both sizes.

cg_out=$(mktemp -d)
trap 'rm -rf "$cg_out"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# cg_hello: the release build's examples/native/hello (HELLO=path overrides), or exit with how to build it.
cg_hello() {
  hello=${HELLO:-$here/build-release/examples/native/hello/hello}
  [ -x "$hello" ] || { echo "build it first: scripts/build.sh release (or cmake --build build-release --target hello)" >&2; exit 1; }
}

# cg_load PORT N REQUEST BATCH: N keep-alive requests (REQUEST: the bytes of one, with \r\n escapes), BATCH per write,
# every response read (counted by its 200 status line). The first request is a probe, sent until the server answers
# (it is one of the N). Any other status fails the run: a benchmark measuring refusals would measure the wrong path.
cg_load() {
  python3 - "$1" "$2" "$3" "$4" <<'PY'
import re, socket, sys, time
port, n, batch = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[4])
req = sys.argv[3].encode().decode("unicode_escape").encode()
deadline = time.monotonic() + 300
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        if s.recv(1 << 16).startswith(b"HTTP/1.1 200"):
            break
        s.close()
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("server did not answer")
    time.sleep(0.2)
other = re.compile(rb"HTTP/1\.1 (?!200)\d\d\d ")
done, tail = 1, b""
while done < n:
    k = min(batch, n - done)
    s.sendall(req * k)
    got = 0
    while got < k:
        data = s.recv(1 << 16)
        assert data, "server closed"
        buf = tail + data
        if m := other.search(buf):
            sys.exit(f"a request was answered {m.group().decode().strip()}: the benchmark must see only 200s")
        got += buf.count(b"HTTP/1.1 200")
        tail = buf[-11:]  # shorter than a status line: a line split across reads is counted once, joined
    done += k
s.close()
PY
}

# cg_measure FILE N PORT REQUEST BATCH -- COMMAND...: runs COMMAND (a server listening on PORT) under callgrind into
# FILE, sends it N requests (cg_load), stops it with SIGTERM and prints its instruction total.
cg_measure() {
  local file=$1 n=$2 port=$3 request=$4 batch=$5 pid
  shift 6
  valgrind --tool=callgrind --callgrind-out-file="$file" "$@" >/dev/null 2>"$file.log" &
  pid=$!
  cg_load "$port" "$n" "$request" "$batch"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^(summary|totals):/ {print $2; exit}' "$file"
}

# cg_compare PREFIX SMALL LARGE CONFIG...: `instructions CONFIG N` at both sizes for each configuration; fills the
# associative array `per` (instructions per request by configuration) and prints one line per configuration.
declare -gA per
cg_compare() {
  local prefix=$1 small=$2 large=$3 config a b
  shift 3
  for config in "$@"; do
    a=$(instructions "$config" "$small")
    b=$(instructions "$config" "$large")
    per[$config]=$(( (b - a) / (large - small) ))
    echo "$prefix, $config: $a instructions at N=$small, $b at N=$large: ${per[$config]} per request"
  done
}
