"""gRPC methods written in CovetPy's style: a function whose annotations say the messages and the call's shape.

::

    @app.grpc("helloworld.Greeter/SayHello")
    async def say_hello(request: HelloRequest) -> HelloReply:
        return HelloReply(message=f"Hello, {request.name}!")

    @app.grpc("chat.Chat/Talk")                       # bidirectional: AsyncIterator in, async generator out
    async def talk(messages: AsyncIterator[Line], context: ServicerContext) -> AsyncIterator[Line]:
        async for line in messages:
            yield Line(text=line.text.upper())

The request's annotation is a message class (unary) or ``AsyncIterator[Message]``/``Iterator[Message]``
(client streaming); the return's a message class, or an (async) iterator or generator of them (server
streaming). Message classes are protobuf's (``FromString``, ``SerializeToString``) or ``bytes`` for the raw
message. A second parameter, if any, receives the `ServicerContext`. ``def`` functions run in the thread pool.
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from collections.abc import Callable
from typing import Any, NamedTuple, Optional

__all__ = ["RpcMethodHandler", "rpc_method_handler", "split_method_name"]

_STREAMS = {collections.abc.AsyncIterator, collections.abc.AsyncIterable, collections.abc.AsyncGenerator,
            collections.abc.Iterator, collections.abc.Iterable, collections.abc.Generator}


class RpcMethodHandler(NamedTuple):
    """grpcio's ``RpcMethodHandler`` fields (what `covet.grpc.call.Method` reads)."""

    request_streaming: bool
    response_streaming: bool
    request_deserializer: Optional[Callable[[bytes], Any]]
    response_serializer: Optional[Callable[[Any], bytes]]
    unary_unary: Optional[Callable[..., Any]]
    unary_stream: Optional[Callable[..., Any]]
    stream_unary: Optional[Callable[..., Any]]
    stream_stream: Optional[Callable[..., Any]]


def split_method_name(name: str) -> tuple[str, str]:
    """``"pkg.Service/Method"`` (or ``"/pkg.Service/Method"``) -> ``("pkg.Service", "Method")``."""
    service, _, method = name.lstrip("/").partition("/")
    if not service or not method or "/" in method:
        raise ValueError(f"gRPC method name {name!r} must be 'package.Service/Method'")
    return service, method


def _stream_item(hint: Any) -> tuple[bool, Any]:
    """(streaming, message type) of an annotation: ``AsyncIterator[M]`` and the like stream M."""
    origin = typing.get_origin(hint)
    if origin in _STREAMS:
        args = typing.get_args(hint)
        return True, args[0] if args else bytes
    return False, hint


def _codec(message_type: Any, what: str, name: str) -> tuple[Optional[Callable[[bytes], Any]],
                                                             Optional[Callable[[Any], bytes]]]:
    if message_type is bytes:
        return None, None
    parse = getattr(message_type, "FromString", None)
    serialize = getattr(message_type, "SerializeToString", None)
    if parse is None or serialize is None:
        raise TypeError(f"gRPC method {name}: the {what} annotation {message_type!r} is not a protobuf message "
                        "class (with FromString and SerializeToString) nor bytes")
    return parse, serialize


def rpc_method_handler(function: Callable[..., Any], name: str) -> RpcMethodHandler:
    """The handler for `function`, its shape and message types read from its annotations."""
    parameters = list(inspect.signature(function).parameters.values())
    if not parameters or len(parameters) > 2:
        raise TypeError(f"gRPC method {name}: the function takes the request (and optionally the context), "
                        f"not {len(parameters)} parameters")
    try:
        hints = typing.get_type_hints(function)
    except NameError as exc:
        raise TypeError(f"gRPC method {name}: its annotations do not resolve ({exc}); with `from __future__ import "
                        "annotations` they are strings read from the module's globals, so import the message "
                        "classes at module level") from exc
    if parameters[0].name not in hints or "return" not in hints:
        raise TypeError(f"gRPC method {name}: annotate the request parameter and the return type with the "
                        "message classes (AsyncIterator[Message] for a stream)")
    request_streaming, request_type = _stream_item(hints[parameters[0].name])
    response_streaming, response_type = _stream_item(hints["return"])
    response_streaming = response_streaming or inspect.isasyncgenfunction(function) or \
        inspect.isgeneratorfunction(function)
    parse, _ = _codec(request_type, "request", name)
    _, serialize = _codec(response_type, "response", name)
    is_async = inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)
    behaviour: Callable[..., Any] = function
    if len(parameters) == 1:
        def behaviour(request: Any, context: Any) -> Any:
            return function(request)

        behaviour._covet_async = is_async  # type: ignore[attr-defined]  # (covet.grpc.call.Method reads it)
    kind = ("stream_" if request_streaming else "unary_") + ("stream" if response_streaming else "unary")
    shapes: dict[str, Optional[Callable[..., Any]]] = {
        "unary_unary": None, "unary_stream": None, "stream_unary": None, "stream_stream": None}
    shapes[kind] = behaviour
    return RpcMethodHandler(request_streaming, response_streaming, parse, serialize, **shapes)
