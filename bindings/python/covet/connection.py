"""`HTTPConnection`, what `Request` and `WebSocket` share (Starlette's base class of both): the request
line, headers, query and path parameters, cookies, client, TLS session and state, read lazily from the
engine's request object.

Nothing is copied out of the engine until it is used: a handler that only reads ``request.method`` pays
for one attribute, not for the headers or the query string.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional

from .datastructures import URL, Address, EngineHeaders, Headers, QueryParams, State

if TYPE_CHECKING:
    from .app import CovetPy

__all__ = ["HTTPConnection", "RequestScope", "parse_cookies"]

# urllib.parse is imported where it is needed (percent-encoded values, query parsing): an app that never
# meets those does not pay its import time and memory.


def parse_cookies(header: str) -> dict[str, str]:
    """``Cookie: a=1; b="two"`` → ``{"a": "1", "b": "two"}`` (lenient, like browsers send them)."""
    from urllib.parse import unquote  # deferred: start-up cost (see above)

    out: dict[str, str] = {}
    for chunk in header.split(";"):
        name, sep, value = chunk.partition("=")
        name = name.strip()
        if not sep:  # a bare value counts as a value with no name, as browsers do
            name, value = "", name
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name or value:
            out[name] = unquote(value)
    return out


class RequestScope(dict[str, Any]):
    """``request.scope``: an ASGI-style scope (Starlette's keys) that also knows the connection it describes, so
    that ``Request(request.scope, request.receive)`` makes a request over the same one (`covet.requests`)."""

    __slots__ = ("connection",)

    connection: HTTPConnection


class HTTPConnection:
    """What a request and a WebSocket have in common.

    Attributes: ``method``, ``url`` (``.path``, ``.query``, ``.hostname`` ...), ``path``, ``headers``
    (case-insensitive), ``query_params``, ``cookies``, ``path_params`` (decoded strings), ``client``
    (``(host, port)``), ``http_version``, ``scheme``, ``tls``, ``state``, ``app``; ``url_for(name, **params)``.
    """

    __slots__ = (
        "_native",
        "_app",
        "_method",
        "_raw_path",
        "_path",
        "_query_string",
        "_headers",
        "_query_params",
        "_cookies",
        "_path_params",
        "_client",
        "_http_version",
        "_scheme",
        "_tls",
        "_state",
        "_root_path",
        "_server_root",
        "__weakref__",
    )

    def __init__(self, native: Any, app: Any = None, root_path: str = "") -> None:
        """`native`: the engine's request (or WebSocket); `app`: the `CovetPy` serving it (the runtime passes
        it as a `covet.server.interface.ServedApp`); `root_path`: the server's (``covet run --root-path``, as
        uvicorn's), prefixed to ``path``/``url`` as the ASGI ``root_path`` is."""
        self._native = native
        self._server_root = root_path
        self._app: Optional[CovetPy] = app
        self._method: Optional[str] = None
        self._raw_path: Optional[str] = None
        self._path: Optional[str] = None
        self._query_string: Optional[str] = None
        self._headers: Optional[Headers] = None
        self._query_params: Optional[QueryParams] = None
        self._cookies: Optional[dict[str, str]] = None
        self._path_params: Optional[dict[str, str]] = None
        self._client: Optional[Address] = None
        self._http_version: Optional[str] = None
        self._scheme: Optional[str] = None
        self._tls: Any = _UNSET
        self._state: Optional[State] = None
        self._root_path: Optional[str] = None  # set by the test client's ``root_path=``

    # -- scalar attributes ------------------------------------------------------------------------
    @property
    def app(self) -> CovetPy:
        if self._app is None:
            raise AttributeError("this request is not attached to an app")
        return self._app

    @property
    def method(self) -> str:
        if self._method is None:
            self._method = self._native.method
        return self._method

    @property
    def raw_path(self) -> str:
        """The path as sent (still percent-encoded), after the server's root path (``--root-path``) if any:
        the ASGI ``raw_path``."""
        if self._raw_path is None:
            self._raw_path = self._server_root + self._native.path
        return self._raw_path

    @property
    def path(self) -> str:
        """The percent-decoded path: the ASGI ``path`` (with the server's root path in front, as uvicorn's
        ``--root-path`` does)."""
        if self._path is None:
            raw = self.raw_path
            if "%" in raw:
                from urllib.parse import unquote  # deferred: start-up cost (see the top)

                raw = unquote(raw)
            self._path = raw
        return self._path

    @property
    def root_path(self) -> str:
        """The ASGI ``root_path``: the path prefix a proxy strips before the request reaches the app —
        ``CovetPy(root_path=...)`` if set, else the test client's ``root_path=`` (Starlette's: the path keeps
        no prefix), else the server's (``covet run --root-path``); ``""`` if none."""
        app_root: str = getattr(self._app, "root_path", "") or ""
        return app_root or self._root_path or self._server_root

    def _route_path(self) -> str:
        """The path routes are matched against: `path` without a leading `root_path` (Starlette's
        ``get_route_path``: ``/api/v1/items`` and ``/items`` both route as ``/items`` under ``/api/v1``)."""
        path = self.path
        root = self.root_path
        if not root or not path.startswith(root):
            return path
        if len(path) == len(root):
            return ""
        return path[len(root):] if path[len(root)] == "/" else path

    @property
    def query_string(self) -> str:
        if self._query_string is None:
            self._query_string = self._native.query_string
        return self._query_string

    @property
    def http_version(self) -> str:
        if self._http_version is None:
            self._http_version = self._native.http_version
        return self._http_version

    @property
    def scheme(self) -> str:
        """``"https"`` on a TLS connection, else ``"http"``."""
        if self._scheme is None:
            self._scheme = getattr(self._native, "scheme", "http")
        return self._scheme

    @property
    def tls(self) -> Optional[dict[str, Any]]:
        """The TLS session (``tls_version``, ``cipher_suite``, ``alpn_protocol``, ``server_name``,
        ``client_cert_verified``, ``client_cert_name`` (RFC 2253 subject), ``client_cert_common_name``), or None."""
        if self._tls is _UNSET:
            self._tls = getattr(self._native, "tls", None)
        tls: Optional[dict[str, Any]] = self._tls
        return tls

    @property
    def scope(self) -> dict[str, Any]:
        """An ASGI-style scope for code written against Starlette/FastAPI (built on each access)."""
        scope = RequestScope({
            "type": "http", "http_version": self.http_version, "method": self.method, "scheme": self.scheme,
            "path": self.path, "raw_path": self.raw_path.encode("latin-1"), "root_path": self.root_path,
            "query_string": self.query_string.encode("latin-1"),
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.raw],
            "client": tuple(self.client), "path_params": self.path_params, "extensions": {},
        })
        scope.connection = self
        if self.tls is not None:
            scope["extensions"]["tls"] = dict(self.tls)
        return scope

    @property
    def client(self) -> Address:
        if self._client is None:
            host, port = self._native.client
            self._client = Address(host, port)
        return self._client

    # -- parsed attributes ------------------------------------------------------------------------
    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self._native.headers)
        return self._headers

    @property
    def url(self) -> URL:
        host = self.headers.get("host", "")
        return URL(self.scheme, host, self.path, self.query_string, self.raw_path)

    @property
    def base_url(self) -> str:
        """``scheme://host/`` plus the `root_path` (``http://host/api/v1/``), as Starlette's."""
        return f"{self.scheme}://{self.headers.get('host', '')}{self.root_path.rstrip('/')}/"

    def url_for(self, name: str, /, **path_params: Any) -> URL:
        """The full URL of the app's route named `name` with these path parameters (Starlette's ``url_for``:
        scheme, host and `root_path` of this request; ``str()`` it for text); `covet.routing.NoMatchFound` if
        there is none."""
        if self._app is None:
            raise RuntimeError("url_for needs the app serving this request")
        return self._app.url_path_for(name, **path_params).make_absolute_url(self.base_url)

    @property
    def query_params(self) -> QueryParams:
        if self._query_params is None:
            from urllib.parse import parse_qsl  # deferred: start-up cost (see the top)

            self._query_params = QueryParams(parse_qsl(self.query_string, keep_blank_values=True))
        return self._query_params

    @property
    def cookies(self) -> dict[str, str]:
        if self._cookies is None:
            cookie_headers = self.headers.getlist("cookie")
            self._cookies = parse_cookies("; ".join(cookie_headers)) if cookie_headers else {}
        return self._cookies

    @property
    def path_params(self) -> dict[str, str]:
        if self._path_params is None:
            raw: Mapping[str, str] = self._native.params
            params: dict[str, str] = {}
            for k, v in raw.items():
                if "%" in v:
                    from urllib.parse import unquote  # deferred: start-up cost (see the top)

                    v = unquote(v)
                params[k] = v
            self._path_params = params
        return self._path_params

    @property
    def state(self) -> State:
        """Per-request attributes; starts as a copy of the state a lifespan context yielded (if any)."""
        if self._state is None:
            initial = self._app.lifespan_state if self._app is not None else None
            self._state = State(initial)
        return self._state

    @property
    def session(self) -> dict[str, Any]:
        """The session dict a `covet.middleware.sessions.SessionMiddleware` loaded (Starlette's
        ``request.session``); AssertionError without one."""
        state = self.state
        if "_covet_session" not in state:
            raise AssertionError("SessionMiddleware must be installed to access request.session")
        session: dict[str, Any] = state._covet_session
        if hasattr(session, "accessed"):  # the response then varies by Cookie (Starlette's Session.mark_accessed)
            session.accessed = True
        return session

    # -- lifetime -----------------------------------------------------------------------------------
    def _read_all(self) -> None:
        """Copy every attribute still unread out of the engine's request (see `Request._detach`)."""
        self.method, self.raw_path, self.query_string, self.http_version, self.client, self.scheme, self.tls  # noqa: B018
        self.headers, self.path_params  # noqa: B018
        headers = self._headers  # the base's, also when a subclass's `headers` wraps them
        if type(headers) is EngineHeaders:
            headers._materialize()


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()
