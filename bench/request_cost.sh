#!/usr/bin/env bash
# Instructions per request of the Python request path under valgrind --tool=callgrind, route by route:
# bench/peers/covet/app_headers.py on `python -m covet _worker` (one thread, the asio backend), N keep-alive
# requests on one connection, 50 pipelined per write, each with the ten header fields a browser's fetch() sends.
# The per-request figure is the difference of the totals at N=SMALL and N=LARGE over the difference of N, so
# start-up cancels out (bench/callgrind_common.sh). docs/benchmarks.md, "Request headers looked up in the engine".
#
#   bench/request_cost.sh [SMALL LARGE]          N default 200 1200
#
#   LOOP=uvloop measures on uvloop (default asyncio: the figures then do not depend on whether the interpreter has
#   uvloop, which `covet run`'s --loop auto would pick);
#   ROUTES="param items" measures only those (default: param request items plaintext); PYTHON=path picks the
#   interpreter (default .venv/bin/python); PYTHONPATH=DIR measures an older covet package put there (its
#   compiled engine copied in); KEEP=dir keeps the callgrind files (for callgrind_annotate).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
small=${1:-200} large=${2:-1200}
python=${PYTHON:-$here/.venv/bin/python}
# shellcheck source=bench/callgrind_common.sh
source "$here/bench/callgrind_common.sh"
"$python" -c 'import covet._native' 2>/dev/null || { echo "no covet in $python: pip install -e . first" >&2; exit 1; }

fields='Host: localhost\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\nAccept: application/json, text/plain, */*\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\nAuthorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc\r\nConnection: keep-alive\r\nReferer: https://example.com/app\r\nSec-Fetch-Mode: cors\r\nOrigin: https://example.com\r\n'
body='{\"name\":\"a\",\"price\":1.5}'

# instructions ROUTE N
instructions() {
  local route=$1 n=$2 port file request
  port=$(free_port)
  file="$cg_out/cg.$RANDOM"
  case $route in
    param | request) request="GET /$route HTTP/1.1\r\n$fields\r\n" ;;
    items) request="POST /items HTTP/1.1\r\n${fields}Content-Type: application/json\r\nContent-Length: 24\r\n\r\n$body" ;;
    plaintext) request="GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n" ;;
    *) echo "unknown route $route" >&2; exit 2 ;;
  esac
  # A fixed hash seed and Python's own allocator, as bench/observability_cost.sh (docs/benchmarks.md).
  COVET_BACKEND=asio PYTHONHASHSEED=0 cg_measure "$file" "$n" "$port" "$request" 50 -- "$python" -m covet _worker \
    app_headers:app --port "$port" --threads 0 --loop "${LOOP:-asyncio}" --log-level error --app-dir "$here/bench/peers/covet"
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$file" "$KEEP/callgrind.$route.$n"; fi
}

# shellcheck disable=SC2086  # ROUTES is a list of words
cg_compare "python" "$small" "$large" ${ROUTES:-param request items plaintext}
