"""A pure-Python stand-in for ``covet._native`` (same interface), for tests.

It mirrors the native engine's observable behaviour closely enough to test the Python package:
- the router: the same pattern syntax and validation, the same matching priority (literal, int, float,
  uuid, str, path; depth-first with fallback), the same conflict rule and message, automatic HEAD for GET,
  404 and 405 with ``Allow`` answered without Python;
- the hand-off: requests for Python routes are queued and an eventfd becomes readable; ``take()`` drains
  up to `max_items` and re-arms the eventfd when more are left;
- request objects that refuse to be read once their responder has been used;
- a small threaded HTTP/1.1 server (keep-alive, Content-Length and chunked request bodies, chunked
  streaming responses, graceful stop), so that the real-socket test clients work against it.

`NativeServer.inject()` pushes a request without a socket and returns its responder, for tests that drive
the dispatcher by hand.
"""

from __future__ import annotations

import email.utils
import os
import re
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from http import HTTPStatus
from collections.abc import Callable
from typing import Any, Optional, Union

__all__ = ["NativeServer", "NativeRequest", "NativeResponder", "RouteError", "ListenError", "RequestGone",
           "configure_logging", "add_middleware", "Limits", "Timeouts", "ServerConfig"]

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
PRIORITY = ("int", "float", "uuid", "str", "path")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INT = re.compile(r"-?[0-9]+\Z")
_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")


class RouteError(ValueError):
    pass


class ListenError(OSError):
    """As covet._native.ListenError: the address cannot be listened on (errno; strerror is the message)."""


class RequestGone(RuntimeError):
    """As covet._native.RequestGone: the engine answered the request itself (the stand-in never does)."""


def configure_logging(level: str = "warn", format: str = "text") -> None:
    """The engine's log level: the stand-in logs nothing."""


def add_middleware(server: NativeServer, kind: str, options: dict[str, Any]) -> None:
    """The engine's native middleware: the stand-in has none."""
    raise NotImplementedError(f"the pure-Python stand-in engine has no native middleware ({kind})")


# --- configuration: the native module's structs, with the same defaults (test_native_module.py compares them) --


@dataclass
class Limits:
    max_url_bytes: int = 8 * 1024
    max_header_bytes: int = 8 * 1024
    max_headers: int = 100
    max_body_bytes: int = 1024 * 1024
    stream_body_threshold: int = 64 * 1024
    max_stream_body_bytes: int = 1 << 30
    max_connections: int = 10000
    max_buffered_input: int = 1024 * 1024
    output_high_water: int = 4 * 1024 * 1024
    stream_send_buffer: int = 1024 * 1024


@dataclass
class Timeouts:
    header: timedelta = timedelta(seconds=10)
    body: timedelta = timedelta(seconds=30)
    min_body_rate: int = 240
    min_body_rate_grace: timedelta = timedelta(seconds=5)
    body_deadline: timedelta = timedelta(0)
    keep_alive: timedelta = timedelta(seconds=60)
    shutdown: timedelta = timedelta(seconds=10)


@dataclass
class ClientLimits:
    max_connections_per_ip: int = 0
    new_connections_per_ip: int = 0
    new_connections_period: timedelta = timedelta(seconds=1)
    new_connections_burst: int = 0
    max_streams_per_ip: int = 0


@dataclass
class Http2Limits:  # only what the stand-in's users read (the keep-alive pings' defaults)
    ping_interval: timedelta = timedelta(hours=2)
    ping_timeout: timedelta = timedelta(seconds=20)


@dataclass
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 8000
    threads: int = 0
    shared_port: bool = False
    inherited_listener: int = -1
    backend: str = "auto"
    listen_backlog: int = 4096
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    http2: bool = True
    client_limits: ClientLimits = field(default_factory=ClientLimits)
    http2_limits: Http2Limits = field(default_factory=Http2Limits)


_DEFAULTS = ServerConfig()


def _ms(d: timedelta) -> int:
    return d // timedelta(milliseconds=1)


# --- router -----------------------------------------------------------------------------------------


def _parse(pattern: str) -> Optional[list[tuple[bool, str, str]]]:
    """None for a static pattern, else [(is_param, text_or_name, type)]."""

    def bad(why: str) -> RouteError:
        return RouteError(f"bad route pattern '{pattern}': {why}")

    if not pattern.startswith("/"):
        raise bad("must start with '/'")
    if "{" not in pattern and "}" not in pattern:
        return None
    out: list[tuple[bool, str, str]] = []
    for seg in pattern[1:].split("/"):
        if "{" not in seg and "}" not in seg:
            out.append((False, seg, ""))
            continue
        if seg.count("{") != 1 or seg.count("}") != 1 or not seg.startswith("{") or not seg.endswith("}"):
            raise bad(f"segment '{seg}' must be either fully literal or exactly one {{parameter}}")
        name, _, type_ = seg[1:-1].partition(":")
        if not name:
            raise bad(f"empty parameter name in segment '{seg}'")
        if not _NAME.match(name):
            raise bad(f"invalid parameter name '{name}'")
        if type_ and type_ not in PRIORITY:
            raise bad(f"unknown parameter type '{type_}' (expected str, int, float, uuid or path)")
        if any(p and n == name for p, n, _ in out):
            raise bad(f"duplicate parameter name '{name}'")
        out.append((True, name, type_ or "str"))
    if sum(1 for p, _, _ in out if p) > 16:
        raise bad("more than 16 parameters")
    if any(p and t == "path" for p, _, t in out[:-1]):
        raise bad("a {path} parameter must be the last segment")
    return out


def _value_matches(type_: str, s: str) -> bool:
    if type_ == "int":
        return bool(_INT.match(s)) and -(2**63) <= int(s) < 2**63
    if type_ == "float":
        return bool(_FLOAT.match(s))
    if type_ == "uuid":
        return bool(_UUID.match(s))
    if type_ == "str":
        return s != ""
    return True


class _Endpoint:
    def __init__(self) -> None:
        self.by_method: dict[str, tuple[str, Any, list[str]]] = {}  # method -> (pattern, handler, names)
        self.first: Optional[str] = None

    def accepting(self, method: str) -> Optional[tuple[str, Any, list[str]]]:
        hit = self.by_method.get(method)
        if hit is None and method == "HEAD":
            hit = self.by_method.get("GET")
        return hit

    @property
    def allow(self) -> str:
        methods = set(self.by_method)
        if "GET" in methods:
            methods.add("HEAD")
        return ", ".join(m for m in METHODS if m in methods)


class _Node:
    def __init__(self) -> None:
        self.literals: dict[str, _Node] = {}
        self.params: dict[str, _Node] = {}
        self.endpoint = _Endpoint()


class Router:
    def __init__(self) -> None:
        self.static: dict[str, _Endpoint] = {}
        self.root = _Node()

    def add(self, method: str, pattern: str, handler: Any) -> None:
        if method not in METHODS:
            raise RouteError(f"unknown HTTP method '{method}'")
        parsed = _parse(pattern)
        if parsed is None:
            endpoint = self.static.setdefault(pattern, _Endpoint())
            names: list[str] = []
        else:
            node = self.root
            for is_param, text, type_ in parsed:
                table = node.params if is_param else node.literals
                key = type_ if is_param else text
                node = table.setdefault(key, _Node())
            endpoint = node.endpoint
            names = [text for is_param, text, _ in parsed if is_param]
        previous = endpoint.by_method.get(method)
        if previous is not None:
            raise RouteError(f"route conflict: {method} {pattern} clashes with {method} {previous[0]} "
                             "registered earlier (same shape)")
        endpoint.by_method[method] = (pattern, handler, names)
        if endpoint.first is None:
            endpoint.first = pattern

    def match(self, method: str, path: str) -> tuple[str, Any, dict[str, str], str]:
        """("found", handler, params, allow) | ("not_found", ...) | ("method_not_allowed", ...)."""
        static = self.static.get(path)
        if static is not None:
            hit = static.accepting(method)
            if hit is not None:
                return "found", hit[1], {}, static.allow
        state: dict[str, Any] = {"found": None, "partial": None}
        values: list[str] = []

        def visit(endpoint: _Endpoint) -> bool:
            hit = endpoint.accepting(method)
            if hit is not None:
                state["found"] = (hit, list(values))
                return True
            if state["partial"] is None and endpoint.first is not None:
                state["partial"] = endpoint
            return False

        def descend(node: _Node, rest: Optional[str]) -> bool:
            if rest is None:
                return visit(node.endpoint)
            seg, slash, tail = rest.partition("/")
            nxt = tail if slash else None
            child = node.literals.get(seg)
            if child is not None and descend(child, nxt):
                return True
            for type_ in PRIORITY:
                child = node.params.get(type_)
                if child is None:
                    continue
                if type_ == "path":
                    values.append(rest)
                    if visit(child.endpoint):
                        return True
                    values.pop()
                elif _value_matches(type_, seg):
                    values.append(seg)
                    if descend(child, nxt):
                        return True
                    values.pop()
            return False

        if path.startswith("/"):
            descend(self.root, path[1:])
        if state["found"] is not None:
            (pattern, handler, names), vals = state["found"]
            endpoint = self._endpoint_for(pattern)
            return "found", handler, dict(zip(names, vals)), endpoint.allow
        partial = static if static is not None and static.first is not None else state["partial"]
        if partial is not None:
            return "method_not_allowed", None, {}, partial.allow
        return "not_found", None, {}, ""

    def _endpoint_for(self, pattern: str) -> _Endpoint:
        parsed = _parse(pattern)
        if parsed is None:
            return self.static[pattern]
        node = self.root
        for is_param, text, type_ in parsed:
            node = (node.params if is_param else node.literals)[type_ if is_param else text]
        return node.endpoint


# --- request / responder ----------------------------------------------------------------------------


class _Exchange:
    def __init__(self) -> None:
        self.answered = False
        self.events: "deque[tuple[Any, ...]]" = deque()
        self.cond = threading.Condition()

    def push(self, event: tuple[Any, ...]) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def next_event(self, timeout: Optional[float] = None) -> tuple[Any, ...]:
        with self.cond:
            if not self.cond.wait_for(lambda: self.events, timeout):
                raise TimeoutError("no response from Python")
            return self.events.popleft()


class NativeRequest:
    """Snapshot of one request; refuses reads once answered, like the native one. Counts reads."""

    def __init__(self, exchange: _Exchange, method: str, target: str, headers: list[tuple[str, str]],
                 body: bytes, params: dict[str, str], client: tuple[str, int], http_version: str) -> None:
        self._exchange = exchange
        path, _, query = target.partition("?")
        self._data = {
            "method": method, "target": target, "path": path, "query_string": query,
            "headers": headers, "body": body, "params": params, "client": client, "http_version": http_version,
        }
        self.reads: list[str] = []

    def _get(self, name: str) -> Any:
        if self._exchange.answered:
            raise RuntimeError("this request has already been answered; copy what you need before responding")
        self.reads.append(name)
        value = self._data[name]
        return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value

    method = property(lambda self: self._get("method"))
    target = property(lambda self: self._get("target"))
    path = property(lambda self: self._get("path"))
    query_string = property(lambda self: self._get("query_string"))
    headers = property(lambda self: self._get("headers"))
    body = property(lambda self: self._get("body"))
    params = property(lambda self: self._get("params"))
    client = property(lambda self: self._get("client"))
    http_version = property(lambda self: self._get("http_version"))

    def header(self, name: str) -> Optional[str]:
        """The first `name` header or None (the engine's lookup; counted as a read of "header")."""
        headers = self._get("headers")
        self.reads[-1] = "header"
        name = name.lower()
        return next((value for key, value in headers if key.lower() == name), None)

    def header_values(self, name: str) -> list[str]:
        """Every `name` header's value (the engine's lookup; counted as a read of "header_values")."""
        headers = self._get("headers")
        self.reads[-1] = "header_values"
        name = name.lower()
        return [value for key, value in headers if key.lower() == name]


class NativeResponder:
    def __init__(self, exchange: _Exchange) -> None:
        self._exchange = exchange
        self._streaming = False
        self.status: Optional[int] = None  # for socketless tests
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.ended = False
        self.aborted = False
        self.trailers: list[tuple[str, str]] = []
        self.early_hints: list[list[tuple[str, str]]] = []

    @property
    def answered(self) -> bool:
        return self._exchange.answered

    def _check_headers(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        out = []
        for name, value in headers:
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError("header names and values must be str")
            if any(c in name for c in "\r\n:") or any(c in value for c in "\r\n"):
                raise ValueError(f"header names and values must not contain CR, LF (or ':' in names): {name}")
            if name.lower() in ("content-length", "transfer-encoding"):
                continue
            out.append((name, value))
        return out

    def send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        if self._exchange.answered:
            raise RuntimeError("this request has already been answered")
        if not isinstance(body, bytes):
            raise TypeError("body must be bytes")
        checked = self._check_headers(headers)
        self._exchange.answered = True
        self.status, self.headers, self.body, self.ended = status, checked, body, True
        self._exchange.push(("send", status, checked, body))

    def start_stream(self, status: int, headers: list[tuple[str, str]]) -> None:
        if self._exchange.answered:
            raise RuntimeError("this request has already been answered")
        checked = self._check_headers(headers)
        self._exchange.answered = True
        self._streaming = True
        self.status, self.headers = status, checked
        self._exchange.push(("head", status, checked))

    def write(self, chunk: bytes) -> None:
        if not self._streaming:
            raise RuntimeError("write() needs start_stream() first (or the stream has ended)")
        if not isinstance(chunk, bytes):
            raise TypeError("chunk must be bytes")
        self.body += chunk
        self._exchange.push(("chunk", chunk))

    def end(self) -> None:
        if not self._streaming:
            return
        self._streaming = False
        self.ended = True
        self._exchange.push(("end",))

    def send_trailers(self, trailers: list[tuple[str, str]]) -> None:
        """Ends the stream with trailer fields (the engine's HTTP/2 trailing HEADERS, HTTP/1.1 chunked trailers)."""
        if not self._streaming:
            raise RuntimeError("send_trailers() needs start_stream() first (or the stream has ended)")
        checked = self._check_headers(trailers)
        for name, _ in checked:
            if not name or any(c in name for c in ' \t"(),/;<=>?@[\\]{}'):
                raise ValueError(f"covet: cannot add the trailer \"{name}\": its name is not a token")
        self._streaming = False
        self.ended = True
        self.trailers = checked
        self._exchange.push(("trailers", checked))

    def early_hint(self, headers: list[tuple[str, str]]) -> None:
        """A 103 Early Hints response before the answer."""
        if self._exchange.answered:
            raise RuntimeError("early_hint() must come before the response starts")
        checked = self._check_headers(headers)
        self.early_hints.append(checked)
        self._exchange.push(("early_hint", checked))

    def abort(self) -> None:
        """Cuts a started stream short: the connection closes without the terminating chunk."""
        if not self._streaming:
            return
        self._streaming = False
        self.aborted = True
        self._exchange.push(("abort",))


# --- server ------------------------------------------------------------------------------------------


class _Constant:
    def __init__(self, status: int, content_type: str, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.status, self.body = status, body
        self.headers = ([("Content-Type", content_type)] if content_type else []) + list(headers)


class NativeServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 8000, threads: int = 1, backend: str = "auto",
                 max_body_bytes: int = _DEFAULTS.limits.max_body_bytes,
                 header_timeout_ms: int = _ms(_DEFAULTS.timeouts.header),
                 keep_alive_timeout_ms: int = _ms(_DEFAULTS.timeouts.keep_alive),
                 shutdown_timeout_ms: int = _ms(_DEFAULTS.timeouts.shutdown),
                 max_connections: int = _DEFAULTS.limits.max_connections, shared_port: bool = False,
                 max_url_bytes: int = _DEFAULTS.limits.max_url_bytes,
                 max_header_bytes: int = _DEFAULTS.limits.max_header_bytes,
                 max_headers: int = _DEFAULTS.limits.max_headers,
                 max_buffered_input: int = _DEFAULTS.limits.max_buffered_input,
                 output_high_water: int = _DEFAULTS.limits.output_high_water,
                 body_timeout_ms: int = _ms(_DEFAULTS.timeouts.body),
                 body_deadline_ms: int = _ms(_DEFAULTS.timeouts.body_deadline),
                 min_body_rate: int = _DEFAULTS.timeouts.min_body_rate,
                 min_body_rate_grace_ms: int = _ms(_DEFAULTS.timeouts.min_body_rate_grace),
                 listen_backlog: int = _DEFAULTS.listen_backlog, listen_fd: int = -1,
                 stream_body_threshold: int = _DEFAULTS.limits.stream_body_threshold,
                 max_stream_body_bytes: int = _DEFAULTS.limits.max_stream_body_bytes,
                 stream_send_buffer: int = _DEFAULTS.limits.stream_send_buffer,
                 max_connections_per_ip: int = 0, new_connections_per_ip: int = 0,
                 max_streams_per_ip: int = 0,
                 h2_ping_interval_ms: int = _ms(_DEFAULTS.http2_limits.ping_interval),
                 h2_ping_timeout_ms: int = _ms(_DEFAULTS.http2_limits.ping_timeout)) -> None:
        # The engine limits are accepted (same names and defaults as the native module) but not enforced.
        if backend not in ("auto", "uring", "asio"):
            raise ValueError(f"backend must be 'auto', 'uring' or 'asio', not '{backend}'")
        for name, value in (("header_timeout_ms", header_timeout_ms), ("keep_alive_timeout_ms", keep_alive_timeout_ms),
                            ("shutdown_timeout_ms", shutdown_timeout_ms), ("body_timeout_ms", body_timeout_ms),
                            ("body_deadline_ms", body_deadline_ms), ("min_body_rate_grace_ms", min_body_rate_grace_ms),
                            ("h2_ping_interval_ms", h2_ping_interval_ms), ("h2_ping_timeout_ms", h2_ping_timeout_ms)):
            if value < 0:
                raise ValueError(f"{name} must be a number of milliseconds >= 0, not {value}")
        if listen_backlog < 1:
            raise ValueError(f"listen_backlog must be at least 1, not {listen_backlog}")
        self.host, self._port, self.threads = host, port, threads
        self.max_body_bytes = max_body_bytes
        self.shutdown_timeout = shutdown_timeout_ms / 1000
        self.backend = "fake"
        self.http2 = True  # accepted, not spoken
        self.http3 = False  # accepted, not spoken
        self.tls = False
        self.embedded = False  # the stand-in always runs its own threads
        self.router = Router()
        self._fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._queue: "deque[tuple[int, NativeRequest, NativeResponder]]" = deque()
        self._lock = threading.Lock()
        self._listener: Optional[socket.socket] = None
        self._threads: list[threading.Thread] = []
        self._connections: dict[socket.socket, bool] = {}  # socket -> busy
        self._stopping = threading.Event()
        self.take_calls = 0

    def __del__(self) -> None:
        try:
            os.close(self._fd)
        except Exception:
            pass

    # routes
    def add_route(self, method: str, pattern: str, route_id: int, max_body_bytes: int = 0) -> None:
        self.router.add(method, pattern, ("python", route_id, max_body_bytes))

    def add_constant_route(self, method: str, pattern: str, status: int, content_type: str, body: bytes,
                           headers: list[tuple[str, str]]) -> None:
        self.router.add(method, pattern, ("constant", _Constant(status, content_type, bytes(body), headers)))

    # the Python hand-off
    def fileno(self) -> int:
        return self._fd

    def take(self, max_items: int = 256) -> list[tuple[int, NativeRequest, NativeResponder]]:
        self.take_calls += 1
        try:
            os.eventfd_read(self._fd)
        except BlockingIOError:
            pass
        with self._lock:
            out = [self._queue.popleft() for _ in range(min(max_items, len(self._queue)))]
            if self._queue:
                os.eventfd_write(self._fd, 1)
        return out

    def inject(self, method: str, target: str, headers: Optional[list[tuple[str, str]]] = None, body: bytes = b"",
               client: tuple[str, int] = ("127.0.0.1", 40000)) -> NativeResponder:
        """Route a request without a socket. Non-Python answers (404, 405, constants) are filled in at once."""
        exchange = _Exchange()
        responder = NativeResponder(exchange)
        self._dispatch(exchange, responder, method, target, list(headers or [("Host", "fake")]), body, client, "1.1")
        return responder

    def _dispatch(self, exchange: _Exchange, responder: NativeResponder, method: str, target: str,
                  headers: list[tuple[str, str]], body: bytes, client: tuple[str, int], version: str) -> None:
        path = target.partition("?")[0]
        status, handler, params, allow = self.router.match(method, path)
        if status == "not_found":
            responder.send(404, [("Content-Type", "application/json")], b'{"detail":"Not Found"}')
        elif status == "method_not_allowed":
            responder.send(405, [("Content-Type", "application/json"), ("Allow", allow)],
                           b'{"detail":"Method Not Allowed"}')
        elif handler[0] == "constant":
            c = handler[1]
            responder.send(c.status, c.headers, c.body)
        elif handler[2] and len(body) > handler[2]:  # the route's own body limit (covet::RouteLimits)
            responder.send(413, [("Content-Type", "application/json")],
                           b'{"detail":"the request body is larger than this route\'s limit"}')
        else:
            request = NativeRequest(exchange, method, target, headers, body, params, client, version)
            with self._lock:
                was_empty = not self._queue
                self._queue.append((handler[1], request, responder))
            if was_empty:
                os.eventfd_write(self._fd, 1)

    def take_body(self) -> list[int]:
        return []  # bodies always arrive whole here

    # not in the stand-in: WebSockets, TLS, the embedded engine
    def add_websocket_route(self, pattern: str, route_id: int, max_message_bytes: int = 1024 * 1024,
                            idle_timeout_ms: int = 60_000, ping_interval_ms: int = 20_000,
                            max_send_buffer: int = 4 * 1024 * 1024, permessage_deflate: bool = True,
                            subprotocols: Optional[list[str]] = None, defer_accept: bool = False) -> None:
        raise NotImplementedError("the fake engine has no WebSockets: run this test against covet._native")

    def take_ws(self) -> list[tuple[int, int, Any, Any, int]]:
        return []

    def ws_subscribe(self, connection: Any, topic: str) -> None:
        raise NotImplementedError("the fake engine has no WebSockets")

    def ws_unsubscribe(self, connection: Any, topic: str) -> None:
        raise NotImplementedError("the fake engine has no WebSockets")

    def ws_publish(self, topic: str, data: Union[str, bytes]) -> int:
        raise NotImplementedError("the fake engine has no WebSockets")

    def configure_tls(self, certfile: str, keyfile: str, ca_certs: str = "", client_auth: str = "none",
                      allow_tls12: bool = True, ciphers: str = "",
                      sni_certs: Optional[list[tuple[str, str]]] = None) -> None:
        raise NotImplementedError("the fake engine has no TLS: run this test against covet._native")

    def reload_tls(self) -> None:
        raise RuntimeError("covet: reload_tls(): TLS is not configured")

    def poll(self) -> bool:
        raise RuntimeError("poll() is for a server started with threads=0 on io_uring")

    def flush(self) -> bool:
        raise RuntimeError("flush() is for a server started with threads=0 on io_uring")

    def set_output_hook(self, hook: Callable[[], None]) -> None:
        raise RuntimeError("set_output_hook() is for a server started with threads=0 on io_uring")

    # lifecycle
    @property
    def port(self) -> int:
        return self._port

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self._port))
        except OSError as exc:
            listener.close()
            raise ListenError(exc.errno, f"cannot listen on {self.host}:{self._port}: {exc.strerror}") from None
        listener.listen(128)
        self._listener = listener
        self._port = listener.getsockname()[1]
        thread = threading.Thread(target=self._accept_loop, name="fake-native-accept", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self._lock:
            idle = [s for s, busy in self._connections.items() if not busy]
        for sock in idle:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def wait(self) -> None:
        for thread in list(self._threads):
            thread.join(self.shutdown_timeout)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, addr = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._connections[sock] = False
            thread = threading.Thread(target=self._serve_connection, args=(sock, addr), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve_connection(self, sock: socket.socket, addr: Any) -> None:
        rfile = sock.makefile("rb")
        try:
            while not self._stopping.is_set():
                line = rfile.readline(65537)
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    continue
                with self._lock:
                    self._connections[sock] = True
                keep_alive = self._serve_one(sock, rfile, line, addr)
                with self._lock:
                    self._connections[sock] = False
                if not keep_alive:
                    return
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._connections.pop(sock, None)
            try:
                rfile.close()
                sock.close()
            except OSError:
                pass

    def _serve_one(self, sock: socket.socket, rfile: Any, line: bytes, addr: Any) -> bool:
        try:
            method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ")
        except ValueError:
            self._write(sock, 400, [("Connection", "close")], b"Bad Request", head=False, close=True)
            return False
        headers: list[tuple[str, str]] = []
        while True:
            h = rfile.readline(65537)
            if h in (b"\r\n", b"\n", b""):
                break
            name, _, value = h.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        lower = {k.lower(): v for k, v in headers}
        http_version = version.partition("/")[2] or "1.1"
        keep_alive = lower.get("connection", "").lower() != "close" and http_version == "1.1"
        body = b""
        if lower.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += rfile.read(size)
                rfile.readline()
        elif "content-length" in lower:
            length = int(lower["content-length"])
            if length > self.max_body_bytes:
                self._write(sock, 413, [("Connection", "close")], b"Payload Too Large", head=False, close=True)
                return False
            body = rfile.read(length)
        exchange = _Exchange()
        responder = NativeResponder(exchange)
        host, port = addr[0], addr[1]
        self._dispatch(exchange, responder, method, target, headers, body, (host, port), http_version)
        close = not keep_alive or self._stopping.is_set()
        event = exchange.next_event()
        while event[0] == "early_hint":  # 103 Early Hints (not for HTTP/1.0 clients)
            if http_version == "1.1":
                lines = ["HTTP/1.1 103 Early Hints"] + [f"{k}: {v}" for k, v in event[1]]
                sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            event = exchange.next_event()
        head_only = method == "HEAD"
        if event[0] == "send":
            _, status, out_headers, out_body = event
            self._write(sock, status, out_headers, out_body, head=head_only, close=close)
        else:
            _, status, out_headers = event
            self._write_stream(sock, exchange, status, out_headers, head=head_only, close=close)
        return not close

    @staticmethod
    def _head(status: int, headers: list[tuple[str, str]], close: bool) -> list[str]:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [f"HTTP/1.1 {status} {reason}", "Server: covet-fake", f"Date: {email.utils.formatdate(usegmt=True)}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if close:
            lines.append("Connection: close")
        return lines

    def _write(self, sock: socket.socket, status: int, headers: list[tuple[str, str]], body: bytes, *, head: bool,
               close: bool) -> None:
        lines = self._head(status, headers, close)
        no_body = status in (204, 304) or 100 <= status < 200
        if not no_body:
            lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not head and not no_body:
            data += body
        sock.sendall(data)

    def _write_stream(self, sock: socket.socket, exchange: _Exchange, status: int, headers: list[tuple[str, str]],
                      *, head: bool, close: bool) -> None:
        lines = self._head(status, headers, close) + ["Transfer-Encoding: chunked"]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        while True:
            event = exchange.next_event()
            if event[0] == "abort":
                sock.shutdown(socket.SHUT_RDWR)
                return
            if event[0] == "end":
                if not head:
                    sock.sendall(b"0\r\n\r\n")
                return
            if event[0] == "trailers":  # the chunked trailer section
                if not head:
                    sock.sendall(b"0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in event[1]).encode("latin-1") + b"\r\n")
                return
            chunk = event[1]
            if chunk and not head:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
