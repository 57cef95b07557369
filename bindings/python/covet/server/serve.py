"""Running an app: one worker process = one native server + one asyncio loop on one Python thread.

`serve(app, host, port, threads)` is the single-process entry point (what ``app.run`` calls, and what a
multi-process runner calls in each worker). `Worker` is the same thing as an object, for callers that
drive the loop themselves; `ThreadedWorker` runs it on a background thread (used by the test clients).

Threads: with ``threads=0`` (the default) the engine runs on the loop thread: its io_uring eventfd is
registered with the loop and the dispatcher polls it (native work without the GIL), runs the handlers
and flushes the responses. With ``threads=N`` the engine's N native threads do all socket I/O and routing
without the GIL and queue requests for Python routes; that queue's eventfd is registered instead, so the
loop thread takes them in batches and runs handlers, middleware and rendering. Sync handlers run in
the app's thread pool (unless inline). On SIGINT/SIGTERM the engine stops accepting, in-flight requests
finish (the loop keeps running meanwhile), then the lifespan shutdown runs and `serve` returns 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from typing import Any, Optional, Union

from covet.requests import Request
from covet.responses import PlainTextResponse, Response
from covet.routing import METHODS, ConstantRoute, Route
from covet.staticfiles import media_type_tables
from covet.tls import TransportOptions
from covet.utils import check_root_path

from .dispatch import Dispatcher
from .engine import Engine, EngineModule, native_module
from .hosted import STARTUP_FAILURE_EXIT, HostedApp, HostedDispatcher, RequestGate, StartupFailed, hosted, is_served_app
from .interface import CallNext, Middleware, ServedApp
from .log_levels import LevelsFollower, follow_log_levels, levels_path
from .ops import READINESS, OpsOptions, report_loop_turns, run_readiness_checks
from .options import access_log_format
from .static_routes import static_routes

Registration = tuple[str, str, Union[Route, ConstantRoute], bool]  # (method, native pattern, route, is_fallback)

__all__ = ["serve", "serve_worker", "Worker", "ThreadedWorker", "new_event_loop", "configure_logging",
           "exit_on_listen_error", "RequestLimits"]

logger = logging.getLogger("covet")


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """An event loop: uvloop's when uvloop is installed, else asyncio's (``kind="auto"``); ``"asyncio"`` or
    ``"uvloop"`` choose one (uvicorn's ``--loop``); a missing uvloop is an ImportError naming the fix."""
    if kind not in ("auto", "asyncio", "uvloop"):
        raise ValueError(f"loop must be 'auto', 'asyncio' or 'uvloop', not {kind!r}")
    if kind == "asyncio":
        return asyncio.new_event_loop()
    try:
        import uvloop  # optional (the `speed` extra): imported only when an event loop is made
    except ImportError:
        if kind == "uvloop":
            raise ImportError("loop='uvloop' needs uvloop: pip install uvloop (or use loop='asyncio')") from None
        return asyncio.new_event_loop()
    event_loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return event_loop


def configure_logging(level: str = "info") -> None:
    """Python logging for the ``covet`` logger (stderr) and the engine's log level.

    Levels: trace (engine detail; Python logs at debug), debug, info, warning, error, critical.
    """
    numeric = logging.DEBUG if level.lower() == "trace" else logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    covet_logger = logging.getLogger("covet")
    covet_logger.setLevel(numeric)
    if not logging.getLogger().handlers and not covet_logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(asctime)s] [%(levelname)s] %(name)s: %(message)s"))
        covet_logger.addHandler(handler)
    native_level = {"warning": "warn", "critical": "critical"}.get(level.lower(), level.lower())
    # JSON logs (covet.observability.logging.use_json_logs installed its handler): the engine's lines too.
    json_logs = any(h.get_name() == "covet-json" for h in logging.getLogger().handlers)
    native_module().configure_logging(native_level, "json" if json_logs else "text")


class Worker:
    """One app served by one native server, on the running event loop: a CovetPy app, or an ASGI 3 / WSGI
    application hosted (`covet.server.hosted`: any other object is given to `hosted` to detect which).

    ``await worker.serve()`` runs the lifespan startup, starts the engine, serves until `stop()` is called
    (from the loop thread; use ``loop.call_soon_threadsafe`` from elsewhere), shuts down gracefully and runs
    the lifespan shutdown. `started` is set once requests are being served; `port` is the bound port.
    """

    def __init__(
        self,
        app: Union[ServedApp, HostedApp, Any],
        host: str = "127.0.0.1",
        port: int = 8000,
        threads: int = 0,
        *,
        native: Optional[EngineModule] = None,
        lifespan: bool = True,
        on_started: Optional[Callable[[Worker], None]] = None,
        middleware: Sequence[Middleware] = (),
        gate: Optional[RequestGate] = None,
        root_path: str = "",
        **server_options: Any,
    ) -> None:
        """`middleware`: the runtime's own HTTP middleware, outside the app's (`serve_worker`'s request limits);
        `gate`: the same limits for a hosted app's requests. `root_path`: the path prefix a proxy in front strips
        (uvicorn's ``--root-path``): requests see it in ``root_path``, ``path`` and ``url``; routes match the path
        as received."""
        target: Any = app if is_served_app(app) else hosted(app)
        self.hosted: Optional[HostedApp] = None
        self.served: Optional[ServedApp] = None
        if is_served_app(target):
            engine_app = getattr(target, "engine_app", None)  # an app with pure ASGI middleware serves through them
            self.served = engine_app() if engine_app is not None else target
        else:
            self.hosted = target
        self.app: Union[ServedApp, HostedApp] = self.served if self.served is not None else target
        # covet.observability.setup_observability(app) marks the app: its Tracing (native spans, the handlers'
        # OpenTelemetry context) and the engine's access log; `covet run --access-log` asks for the latter too.
        # A hosted app's marks are on the app itself (`wrapped`: what its AsgiHost/WsgiHost serves).
        marked = (target, getattr(target, "wrapped", None))
        self.tracing: Any = next((t for t in (getattr(o, "_covet_tracing", None) for o in marked) if t), None)
        self.access_log: Optional[str] = (next((a for a in (getattr(o, "_covet_access_log", None) for o in marked)
                                                if a), None) or access_log_format())
        # Each request's context gets the engine's ids (log records' trace_id/request_id, the OpenTelemetry span).
        self._trace_ids = self.tracing is not None or bool(self.access_log)
        self.gate = gate
        self.root_path = check_root_path(root_path, "root_path")
        self.middleware = tuple(middleware)
        self.lifespan = lifespan
        self.host = host
        self.requested_port = port
        self.threads = threads
        self.native = native if native is not None else native_module()
        self.readiness_checks = tuple(getattr(target, "readiness_checks", ()) or ())  # @app.readiness_check
        self.transport, self.server_options = TransportOptions.split(server_options)
        self.ops = OpsOptions.take(self.server_options, target)  # /_metrics, /_health, /_ready (covet.server.ops)
        self.on_started = on_started
        self.server: Optional[Engine] = None
        self.dispatcher: Optional[Union[Dispatcher, HostedDispatcher]] = None
        self.executor: Optional[Executor] = None
        self.port: Optional[int] = None
        self._stop = asyncio.Event()

    def _make_server(self, served: Optional[ServedApp] = None) -> tuple[Engine, list[Route]]:
        app = served if served is not None else self.served
        assert app is not None, "a hosted app's server is made by _make_hosted_server"
        server = self.native.NativeServer(host=self.host, port=self.requested_port, threads=self.threads,
                                          **self.server_options)
        self.transport.apply(server)
        self.ops.apply(server, self.native)
        self._observe(server)
        for kind, options in app.native_middleware:
            self.native.add_middleware(server, kind, dict(options))
        targets: list[Route] = []
        ids: dict[int, int] = {}
        # Mounts first: a mount at "/" then wins over the slash-redirect fallbacks, as Starlette's Mount does.
        add_static_mount = getattr(server, "add_static_mount", None)
        static_in_python = bool(app.user_middleware)  # FastAPI runs the app's middleware around them
        for mount in getattr(app, "static_mounts", ()):
            if static_in_python:
                mount.app.check_config()  # as the engine refuses the mount: a missing directory fails the start
                for pattern, static_route in static_routes(mount):
                    static_id = ids[id(static_route)] = len(targets)
                    targets.append(static_route)
                    for method in METHODS:
                        server.add_route(method, pattern, static_id)
                continue
            if add_static_mount is None:
                raise RuntimeError("this engine cannot serve StaticFiles mounts (no add_static_mount)")
            files = mount.app
            types, suffixes, encodings = media_type_tables()
            add_static_mount(mount.path.rstrip("/"), files.all_directories, html=files.html,
                             follow_symlink=files.follow_symlink, precompressed=files.precompressed,
                             fallback=files.fallback or "", types=types, suffixes=suffixes, encodings=encodings)
        registrations = list(app.router.native_registrations())
        if app.root_path:
            registrations = self._under_app_root(app, registrations)
        for method, pattern, route, is_fallback in registrations:
            if isinstance(route, ConstantRoute):
                try:
                    server.add_constant_route(method, pattern, route.status_code, route.content_type, route.body,
                                              route.headers)
                except ValueError:
                    if not is_fallback:
                        raise
                continue
            route_id = ids.get(id(route))
            if route_id is None:
                route_id = ids[id(route)] = len(targets)
                targets.append(route)
            try:
                if route.max_body_size is None:
                    server.add_route(method, pattern, route_id)
                else:  # the engine refuses a larger body itself (413), before the handler runs
                    server.add_route(method, pattern, route_id, max_body_bytes=route.max_body_size)
            except ValueError:
                if not is_fallback:
                    raise
                logger.debug("no untyped fallback for %s %s (the shape is taken)", method, pattern)
        for index, ws_route in enumerate(app.websocket_routes):
            o = ws_route.options
            server.add_websocket_route(
                ws_route.native_pattern, index,
                max_message_bytes=int(o.get("max_size", 1024 * 1024)),
                idle_timeout_ms=int(o.get("idle_timeout", 60) * 1000),
                ping_interval_ms=int(o.get("ping_interval", 20) * 1000),
                max_send_buffer=int(o.get("max_send_buffer", 4 * 1024 * 1024)),
                permessage_deflate=bool(o.get("compression", True)),
                subprotocols=list(o.get("subprotocols", ())), defer_accept=True)
        return server, targets

    @staticmethod
    def _under_app_root(app: ServedApp, registrations: list[Registration]) -> list[Registration]:
        """``CovetPy(root_path="/api/v1")``: as Starlette's get_route_path, a path that starts with the root path
        routes without it (``/api/v1/items`` as ``/items``) and one that does not routes as it is. So every
        registration is made once more under the root path, and those of patterns under the root path itself are
        dropped (Starlette never routes a path under the root path with the prefix kept); the root path alone
        redirects to the root path with a slash when a route answers ``/`` (redirect_slashes)."""
        root = app.root_path
        table = app.router.table
        kept = [r for r in registrations if r[1] != root and not r[1].startswith(root + "/")]
        out = kept + [(method, root + pattern, route, True) for method, pattern, route, _ in registrations]
        if table.redirect_slashes and any(getattr(route, "path", None) == "/" for route in table.routes):
            out += [(method, root, table.slash_redirect_route(), True) for method in METHODS]
        return out

    def reload_tls(self) -> None:
        """Reload the TLS certificate files for new connections (SIGHUP); a failure keeps the old ones."""
        if self.server is None or not self.transport.tls:
            return
        try:
            self.server.reload_tls()
        except Exception as exc:
            logger.error("TLS reload failed, the previous certificates stay in use: %s", exc)
        else:
            logger.warning("TLS certificates reloaded")

    def stop(self) -> None:
        """Begin the graceful shutdown (call on the loop thread)."""
        self._stop.set()

    def _observe(self, server: Engine) -> None:
        """The observability middleware, outermost (first added): spans, request ids, the access log."""
        if self.tracing is not None:
            self.tracing.install(server, self.native)
        if self.tracing is not None or self.access_log:
            self.native.add_middleware(server, "request_id", {})
        if self.access_log:
            self.native.add_middleware(server, "access_log", {"format": self.access_log})

    def _make_hosted_server(self, app: HostedApp) -> Engine:
        server = self.native.NativeServer(host=self.host, port=self.requested_port, threads=self.threads,
                                          **self.server_options)
        self.transport.apply(server)
        self.ops.apply(server, self.native)
        self._observe(server)
        app.register(server)
        return server

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        hosted_app, served = self.hosted, self.served
        # concurrent.futures.thread is loaded here, on first use (the start-up cost of `import covet`).
        pool_size = served.thread_pool_size if served is not None else None
        runtime: Any = None  # with the metrics endpoints: the Python runtime's metrics (covet.server.runtime_metrics)
        if self.ops.endpoints or self.ops.port:
            from .runtime_metrics import worker_runtime  # deferred: loaded only by workers serving metrics
            self.executor, runtime = worker_runtime(self.native, loop, self.ops, max_workers=pool_size,
                                                    thread_name_prefix="covet-sync")
        else:
            from .sync_pool import SyncPool  # concurrent.futures.thread with it, loaded on first use
            self.executor = SyncPool(max_workers=pool_size, thread_name_prefix="covet-sync")
        loop.set_default_executor(self.executor)
        try:
            lifespan = self.app.lifespan_context() if self.lifespan else contextlib.nullcontext()
            async with lifespan:
                checks = self.readiness_checks
                if served is not None:
                    server, targets = self._make_server(served)
                    self.server = server
                    if checks and hasattr(self.native, "set_checks_passing"):
                        self.native.set_checks_passing(server, False)  # until the first run of the checks passes
                    server.start()  # before the Dispatcher: whether the engine is embedded is known once started
                    self.dispatcher = Dispatcher(served, server, targets, loop, self.executor,
                                                 middleware=self.middleware, root_path=self.root_path,
                                                 trace_ids=self._trace_ids)
                else:
                    assert hosted_app is not None
                    server = self.server = self._make_hosted_server(hosted_app)
                    server.start()
                    self.dispatcher = hosted_app.dispatcher(server, loop, self.root_path, self.gate)
                    self.dispatcher.trace_ids = self._trace_ids
                self.port = server.port
                fd = server.fileno()
                loop.add_reader(fd, self.dispatcher.on_readable)
                # Start-up objects (modules, the app, routes) live forever: move them out of the cyclic
                # GC's generations, so full collections while serving only scan what requests create.
                gc.freeze()
                try:
                    placement = ("on the event-loop thread" if server.embedded
                                 else f"{max(self.threads, 1)} I/O thread(s)")
                    scheme = "https" if self.transport.tls else "http"
                    what = "" if hosted_app is None else f", {hosted_app.interface} app hosted"
                    readiness = (loop.create_task(run_readiness_checks(server, self.native, checks))
                                 if checks else None)
                    # /_health watches this loop too (a handler blocking it), where it is answered.
                    turns = (loop.create_task(report_loop_turns(server, self.native, self.ops.health_stall))
                             if self.ops.endpoints or self.ops.port else None)
                    READINESS.update(draining=False)
                    if self.on_started is not None:
                        self.on_started(self)  # signal handlers among others: in place once the line below is out
                    logger.info("serving on %s://%s:%s (engine backend %s, %s%s%s)", scheme, self.host, self.port,
                                server.backend, placement,
                                (", HTTP/3, HTTP/2 and HTTP/1.1" if self.transport.http3
                                 else ", HTTP/2 and HTTP/1.1" if self.transport.http2 else ", HTTP/1.1"), what)
                    await self._stop.wait()
                    if readiness is not None:
                        readiness.cancel()
                    if turns is not None:
                        turns.cancel()
                    READINESS.update(draining=True)
                    begin_drain = getattr(self.native, "begin_drain", None)
                    if begin_drain is not None:
                        begin_drain(server)  # /_ready answers 503 from now on, before the listeners close
                        if self.ops.drain_delay > 0:
                            logger.info("draining: /_ready answers 503; the listeners close in %.1f s",
                                        self.ops.drain_delay)
                            await asyncio.sleep(self.ops.drain_delay)
                    logger.info("shutting down: finishing in-flight requests")
                    server.stop()
                    if self.dispatcher.engine_stopped is not None:  # embedded: on_readable reports it
                        await self.dispatcher.engine_stopped
                    else:
                        await self._wait_for_engine(server)
                finally:
                    loop.remove_reader(fd)
                    await self._drain_tasks()
                    if served is not None:
                        served.set_publisher(None)
        finally:
            if runtime is not None:
                runtime.stop()
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def _wait_for_engine(self, server: Engine) -> None:
        # wait() blocks (without the GIL) until the engine's workers exit; the loop keeps serving the
        # requests still in flight meanwhile. A plain thread, not the app's pool, which may be busy.
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def finished() -> None:
            if not done.done():
                done.set_result(None)

        def waiter() -> None:
            try:
                server.wait()
            finally:
                loop.call_soon_threadsafe(finished)

        threading.Thread(target=waiter, name="covet-engine-wait", daemon=True).start()
        await done

    async def _drain_tasks(self) -> None:
        if self.dispatcher is None or not self.dispatcher.tasks.tasks:
            return
        pending = list(self.dispatcher.tasks.tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


@contextlib.contextmanager
def exit_on_listen_error() -> Iterator[None]:
    """Turns the engine's `ListenError` ("cannot listen on HOST:PORT: ..."; an OSError with its errno) into a
    one-line exit (no traceback) for the command line and ``app.run``; other errors pass through."""
    listen_error = native_module().ListenError
    try:
        yield
    except listen_error as error:
        raise SystemExit(f"covet: {error.strerror or error}") from None


def serve(
    app: Union[ServedApp, HostedApp, Any],
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int = 0,
    *,
    install_signal_handlers: bool = True,
    loop: str = "auto",
    on_started: Optional[Callable[[Worker], None]] = None,
    middleware: Sequence[Middleware] = (),
    gate: Optional[RequestGate] = None,
    **server_options: Any,
) -> int:
    """Serve `app` in this process until SIGINT/SIGTERM; returns 0 after a graceful shutdown.

    `server_options` go to the native server (``backend=``, ``max_body_bytes=``, timeouts ..., and the TLS/HTTP/2
    options of `covet.tls.TransportOptions`: ``ssl_certfile=``, ``ssl_keyfile=``, ``http2=`` ...). `loop` picks
    the event loop (see `new_event_loop`); `on_started` runs on the loop once requests are being served.
    `middleware` runs outside the app's own (`gate`: the same limits for a hosted app). This is the function a
    multi-process runner calls in each worker process. `app` may be an ASGI 3 or WSGI application
    (`covet.server.hosted`).
    """
    event_loop = new_event_loop(loop)
    asyncio.set_event_loop(event_loop)
    logger.debug("event loop: %s.%s", type(event_loop).__module__, type(event_loop).__qualname__)
    worker = Worker(app, host, port, threads, middleware=middleware, gate=gate, **server_options)
    # The handlers before ours, put back afterwards (asyncio's removal leaves the default actions instead).
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2)}

    def started(w: Worker) -> None:
        if install_signal_handlers:
            for sig in (signal.SIGINT, signal.SIGTERM):
                event_loop.add_signal_handler(sig, w.stop)
            if w.transport.tls:
                event_loop.add_signal_handler(signal.SIGHUP, w.reload_tls)
        if on_started is not None:
            on_started(w)
        if _stop_before_serving:  # SIGTERM/SIGINT during the lifespan startup (alone_signals): stop now, gracefully
            w.stop()

    worker.on_started = started
    try:
        event_loop.run_until_complete(worker.serve())
    finally:
        if install_signal_handlers:
            for sig, handler in previous.items():
                with contextlib.suppress(Exception):
                    event_loop.remove_signal_handler(sig)
                with contextlib.suppress(Exception):
                    signal.signal(sig, handler)
        with contextlib.suppress(Exception):
            event_loop.run_until_complete(event_loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        event_loop.close()
    return 0


def serve_worker(
    app: Union[ServedApp, HostedApp, Any],
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int = 0,
    *,
    log_level: Optional[str] = None,
    loop: str = "auto",
    ready_fd: int = -1,
    limit_concurrency: Optional[int] = None,
    limit_max_requests: Optional[int] = None,
    alone: bool = False,
    **server_options: Any,
) -> int:
    """One worker process of ``covet run`` (the supervisor starts it as ``python -m covet _worker ...``):
    `serve` after setting the log level. `alone`: ``covet run --workers 1`` serving in its own process, with no
    supervisor (it follows its own `covet log-level` file, and says why SIGHUP/SIGUSR2 cannot restart it).

    Pass ``listen_fd=`` (the supervisor's listening socket, which the engine adopts instead of binding) or
    ``shared_port=True`` (each worker binds its own SO_REUSEPORT socket). `ready_fd`: a pipe to the
    supervisor; the worker writes ``ready`` once it serves, and ``retire`` once it has handled
    `limit_max_requests` requests (without a supervisor it then stops). `limit_concurrency`: more requests
    than this in Python handlers at once are answered 503, as uvicorn's ``--limit-concurrency``.
    A hosted app whose lifespan startup fails (`StartupFailed`) makes the worker return `STARTUP_FAILURE_EXIT`
    after logging the app's message (the supervisor then stops ``covet run`` with it).
    """
    if log_level is not None:
        configure_logging(log_level)
    if ready_fd >= 0:  # supervised: SIGHUP is the supervisor's (a restart); with TLS, `serve` reloads certificates
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    state: dict[str, Optional[Worker]] = {"worker": None}

    def tell_supervisor(message: bytes) -> bool:
        if ready_fd < 0:
            return False
        try:
            os.write(ready_fd, message)
        except OSError as exc:  # the supervisor is gone: nothing to tell
            logger.debug("cannot write to the supervisor: %s", exc)
        return True

    middleware: list[Middleware] = []
    limits: Optional[RequestLimits] = None
    if limit_concurrency is not None or limit_max_requests is not None:
        limits = RequestLimits(limit_concurrency, limit_max_requests, state, tell_supervisor)
        middleware.append(limits)

    # `covet log-level`: the group's levels file, applied now and followed while serving (covet.server.log_levels).
    levels: Optional[LevelsFollower] = None
    if (ready_fd >= 0 or alone) and os.environ.get("COVET_METRICS_DIR"):
        group = os.getpid() if alone else os.getppid()  # the pid `covet log-level` is given
        levels = LevelsFollower(levels_path(os.environ["COVET_METRICS_DIR"], group))
        levels.poll()
    follow: list[asyncio.Task[None]] = []

    def on_started(w: Worker) -> None:
        state["worker"] = w
        if levels is not None:
            levels.reapply()  # over what the app's start-up (lifespan) may have configured
            follow.append(asyncio.get_running_loop().create_task(follow_log_levels(levels, w._stop)))
        if alone:
            _serve_alone_started(w)
        tell_supervisor(b"ready\n")

    try:
        return serve(app, host, port, threads, loop=loop, on_started=on_started, middleware=middleware, gate=limits,
                     **server_options)
    except StartupFailed as exc:
        logger.error("application startup failed: %s", exc)
        return STARTUP_FAILURE_EXIT


_CANNOT_RESTART = ("{}: this process serves alone (covet run --workers 1, no master), so nothing can replace it "
                   "while it serves; restart it, or run with --supervise (or --workers 2 or more) for rolling restarts")


def _cannot_restart(name: str) -> None:
    logger.warning(_CANNOT_RESTART.format(name))


def _serve_alone_started(worker: Worker) -> None:
    """`covet run --workers 1` in one process: covet_workers_ready is 1 (a master publishes it otherwise), and the
    restart signals, which a master would act on, are answered with a warning instead of the default exit."""
    publish = getattr(worker.native, "metrics_set_workers_ready", None)
    if publish is not None:
        publish(1)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR2, _cannot_restart, "SIGUSR2")
    if not worker.transport.tls:  # with TLS, `serve` made SIGHUP reload the certificate files
        loop.add_signal_handler(signal.SIGHUP, _cannot_restart, "SIGHUP")


_stop_before_serving: list[str] = []  # the signal that asked for a stop while the loop ran the startup (alone)


def _say(text: str) -> None:
    """A line on stderr from a signal handler: os.write, not logging (a handler interrupting the main thread's own
    write to the same stream would raise there)."""
    with contextlib.suppress(OSError):
        os.write(2, (text + "\n").encode(errors="replace"))


@contextlib.contextmanager
def alone_signals() -> Iterator[None]:
    """`covet run --workers 1` alone, from its start to its end: SIGTERM/SIGINT before `serve` takes them over stop
    the process through its cleanup (pid file, state file, metrics directory) instead of the default exit: during
    the app's import at once (SystemExit), during its lifespan startup once that is done (the worker starts and
    stops gracefully). SIGHUP/SIGUSR2 warn as they do while it serves. Later signals of a stop are ignored."""
    def stop(signum: int, _frame: object) -> None:
        if _stop_before_serving:  # a stop is under way
            return
        name = signal.Signals(signum).name
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop: a second signal must not cut the cleanup short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if asyncio._get_running_loop() is not None:  # the lifespan startup: stop once it is done
            _stop_before_serving.append(name)
            _say(f"covet: {name} during start-up: stopping once it is done")
            return
        _stop_before_serving.append(name)
        _say(f"covet: {name} before serving: stopping")
        raise SystemExit(0)

    def warn(signum: int, _frame: object) -> None:
        _say("covet: " + _CANNOT_RESTART.format(signal.Signals(signum).name))

    handlers = {signal.SIGTERM: stop, signal.SIGINT: stop, signal.SIGHUP: warn, signal.SIGUSR2: warn}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

class RequestLimits:
    """uvicorn's --limit-concurrency and --limit-max-requests: as the outermost HTTP middleware of a CovetPy app
    (``await limits(request, call_next)``), and as a hosted app's `RequestGate` (`enter`/`leave`). Only requests
    that reach Python count: constant routes and the engine's own answers never enter it."""

    def __init__(self, limit_concurrency: Optional[int], limit_max_requests: Optional[int],
                 state: dict[str, Optional[Worker]], tell_supervisor: Callable[[bytes], bool]) -> None:
        self.limit_concurrency = limit_concurrency
        self.limit_max_requests = limit_max_requests
        self.in_flight = 0
        self.handled = 0
        self._state = state
        self._tell_supervisor = tell_supervisor

    def enter(self) -> bool:
        """Counts a request; False: over --limit-concurrency (answer 503; `leave` is not called then)."""
        if self.limit_max_requests is not None:
            self.handled += 1
            if self.handled == self.limit_max_requests:
                logger.info("worker %d handled %d requests (--limit-max-requests): being replaced",
                            os.getpid(), self.limit_max_requests)
                worker = self._state["worker"]
                if not self._tell_supervisor(b"retire\n") and worker is not None:
                    worker.stop()
        if self.limit_concurrency is None:
            return True
        if self.in_flight >= self.limit_concurrency:
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        if self.limit_concurrency is not None:
            self.in_flight -= 1

    async def __call__(self, request: Request, call_next: CallNext) -> Response:
        if not self.enter():
            return PlainTextResponse("Service Unavailable", status_code=503)
        try:
            return await call_next(request)
        finally:
            self.leave()


class ThreadedWorker:
    """A `Worker` on its own thread and event loop (for tests and embedding).

    ``start()`` returns once the app serves (or re-raises what made start-up fail); ``stop()`` shuts it
    down gracefully and joins the thread.
    """

    def __init__(self, app: Union[ServedApp, HostedApp, Any], host: str = "127.0.0.1", port: int = 0, threads: int = 0,
                 *, lifespan: bool = True, **server_options: Any) -> None:
        self.app = app
        self.worker = Worker(app, host, port, threads, lifespan=lifespan, on_started=self._started_cb,
                             **server_options)
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._started = threading.Event()
        self._error: Optional[BaseException] = None

    @property
    def port(self) -> int:
        assert self.worker.port is not None, "not started"
        return self.worker.port

    def _started_cb(self, worker: Worker) -> None:
        self._started.set()

    def _run(self) -> None:
        loop = self.loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.worker.serve())
        except BaseException as exc:  # reported by start() when start-up failed
            self._error = exc
            if self._started.is_set():
                logger.exception("the test server failed")
        finally:
            self._started.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def start(self, timeout: float = 30.0) -> ThreadedWorker:
        self._thread = threading.Thread(target=self._run, name="covet-loop", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("the app did not start in time")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is None:
            return
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may have just finished
                loop.call_soon_threadsafe(self.worker.stop)
        self._thread.join(timeout)
        self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
