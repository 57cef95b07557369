"""Server-Sent Events and JSON Lines from generator handlers (FastAPI 0.134/0.135, ``fastapi.sse``).

::

    from covet.sse import EventSourceResponse, ServerSentEvent

    @app.get("/events", response_class=EventSourceResponse)
    async def events() -> AsyncIterable[Item]:
        yield Item(name="a")                               # data: {"name":"a"}
        yield ServerSentEvent(data={"x": 1}, event="tick", id="7", retry=1000)

    @app.get("/items.jsonl")
    async def items() -> AsyncIterable[Item]:              # no response_class: JSON Lines (application/jsonl)
        yield Item(name="a")

Each item is validated against the declared item type (``AsyncIterable[Item]``, ``Iterator[Item]`` ...) and
dumped by pydantic-core with the route's ``response_model_*`` options; without a declared type it goes through
`jsonable` and ``json.dumps`` (FastAPI's exact bytes). A `ServerSentEvent` sets the event's fields itself (its
``data`` is JSON, ``raw_data`` is sent as it is). An SSE stream idle for ``_PING_INTERVAL`` seconds (15) sends a
``: ping`` comment, so that proxies keep the connection; events carry ``Cache-Control: no-cache`` and
``X-Accel-Buffering: no``. Sync generators run in the thread pool, async ones on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from typing import Annotated, Any, Optional

from pydantic import AfterValidator, BaseModel, Field, TypeAdapter, ValidationError, model_validator

from . import encoders
from .exceptions import ResponseValidationError
from .responses import EventSourceResponse

__all__ = ["EventSourceResponse", "ServerSentEvent", "format_sse_event", "KEEPALIVE_COMMENT"]

KEEPALIVE_COMMENT = b": ping\n\n"
_PING_INTERVAL: float = 15.0  # seconds an SSE stream may be idle before a keep-alive comment


def _single_line(value: Optional[str], field: str) -> Optional[str]:
    if value is not None and ("\r" in value or "\n" in value):
        raise ValueError(f"SSE '{field}' must be a single line")
    return value


def _event_single_line(value: Optional[str]) -> Optional[str]:
    return _single_line(value, "event")


def _id_valid(value: Optional[str]) -> Optional[str]:
    if value is not None and "\0" in value:
        raise ValueError("SSE 'id' must not contain null characters")
    return _single_line(value, "id")


class ServerSentEvent(BaseModel):
    """One event of a ``text/event-stream``: ``data`` (any JSON value, always JSON-encoded: a str is quoted) or
    ``raw_data`` (sent as it is), ``event`` (the type the browser dispatches on), ``id`` (sent back as
    ``Last-Event-ID`` on reconnection), ``retry`` (reconnection delay in milliseconds) and ``comment``."""

    data: Any = None
    raw_data: Optional[str] = None
    event: Annotated[Optional[str], AfterValidator(_event_single_line)] = None
    id: Annotated[Optional[str], AfterValidator(_id_valid)] = None
    retry: Annotated[Optional[int], Field(ge=0)] = None
    comment: Optional[str] = None

    @model_validator(mode="after")
    def _data_exclusive(self) -> ServerSentEvent:
        if self.data is not None and self.raw_data is not None:
            raise ValueError("Cannot set both 'data' and 'raw_data' on the same ServerSentEvent. Use 'data' for "
                             "JSON-serialized payloads or 'raw_data' for pre-formatted strings.")
        return self


def _lines(value: str) -> list[str]:
    return value.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def format_sse_event(*, data_str: Optional[str] = None, event: Optional[str] = None, id: Optional[str] = None,
                     retry: Optional[int] = None, comment: Optional[str] = None) -> bytes:
    """An event in the SSE wire format from an already serialised ``data_str``; ends with a blank line."""
    lines: list[str] = []
    if comment is not None:
        lines.extend(f": {line}" for line in _lines(comment))
    if event is not None:
        lines.append(f"event: {event}")
    if data_str is not None:
        lines.extend(f"data: {line}" for line in _lines(data_str))
    if id is not None:
        lines.append(f"id: {id}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    lines.append("")
    lines.append("")
    return "\n".join(lines).encode("utf-8")


def _finite(data: Any) -> Any:
    """NaN and infinities as null (what FastAPI sends for them in a stream item)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_finite(value) for value in data]
    return data


def _undeclared_json(data: Any) -> bytes:
    # FastAPI's bytes for an item of no declared type: json.dumps with its default separators (", ", ": ").
    return json.dumps(_finite(encoders.jsonable(data))).encode("utf-8")


def item_serializer(adapter: Optional[TypeAdapter[Any]], dump_options: dict[str, Any]) -> Callable[[Any], bytes]:
    """Validates one yielded item against the declared item type (`adapter`) and dumps it to JSON bytes."""
    if adapter is None:
        return _undeclared_json

    def dump(item: Any) -> bytes:
        try:
            value = adapter.validate_python(item, from_attributes=True)
        except ValidationError as exc:
            raise ResponseValidationError([dict(e) for e in exc.errors(include_url=False)]) from exc
        return adapter.dump_json(value, **dump_options)

    return dump


def sse_serializer(serialize: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    """One yielded item as an event: a `ServerSentEvent` as it says, anything else as the ``data`` of one."""

    def event(item: Any) -> bytes:
        if isinstance(item, ServerSentEvent):  # the user shapes it: not validated against the item type
            if item.raw_data is not None:
                data_str: Optional[str] = item.raw_data
            elif item.data is not None:
                if hasattr(item.data, "model_dump_json"):
                    data_str = item.data.model_dump_json()
                else:
                    data_str = _undeclared_json(item.data).decode("utf-8")
            else:
                data_str = None
            return format_sse_event(data_str=data_str, event=item.event, id=item.id, retry=item.retry,
                                    comment=item.comment)
        return format_sse_event(data_str=serialize(item).decode("utf-8"))

    return event


async def serialized(items: Any, serialize: Callable[[Any], bytes], executor: Optional[Executor],
                     suffix: bytes = b"") -> AsyncIterator[bytes]:
    """`items` (an async or sync iterator; a sync one is advanced in `executor`) as serialised chunks. Closed
    early (the client went away), it closes `items`, so the handler's generator runs its ``finally:``."""
    if hasattr(items, "__anext__"):
        try:
            async for item in items:
                yield serialize(item) + suffix
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()
        return
    loop = asyncio.get_running_loop()
    iterator: Iterator[Any] = iter(items)
    done = object()
    try:
        while True:
            item = await loop.run_in_executor(executor, next, iterator, done)
            if item is done:
                return
            yield serialize(item) + suffix
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            await loop.run_in_executor(executor, close)


async def with_pings(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks`, with a keep-alive comment whenever none came for `_PING_INTERVAL` seconds. The pending step of
    `chunks` keeps running through a ping (it is not cancelled and restarted)."""
    pending: Optional[asyncio.Future[bytes]] = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(chunks.__anext__())
            done, _ = await asyncio.wait((pending,), timeout=_PING_INTERVAL)
            if not done:
                yield KEEPALIVE_COMMENT
                continue
            step, pending = pending, None
            try:
                chunk = step.result()
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        if pending is not None:  # stopped early (cancelled): end the pending step before closing `chunks`
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
