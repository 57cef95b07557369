"""covet.grpc against bad input: each malformed or hostile call ends with the gRPC status the spec (and grpcio)
give it, and the server goes on serving, on the same connection and on new ones.

The client is grpc_h2.py's raw HTTP/2 (h2c, prior knowledge) client, so the tests choose every byte: truncated
and oversized length prefixes, compressed flags without (or with an unsupported) grpc-encoding, a gzip bomb,
undecodable protobuf, bad grpc-timeout values, unary calls with zero or two messages, the wrong content-type,
and a client that never reads a server stream. The server is a CovetPy app with a `covet.grpc.GrpcServer`
(max_receive_message_length 1024) served in-process by `ThreadedWorker` on real sockets, in the engine modes of
test_full_duplex.py: the engine on the loop thread (io_uring) and on its own I/O thread (io_uring, asio).
test_grpc_bad_input_native.py sends the same bad input to the C++ API's server.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from grpc_h2 import (DEADLINE_EXCEEDED, INTERNAL, OK, PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNIMPLEMENTED, UNKNOWN,
                     GrpcH2Client, assert_refused, cardinality_faults, frame, prefix, wire_faults)
from grpc_h2 import assert_still_serving as assert_serving
from serverproc import require_compiled_engine

from covet import CovetPy
from covet.grpc import GrpcServer

grpc = pytest.importorskip("grpc")
wrappers_pb2 = pytest.importorskip("google.protobuf.wrappers_pb2")

MODES = [(0, "uring"), (1, "uring"), (1, "asio")]
MODE_IDS = ["threads0-uring", "threads1-uring", "threads1-asio"]

LIMIT = 1024  # the GrpcServer's max_receive_message_length
SEND_BUFFER = 512 * 1024  # the engine's stream_send_buffer: unsent bytes of one response before its producer waits
CHUNK = 64 * 1024  # one message of the flooding server stream
FLOOD_MESSAGES = 1024  # what a flooding handler would produce if nothing held it back (64 MiB)
CLIENT_STREAM_WINDOW = 65_535  # h2's default initial stream window: what the server may put on the wire unread
# The engine's graceful-stop deadline for in-flight exchanges (10 s by default): short, so that a stop that has to
# wait for one (see test_a_cancelled_stream_lets_the_engine_release_its_exchange) shows it without a long wait.
SHUTDOWN_TIMEOUT_MS = 1000

SERVICE = "test.Echo"
ECHO, SLEEP, FAIL, DENY, FLOOD = (f"/{SERVICE}/{name}" for name in ("Echo", "Sleep", "Fail", "Deny", "Flood"))


# -- the wire ---------------------------------------------------------------------------------------------------
def text(value: str) -> bytes:
    """A serialized google.protobuf.StringValue (the Echo methods' request and response)."""
    return wrappers_pb2.StringValue(value=value).SerializeToString()


def assert_good_call(client: GrpcH2Client) -> None:
    reply = client.call(ECHO, frame(text("ping")))
    assert reply.grpc_status == OK, reply.describe()
    assert reply.messages == [text("echo:ping")], reply.describe()


def assert_still_serving(port: int, client: GrpcH2Client) -> None:
    """A good call succeeds on the connection that carried the bad one, and on a new connection."""
    assert_serving(port, client, assert_good_call)


# -- the service --------------------------------------------------------------------------------------------------
@dataclass
class Flood:
    """What one flooding server-streaming call did."""

    produced: int = 0  # messages the handler made
    closed: threading.Event = field(default_factory=threading.Event)  # its generator's finally ran
    done: threading.Event = field(default_factory=threading.Event)  # context.add_done_callback fired


class Probe:
    """The handlers' side of the tests: the flooding calls, by the token their request carries."""

    def __init__(self) -> None:
        self.floods: dict[str, Flood] = {}
        self._lock = threading.Lock()

    def flood(self, token: str) -> Flood:
        with self._lock:
            return self.floods.setdefault(token, Flood())


def make_app(probe: Probe) -> CovetPy:
    StringValue = wrappers_pb2.StringValue

    async def echo(request: Any, context: Any) -> Any:
        return StringValue(value="echo:" + request.value)

    async def sleep(request: Any, context: Any) -> Any:
        await asyncio.sleep(10)
        return StringValue(value="woke up")

    async def stubborn(request: Any, context: Any) -> Any:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass  # swallows the deadline's cancel and answers anyway
        return StringValue(value="too late")

    async def fail(request: Any, context: Any) -> Any:
        raise RuntimeError("boom")

    async def deny(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")

    def flood(request: bytes, context: Any) -> Iterator[bytes]:  # sync: its steps run in the thread pool
        record = probe.flood(request.decode())
        context.add_done_callback(lambda _context: record.done.set())
        try:
            for _ in range(FLOOD_MESSAGES):
                record.produced += 1
                yield b"x" * CHUNK
        finally:
            record.closed.set()

    async def async_flood(request: bytes, context: Any) -> Any:
        record = probe.flood(request.decode())
        context.add_done_callback(lambda _context: record.done.set())
        try:
            for _ in range(FLOOD_MESSAGES):
                record.produced += 1
                yield b"x" * CHUNK
        finally:
            record.closed.set()

    def unary(function: Callable[..., Any]) -> Any:
        return grpc.unary_unary_rpc_method_handler(function, request_deserializer=StringValue.FromString,
                                                   response_serializer=StringValue.SerializeToString)

    handlers = {"Echo": unary(echo), "Sleep": unary(sleep), "Fail": unary(fail), "Deny": unary(deny),
                "Stubborn": unary(stubborn),
                # raw bytes in and out (no (de)serializer)
                "Flood": grpc.unary_stream_rpc_method_handler(flood),
                "AsyncFlood": grpc.unary_stream_rpc_method_handler(async_flood)}
    app = CovetPy(openapi_url=None)
    server = GrpcServer(app, max_receive_message_length=LIMIT)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    return app


@dataclass
class Served:
    port: int
    probe: Probe


@pytest.fixture(scope="module", autouse=True)
def _compiled_engine() -> None:
    require_compiled_engine()


@pytest.fixture(scope="module", params=MODES, ids=MODE_IDS)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    threads, backend = request.param
    probe = Probe()
    worker = start_worker(probe, threads, backend)
    yield Served(worker.port, probe)
    worker.stop()


def start_worker(probe: Probe, threads: int, backend: str) -> Any:
    from covet.serve import ThreadedWorker

    return ThreadedWorker(make_app(probe), threads=threads, backend=backend, lifespan=False,
                          stream_send_buffer=SEND_BUFFER, shutdown_timeout_ms=SHUTDOWN_TIMEOUT_MS).start()


@pytest.fixture
def client(served: Served) -> Iterator[GrpcH2Client]:
    with GrpcH2Client(served.port) as connection:
        yield connection


# -- the cases --------------------------------------------------------------------------------------------------
GZIPPED_PING = gzip.compress(text("ping"))

# (path, request bytes, extra headers, expected grpc-status, a piece of the expected grpc-message): the faults of
# grpc_h2 (the C++ server's tests send them too), and this server's own
BAD_CALLS = [pytest.param(ECHO, *fault, id=name)
             for name, *fault in wire_faults(text("ping"), LIMIT) + cardinality_faults(text("ping"))] + [
    pytest.param(ECHO, frame(b"\x0a\x05ab"), (), INTERNAL, "deserialize", id="malformed-protobuf"),
    pytest.param(ECHO, frame(b"\x0a\x02\xff\xfe"), (), INTERNAL, "deserialize", id="protobuf-string-not-utf8"),
    pytest.param(f"/{SERVICE}/NoSuchMethod", frame(text("ping")), (), UNIMPLEMENTED, "NoSuchMethod",
                 id="unknown-method-of-a-known-service"),
    pytest.param(FAIL, frame(text("ping")), (), UNKNOWN, "Exception calling application: boom",
                 id="handler-raises"),
]


def test_the_control_calls_succeed(served: Served, client: GrpcH2Client) -> None:
    """The good calls the other tests make afterwards, and a well-formed gzip-compressed request: the bad
    inputs below differ from these by the one thing they break."""
    assert_good_call(client)
    reply = client.call(ECHO, frame(GZIPPED_PING, compressed=True), headers=(("grpc-encoding", "gzip"),))
    assert reply.grpc_status == OK, reply.describe()
    assert reply.messages == [text("echo:ping")]


@pytest.mark.parametrize(("path", "body", "headers", "code", "detail"), BAD_CALLS)
def test_bad_call_gets_its_status_and_the_server_goes_on(served: Served, client: GrpcH2Client, path: str,
                                                         body: bytes, headers: tuple[tuple[str, str], ...],
                                                         code: int, detail: str) -> None:
    assert_refused(client.call(path, body, headers=headers), code, detail)
    assert_still_serving(served.port, client)


def test_abort_sends_its_code_and_message(served: Served, client: GrpcH2Client) -> None:
    reply = client.call(DENY, frame(text("ping")))
    assert reply.grpc_status == PERMISSION_DENIED, reply.describe()
    assert reply.grpc_message == "no", reply.describe()
    assert reply.messages == []
    assert_still_serving(served.port, client)


def test_a_length_prefix_over_the_limit_is_refused_before_its_bytes_arrive(served: Served,
                                                                            client: GrpcH2Client) -> None:
    """The prefix announces 1 MB (the limit is 1024 bytes) and the request stays open with none of those bytes
    sent: the status comes from the prefix alone."""
    reply = client.answer_while_open(ECHO, prefix(1_000_000))
    assert reply.grpc_status == RESOURCE_EXHAUSTED, reply.describe()
    assert "max_receive_message_length" in reply.grpc_message, reply.describe()
    assert_still_serving(served.port, client)


@pytest.mark.parametrize("timeout", ["1n", "100m"])
def test_a_deadline_ends_a_sleeping_handler(served: Served, client: GrpcH2Client, timeout: str) -> None:
    """The handler sleeps 10 s; the call ends with DEADLINE_EXCEEDED at its deadline (at once for "1n")."""
    started = time.monotonic()
    reply = client.call(SLEEP, frame(text("zzz")), headers=(("grpc-timeout", timeout),), timeout=5)
    elapsed = time.monotonic() - started
    assert reply.grpc_status == DEADLINE_EXCEEDED, reply.describe()
    assert elapsed < 3, f"DEADLINE_EXCEEDED came after {elapsed:.2f} s"
    if timeout == "100m":
        assert elapsed >= 0.09, f"a 100 ms deadline ended the call after {elapsed:.3f} s"
    assert reply.messages == []
    assert_still_serving(served.port, client)


def test_a_method_that_swallows_its_deadline_still_ends_with_deadline_exceeded(served: Served,
                                                                               client: GrpcH2Client) -> None:
    """The method catches the deadline's CancelledError and returns a reply: too late, the status is the
    deadline's, and no message goes out."""
    reply = client.call(f"/{SERVICE}/Stubborn", frame(text("zzz")), headers=(("grpc-timeout", "100m"),), timeout=5)
    assert reply.grpc_status == DEADLINE_EXCEEDED, reply.describe()
    assert not reply.messages, reply.describe()
    assert_still_serving(served.port, client)


def test_an_unknown_service_is_unimplemented(served: Served, client: GrpcH2Client) -> None:
    """No route serves /test.Nope/...: the engine answers the gRPC call itself with UNIMPLEMENTED (Trailers-Only)
    -- checked here with grpcio's own client too."""
    reply = client.call("/test.Nope/Echo", frame(text("ping")))
    assert reply.http_status == 200, reply.describe()
    assert reply.grpc_status == 12, reply.describe()
    assert_still_serving(served.port, client)

    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        call = channel.unary_unary("/test.Nope/Echo", request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as raised:
            call(text("ping"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED, raised.value


def test_an_unknown_service_is_unimplemented_while_the_request_is_still_open(served: Served,
                                                                              client: GrpcH2Client) -> None:
    """A streaming client may send its first message and wait for answers before it sends more: the answer comes
    at once (not a 408 when the stalled body times out), and the connection goes on."""
    reply = client.answer_while_open("/test.Nope/Chat", frame(text("hello")))
    assert reply.grpc_status == 12, reply.describe()
    assert_still_serving(served.port, client)


def test_a_non_grpc_content_type_is_http_415(served: Served, client: GrpcH2Client) -> None:
    reply = client.call(ECHO, frame(text("ping")), content_type="text/plain")
    assert reply.http_status == 415, reply.describe()
    assert reply.grpc_status is None, reply.describe()
    assert_still_serving(served.port, client)


_tokens = itertools.count()


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    """The cyclic garbage collector off for the test: what a cancelled call must release (its generator, its
    exchange), it releases itself, not when a collection that happens to run frees a reference cycle."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def wait_until_steady(record: Flood, quiet: float = 0.3, timeout: float = 5.0) -> int:
    """The handler's message count once it has stopped growing for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = record.produced
        if now != last:
            last, since = now, time.monotonic()
        elif now > 0 and time.monotonic() - since >= quiet:
            return now
        time.sleep(0.02)
    raise AssertionError(f"the flooding handler did not settle (made {record.produced} messages)")


@pytest.mark.parametrize("leaving", ["reset", "disconnect"])
@pytest.mark.parametrize("method", ["Flood", "AsyncFlood"], ids=["sync-generator", "async-generator"])
def test_a_client_that_never_reads_a_server_stream(served: Served, client: GrpcH2Client, no_cyclic_gc: None,
                                                   method: str, leaving: str) -> None:
    """The handler would make 1024 messages of 64 KiB; the client asks and never grants the stream any window.
    The handler must be held back by the engine's send buffer (memory stays bounded), other calls -- on other
    connections, and on other streams of this one -- are served meanwhile, and when the client cancels (resets
    the stream, or closes the connection) the handler's generator is closed and the call's done callbacks run."""
    token = f"{method}-{leaving}-{next(_tokens)}"
    record = served.probe.flood(token)
    stream_id = client.open(f"/{SERVICE}/{method}")
    client.stalled.add(stream_id)
    client.send(stream_id, frame(token.encode()), end_stream=True)

    produced = wait_until_steady(record)
    bound = (SEND_BUFFER + CLIENT_STREAM_WINDOW) // CHUNK + 3
    assert produced <= bound, (f"{produced} messages of 64 KiB made for a client that reads nothing (expected "
                               f"at most {bound}: the send buffer and the client's window)")
    assert not record.closed.is_set()

    assert_still_serving(served.port, client)  # the stalled stream holds back only itself
    assert record.produced == produced

    if leaving == "reset":
        client.reset(stream_id)
    else:
        client.close()
    assert record.closed.wait(5), f"the handler's generator was not closed after the client's {leaving}"
    assert record.done.wait(5), f"the call's done callbacks did not run after the client's {leaving}"
    assert record.produced <= produced + 1
    if leaving == "reset":
        assert_still_serving(served.port, client)
    else:
        with GrpcH2Client(served.port) as fresh:
            assert_good_call(fresh)


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_a_cancelled_stream_lets_the_engine_release_its_exchange(no_cyclic_gc: None, mode: tuple[int, str]) -> None:
    """After the client resets a server stream whose headers went out, the call must end its exchange in the
    engine (as StreamingResponse does: responder.abort()). Seen here through a graceful stop: with nothing in
    flight it returns at once; with the exchange left open it waits the engine's shutdown timeout.
    The cyclic GC is off meanwhile (no_cyclic_gc), so the release cannot come from a collection."""
    threads, backend = mode
    probe = Probe()
    worker = start_worker(probe, threads, backend)
    try:
        with GrpcH2Client(worker.port) as client:
            try:
                record = probe.flood("released")
                stream_id = client.open(FLOOD)
                client.stalled.add(stream_id)
                client.send(stream_id, frame(b"released"), end_stream=True)
                wait_until_steady(record)
                client.reset(stream_id)
                assert record.closed.wait(5), "the generator was not closed"
                assert_good_call(client)
            except AssertionError as exc:
                pytest.fail(f"before the graceful stop: {exc}")
        started = time.monotonic()
        worker.stop()
        stopped_in = time.monotonic() - started
    finally:
        worker.stop()  # (again, after a failure: a no-op once stopped)
    assert stopped_in < SHUTDOWN_TIMEOUT_MS / 2000, (
        f"the graceful stop took {stopped_in:.2f} s (its timeout is {SHUTDOWN_TIMEOUT_MS} ms): the cancelled "
        "call's exchange was still open in the engine")
