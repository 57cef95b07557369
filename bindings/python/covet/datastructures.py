"""Small containers used by requests and responses: headers, query parameters, form data and uploaded
files, URL, state."""

from __future__ import annotations

import io
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import IO, TYPE_CHECKING, Any, Generic, Optional, Protocol, TypeVar, Union, overload

from .concurrency import run_in_threadpool

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler
    from pydantic_core import CoreSchema

__all__ = ["Headers", "MutableHeaders", "QueryParams", "FormData", "UploadFile", "URL", "State", "Address", "Default",
           "DefaultPlaceholder"]

_V = TypeVar("_V")


class Address(tuple[str, int]):
    """The peer of a connection: ``(host, port)`` with ``.host`` and ``.port``."""

    __slots__ = ()

    def __new__(cls, host: str, port: int) -> Address:
        return tuple.__new__(cls, (host, port))

    @property
    def host(self) -> str:
        return self[0]

    @property
    def port(self) -> int:
        return self[1]


class _MultiMapping(Mapping[str, _V], Generic[_V]):
    """An immutable multi-valued mapping; ``m[key]`` is the LAST value given for `key` (as in Starlette)."""

    __slots__ = ("_list", "_dict")

    def __init__(self, items: Union[Iterable[tuple[str, Any]], Mapping[str, Any], None] = None) -> None:
        if items is None:
            pairs: list[tuple[str, _V]] = []
        elif isinstance(items, _MultiMapping):
            pairs = list(items.multi_items())
        elif isinstance(items, Mapping):
            pairs = [(str(k), str(v)) for k, v in items.items()]  # type: ignore[misc]
        else:
            pairs = [(str(k), str(v)) for k, v in items]  # type: ignore[misc]
        self._list = pairs
        self._dict = dict(pairs)

    def getlist(self, key: str) -> list[_V]:
        return [v for k, v in self._list if k == key]

    def multi_items(self) -> list[tuple[str, _V]]:
        return list(self._list)

    def __getitem__(self, key: str) -> _V:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _MultiMapping):
            return sorted(self._list) == sorted(other._list)
        return NotImplemented

    def __hash__(self) -> int:  # pragma: no cover - mappings are not hashable
        raise TypeError(f"unhashable type: {type(self).__name__!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._list!r})"


class QueryParams(_MultiMapping[str]):
    """Decoded query-string parameters. Accepts a raw query string as well as pairs or a mapping."""

    __slots__ = ()

    def __init__(self, items: Union[str, Iterable[tuple[str, str]], Mapping[str, str], None] = None) -> None:
        if isinstance(items, str):
            from urllib.parse import parse_qsl  # imported when first needed: it is costly to import

            items = parse_qsl(items, keep_blank_values=True)
        super().__init__(items)

    def __str__(self) -> str:
        from urllib.parse import urlencode

        return urlencode(self._list)


class UploadFile:
    """A file uploaded in a ``multipart/form-data`` request (Starlette's and FastAPI's `UploadFile`).

    ``filename``, ``content_type``, ``headers`` (the part's headers), ``size``, ``file`` (a binary file object
    for sync code) and the async ``read()``, ``write()``, ``seek()``, ``close()``. The request body is
    already in memory when a handler runs, so an uploaded file is an in-memory file (``io.BytesIO``); the
    async methods then run directly, and in the thread pool for other (disk) files.

    Usable as a handler parameter type (``file: UploadFile``), also inside ``Optional[...]`` or ``list[...]``.
    """

    __slots__ = ("file", "filename", "size", "headers")

    def __init__(
        self,
        file: IO[bytes],
        *,
        size: Optional[int] = None,
        filename: Optional[str] = None,
        headers: Optional[Headers] = None,
    ) -> None:
        self.file = file
        self.filename = filename
        self.size = size
        self.headers = headers if headers is not None else Headers()

    @property
    def content_type(self) -> Optional[str]:
        return self.headers.get("content-type")

    @property
    def _in_memory(self) -> bool:
        file = self.file
        return isinstance(file, io.BytesIO) or getattr(file, "_rolled", True) is False  # SpooledTemporaryFile

    async def read(self, size: int = -1) -> bytes:
        if self._in_memory:
            return self.file.read(size)
        return await run_in_threadpool(self.file.read, size)

    async def write(self, data: bytes) -> None:
        if self.size is not None:
            self.size += len(data)
        if self._in_memory:
            self.file.write(data)
        else:
            await run_in_threadpool(self.file.write, data)

    async def seek(self, offset: int) -> None:
        if self._in_memory:
            self.file.seek(offset)
        else:
            await run_in_threadpool(self.file.seek, offset)

    async def close(self) -> None:
        if self._in_memory:
            self.file.close()
        else:
            await run_in_threadpool(self.file.close)

    def _content(self) -> bytes:
        """The whole content, whatever has been read so far (for ``bytes`` parameters)."""
        file = self.file
        if isinstance(file, io.BytesIO):
            return file.getvalue()
        file.seek(0)
        return file.read()

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        from pydantic_core import core_schema

        def validate(value: Any) -> UploadFile:
            if not isinstance(value, cls):
                raise ValueError(f"Expected UploadFile, received: {type(value)}")
            return value

        return core_schema.no_info_plain_validator_function(validate)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        """A file in the OpenAPI schema: a string of octets (OpenAPI 3.1's way, as FastAPI has it)."""
        return {"type": "string", "contentMediaType": "application/octet-stream"}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(filename={self.filename!r}, size={self.size!r}, headers={self.headers!r})"


class FormData(_MultiMapping[Union[str, UploadFile]]):
    """Decoded form fields: ``str`` values, and `UploadFile` values for the files of a multipart form."""

    __slots__ = ()

    def __init__(
        self, items: Union[Iterable[tuple[str, Any]], Mapping[str, Any], None] = None
    ) -> None:
        if items is None or isinstance(items, _MultiMapping):
            super().__init__(items)
            return
        pairs = items.items() if isinstance(items, Mapping) else items
        self._list = [(str(k), v if isinstance(v, (str, UploadFile)) else str(v)) for k, v in pairs]
        self._dict = dict(self._list)

    async def close(self) -> None:
        """Closes every uploaded file."""
        for _, value in self._list:
            if isinstance(value, UploadFile):
                await value.close()


class Headers(Mapping[str, str]):
    """Request or response headers: case-insensitive, multi-valued, order-preserving, immutable.

    ``h[name]`` / ``h.get(name)`` give the FIRST value, ``h.getlist(name)`` all of them, ``h.raw`` the
    ``(name, value)`` pairs as received (original case).
    """

    __slots__ = ("_raw", "_lower")
    _raw: list[tuple[str, str]]

    def __init__(self, headers: Union[Iterable[tuple[str, str]], Mapping[str, str], None] = None) -> None:
        if headers is None:
            raw: list[tuple[str, str]] = []
        elif type(headers) is list:  # the common case first: ABC isinstance checks are slow
            raw = list(headers)
        elif isinstance(headers, Headers):
            raw = list(headers._raw)
        elif isinstance(headers, Mapping):
            raw = list(headers.items())
        else:
            raw = list(headers)
        self._raw = raw
        self._lower: Optional[dict[str, str]] = None

    def _index(self) -> dict[str, str]:
        index = self._lower
        if index is None:
            index = {}
            for name, value in self._raw:
                index.setdefault(name.lower(), value)
            self._lower = index
        return index

    @property
    def raw(self) -> list[tuple[str, str]]:
        return list(self._raw)

    def getlist(self, key: str) -> list[str]:
        key = key.lower()
        return [v for k, v in self._raw if k.lower() == key]

    def __getitem__(self, key: str) -> str:
        return self._index()[key.lower()]

    # Mapping's get goes through __getitem__ and a KeyError for a missing name: three times the cost of this.
    @overload
    def get(self, key: str) -> Optional[str]: ...
    @overload
    def get(self, key: str, default: Union[str, _V]) -> Union[str, _V]: ...
    def get(self, key: str, default: Any = None) -> Any:
        return self._index().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._index()

    def __iter__(self) -> Iterator[str]:
        return iter(self._index())

    def __len__(self) -> int:
        return len(self._index())

    def keys(self) -> KeysView[str]:
        return self._index().keys()

    def items(self) -> ItemsView[str, str]:
        return self._index().items()

    def values(self) -> ValuesView[str]:
        return self._index().values()

    def mutablecopy(self) -> MutableHeaders:
        return MutableHeaders(self._raw)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted((k.lower(), v) for k, v in self._raw) == sorted((k.lower(), v) for k, v in other._raw)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._raw!r})"


class _HeaderSource(Protocol):
    """What `EngineHeaders` reads: the engine's request (``NativeRequest``) or a hosted app's `ScopeRequest`."""

    @property
    def headers(self) -> list[tuple[str, str]]: ...
    def header(self, name: str) -> Optional[str]: ...
    def header_values(self, name: str) -> list[str]: ...


_RAW_SLOT: Any = Headers.__dict__["_raw"]  # the slot itself: EngineHeaders shadows the name with a property


class EngineHeaders(Headers):
    """A request's headers left in the engine: ``get``, ``[]``, ``in`` and ``getlist`` look one name up there
    (case-insensitively) without converting the others. Whatever needs them all (iteration, ``raw``, ``items()``,
    ``len``, comparison, a copy) converts them once, and then they are plain `Headers`. The engine keeps a request
    only until its answer: the dispatcher calls `_materialize` first when the request or these headers are kept
    (`covet.requests.Request._detach`, `covet.server.dispatch`)."""

    __slots__ = ("_source",)

    def __init__(self, source: _HeaderSource) -> None:
        # Headers.__init__ is not called: nothing to copy yet. `Request.headers` makes its instances without this
        # frame (object.__new__ and the same two stores, covet.requests); test_dispatch checks the two agree.
        self._source: Optional[_HeaderSource] = source
        self._lower = None

    def _materialize(self) -> None:
        source = self._source
        if source is not None:
            _RAW_SLOT.__set__(self, source.headers)
            self._source = None

    @property
    def _raw(self) -> list[tuple[str, str]]:
        if self._source is not None:
            self._materialize()
        raw: list[tuple[str, str]] = _RAW_SLOT.__get__(self, Headers)
        return raw

    @_raw.setter
    def _raw(self, raw: list[tuple[str, str]]) -> None:
        _RAW_SLOT.__set__(self, raw)
        self._source = None

    def __reduce__(self) -> tuple[type[Headers], tuple[list[tuple[str, str]]]]:
        """Copies and pickles are plain `Headers` (the engine's request is neither copied nor pickled)."""
        return Headers, (list(self._raw),)

    def getlist(self, key: str) -> list[str]:
        source = self._source
        if source is None:
            return Headers.getlist(self, key)
        return source.header_values(key)

    def __getitem__(self, key: str) -> str:
        source = self._source
        if source is None:
            return Headers.__getitem__(self, key)
        value = source.header(key)
        if value is None:
            raise KeyError(key)
        return value

    @overload
    def get(self, key: str) -> Optional[str]: ...
    @overload
    def get(self, key: str, default: Union[str, _V]) -> Union[str, _V]: ...
    def get(self, key: str, default: Any = None) -> Any:
        source = self._source
        if source is None:
            return Headers.get(self, key, default)
        value = source.header(key)
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        source = self._source
        if source is None:
            return Headers.__contains__(self, key)
        return isinstance(key, str) and source.header(key) is not None


class MutableHeaders(Headers):
    """Response headers: like :class:`Headers`, plus ``h[name] = value`` (replaces), ``del``, ``append``."""

    __slots__ = ()

    def __setitem__(self, key: str, value: str) -> None:
        lower = key.lower()
        self._raw = [(k, v) for k, v in self._raw if k.lower() != lower]
        self._raw.append((key, str(value)))
        self._lower = None

    def __delitem__(self, key: str) -> None:
        lower = key.lower()
        kept = [(k, v) for k, v in self._raw if k.lower() != lower]
        if len(kept) == len(self._raw):
            raise KeyError(key)
        self._raw = kept
        self._lower = None

    def setdefault(self, key: str, value: str) -> str:
        if key in self:
            return self[key]
        self[key] = value
        return value

    def append(self, key: str, value: str) -> None:
        self._raw.append((key, str(value)))
        self._lower = None

    def update(self, other: Union[Mapping[str, str], Iterable[tuple[str, str]]]) -> None:
        for key, value in other.items() if isinstance(other, Mapping) else other:
            self[key] = value


class URL:
    """The request URL, built from the Host header and the request target."""

    __slots__ = ("scheme", "netloc", "path", "query", "raw_path")

    def __init__(self, scheme: str, netloc: str, path: str, query: str, raw_path: str = "") -> None:
        self.scheme = scheme
        self.netloc = netloc
        self.path = path
        self.query = query
        self.raw_path = raw_path or path

    @property
    def hostname(self) -> Optional[str]:
        host = self.netloc
        if not host:
            return None
        if host.startswith("["):  # IPv6 literal
            return host[1 : host.index("]")] if "]" in host else host
        return host.rsplit(":", 1)[0] if ":" in host else host

    @property
    def port(self) -> Optional[int]:
        host = self.netloc
        tail = host.rsplit("]", 1)[-1] if host.startswith("[") else host
        if ":" in tail:
            try:
                return int(tail.rsplit(":", 1)[1])
            except ValueError:
                return None
        return None

    def __str__(self) -> str:
        out = f"{self.scheme}://{self.netloc}{self.raw_path}"
        return f"{out}?{self.query}" if self.query else out

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (URL, str)):
            return str(self) == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))

    def __repr__(self) -> str:
        return f"URL({str(self)!r})"


class State:
    """An attribute bag: ``app.state.db = ...``; ``request.state.user = ...``."""

    def __init__(self, initial: Optional[Mapping[str, Any]] = None) -> None:
        object.__setattr__(self, "_state", dict(initial or {}))

    def __setattr__(self, key: str, value: Any) -> None:
        self._state[key] = value

    def __getattr__(self, key: str) -> Any:
        try:
            return self._state[key]
        except KeyError:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{key}'") from None

    def __delattr__(self, key: str) -> None:
        try:
            del self._state[key]
        except KeyError:
            raise AttributeError(key) from None

    def __contains__(self, key: str) -> bool:
        return key in self._state

    def _copy(self) -> State:
        return State(self._state)

    def __repr__(self) -> str:
        return f"State({self._state!r})"


# The scheme of a route's URL from the request's, by the route's protocol (Starlette's URLPath): an HTTP route's
# URL is http(s) even when asked from a WebSocket (or behind a proxy saying wss), a WebSocket route's ws(s).
_SCHEME_FOR = {
    "http": {"http": "http", "https": "https", "ws": "http", "wss": "https"},
    "websocket": {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"},
}


class URLPath(str):
    """A path from ``url_path_for`` (Starlette's type): a `str`; `make_absolute_url` joins it to a base URL.
    `protocol` ("http", "websocket" or "") is the route's, which picks the scheme."""

    protocol: str

    def __new__(cls, path: str, protocol: str = "") -> URLPath:
        self = super().__new__(cls, path)
        self.protocol = protocol
        return self

    def make_absolute_url(self, base_url: Union[str, URL]) -> URL:
        """The full URL of this path under `base_url` (``http://host/`` or ``http://host/root/``)."""
        base = str(base_url)
        scheme, _, rest = base.partition("://")
        scheme = _SCHEME_FOR.get(self.protocol, {}).get(scheme, scheme)
        netloc, _, base_path = rest.partition("/")
        path = "/" + base_path.rstrip("/") + str(self) if base_path.strip("/") else str(self)
        return URL(scheme, netloc, path, "", path)


class DefaultPlaceholder:
    """A default value marked as such (FastAPI's), so that code can tell "left at the default" from "set to a
    value equal to the default": ``isinstance(x, DefaultPlaceholder)``; the value is ``x.value``."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __bool__(self) -> bool:
        return bool(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DefaultPlaceholder) and other.value == self.value

    def __hash__(self) -> int:
        return hash((DefaultPlaceholder, repr(self.value)))

    def __repr__(self) -> str:
        return f"Default({self.value!r})"


def Default(value: _V) -> _V:
    """`value` wrapped in a `DefaultPlaceholder` (typed as the value, for signatures' defaults)."""
    return DefaultPlaceholder(value)  # type: ignore[return-value]
