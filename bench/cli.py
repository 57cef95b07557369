"""The command line of `python -m bench`: options, their defaults and `--quick`'s, and the checks on them."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import BENCH, REPO
from .hosting import HOSTING_SCENARIOS, HOSTING_SERVERS
from .overhead import OVERHEAD_SCENARIOS, OVERHEAD_SERVERS
from .scenarios import build_scenarios
from .servers import all_specs

DEFAULT_OUT = BENCH / "results"
DEFAULT_DOCS = REPO / "docs" / "benchmarks.md"
DEFAULT_CHART = REPO / "docs" / "img" / "bench-matrix.png"
QUIET_FILE = Path("/tmp/covet-bench-quiet")

# A 2 s timed run (after a 1 s warm-up) keeps the whole default matrix, peers installed from scratch included,
# under 30 minutes on a 2-core machine; three interleaved rounds give the spread.
DEFAULTS = {"duration": 2, "warmup": 1, "runs": 3, "cold_starts": 3, "tls_runs": 2, "ws_runs": 1}
QUICK = {"duration": 1, "warmup": 1, "runs": 1, "cold_starts": 1, "tls_runs": 1, "ws_runs": 1}


def parse_cpu_list(spec: str) -> list[int]:
    """taskset-style CPU list: ``"0"``, ``"0-7"``, ``"0,2,4-5"`` -> sorted unique ints."""
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            lo, hi = int(a), int(b)
            if hi < lo:
                raise ValueError(f"bad CPU range {part!r}")
            out.update(range(lo, hi + 1))
        else:
            out.add(int(part))
    if not out:
        raise ValueError(f"empty CPU list {spec!r}")
    return sorted(out)


def _parser(servers: list[str], scenarios: list[str]) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description="CovetPy benchmark matrix: servers x scenarios, pinned CPUs, interleaved rounds.",
    )
    ap.add_argument("--servers", default=None,
                    help="comma list (default: the matrix's, the gRPC peers grpcio, grpc-go, grpc-cpp only when a gRPC "
                         "scenario runs, the HTTP/3 peers caddy, hypercorn-h3 only when an HTTP/3 one does; --hosting: "
                         f"its own): {','.join(servers)}")
    ap.add_argument("--hosting", action="store_true",
                    help="the hosting comparison (bench/hosting.py): the same FastAPI app under uvicorn, Hypercorn, "
                         "Granian and CovetPy (hosted, shim), the same Flask app under gunicorn, Granian and CovetPy; "
                         f"scenarios {','.join(HOSTING_SCENARIOS)} unless --scenarios; implies --no-docs")
    ap.add_argument("--overhead", action="store_true",
                    help="observability overhead (bench/overhead.py): CovetPy native and Python with metrics and "
                         "tracing off, metrics on, tracing at 1 %% and 100 %%; CPU per request and the cost of each; "
                         f"scenarios {','.join(OVERHEAD_SCENARIOS)} unless --scenarios; implies --no-docs")
    ap.add_argument("--skip-servers", default="", help="comma list of servers to leave out")
    ap.add_argument("--scenarios", default=None,
                    help="comma list (default all; --quick: a subset without the TLS, HTTP/2, HTTP/3, WebSocket and "
                         f"gRPC ones): {','.join(scenarios)}")
    ap.add_argument("--duration", type=int, default=None, help="timed run, whole seconds (default 2, --quick 1)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up before each timed run, s (default 1)")
    ap.add_argument("--runs", type=int, default=None, help="rounds (repetitions) per pair (default 3, --quick 1)")
    ap.add_argument("--cold-starts", type=int, default=None, help="launches per server for cold start (default 3)")
    ap.add_argument("--h3-load", choices=("h3bench", "h3load"), default="h3bench",
                    help="the HTTP/3 scenarios' load generator: h3bench (C++, ngtcp2 + nghttp3; default) or h3load "
                         "(Go, quic-go: ~13K req/s on one core). h3load -check stays the correctness gate either way")
    ap.add_argument("--tls-runs", type=int, default=None,
                    help="rounds of the TLS, HTTP/2 and HTTP/3 scenarios (https-plaintext, h2-plaintext, "
                         "h2c-plaintext, h3-plaintext, h3-download; default 2, at most --runs): they run in the first "
                         "N rounds only")
    ap.add_argument("--ws-runs", type=int, default=None,
                    help="rounds of the WebSocket scenarios (ws-echo, ws-broadcast; default 1, at most --runs; not in "
                         "--quick unless named): they run in the first N rounds only, on an instance of their own")
    ap.add_argument("--ws-window", type=int, default=None,
                    help="ws-broadcast: messages the publisher may have out before every subscriber has the oldest "
                         "(default 16; 1 = lockstep: message k+1 only once every subscriber has message k)")
    ap.add_argument("--connections", type=int, default=64, help="connections of the basic scenarios (default 64)")
    ap.add_argument("--keepalive", default="1000,10000", help="connection counts of the keep-alive scenarios")
    ap.add_argument("--rate", type=int, default=2000, help="open-loop request rate, req/s in total (default 2000)")
    ap.add_argument("--server-cpus", default="0", help="taskset list for servers (default 0)")
    ap.add_argument("--client-cpus", default="1", help="taskset list for wrk/h2load (default 1); one thread per CPU")
    ap.add_argument("--workers", type=int, default=1, help="worker processes/threads per server (default 1)")
    ap.add_argument("--quick", action="store_true", help="1 round of 1 s, fewer scenarios: under 5 minutes")
    ap.add_argument("--no-install", action="store_true", help="do not install/build peers; exclude missing ones")
    ap.add_argument("--covet-venv", choices=("auto", "fresh"), default="auto",
                    help="auto: reuse .venv when it has a complete covet (else fresh); fresh: pip install the repo "
                         "into bench/.venv-covet")
    ap.add_argument("--native-binary", default=None, help="CovetPy native hello binary")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--docs", default=str(DEFAULT_DOCS))
    ap.add_argument("--chart", default=str(DEFAULT_CHART))
    ap.add_argument("--no-docs", action="store_true", help="write bench/results only")
    ap.add_argument("--quiet-file", default=str(QUIET_FILE),
                    help="while this file exists, wait before any load run (another measurement is going on)")
    ap.add_argument("--render", metavar="JSON", help="re-render .md/docs/chart from a saved result, measuring nothing")
    return ap


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The options, with the defaults (or --quick's) filled in, plus ``scenario_list`` (Scenario objects),
    ``server_list`` (names, --skip-servers removed) and ``client_threads`` (one wrk/h2load thread per client CPU)."""
    specs = all_specs()
    ap = _parser(list(specs), list(build_scenarios()))
    args = ap.parse_args(argv)
    for k, v in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.tls_runs = max(1, min(args.tls_runs, args.runs))
    args.ws_runs = max(1, min(args.ws_runs, args.runs))
    if args.ws_window is not None and not 1 <= args.ws_window < 65536:
        ap.error("--ws-window must be in 1..65535")
    all_sc = build_scenarios(args.connections, tuple(int(x) for x in args.keepalive.split(",") if x),
                             **({"ws_window": args.ws_window} if args.ws_window else {}))
    if args.hosting:
        args.no_docs = True  # docs/benchmarks.md's matrix section is the matrix's own (the hosting one: by hand)
        args.servers = args.servers or ",".join(HOSTING_SERVERS)
        args.scenarios = args.scenarios or ",".join(HOSTING_SCENARIOS)
    if args.overhead:
        if args.hosting:
            ap.error("--overhead and --hosting are separate runs: choose one")
        args.no_docs = True  # docs/benchmarks.md's "Observability overhead" section is written by hand
        args.servers = args.servers or ",".join(OVERHEAD_SERVERS)
        args.scenarios = args.scenarios or ",".join(OVERHEAD_SCENARIOS)
    if args.scenarios:
        names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        unknown = [n for n in names if n not in all_sc]
        if unknown:
            ap.error(f"unknown scenarios {unknown}; known: {list(all_sc)}")
    else:
        names = [n for n, s in all_sc.items() if s.quick or not args.quick]
    args.scenario_list = [all_sc[n] for n in names]
    # the default servers: the matrix's own (not the hosting/overhead ones), the gRPC peers when a gRPC scenario runs,
    # the HTTP/3 peers when an HTTP/3 one does
    grpc = any(s.is_grpc for s in args.scenario_list)
    h3 = any(s.is_h3 for s in args.scenario_list)
    args.servers = args.servers or ",".join(n for n, spec in specs.items()
                                            if (n == "fastapi" or n not in HOSTING_SERVERS)
                                            and n not in OVERHEAD_SERVERS and (spec.serves_http or grpc)
                                            and (h3 or not spec.h3_peer))
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    skip = {s.strip() for s in args.skip_servers.split(",") if s.strip()}
    unknown = [s for s in servers + list(skip) if s not in specs]
    if unknown:
        ap.error(f"unknown servers {unknown}; known: {list(specs)}")
    args.server_list = [s for s in servers if s not in skip]
    args.client_threads = len(parse_cpu_list(args.client_cpus))
    parse_cpu_list(args.server_cpus)
    return args
