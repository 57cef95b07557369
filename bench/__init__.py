"""CovetPy benchmarks: `python -m bench` runs the servers x scenarios matrix (see bench/README.md).

Modules, from the bottom up:
  system     /proc (CPU ticks and RSS of a process tree), machine description, git revision
  loadgen    wrk, h2load and ghz (gRPC): command lines, running them, parsing their output; building ghz
  tls        the run's throw-away CA and server certificate
  wsload     the WebSocket load generator bench/tools/wsload: build, command lines, output, its gate
  h3load     the HTTP/3 load generator bench/tools/h3load (quic-go): build, command lines, output, its gate
  servers    the server specifications (install, command, versions; the gRPC and HTTP/3 peers) and the one launcher,
             `Running`
  scenarios  the scenario model, the expected payloads and the correctness gate
  summary    per-pair medians, ratios, the time estimate and progress line
  measure    one timed run of a scenario against a running server
  report     the Markdown report and the docs section; chart (matplotlib, run in bench/.venvs/tools)
  cli        the command-line options
  runner     the run: setup, rounds, cold starts, the results JSON, outputs

Focused scripts outside the matrix:
  response_model   `python3 -m bench.response_model`: a response_model route with filtering, CovetPy vs FastAPI
  alternate        `python3 -m bench.alternate`: two configurations loaded in alternating slices (a small cost)
"""

from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
