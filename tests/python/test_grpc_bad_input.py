"""covet.grpc against bad input: each malformed or hostile call ends with the gRPC status the spec (and grpcio)
give it, and the server goes on serving, on the same connection and on new ones.

The client is a raw HTTP/2 (h2c, prior knowledge) client built on the `h2` library, so the tests choose every
byte: truncated and oversized length prefixes, compressed flags without (or with an unsupported) grpc-encoding,
a gzip bomb, undecodable protobuf, bad grpc-timeout values, unary calls with zero or two messages, the wrong
content-type, and a client that never reads a server stream. The server is a CovetPy app with a
`covet.grpc.GrpcServer` (max_receive_message_length 1024) served in-process by `ThreadedWorker` on real sockets,
in the engine modes of test_full_duplex.py: the engine on the loop thread (io_uring) and on its own I/O thread
(io_uring, asio).

A status is read from the response's trailers, or from its headers for a Trailers-Only response.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import itertools
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import unquote

import pytest
from serverproc import require_compiled_engine

from covet import CovetPy
from covet.grpc import GrpcServer

grpc = pytest.importorskip("grpc")
wrappers_pb2 = pytest.importorskip("google.protobuf.wrappers_pb2")
h2_config = pytest.importorskip("h2.config")
h2_connection = pytest.importorskip("h2.connection")
h2_events = pytest.importorskip("h2.events")
h2_exceptions = pytest.importorskip("h2.exceptions")

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

OK = grpc.StatusCode.OK.value[0]
UNKNOWN = grpc.StatusCode.UNKNOWN.value[0]
DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED.value[0]
INTERNAL = grpc.StatusCode.INTERNAL.value[0]


# -- the wire ---------------------------------------------------------------------------------------------------
def frame(payload: bytes, compressed: bool = False) -> bytes:
    """One gRPC message: the compressed flag, the 4-byte big-endian length, the bytes."""
    return (b"\x01" if compressed else b"\x00") + len(payload).to_bytes(4, "big") + payload


def prefix(length: int, compressed: bool = False) -> bytes:
    """A message's 5-byte prefix alone (announcing `length` bytes)."""
    return (b"\x01" if compressed else b"\x00") + length.to_bytes(4, "big")


def unframe(body: bytes) -> list[bytes]:
    """The (uncompressed) messages of a response body."""
    messages = []
    while body:
        assert len(body) >= 5 and body[0] == 0, f"not an uncompressed gRPC message: {body[:16]!r}"
        size = int.from_bytes(body[1:5], "big")
        assert len(body) >= 5 + size, f"a truncated response message: {body[:16]!r}"
        messages.append(body[5:5 + size])
        body = body[5 + size:]
    return messages


def text(value: str) -> bytes:
    """A serialized google.protobuf.StringValue (the Echo methods' request and response)."""
    return wrappers_pb2.StringValue(value=value).SerializeToString()


@dataclass
class Reply:
    """What came back on one stream."""

    headers: dict[str, str] = field(default_factory=dict)
    trailers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False  # the server's END_STREAM
    reset: Optional[int] = None  # the server's RST_STREAM error code

    @property
    def http_status(self) -> int:
        return int(self.headers[":status"])

    @property
    def grpc_status(self) -> Optional[int]:
        value = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        return None if value is None else int(value)

    @property
    def grpc_message(self) -> str:
        return unquote(self.trailers.get("grpc-message", self.headers.get("grpc-message", "")))

    @property
    def messages(self) -> list[bytes]:
        return unframe(bytes(self.body))

    def describe(self) -> str:
        return f"headers {self.headers}, trailers {self.trailers}, body {bytes(self.body[:64])!r}"


class GrpcH2Client:
    """gRPC requests on an h2c (prior knowledge) connection, byte by byte.

    The connection's receive window is opened wide at the start, so that a stream the test leaves unread
    (`stalled`: its DATA is not acknowledged, its window stays shut) holds back only itself.
    """

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = h2_connection.H2Connection(
            config=h2_config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(64 * 1024 * 1024)
        self.flush()
        self.replies: dict[int, Reply] = {}
        self.stalled: set[int] = set()
        self.terminated: Optional[Any] = None

    def __enter__(self) -> GrpcH2Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def open(self, path: str, *, content_type: str = "application/grpc",
             headers: tuple[tuple[str, str], ...] = (), end_stream: bool = False) -> int:
        """Starts a call: its HEADERS frame (ending the request there when `end_stream`)."""
        stream_id: int = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, [(":method", "POST"), (":scheme", "http"), (":path", path),
                                           (":authority", "localhost"), ("content-type", content_type),
                                           ("te", "trailers"), *headers], end_stream=end_stream)
        self.flush()
        self.replies[stream_id] = Reply()
        return stream_id

    def send(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self.conn.send_data(stream_id, data, end_stream=end_stream)
        self.flush()

    def reset(self, stream_id: int) -> None:
        """RST_STREAM (CANCEL), as a gRPC client cancelling a call."""
        self.conn.reset_stream(stream_id, error_code=8)
        self.flush()

    def pump(self, until: Callable[[], bool], timeout: float = 5.0) -> None:
        """Reads and handles frames until `until()` holds (AssertionError after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            assert left > 0, f"timed out after {timeout} s; replies so far {self.replies!r}"
            assert self.terminated is None, f"the server closed the connection: {self.terminated!r}"
            if not select.select([self.sock], [], [], left)[0]:
                continue
            raw = self.sock.recv(256 * 1024)
            assert raw, f"the server closed the socket; replies so far {self.replies!r}"
            for event in self.conn.receive_data(raw):
                self._handle(event)
            self.flush()

    def _handle(self, event: Any) -> None:
        reply = self.replies.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, h2_events.ResponseReceived):
            reply.headers = dict(event.headers)
        elif isinstance(event, h2_events.TrailersReceived):
            reply.trailers = dict(event.headers)
        elif isinstance(event, h2_events.DataReceived):
            reply.body += event.data
            if event.stream_id not in self.stalled:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2_events.StreamEnded):
            reply.ended = True
        elif isinstance(event, h2_events.StreamReset):
            if reply is not None:
                reply.reset = int(event.error_code)
        elif isinstance(event, h2_events.ConnectionTerminated):
            self.terminated = event

    def wait(self, stream_id: int, timeout: float = 5.0) -> Reply:
        """The stream's reply, once the server ended or reset it."""
        reply = self.replies[stream_id]
        self.pump(lambda: reply.ended or reply.reset is not None, timeout)
        return reply

    def call(self, path: str, *messages: bytes, headers: tuple[tuple[str, str], ...] = (),
             content_type: str = "application/grpc", timeout: float = 5.0) -> Reply:
        """A whole call: the request's bytes (`messages` joined; none: HEADERS with END_STREAM), then the reply."""
        body = b"".join(messages)
        stream_id = self.open(path, content_type=content_type, headers=headers, end_stream=not body)
        if body:
            self.send(stream_id, body, end_stream=True)
        return self.wait(stream_id, timeout)

    def close_stream(self, stream_id: int) -> None:
        """Resets a stream the server answered while its request was still open (nothing more will be sent)."""
        try:
            self.reset(stream_id)
        except h2_exceptions.StreamClosedError:
            pass


def assert_good_call(client: GrpcH2Client) -> None:
    reply = client.call(ECHO, frame(text("ping")))
    assert reply.grpc_status == OK, reply.describe()
    assert reply.messages == [text("echo:ping")], reply.describe()


def assert_still_serving(port: int, client: GrpcH2Client) -> None:
    """A good call succeeds on the connection that carried the bad one, and on a new connection."""
    assert_good_call(client)
    with GrpcH2Client(port) as fresh:
        assert_good_call(fresh)


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
BOMB = gzip.compress(b"\0" * 1_000_000)  # 1 MB of zeros in ~1 KB
GZIPPED_PING = gzip.compress(text("ping"))

# (path, request bytes, extra headers, expected grpc-status, a piece of the expected grpc-message)
BAD_CALLS = [
    pytest.param(ECHO, prefix(100) + b"x" * 10, (), INTERNAL, "ended inside a message", id="truncated-message"),
    pytest.param(ECHO, frame(GZIPPED_PING, compressed=True), (), INTERNAL, "grpc-encoding",
                 id="compressed-flag-without-grpc-encoding"),
    pytest.param(ECHO, frame(GZIPPED_PING, compressed=True), (("grpc-encoding", "snappy"),), UNIMPLEMENTED,
                 "snappy", id="unsupported-grpc-encoding"),
    pytest.param(ECHO, frame(BOMB, compressed=True), (("grpc-encoding", "gzip"),), RESOURCE_EXHAUSTED,
                 "decompressed", id="gzip-bomb"),
    pytest.param(ECHO, frame(b"\x0a\x05ab"), (), INTERNAL, "deserialize", id="malformed-protobuf"),
    pytest.param(ECHO, frame(b"\x0a\x02\xff\xfe"), (), INTERNAL, "deserialize", id="protobuf-string-not-utf8"),
    pytest.param(f"/{SERVICE}/NoSuchMethod", frame(text("ping")), (), UNIMPLEMENTED, "NoSuchMethod",
                 id="unknown-method-of-a-known-service"),
    pytest.param(ECHO, frame(text("ping")), (("grpc-timeout", "abc"),), INTERNAL, "grpc-timeout",
                 id="malformed-grpc-timeout"),
    pytest.param(ECHO, frame(text("ping")), (("grpc-timeout", "123456789S"),), INTERNAL, "grpc-timeout",
                 id="grpc-timeout-of-nine-digits"),
    pytest.param(ECHO, b"", (), UNIMPLEMENTED, "no request message", id="unary-with-zero-messages"),
    pytest.param(ECHO, frame(text("one")) + frame(text("two")), (), UNIMPLEMENTED, "more than one",
                 id="unary-with-two-messages"),
    pytest.param(ECHO, b"\x02" + frame(text("ping"))[1:], (), INTERNAL, "compressed flag",
                 id="compressed-flag-2"),
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
    reply = client.call(path, body, headers=headers)
    assert reply.http_status == 200, reply.describe()
    assert reply.headers.get("content-type", "").startswith("application/grpc"), reply.describe()
    assert reply.grpc_status == code, reply.describe()
    assert detail in reply.grpc_message, reply.describe()
    assert reply.messages == [], reply.describe()
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
    stream_id = client.open(ECHO)
    client.send(stream_id, prefix(1_000_000))
    reply = client.wait(stream_id, timeout=3)
    assert reply.grpc_status == RESOURCE_EXHAUSTED, reply.describe()
    assert "max_receive_message_length" in reply.grpc_message, reply.describe()
    client.close_stream(stream_id)
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
    stream_id = client.open("/test.Nope/Chat")
    client.send(stream_id, frame(text("hello")))
    reply = client.wait(stream_id, timeout=3)
    assert reply.grpc_status == 12, reply.describe()
    client.close_stream(stream_id)
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
