"""The ``covet`` command: ``covet run module:app --host H --port N --workers auto|N --threads N --reload``, and
``covet reload`` (a rolling restart of a running master, followed until the new generation serves or fails).

Every engine limit and timeout has a flag and an environment variable ``COVET_<FLAG>`` (a flag beats the
variable); the common uvicorn flags are accepted with the same meaning, or refused with one line naming the
CovetPy equivalent (exit code 2). docs/operations.md lists them all with their defaults.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from typing import Any, Optional

from covet.tls import TransportOptions
from covet.utils import check_root_path

from .appspec import import_app
from .control import ReloadError, find_state_file, lone_process_files, read_pid_file, reload_master
from .engine import native_module
from .hosted import INTERFACES, HostingError, detect_interface, hosted, is_served_app
from .log_levels import describe, levels_path, validate_level, write_levels
from .ops import OpsOptions
from .options import (
    ENGINE_OPTIONS,
    LOG_FORMATS,
    EngineOption,
    UsageError,
    check_engine_supports,
    engine_options,
    log_format,
    parse_duration_ms,
    parse_size,
)
from .serve import alone_signals, exit_on_listen_error, serve_worker
from .supervisor import START_TIMEOUT, Recycling, Supervisor, WorkerOptions, ensure_metrics_dir, resolve_workers

LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "critical")
LOOPS = ("auto", "asyncio", "uvloop")

log = logging.getLogger("covet.cli")


# ---- application and environment -----------------------------------------------------------------------

def load_app(spec: str, app_dir: str = ".", factory: bool = False) -> Any:
    """`import_app` for ``covet run`` (a fault exits with its message); with `factory`, calls it and returns the
    result."""
    try:
        obj = import_app(spec, app_dir)
    except UsageError as e:
        raise SystemExit(f"covet: {e}") from None
    if factory:
        if not callable(obj):
            raise SystemExit(f"covet: --factory: {spec} is not callable (drop --factory if it is the app itself)")
        obj = obj()
    return obj


_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*$")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def parse_env_file(text: str, environ: Optional[dict[str, str]] = None) -> dict[str, str]:
    """``KEY=VALUE`` lines as python-dotenv reads them: ``export`` prefixes, ``#`` comments, single quotes
    (literal), double quotes (``\\n``-style escapes), and ``${VAR}`` / ``${VAR:-default}`` expansion in
    unquoted and double-quoted values (from the keys above, then the environment)."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}

    def expand(value: str) -> str:
        return _ENV_REF.sub(lambda m: out.get(m.group(1), env.get(m.group(1), m.group(2) or "")), value)

    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _ENV_LINE.match(line)
        if m is None:
            raise ValueError(f"line {number} is not KEY=VALUE: {line.strip()!r}")
        key, raw = m.groups()
        if raw[:1] == "'" and raw.find("'", 1) > 0:
            value = raw[1:raw.find("'", 1)]
        elif raw[:1] == '"':
            end, chars = 1, []
            while end < len(raw) and raw[end] != '"':
                if raw[end] == "\\" and end + 1 < len(raw):
                    end += 1
                    chars.append({"n": "\n", "t": "\t", "r": "\r"}.get(raw[end], raw[end]))
                else:
                    chars.append(raw[end])
                end += 1
            value = expand("".join(chars))
        else:
            value = expand(re.split(r"\s+#", raw, maxsplit=1)[0].strip())
        out[key] = value
    return out


def load_env_file(path: str) -> None:
    """Adds the file's variables to os.environ; variables already set keep their value (as uvicorn)."""
    try:
        with open(path, encoding="utf-8") as f:
            values = parse_env_file(f.read())
    except OSError as e:
        raise UsageError(f"--env-file {path}: {e.strerror}") from None
    except ValueError as e:
        raise UsageError(f"--env-file {path}: {e}") from None
    for key, value in values.items():
        os.environ.setdefault(key, value)


def apply_log_config(path: str) -> None:
    """uvicorn's --log-config: logging.config.dictConfig from .json/.yaml/.yml, fileConfig from others (.ini)."""
    import logging.config  # deferred: only --log-config needs it

    try:
        if path.endswith(".json"):
            import json  # deferred: only a .json --log-config needs it

            with open(path, encoding="utf-8") as f:
                logging.config.dictConfig(json.load(f))
        elif path.endswith((".yaml", ".yml")):
            try:
                import yaml  # type: ignore[import-untyped]  # optional (PyYAML), only for a .yaml --log-config
            except ImportError:
                raise UsageError(f"--log-config {path}: YAML needs PyYAML (pip install pyyaml), or use .json/.ini") \
                    from None
            with open(path, encoding="utf-8") as f:
                logging.config.dictConfig(yaml.safe_load(f))
        else:
            if not os.path.isfile(path):
                raise FileNotFoundError(2, "No such file or directory")
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except UsageError:
        raise
    except OSError as e:
        raise UsageError(f"--log-config {path}: {e.strerror}") from None
    except Exception as e:
        raise UsageError(f"--log-config {path}: not a valid logging configuration: {e}") from None


# ---- the parser -----------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="covet", description="CovetPy: serve an app on the native engine",
                                epilog="Every limit can also be set by COVET_<FLAG> (e.g. COVET_LIMIT_MAX_BODY=10M); "
                                       "the flag wins. See docs/operations.md.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("app", help="the application, as module:attribute (e.g. main:app)")
        sp.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; env COVET_HOST)")
        sp.add_argument("--port", default=None, help="port (default 8000; 0 picks a free one; env COVET_PORT)")
        sp.add_argument("--threads", type=int, default=0,
                        help="native I/O threads per worker process (0, the default: the engine runs on the "
                             "event-loop thread when io_uring is available)")
        sp.add_argument("--log-level", default=None, choices=LOG_LEVELS, help="default: info")
        sp.add_argument("--log-config", help="logging configuration file (.json, .yaml or .ini), as uvicorn")
        sp.add_argument("--log-format", default=None, choices=LOG_FORMATS,
                        help="text (default) or json: one JSON object per line for every log record and the access "
                             "log, with the request's trace_id/span_id/request_id (env COVET_LOG_FORMAT)")
        sp.add_argument("--app-dir", default=".", help="directory to import the app from (default: .)")
        sp.add_argument("--factory", action="store_true", help="APP is a function returning the app")
        sp.add_argument("--compat", choices=("fastapi", "starlette"), default=None,
                        help="serve an unchanged FastAPI app on CovetPy's own classes: its fastapi/starlette "
                             "imports give covet's (covet.compat; both names install the same shim)")
        sp.add_argument("--root-path", default=None, metavar="PATH",
                        help="the path prefix a proxy in front strips (e.g. /api/v1), as uvicorn's: requests see it "
                             "in request.root_path, url and url_for (env COVET_ROOT_PATH)")
        sp.add_argument("--loop", choices=LOOPS, default="auto",
                        help="event loop: uvloop if installed (auto, the default), asyncio, or uvloop")
        sp.add_argument("--interface", choices=INTERFACES, default="auto",
                        help="how APP is served: a CovetPy app (covet), an ASGI 3 application (asgi3: Starlette, "
                             "FastAPI, Django's ASGIHandler ...) or a WSGI one (wsgi: Flask, Django ...); auto, the "
                             "default, detects it")
        sp.add_argument("--wsgi-threads", type=int, default=None, metavar="N",
                        help="threads running a hosted WSGI app's requests, per worker process (default 4; 0 runs the "
                             "app on the event-loop thread, one request at a time: the cheapest per request, for "
                             "apps that never block)")
        limits = sp.add_argument_group("limits and timeouts (sizes: 512K, 10M, 1G; times: seconds, 500ms)")
        for o in ENGINE_OPTIONS:
            limits.add_argument(o.flag, dest=o.kwarg, default=None, metavar="N",
                                help=f"{o.help} (default {_default_text(o)}; env {o.env})")
        limits.add_argument("--limit-concurrency", type=int, default=None, metavar="N",
                            help="requests in Python handlers at once per worker; more get 503 (default: no limit)")
        limits.add_argument("--limit-max-requests", "--max-requests", type=int, default=None, metavar="N",
                            help="replace a worker after it has handled N requests (default: never; "
                                 "--max-requests is gunicorn's name for it)")
        tls = sp.add_argument_group("TLS, HTTP/2 and HTTP/3 (SIGHUP reloads the certificate files)")
        tls.add_argument("--ssl-certfile", help="PEM certificate (chain): serve HTTPS")
        tls.add_argument("--ssl-keyfile", help="PEM private key of --ssl-certfile")
        tls.add_argument("--ssl-ca-certs", help="CA bundle for client certificates (mTLS)")
        tls.add_argument("--ssl-cert-reqs", choices=("none", "optional", "required", "0", "1", "2"),
                         help="client certificates: required by default when --ssl-ca-certs is given")
        tls.add_argument("--ssl-ciphers", default="", help="TLS 1.2 cipher list (default: ECDHE with AEAD only)")
        tls.add_argument("--http2", action=argparse.BooleanOptionalAction, default=True,
                         help="HTTP/2: h2 by ALPN on TLS, h2c on plain ports (default: on)")
        tls.add_argument("--http3", action=argparse.BooleanOptionalAction, default=False,
                         help="HTTP/3 over QUIC on the same port number (UDP), advertised by Alt-Svc; needs "
                              "--ssl-certfile (default: off)")
        proxy = sp.add_argument_group("behind a proxy")
        proxy.add_argument("--proxy-headers", action=argparse.BooleanOptionalAction, default=True,
                           help="take the client address and scheme from X-Forwarded-For and X-Forwarded-Proto "
                                "when the peer is one of --forwarded-allow-ips (default: on, as uvicorn)")
        proxy.add_argument("--forwarded-allow-ips", default=None, metavar="IPS",
                           help="the proxies whose X-Forwarded-* headers count: comma-separated IP addresses and "
                                "networks (10.0.0.0/8), or '*' for any peer (default 127.0.0.1; env "
                                "FORWARDED_ALLOW_IPS)")
        proxy.add_argument("--proxy-protocol", default=None, metavar="IPS",
                           help="PROXY protocol v1/v2 from these load balancers (comma-separated addresses and "
                                "networks): their connections must start with a PROXY header, whose client address "
                                "becomes the peer; other peers are served as usual (default: off)")

    run = sub.add_parser("run", help="serve an app")
    common(run)
    run.add_argument("--workers", default=None,
                     help="worker processes: a number or 'auto' (one per CPU); default 1 (served in this process "
                          "unless --supervise); env COVET_WORKERS")
    run.add_argument("--supervise", action="store_true", default=None,
                     help="a master process even with one worker: it restarts a crashed worker, and SIGHUP, "
                          "SIGUSR2 and `covet reload` restart it without dropping a connection (implied by --workers 2 "
                          "or more, --reload, --max-requests, --max-rss and --max-lifetime; default: --workers 1 "
                          "serves in the `covet run` process itself; env COVET_SUPERVISE=1)")
    run.add_argument("--reload", action="store_true", help="restart workers when .py files change")
    run.add_argument("--reload-dir", action="append", dest="reload_dirs", help="directory to watch (repeatable)")
    run.add_argument("--env-file", help="KEY=VALUE file loaded into the environment before the app is imported")
    run.add_argument("--pid-file", default=None, metavar="PATH",
                     help="write the master's process id here (removed at exit); `covet reload --pid-file PATH` "
                          "finds it there (env COVET_PID_FILE)")
    recycle = run.add_argument_group("replacing workers (rolling, one at a time, nothing dropped)")
    recycle.add_argument("--max-rss", default=None, metavar="MB",
                         help="replace a worker whose resident memory exceeds MB mebibytes (or 512M, 2G), read from "
                              "/proc by the master every second (env COVET_MAX_RSS; default: never)")
    recycle.add_argument("--max-lifetime", default=None, metavar="S",
                         help="replace a worker after S seconds (or 30m, 12h) plus a random jitter (env "
                              "COVET_MAX_LIFETIME; default: never)")
    recycle.add_argument("--max-lifetime-jitter", default=None, metavar="S",
                         help="the most --max-lifetime is extended per worker, at random, so that workers started "
                              "together do not restart together (default: a tenth of --max-lifetime)")
    ops = run.add_argument_group("metrics and probes (GET /_metrics, /_health, /_ready; answered by the engine)")
    ops.add_argument("--metrics", action="store_true", default=None,
                     help="serve /_metrics, /_health and /_ready on the app's port (env COVET_METRICS=1)")
    ops.add_argument("--ops-port", type=int, default=None, metavar="N",
                     help="serve them on a separate listener instead (env COVET_OPS_PORT)")
    ops.add_argument("--ops-host", default=None, metavar="H",
                     help="the address of --ops-port (default 127.0.0.1; env COVET_OPS_HOST)")
    ops.add_argument("--metrics-token", default=None, metavar="T",
                     help="require 'Authorization: Bearer T' on /_metrics (env COVET_METRICS_TOKEN)")
    ops.add_argument("--drain-delay", default=None, metavar="S",
                     help="on SIGTERM, /_ready answers 503 for S seconds before the listeners close "
                          "(env COVET_DRAIN_DELAY; default 0)")
    ops.add_argument("--health-stall", default=None, metavar="S",
                     help="/_health answers 503 once the worker's event loop (or an engine loop) has not turned "
                          "for S seconds: a handler blocking it (env COVET_HEALTH_STALL; default 30; 0: off)")
    uv = run.add_argument_group("uvicorn compatibility (accepted with the same meaning, or refused with the "
                                "CovetPy equivalent)")
    uv.add_argument("--http", choices=("auto", "h11", "httptools"), help="ignored: the engine parses HTTP")
    uv.add_argument("--ws", choices=("auto", "none", "websockets", "websockets-sansio", "wsproto"),
                    help="ignored: the engine speaks WebSocket ('none' is refused)")
    uv.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=None,
                    help="the engine's access log on stderr, one line per response, in --log-format (default: off; "
                         "env COVET_ACCESS_LOG=1)")

    # covet.compare (and what it imports) is loaded only to run it: every `covet run` and worker builds this parser.
    cmp = sub.add_parser("compare", help="the app under uvicorn and CovetPy: same answers? how fast?")
    cmp.add_argument("app", help="the application, as module:attribute (e.g. main:app)")
    cmp.add_argument("--app-dir", default=".", help="directory to import the app from (default: .)")
    cmp.add_argument("--urls", metavar="FILE",
                     help="paths to compare and load, one per line (default: the GET routes without required "
                          "parameters in the app's /openapi.json)")
    cmp.add_argument("--duration", type=float, default=3.0, metavar="S",
                     help="seconds of load per route and server (default 3; 0: compare responses only)")
    cmp.add_argument("--connections", type=int, default=32, metavar="N", help="concurrent connections (default 32)")
    cmp.add_argument("--servers", default=None,
                     help="which of uvicorn,covet-hosted,covet-compat,covet to run (default: all that apply)")
    cmp.add_argument("--load-tool", choices=("auto", "wrk", "loadtester"), default="auto",
                     help="wrk when installed (auto), or covet.loadtest.LoadTester")
    cmp.add_argument("--json", action="store_true", help="print the report as JSON")
    migrate = sub.add_parser("migrate", help="rewrite a FastAPI/Starlette code base's imports to CovetPy's "
                                             "(needs libcst: pip install 'covetpy[migrate]'; docs/migration.md)")
    migrate.add_argument("paths", nargs="+", metavar="PATH", help="a .py file or a directory (walked for *.py)")
    migrate.add_argument("--check", action="store_true",
                         help="write nothing; exit 1 when a file would change or a name cannot be mapped (CI)")
    migrate.add_argument("--diff", action="store_true", help="write nothing; print a unified diff of each rewrite")

    rl = sub.add_parser("reload", help="rolling restart of a running `covet run` (new code, same flags): prints "
                                       "when the new generation serves, or why it failed",
                        description="Sends the master SIGUSR2 (a rolling restart, with or without TLS) and follows it: "
                                    "exit 0 once the new generation serves, 1 if it failed (the old one keeps "
                                    "serving) or could not be followed.")
    rl.add_argument("pid", nargs="?", type=int, default=None, help="the master's process id")
    rl.add_argument("--pid-file", default=None, metavar="PATH",
                    help="read the master's pid from here (`covet run --pid-file`; env COVET_PID_FILE)")
    rl.add_argument("--timeout", type=float, default=START_TIMEOUT + 30, metavar="S",
                    help=f"give up after S seconds (default {START_TIMEOUT + 30:.0f}: the master gives a new "
                         f"generation {START_TIMEOUT:.0f} s)")

    ll = sub.add_parser("log-level", help="change log levels of a running `covet run` group, without a restart",
                        description="Sets LEVEL on each LOGGER (a logging name such as myapp.db; none: the root "
                                    "logger; covet.engine: the native engine's, which also takes trace) in the master "
                                    "and every worker of a running `covet run`, within a second; workers started "
                                    "later (restarts, reloads) take it too. Levels set earlier are kept.")
    ll.add_argument("level", metavar="LEVEL", help="debug, info, warning, error or critical")
    ll.add_argument("loggers", nargs="*", metavar="LOGGER", help="logger names (default: the root logger)")
    ll.add_argument("--pid", type=int, default=None, help="the master's process id")
    ll.add_argument("--pid-file", default=None, metavar="PATH",
                    help="read the master's pid from here (`covet run --pid-file`; env COVET_PID_FILE)")

    worker = sub.add_parser("_worker", help=argparse.SUPPRESS)  # one worker process, started by `run`
    common(worker)
    worker.add_argument("--listen-fd", type=int, default=-1, help=argparse.SUPPRESS)  # the master's socket
    worker.add_argument("--ready-fd", type=int, default=-1, help=argparse.SUPPRESS)   # "ready\n" goes here
    worker.add_argument("--ops-listen-fd", type=int, default=-1, help=argparse.SUPPRESS)  # the master's ops socket
    # The master's HTTP/3 sockets for this worker (covet.server.quic_group): descriptors, ID base and tag.
    worker.add_argument("--http3-fds", default="", help=argparse.SUPPRESS)
    worker.add_argument("--http3-cid-base", type=int, default=0, help=argparse.SUPPRESS)
    worker.add_argument("--http3-cid-tag", type=int, default=0, help=argparse.SUPPRESS)
    return p


def _default_text(option: EngineOption) -> str:
    """The engine's default for `option`, as ``--help`` shows it (read from the engine's own config)."""
    try:
        return option.describe(option.default(native_module()))
    except ImportError:  # --help works without the compiled engine; running does not
        return "the engine's"


def _configure_logging(level: str, configured: bool) -> None:
    if configured:  # --log-config set up the handlers; only the level of covet's loggers is ours
        return
    py_level = logging.DEBUG if level in ("trace", "debug") else getattr(logging, level.upper())
    logging.basicConfig(level=py_level, format="[%(asctime)s] [%(levelname)s] %(name)s: %(message)s")


def _transport(args: argparse.Namespace) -> TransportOptions:
    reqs = args.ssl_cert_reqs
    opts = TransportOptions(ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
                            ssl_ca_certs=args.ssl_ca_certs,
                            ssl_cert_reqs=int(reqs) if reqs and reqs.isdigit() else reqs,
                            ssl_ciphers=args.ssl_ciphers, http2=args.http2, http3=args.http3,
                            proxy_headers=args.proxy_headers,
                            forwarded_allow_ips=args.forwarded_allow_ips, proxy_protocol=args.proxy_protocol,
                            http3_sockets=tuple(int(fd) for fd in getattr(args, "http3_fds", "").split(",") if fd),
                            http3_cid_base=getattr(args, "http3_cid_base", 0),
                            http3_cid_tag=getattr(args, "http3_cid_tag", 0))
    try:
        opts.validate()
    except ValueError as e:
        raise SystemExit(f"covet: {e}") from None
    return opts


def _check_forwarded_allow_ips(transport: TransportOptions) -> None:
    """A bad --forwarded-allow-ips (or FORWARDED_ALLOW_IPS) or --proxy-protocol stops `covet run` once, before any
    worker starts."""
    parse = getattr(native_module(), "TrustedProxies", None)  # a stand-in engine (tests) may have none
    if parse is None:
        return
    if transport.proxy_protocol:
        try:
            parse(transport.proxy_protocol)
        except ValueError as e:
            raise UsageError(f"--proxy-protocol: {str(e).removeprefix('forwarded_allow_ips: ')}") from None
    if not transport.proxy_headers:
        return
    source = "--forwarded-allow-ips" if transport.forwarded_allow_ips is not None else \
        "FORWARDED_ALLOW_IPS (environment)"
    try:
        parse(transport.trusted_proxies())
    except ValueError as e:  # "forwarded_allow_ips: 'x' is not ...": the flag's name instead
        raise UsageError(f"{source}: {str(e).removeprefix('forwarded_allow_ips: ')}") from None


def _from_env(value: Optional[str], env: str, default: str) -> str:
    if value is not None:
        return value
    return os.environ.get(env, "").strip() or default


def _address(args: argparse.Namespace) -> tuple[str, int]:
    host = _from_env(args.host, "COVET_HOST", "127.0.0.1")
    port_text = _from_env(args.port, "COVET_PORT", "8000")
    source = "--port" if args.port is not None else "COVET_PORT (environment)"
    if not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"{source}: expected a port number from 0 to 65535, not {port_text!r}")
    return host, int(port_text)


def _root_path(args: argparse.Namespace) -> str:
    source = "--root-path" if args.root_path is not None else "COVET_ROOT_PATH (environment)"
    try:
        return check_root_path(_from_env(args.root_path, "COVET_ROOT_PATH", ""), source)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _refuse_unsupported_uvicorn_flags(args: argparse.Namespace) -> None:
    """uvicorn flags CovetPy cannot honour: one line naming what to do instead."""
    if args.ws == "none":
        raise UsageError("--ws none: the engine serves the app's WebSocket routes; remove them from the app "
                         "instead, or drop the flag")
    if args.http:
        log.debug("--http %s ignored: the native engine parses HTTP", args.http)
    if args.ws:
        log.debug("--ws %s ignored: the native engine speaks WebSocket", args.ws)


def _export_ops_options(args: argparse.Namespace) -> None:
    """--metrics, --ops-port, --ops-host, --metrics-token, --drain-delay, --health-stall: the worker processes read
    them from the environment (covet.server.ops)."""
    given: dict[str, object] = {}
    if args.metrics:
        given["metrics"] = True
    for name in ("ops_port", "ops_host", "metrics_token"):
        if getattr(args, name) is not None:
            given[name] = getattr(args, name)
    if args.drain_delay is not None:
        try:
            given["drain_delay"] = parse_duration_ms(args.drain_delay) / 1000
        except ValueError as e:
            raise UsageError(f"--drain-delay: {e}") from None
    if args.health_stall is not None:
        try:
            given["health_stall"] = parse_duration_ms(args.health_stall) / 1000
        except ValueError as e:
            raise UsageError(f"--health-stall: {e}") from None
    try:
        OpsOptions.take(given).export()
    except ValueError as e:
        raise UsageError(str(e)) from None
    ensure_metrics_dir()  # before the app is imported here: its metrics and the master's land in the group's files


def _check_loop(loop: str) -> None:
    if loop == "uvloop":
        try:
            import uvloop  # noqa: F401  # optional (the `speed` extra): only checked for --loop uvloop
        except ImportError:
            raise UsageError("--loop uvloop: uvloop is not installed (pip install uvloop), or use --loop asyncio") \
                from None


def _hosted(app: Any, args: argparse.Namespace) -> Any:
    """The loaded app as the worker serves it (covet.server.hosted): a CovetPy app, or an ASGI/WSGI app hosted."""
    try:
        return hosted(app, args.interface, args.wsgi_threads)
    except HostingError as e:
        raise SystemExit(f"covet: {args.app}: {e}") from None


def _check_interface(app: Any, args: argparse.Namespace) -> None:
    """What `_hosted` would refuse, checked in the master without building the host."""
    try:
        kind = detect_interface(app) if args.interface == "auto" else args.interface
    except HostingError as e:
        raise SystemExit(f"covet: {args.app}: {e}") from None
    if kind == "covet" and not is_served_app(app):
        raise SystemExit(f"covet: {args.app}: --interface covet: this is not a CovetPy app (covet.CovetPy); drop "
                         "--interface to serve it as an ASGI or WSGI application")
    if kind != "wsgi" and args.wsgi_threads is not None:
        log.warning("--wsgi-threads is for WSGI apps; %s is served as %s", args.app, kind)


def _needs_master(args: argparse.Namespace, recycling: Recycling) -> bool:
    """Whether `covet run` with one worker still needs a master process: asked for, or a feature that replaces the
    worker while it serves (--reload, --max-requests, --max-rss, --max-lifetime)."""
    supervise = args.supervise or _from_env(None, "COVET_SUPERVISE", "0").lower() in ("1", "true", "yes", "on")
    return bool(supervise or args.reload or args.limit_max_requests is not None
                or recycling.max_rss is not None or recycling.max_lifetime is not None)


def _serve_here(args: argparse.Namespace, host: str, port: int, engine: dict[str, Any], transport: TransportOptions,
                root_path: str, log_level: str, **how: Any) -> int:
    """Imports the app and serves it in this process: a supervisor's worker (`how`: its sockets and pipe), or
    ``covet run --workers 1`` alone (``alone=True``: the engine binds host:port itself)."""
    check_engine_supports(engine, native_module())
    app = _hosted(load_app(args.app, args.app_dir, args.factory), args)
    with exit_on_listen_error():
        return serve_worker(app, host=host, port=port, threads=args.threads,
                            log_level=args.log_level if args.log_config else log_level, loop=args.loop,
                            limit_concurrency=args.limit_concurrency, limit_max_requests=args.limit_max_requests,
                            root_path=root_path, **how, **engine, **vars(transport))


def _migrate(args: argparse.Namespace) -> int:
    from covet.migrate import MigrateError, migrate  # deferred: only `covet migrate` needs it (and libcst)

    try:
        return migrate(args.paths, check=args.check, diff=args.diff)
    except MigrateError as e:
        raise UsageError(f"migrate: {e}") from None


def _parse_lifetime(text: str, source: str) -> float:
    """Seconds: ``3600``, ``90s``, ``30m``, ``12h``."""
    try:
        if text.strip().lower().endswith("h"):
            seconds = float(text.strip()[:-1]) * 3600
        else:
            seconds = parse_duration_ms(text) / 1000
    except ValueError:
        raise UsageError(f"{source}: expected seconds such as 3600, 90s, 30m or 12h, not {text!r}") from None
    return seconds


def _recycling(args: argparse.Namespace) -> Recycling:
    """--max-rss, --max-lifetime, --max-lifetime-jitter (and their COVET_* variables)."""
    rec = Recycling()
    rss = _from_env(args.max_rss, "COVET_MAX_RSS", "")
    if rss:
        source = "--max-rss" if args.max_rss is not None else "COVET_MAX_RSS (environment)"
        try:
            rec.max_rss = int(float(rss) * 2**20) if rss.replace(".", "", 1).isdigit() else parse_size(rss)
        except ValueError:
            raise UsageError(f"{source}: expected mebibytes such as 512, or a size such as 512M or 2G, "
                             f"not {rss!r}") from None
        if rec.max_rss <= 0:
            raise UsageError(f"{source} must be more than 0, not {rss!r}")
    lifetime = _from_env(args.max_lifetime, "COVET_MAX_LIFETIME", "")
    if lifetime:
        source = "--max-lifetime" if args.max_lifetime is not None else "COVET_MAX_LIFETIME (environment)"
        rec.max_lifetime = _parse_lifetime(lifetime, source)
        if rec.max_lifetime <= 0:
            raise UsageError(f"{source} must be more than 0 seconds, not {lifetime!r}")
    if args.max_lifetime_jitter is not None:
        if rec.max_lifetime is None:
            raise UsageError("--max-lifetime-jitter needs --max-lifetime")
        rec.lifetime_jitter = _parse_lifetime(args.max_lifetime_jitter, "--max-lifetime-jitter")
    return rec


def _master_pid(command: str, pid: Optional[int], pid_file_arg: Optional[str], lowest: int = 2) -> int:
    """The master's pid from a command's pid argument or --pid-file (or COVET_PID_FILE)."""
    pid_file = pid_file_arg or os.environ.get("COVET_PID_FILE", "").strip() or None
    if pid is not None and pid_file_arg:
        raise UsageError(f"{command}: give the pid or --pid-file, not both")
    if pid is None:
        if pid_file is None:
            raise UsageError(f"{command}: which master? give its pid, or --pid-file PATH (written by `covet run "
                             "--pid-file PATH`)")
        try:
            pid = read_pid_file(pid_file)
        except OSError as e:
            raise UsageError(f"{command}: --pid-file {pid_file}: {e.strerror} (is `covet run --pid-file` "
                             "running?)") from None
        except ValueError as e:
            raise UsageError(f"{command}: {e}") from None
    if pid < lowest:
        raise UsageError(f"{command}: {pid} is not a master's process id")
    return pid


def _log_level(args: argparse.Namespace) -> int:
    """`covet log-level LEVEL [LOGGER...] [--pid PID | --pid-file PATH]`."""
    pid = _master_pid("log-level", args.pid, args.pid_file, lowest=1)  # no signal: a container's pid 1 is fine
    names = args.loggers or [""]
    try:
        changes = {name: validate_level(args.level, name) for name in names}
    except ValueError as e:
        raise UsageError(f"log-level: {e}") from None
    state = find_state_file(pid)
    if state is None:
        print(f"covet log-level: no `covet run` master with pid {pid} (its state file was not found: is it running, "
              "and as this user?)", file=sys.stderr)
        return 1
    path = levels_path(os.path.dirname(state), pid)
    levels = write_levels(path, changes)
    print(f"covet log-level: {describe(changes)} for master {pid} and its workers, applied within a second "
          f"(all set: {describe(levels)})")
    return 0


def _reload(args: argparse.Namespace) -> int:
    """`covet reload [PID] [--pid-file PATH]`."""
    pid = _master_pid("reload", args.pid, args.pid_file)
    try:
        return reload_master(pid, args.timeout)
    except ReloadError as e:
        print(f"covet reload: {e}", file=sys.stderr)
        return 1


def main(argv: Optional[list[str]] = None) -> int:
    try:
        return _main(argv)
    except UsageError as e:
        print(f"covet: {e}", file=sys.stderr)
        return 2


def _main(argv: Optional[list[str]]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "compare":
        from covet import compare  # deferred: only `covet compare` needs it

        return compare.main(args)
    if args.command == "migrate":
        return _migrate(args)
    if args.command == "reload":
        return _reload(args)
    if args.command == "log-level":
        return _log_level(args)
    if args.command == "run":
        _refuse_unsupported_uvicorn_flags(args)
        if args.env_file:
            load_env_file(args.env_file)  # before COVET_* are read and before the app is imported
        _export_ops_options(args)
    if args.log_config:
        apply_log_config(args.log_config)
    log_level = args.log_level or "info"
    try:
        fmt = log_format(args.log_format)
    except ValueError as e:
        raise UsageError(str(e)) from None
    # Workers inherit both through the environment (they run `covet _worker`, which reads them again).
    os.environ["COVET_LOG_FORMAT"] = fmt
    if args.command == "run" and args.access_log is not None:
        os.environ["COVET_ACCESS_LOG"] = "1" if args.access_log else "0"
    if fmt == "json" and not args.log_config:
        from covet.logger import use_json_logs  # deferred: only JSON logs need it

        use_json_logs()
    _configure_logging(log_level, configured=bool(args.log_config))
    transport = _transport(args)
    host, port = _address(args)
    engine = engine_options(args)
    for name in ("limit_concurrency", "limit_max_requests"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    _check_loop(args.loop)
    root_path = _root_path(args)
    if args.compat and args.interface in ("asgi3", "wsgi"):
        raise UsageError(f"--compat {args.compat} serves the app as a CovetPy app, not --interface {args.interface}: "
                         "drop --interface, or drop --compat to serve the unchanged app on the real framework")
    if args.compat:
        import covet.compat  # deferred: only --compat needs it; installed before the app is imported

        covet.compat.install(args.compat)
    if args.wsgi_threads is not None and args.wsgi_threads < 0:
        raise UsageError(f"--wsgi-threads must be 0 (the app on the loop thread) or more, not {args.wsgi_threads}")
    if args.command == "_worker":
        listen: dict[str, object] = {"listen_fd": args.listen_fd} if args.listen_fd >= 0 else {"shared_port": True}
        if args.ops_listen_fd >= 0:
            listen["ops_listen_fd"] = args.ops_listen_fd  # covet.server.ops adopts it for --ops-port
        return _serve_here(args, host, port, engine, transport, root_path, log_level, ready_fd=args.ready_fd, **listen)
    workers_text = _from_env(args.workers, "COVET_WORKERS", "1")
    try:
        workers = resolve_workers(workers_text)
    except ValueError:
        source = "--workers" if args.workers is not None else "COVET_WORKERS (environment)"
        raise UsageError(f"{source}: expected 'auto' or a positive number of processes, not {workers_text!r}") \
            from None
    recycling = _recycling(args)
    os.environ["COVET_WORKERS"] = str(workers)  # the workers inherit it (a WSGI app's wsgi.multiprocess)
    pid_file = _from_env(args.pid_file, "COVET_PID_FILE", "") or None
    if workers == 1 and not _needs_master(args, recycling):
        # One worker and nothing only a master does: serve here (as uvicorn), half the memory and start-up time.
        _check_forwarded_allow_ips(transport)
        with alone_signals(), lone_process_files(pid_file):
            return _serve_here(args, host, port, engine, transport, root_path, log_level, alone=True)
    # Fail here, once, with a clear message, not in every worker.
    _check_interface(load_app(args.app, args.app_dir, args.factory), args)
    check_engine_supports(engine, native_module())
    _check_forwarded_allow_ips(transport)
    max_connections = engine.pop("max_connections", None)
    opts = WorkerOptions(app=args.app, host=host, port=port, threads=args.threads, log_level=args.log_level,
                         app_dir=args.app_dir, max_connections=max_connections, transport=transport,
                         engine=engine, loop=args.loop, log_config=args.log_config, factory=args.factory,
                         limit_concurrency=args.limit_concurrency, limit_max_requests=args.limit_max_requests,
                         root_path=root_path, interface=args.interface, wsgi_threads=args.wsgi_threads,
                         compat=args.compat)
    return Supervisor(opts, workers, reload=args.reload, reload_dirs=args.reload_dirs, recycling=recycling,
                      pid_file=pid_file).run()


if __name__ == "__main__":
    sys.exit(main())
