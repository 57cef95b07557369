"""The ``covet`` command: ``covet run module:app --host H --port N --workers auto|N --threads N --reload``."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tls import TransportOptions

LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "critical")


def load_app(spec: str, app_dir: str = "."):
    """Imports ``module:attribute`` (attribute may be dotted) with ``app_dir`` first on sys.path."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(f"covet: expected APP as 'module:attribute' (e.g. 'main:app'), got {spec!r}")
    path = os.path.abspath(app_dir)
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise SystemExit(f"covet: cannot import module {module_name!r}: {e}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SystemExit(f"covet: module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="covet", description="CovetPy: serve an app on the native engine")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("app", help="the application, as module:attribute (e.g. main:app)")
        sp.add_argument("--host", default="127.0.0.1")
        sp.add_argument("--port", type=int, default=8000)
        sp.add_argument("--threads", type=int, default=0,
                        help="native I/O threads per worker process (0, the default: the engine runs on the "
                             "event-loop thread when io_uring is available)")
        sp.add_argument("--max-connections", type=int, default=10000,
                        help="open connections per worker process (default 10000); more wait in the backlog")
        sp.add_argument("--log-level", default="info", choices=LOG_LEVELS)
        sp.add_argument("--app-dir", default=".", help="directory to import the app from (default: .)")
        tls = sp.add_argument_group("TLS and HTTP/2 (SIGHUP reloads the certificate files)")
        tls.add_argument("--ssl-certfile", help="PEM certificate (chain): serve HTTPS")
        tls.add_argument("--ssl-keyfile", help="PEM private key of --ssl-certfile")
        tls.add_argument("--ssl-ca-certs", help="CA bundle for client certificates (mTLS)")
        tls.add_argument("--ssl-cert-reqs", choices=("none", "optional", "required", "0", "1", "2"),
                         help="client certificates: required by default when --ssl-ca-certs is given")
        tls.add_argument("--ssl-ciphers", default="", help="TLS 1.2 cipher list (default: ECDHE with AEAD only)")
        tls.add_argument("--http2", action=argparse.BooleanOptionalAction, default=True,
                         help="HTTP/2: h2 by ALPN on TLS, h2c on plain ports (default: on)")

    run = sub.add_parser("run", help="serve an app")
    common(run)
    run.add_argument("--workers", default="1", help="worker processes: a number or 'auto' (one per CPU)")
    run.add_argument("--reload", action="store_true", help="restart workers when .py files change")
    run.add_argument("--reload-dir", action="append", dest="reload_dirs", help="directory to watch (repeatable)")

    worker = sub.add_parser("_worker", help=argparse.SUPPRESS)  # one worker process, started by `run`
    common(worker)
    return p


def _configure_logging(level: str) -> None:
    py_level = logging.DEBUG if level in ("trace", "debug") else getattr(logging, level.upper())
    logging.basicConfig(level=py_level, format="[%(asctime)s] [%(levelname)s] %(name)s: %(message)s")


def _transport(args: argparse.Namespace) -> "TransportOptions":
    from .tls import TransportOptions

    reqs = args.ssl_cert_reqs
    opts = TransportOptions(ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
                            ssl_ca_certs=args.ssl_ca_certs, ssl_cert_reqs=int(reqs) if reqs and reqs.isdigit() else reqs,
                            ssl_ciphers=args.ssl_ciphers, http2=args.http2)
    try:
        opts.validate()
    except ValueError as e:
        raise SystemExit(f"covet: {e}") from None
    return opts


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    transport = _transport(args)
    _configure_logging(args.log_level)
    if args.max_connections < 1:
        raise SystemExit(f"covet: --max-connections must be at least 1, not {args.max_connections}")
    if args.command == "_worker":
        from .serve import exit_on_listen_error, serve_worker
        app = load_app(args.app, args.app_dir)
        with exit_on_listen_error():
            return serve_worker(app, host=args.host, port=args.port, threads=args.threads,
                                log_level=args.log_level, shared_port=True, max_connections=args.max_connections,
                                **vars(transport))
    from .supervisor import Supervisor, WorkerOptions, resolve_workers  # the master only, not every worker

    workers = resolve_workers(args.workers)
    load_app(args.app, args.app_dir)  # fail here, once, with a clear message, rather than in every worker
    opts = WorkerOptions(app=args.app, host=args.host, port=args.port, threads=args.threads,
                         log_level=args.log_level, app_dir=args.app_dir, max_connections=args.max_connections,
                         transport=transport)
    return Supervisor(opts, workers, reload=args.reload, reload_dirs=args.reload_dirs).run()


if __name__ == "__main__":
    sys.exit(main())
