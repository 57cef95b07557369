"""covet.grpc with grpcio's own client (issue 20): services written for grpcio (generic handlers over protobuf's
well-known wrapper messages, so no protoc run is needed), served by a CovetPy app on real sockets, called through
``grpc.insecure_channel``. Covers what grpc-go's interop client (tests/python/test_grpc_interop.py) does not:
message compression both ways, a deadline the handler sees, a client's cancel reaching the handler, async and sync
methods side by side, the health service following the app's readiness, and reflection (grpcio-reflection's
client; grpcurl where it is built).
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from serverproc import require_compiled_engine

grpc = pytest.importorskip("grpc")
wrappers = pytest.importorskip("google.protobuf.wrappers_pb2")

from covet import CovetPy  # noqa: E402
from covet.grpc import GrpcServer, ServicerContext  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODES = [(0, "uring"), (1, "asio")]
SERVICE = "test.Echo"
String, Int64 = wrappers.StringValue, wrappers.Int64Value


class State:
    """What the server side saw, for the test thread."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.done_callback = threading.Event()
        self.ready = True
        self.intercepted: list[str] = []


def build_app(state: State) -> CovetPy:
    app = CovetPy()

    @app.get("/rest")
    async def rest() -> dict[str, bool]:
        return {"ok": True}

    @app.readiness_check
    def ready() -> bool:
        return state.ready

    async def echo(request: Any, context: Any) -> Any:
        metadata = dict(context.invocation_metadata())
        if "x-echo-bin" in metadata:
            await context.send_initial_metadata((("x-echo-bin", metadata["x-echo-bin"]),))
        if "x-compress" in metadata:
            context.set_compression(grpc.Compression.Gzip)
        context.set_trailing_metadata((("x-trailer", "t1"),))
        return String(value=request.value)

    def sync_upper(request: Any, context: Any) -> Any:
        assert threading.current_thread() is not threading.main_thread()
        return String(value=request.value.upper())

    async def remaining(request: Any, context: Any) -> Any:
        left = context.time_remaining()
        return Int64(value=-1 if left is None else int(left * 1000))

    async def wait_forever(request: Any, context: Any) -> Any:
        context.add_done_callback(lambda _context: state.done_callback.set())
        try:
            await asyncio.Event().wait()
        finally:
            state.cancelled.set()
        return String(value="never")

    async def count(request: Any, context: Any) -> AsyncIterator[Any]:
        for i in range(request.value):
            yield Int64(value=i)

    def sync_count(request: Any, context: Any) -> Iterator[Any]:
        for i in range(request.value):
            yield Int64(value=i)

    async def total(requests: AsyncIterator[Any], context: Any) -> Any:
        return Int64(value=sum([r.value async for r in requests]))

    async def chat(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for r in requests:
            yield String(value=f"re: {r.value}")

    def sync_chat(requests: Iterator[Any], context: Any) -> Iterator[Any]:
        for r in requests:
            yield String(value=f"sync re: {r.value}")

    def sync_list_chat(requests: Iterator[Any], context: Any) -> list[Any]:
        # a plain function (no generator) reading the request stream: in the pool, or the loop would deadlock
        return [String(value=f"list: {r.value}") for r in requests]

    async def stubborn(request: Any, context: Any) -> Any:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass  # swallowed: the deadline passed all the same
        return String(value="too late")

    async def bad_metadata(request: Any, context: Any) -> Any:
        context.set_trailing_metadata((("x id", "1"),))  # not a valid key: ValueError, the call ends UNKNOWN
        return String()

    def unary(function: Any, request: Any, response: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(function, request.FromString, response.SerializeToString)

    handlers = {
        "Echo": unary(echo, String, String),
        "Upper": unary(sync_upper, String, String),
        "Remaining": unary(remaining, String, Int64),
        "WaitForever": unary(wait_forever, String, String),
        "Count": grpc.unary_stream_rpc_method_handler(count, Int64.FromString, Int64.SerializeToString),
        "SyncCount": grpc.unary_stream_rpc_method_handler(sync_count, Int64.FromString, Int64.SerializeToString),
        "Total": grpc.stream_unary_rpc_method_handler(total, Int64.FromString, Int64.SerializeToString),
        "Chat": grpc.stream_stream_rpc_method_handler(chat, String.FromString, String.SerializeToString),
        "SyncChat": grpc.stream_stream_rpc_method_handler(sync_chat, String.FromString, String.SerializeToString),
        "SyncListChat": grpc.stream_stream_rpc_method_handler(sync_list_chat, String.FromString,
                                                              String.SerializeToString),
        "Stubborn": unary(stubborn, String, String),
        "BadMetadata": unary(bad_metadata, String, String),
    }
    server = app.grpc_server
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

    # CovetPy's own style: the shape and the messages from the annotations
    @app.grpc("test.Typed/Shout")
    async def shout(request: String) -> String:
        return String(value=request.value.upper() + "!")

    @app.grpc("test.Typed/Split")
    async def split(request: String, context: ServicerContext) -> AsyncIterator[String]:
        assert context.time_remaining() is not None
        for word in request.value.split():
            yield String(value=word)

    @app.grpc("test.Typed/Join")
    def join(parts: Iterator[String]) -> String:  # sync: in the thread pool, the messages arriving meanwhile
        return String(value="-".join(part.value for part in parts))

    @app.grpc("/test.Typed/Raw")
    async def raw(request: bytes) -> bytes:
        return request[::-1]

    # A second server on the same app, behind an interceptor (grpc.aio.ServerInterceptor's API)
    class RequireToken(grpc.aio.ServerInterceptor):  # type: ignore[misc]
        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            state.intercepted.append(details.method)
            if ("authorization", "Bearer good") in tuple(details.invocation_metadata):
                return await continuation(details)

            def deny(request: Any, context: Any) -> Any:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "a bearer token is required")

            return grpc.unary_unary_rpc_method_handler(deny)

    guarded = GrpcServer(app, interceptors=[RequireToken()])

    @guarded.rpc("test.Guarded/Secret")
    async def secret(request: String) -> String:
        return String(value="the secret")

    server.enable_health()
    server.enable_reflection()
    return app


@pytest.fixture(scope="module", params=MODES, ids=[f"threads{t}-{b}" for t, b in MODES])
def served(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    require_compiled_engine()
    from covet.serve import ThreadedWorker

    state = State()
    patch = pytest.MonkeyPatch()
    patch.setenv("COVET_READINESS_INTERVAL", "0.1")
    threads, backend = request.param
    worker = ThreadedWorker(build_app(state), threads=threads, backend=backend, http2=True).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{worker.port}")
    try:
        yield {"channel": channel, "state": state, "port": worker.port}
    finally:
        channel.close()
        worker.stop()
        patch.undo()


def method(channel: Any, name: str, request: Any, response: Any, shape: str = "unary_unary", **kwargs: Any) -> Any:
    return getattr(channel, shape)(f"/{SERVICE}/{name}", request_serializer=request.SerializeToString,
                                   response_deserializer=response.FromString, **kwargs)


def test_unary_with_metadata_both_ways(served: dict[str, Any]) -> None:
    call = method(served["channel"], "Echo", String, String)
    response, info = call.with_call(String(value="héllo"), metadata=(("x-echo-bin", b"\x00\xff\x01"),), timeout=10)
    assert response.value == "héllo"
    assert ("x-echo-bin", b"\x00\xff\x01") in tuple(info.initial_metadata())
    assert ("x-trailer", "t1") in tuple(info.trailing_metadata())
    assert info.code() == grpc.StatusCode.OK


def test_compression_both_ways(served: dict[str, Any]) -> None:
    call = method(served["channel"], "Echo", String, String)
    big = "z" * 100_000
    # the request gzip-compressed by the client; the response by the server (x-compress) for a client accepting it
    response = call(String(value=big), compression=grpc.Compression.Gzip, metadata=(("x-compress", "1"),),
                    timeout=10)
    assert response.value == big


def test_sync_and_async_methods_side_by_side(served: dict[str, Any]) -> None:
    channel = served["channel"]
    assert method(channel, "Upper", String, String)(String(value="abc"), timeout=10).value == "ABC"
    assert [m.value for m in method(channel, "SyncCount", Int64, Int64, "unary_stream")(Int64(value=5), timeout=10)] \
        == [0, 1, 2, 3, 4]
    replies = method(channel, "SyncChat", String, String, "stream_stream")(
        iter([String(value="a"), String(value="b")]), timeout=10)
    assert [r.value for r in replies] == ["sync re: a", "sync re: b"]


def test_a_plain_sync_function_reading_the_stream_runs_in_the_pool(served: dict[str, Any]) -> None:
    replies = method(served["channel"], "SyncListChat", String, String, "stream_stream")(
        iter([String(value="a"), String(value="b")]), timeout=10)
    assert [r.value for r in replies] == ["list: a", "list: b"]


def test_a_swallowed_cancellation_still_ends_the_call(served: dict[str, Any]) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        method(served["channel"], "Stubborn", String, String)(String(), timeout=0.3)
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # the server answered it too (a raw deadline-less check would hang otherwise): the next call is served
    assert method(served["channel"], "Echo", String, String)(String(value="next"), timeout=10).value == "next"


def test_invalid_metadata_from_the_method_ends_the_call(served: dict[str, Any]) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        method(served["channel"], "BadMetadata", String, String)(String(), timeout=10)
    assert failure.value.code() == grpc.StatusCode.UNKNOWN
    assert "x id" in (failure.value.details() or "")


def test_streaming_shapes(served: dict[str, Any]) -> None:
    channel = served["channel"]
    values = [m.value for m in method(channel, "Count", Int64, Int64, "unary_stream")(Int64(value=1000), timeout=10)]
    assert values == list(range(1000))
    total = method(channel, "Total", Int64, Int64, "stream_unary")(iter([Int64(value=i) for i in range(100)]),
                                                                     timeout=10)
    assert total.value == sum(range(100))
    replies = method(channel, "Chat", String, String, "stream_stream")(
        iter([String(value=str(i)) for i in range(50)]), timeout=10)
    assert [r.value for r in replies] == [f"re: {i}" for i in range(50)]


def test_deadline_visible_to_the_handler(served: dict[str, Any]) -> None:
    left_ms = method(served["channel"], "Remaining", String, Int64)(String(), timeout=5).value
    assert 3000 < left_ms <= 5100  # (grpcio rounds the timeout it sends up a little)
    assert method(served["channel"], "Remaining", String, Int64)(String()).value == -1  # no deadline


def test_client_cancel_reaches_the_handler(served: dict[str, Any]) -> None:
    state: State = served["state"]
    state.cancelled.clear()
    state.done_callback.clear()
    future = method(served["channel"], "WaitForever", String, String).future(String())
    time.sleep(0.3)
    assert not state.cancelled.is_set()
    future.cancel()
    assert state.cancelled.wait(5), "the handler was not cancelled after the client's RST_STREAM"
    assert state.done_callback.wait(5), "the context's done callback did not run"
    # the server goes on serving
    assert method(served["channel"], "Echo", String, String)(String(value="after"), timeout=10).value == "after"


def test_server_deadline_cancels_the_handler(served: dict[str, Any]) -> None:
    state: State = served["state"]
    state.cancelled.clear()
    with pytest.raises(grpc.RpcError) as failure:
        method(served["channel"], "WaitForever", String, String)(String(), timeout=0.3)
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert state.cancelled.wait(5), "the handler outlived its deadline"


def test_unknown_method_and_service(served: dict[str, Any]) -> None:
    for path in (f"/{SERVICE}/Nope", "/no.Such/Service"):
        call = served["channel"].unary_unary(path, request_serializer=String.SerializeToString,
                                             response_deserializer=String.FromString)
        with pytest.raises(grpc.RpcError) as failure:
            call(String(), timeout=10)
        assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED, path


def test_health_follows_readiness(served: dict[str, Any]) -> None:
    health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
    health_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")
    stub = health_grpc.HealthStub(served["channel"])
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    assert stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == serving
    assert stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10).status == serving
    with pytest.raises(grpc.RpcError) as failure:
        stub.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=10)
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=SERVICE), timeout=20)
    assert next(watch).status == serving
    state: State = served["state"]
    try:
        state.ready = False  # the readiness check fails from its next run (every 0.1 s here)
        assert next(watch).status == not_serving
        assert stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == not_serving
    finally:
        state.ready = True
    assert next(watch).status == serving
    watch.cancel()


def test_reflection_lists_and_describes(served: dict[str, Any]) -> None:
    database_module = pytest.importorskip("grpc_reflection.v1alpha.proto_reflection_descriptor_database")
    database = database_module.ProtoReflectionDescriptorDatabase(served["channel"])
    services = set(database.get_services())
    assert {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services
    health = database.FindFileContainingSymbol("grpc.health.v1.Health")
    assert health.name.endswith("health.proto")


def test_grpcurl_with_reflection(served: dict[str, Any]) -> None:
    """grpcurl (github.com/fullstorydev/grpcurl, built by scripts/build-grpc-interop.sh) lists the services and
    calls the health check without any .proto file."""
    built = subprocess.run([str(ROOT / "scripts/build-grpc-interop.sh")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    grpcurl = Path(built.stdout.strip().splitlines()[-1]) / "grpcurl"
    address = f"127.0.0.1:{served['port']}"
    listed = subprocess.run([str(grpcurl), "-plaintext", address, "list"], capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert "grpc.health.v1.Health" in listed.stdout.split()
    checked = subprocess.run([str(grpcurl), "-plaintext", "-d", '{"service": ""}', address,
                              "grpc.health.v1.Health/Check"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    assert '"status": "SERVING"' in checked.stdout


def test_typed_methods(served: dict[str, Any]) -> None:
    channel = served["channel"]
    shout = channel.unary_unary("/test.Typed/Shout", request_serializer=String.SerializeToString,
                                response_deserializer=String.FromString)
    assert shout(String(value="hey"), timeout=10).value == "HEY!"
    split = channel.unary_stream("/test.Typed/Split", request_serializer=String.SerializeToString,
                                 response_deserializer=String.FromString)
    assert [w.value for w in split(String(value="a bc def"), timeout=10)] == ["a", "bc", "def"]
    join = channel.stream_unary("/test.Typed/Join", request_serializer=String.SerializeToString,
                                response_deserializer=String.FromString)
    assert join(iter([String(value=v) for v in "xyz"]), timeout=10).value == "x-y-z"
    raw = channel.unary_unary("/test.Typed/Raw")  # no serializers: bytes both ways
    assert raw(b"\x01\x02\x03", timeout=10) == b"\x03\x02\x01"


def test_typed_method_annotations_are_checked() -> None:
    app = CovetPy()
    with pytest.raises(TypeError, match="annotate"):
        @app.grpc("test.Bad/NoHints")
        async def no_hints(request):  # type: ignore[no-untyped-def]
            return request
    with pytest.raises(TypeError, match="not a protobuf message"):
        @app.grpc("test.Bad/Dict")
        async def wrong(request: dict) -> String:  # type: ignore[type-arg]
            return String()
    with pytest.raises(ValueError, match="package.Service/Method"):
        app.grpc("NoMethod")


def test_interceptor_guards_its_server(served: dict[str, Any]) -> None:
    state: State = served["state"]
    secret = served["channel"].unary_unary("/test.Guarded/Secret", request_serializer=String.SerializeToString,
                                           response_deserializer=String.FromString)
    with pytest.raises(grpc.RpcError) as failure:
        secret(String(), timeout=10)
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert failure.value.details() == "a bearer token is required"
    reply = secret(String(), metadata=(("authorization", "Bearer good"),), timeout=10)
    assert reply.value == "the secret"
    assert state.intercepted[-2:] == ["/test.Guarded/Secret", "/test.Guarded/Secret"]
    # the app's other server has no interceptor
    before = len(state.intercepted)
    assert method(served["channel"], "Echo", String, String)(String(value="x"), timeout=10).value == "x"
    assert len(state.intercepted) == before


def test_rest_route_next_to_grpc(served: dict[str, Any]) -> None:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{served['port']}/rest", timeout=10) as response:
        assert response.read() == b'{"ok":true}'


# -- finding a call's method: what is made once (the interceptor chain, a handler's Method), what each call still
# gets (its own HandlerCallDetails, its generic handler's answer) ---------------------------------------------------
grpc_server_module = importlib.import_module("covet.grpc.server")


def unary_handler(value: str = "") -> Any:
    async def reply(request: Any, context: Any) -> Any:
        return value

    return grpc.unary_unary_rpc_method_handler(reply)


def lookups(server: GrpcServer, calls: list[tuple[str, Any]]) -> list[Any]:
    async def run() -> list[Any]:
        return [await server.lookup(path, metadata) for path, metadata in calls]

    return asyncio.run(run())


class Recorder:
    """What the interceptors of a server saw: (interceptor, method, metadata, continuation) per interception."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, tuple[Any, ...], Any]] = []

    def interceptors(self, kind: str) -> list[Any]:
        recorder = self

        def reroute(details: Any) -> Any:  # x-route: the next one gets the details of another method
            route = dict(details.invocation_metadata).get("x-route")
            return details if route is None else details._replace(method=route)

        class AsyncInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc,name-defined]
            def __init__(self, name: str) -> None:
                self.name = name

            async def intercept_service(self, continuation: Any, details: Any) -> Any:
                recorder.seen.append((self.name, details.method, tuple(details.invocation_metadata), continuation))
                return await continuation(reroute(details))

        class SyncInterceptor(grpc.ServerInterceptor):  # type: ignore[misc,name-defined]
            def __init__(self, name: str) -> None:
                self.name = name

            def intercept_service(self, continuation: Any, details: Any) -> Any:
                recorder.seen.append((self.name, details.method, tuple(details.invocation_metadata), continuation))
                return continuation(reroute(details))

        kind_class = AsyncInterceptor if kind == "async" else SyncInterceptor
        return [kind_class("outer"), kind_class("inner")]


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_interceptors_see_each_calls_own_details(kind: str) -> None:
    recorder = Recorder()
    server = GrpcServer(CovetPy(), interceptors=recorder.interceptors(kind))
    registered, generic = unary_handler("a"), unary_handler("b")
    server.add_registered_method_handlers("t.S", {"A": registered})
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.S", {"B": generic}),))
    calls = [("/t.S/A", (("n", "1"),)), ("/t.S/B", (("n", "2"),)), ("/t.S/A", (("n", "3"),)),
             ("/t.S/B", (("n", "4"),)), ("/t.S/Nope", (("n", "5"),)), ("/t.S/A", (("x-route", "/t.S/B"),))]
    methods = lookups(server, calls)
    # every call went through both interceptors, the first given outermost, each seeing the call's own method and
    # metadata, but the one after a reroute, which sees the details the outer one passed on
    expected = []
    for path, metadata in calls:
        expected += [("outer", path, metadata), ("inner", dict(metadata).get("x-route", path), metadata)]
    assert [(name, path, metadata) for name, path, metadata, _ in recorder.seen] == expected
    # ...through the same chain: each interceptor is given the same continuation on every call
    for name in ("outer", "inner"):
        assert len({id(continuation) for who, _, _, continuation in recorder.seen if who == name}) == 1
    a1, b1, a2, b2, nope, rerouted = methods
    assert a1 is a2 and a1.handler is registered  # the registered Method, as is
    assert b1 is b2 and b1.handler is generic  # made once for the generic handler's answer
    assert nope is None
    assert rerouted.handler is generic and not rerouted.request_streaming


@pytest.mark.parametrize("interceptors", [0, 1], ids=["direct", "intercepted"])
def test_a_generic_handlers_method_is_made_once(monkeypatch: pytest.MonkeyPatch, interceptors: int) -> None:
    made: list[Any] = []

    class CountedMethod(grpc_server_module.Method):  # type: ignore[misc,name-defined]
        def __init__(self, handler: Any) -> None:
            made.append(handler)
            super().__init__(handler)

    monkeypatch.setattr(grpc_server_module, "Method", CountedMethod)

    class PassOn(grpc.aio.ServerInterceptor):  # type: ignore[misc,name-defined]
        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            return await continuation(details)

    handler = unary_handler()

    class Generic(grpc.GenericRpcHandler):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            self.asked: list[tuple[str, tuple[Any, ...]]] = []

        def service(self, details: Any) -> Any:
            self.asked.append((details.method, tuple(details.invocation_metadata)))
            return handler if details.method == "/t.G/M" else None

    generic = Generic()
    server = GrpcServer(CovetPy(), interceptors=[PassOn()] * interceptors)
    server.add_generic_rpc_handlers((generic,))
    calls = [("/t.G/M", (("n", str(i)),)) for i in range(3)] + [("/t.G/Other", ())]
    *methods, other = lookups(server, calls)
    assert generic.asked == calls  # asked on every call, with that call's details
    assert other is None
    assert all(method is methods[0] for method in methods) and methods[0].handler is handler
    assert made == [handler]  # one Method for the three calls


@pytest.mark.parametrize("interceptors", [0, 1], ids=["direct", "wrapping"])
def test_a_new_handler_per_call_gets_its_own_method(interceptors: int) -> None:
    """A generic handler (or an interceptor) giving another handler object on each call: each call runs the one it
    was given, of whatever shape, never a Method kept from an earlier call."""
    given: list[Any] = []

    class Fresh(grpc.GenericRpcHandler):  # type: ignore[misc,name-defined]
        def service(self, details: Any) -> Any:
            value = dict(details.invocation_metadata)["v"]
            if value == "stream":
                handler = grpc.stream_stream_rpc_method_handler(lambda requests, context: requests)
            else:
                handler = unary_handler(value)
            given.append(handler)
            return handler

    class Wrap(grpc.aio.ServerInterceptor):  # type: ignore[misc,name-defined]
        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            handler = await continuation(details)
            wrapper = handler._replace(request_deserializer=lambda data: data)  # a new handler, the same behaviour
            given[-1] = wrapper
            return wrapper

    server = GrpcServer(CovetPy(), interceptors=[Wrap()] * interceptors)
    server.add_generic_rpc_handlers((Fresh(),))
    values = ["a", "b", "stream", "c", "c"]
    methods = lookups(server, [("/t.F/M", (("v", value),)) for value in values])
    assert [method.handler for method in methods] == given and len({id(h) for h in given}) == len(values)
    assert [method.request_streaming for method in methods] == [value == "stream" for value in values]
    replies = [asyncio.run(method.function(None, None)) for i, method in enumerate(methods) if values[i] != "stream"]
    assert replies == ["a", "b", "c", "c"]


def test_methods_kept_for_paths_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grpc_server_module, "RESOLVED_LIMIT", 4)
    handler = unary_handler()

    class CatchAll(grpc.GenericRpcHandler):  # type: ignore[misc,name-defined]
        def service(self, details: Any) -> Any:
            return handler

    server = GrpcServer(CovetPy())
    server.add_generic_rpc_handlers((CatchAll(),))
    paths = [f"/any.Service/M{i}" for i in range(10)]
    methods = lookups(server, [(path, ()) for path in paths])
    assert all(method.handler is handler for method in methods)
    assert len(server._resolved) <= 4  # a client making up paths does not grow the server's memory
    assert lookups(server, [(paths[-1], ())]) == [methods[-1]]  # the last ones are still kept


def test_refusals_and_trailers_only_answers_carry_the_same_status_fields() -> None:
    from covet.grpc.call import Call, Method
    from covet.grpc.server import _refuse
    from covet.grpc.wire import MessageReader

    class Responder:
        def __init__(self) -> None:
            self.sent: list[tuple[int, list[tuple[str, str]], bytes]] = []
            self.answered = False

        def send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.sent.append((status, headers, body))
            self.answered = True

    details = "naïve 100% sure\n"
    status = [("grpc-status", "9"), ("grpc-message", "na%C3%AFve 100%25 sure%0A")]
    refused, web_refused = Responder(), Responder()
    _refuse(refused, False, "application/grpc+proto", 9, details)
    _refuse(web_refused, True, "application/grpc-web-text", 9, details)
    assert refused.sent == [(200, [("content-type", "application/grpc"), *status], b"")]
    assert web_refused.sent == [(200, [("content-type", "application/grpc-web-text"), *status], b"")]

    async def finished(code: int, details: str) -> list[tuple[str, str]]:
        responder = Responder()
        call = Call(Method(unary_handler()), "/t.S/M", None, None, None, responder, (), None, MessageReader(1024, None),
                    "gzip", None, None, True)
        call.trailing_metadata = [("x-trailer", "t")]
        call.finish(code, details)
        [(status_code, fields, body)] = responder.sent
        assert status_code == 200 and body == b""  # Trailers-Only: one HEADERS, no body
        return fields

    fields = asyncio.run(finished(9, details))
    assert fields[0] == ("content-type", "application/grpc") and fields[-3:] == [*status, ("x-trailer", "t")]
    assert asyncio.run(finished(0, ""))[-2:] == [("grpc-status", "0"), ("x-trailer", "t")]  # no empty message
