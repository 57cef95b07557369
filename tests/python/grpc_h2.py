"""gRPC calls byte by byte, for the bad-input tests of the two gRPC servers: covet.grpc (test_grpc_bad_input.py)
and covet::grpc, the C++ API (test_grpc_bad_input_native.py).

The client is a raw HTTP/2 (h2c, prior knowledge) client built on the `h2` library, so the tests choose every
byte: truncated and oversized length prefixes, compressed flags without (or with an unsupported) grpc-encoding,
a gzip bomb, bad grpc-timeout values, unary calls with zero or two messages. Both servers answer these the same
way (the gRPC spec's statuses, as grpcio and grpc-go give them): `wire_faults` and `cardinality_faults` list
them for any method, from a valid request message of it.

A status is read from the response's trailers, or from its headers for a Trailers-Only response.
"""

from __future__ import annotations

import functools
import gzip
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import unquote

import pytest

h2_config = pytest.importorskip("h2.config")
h2_connection = pytest.importorskip("h2.connection")
h2_events = pytest.importorskip("h2.events")
h2_exceptions = pytest.importorskip("h2.exceptions")

# gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html)
OK = 0
CANCELLED = 1
UNKNOWN = 2
DEADLINE_EXCEEDED = 4
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
UNIMPLEMENTED = 12
INTERNAL = 13

Headers = tuple[tuple[str, str], ...]
# A bad input: (its name, the request body, extra request headers, the grpc-status it gets, a piece of the
# grpc-message that comes with it)
Fault = tuple[str, bytes, Headers, int, str]


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
             headers: Headers = (), end_stream: bool = False) -> int:
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

    def call(self, path: str, *messages: bytes, headers: Headers = (),
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

    def answer_while_open(self, path: str, data: bytes, timeout: float = 3.0) -> Reply:
        """A call whose request stays open after `data` (a streaming client waiting for answers before it sends
        more): the reply the server ended it with, without the rest of the request. The stream is then reset."""
        stream_id = self.open(path)
        self.send(stream_id, data)
        reply = self.wait(stream_id, timeout)
        self.close_stream(stream_id)
        return reply


def assert_refused(reply: Reply, code: int, detail: str) -> None:
    """The call ended with `code` (a grpc-message containing `detail`) and no reply message, as a gRPC answer:
    HTTP 200 with a gRPC content-type."""
    assert reply.http_status == 200, reply.describe()
    assert reply.headers.get("content-type", "").startswith("application/grpc"), reply.describe()
    assert reply.grpc_status == code, reply.describe()
    assert detail in reply.grpc_message, reply.describe()
    assert reply.messages == [], reply.describe()


def assert_still_serving(port: int, client: GrpcH2Client, good_call: Callable[[GrpcH2Client], None]) -> None:
    """`good_call` succeeds on the connection that carried the bad call, and on a new connection."""
    good_call(client)
    with GrpcH2Client(port) as fresh:
        good_call(fresh)


@functools.cache
def gzip_bomb(limit: int) -> bytes:
    """Zeros, gzipped: a thousandth of their size on the wire, over `limit` (and 1 MB) once inflated."""
    return gzip.compress(bytes(max(1_000_000, 2 * limit)))


def wire_faults(message: bytes, limit: int) -> list[Fault]:
    """The bad inputs in a call's framing, compression and grpc-timeout, for a method whose valid request
    `message` is; `limit`: the server's receive limit (max_receive_message_length)."""
    gzipped = gzip.compress(message)
    return [
        ("truncated-message", prefix(100) + b"x" * 10, (), INTERNAL, "ended inside a message"),
        ("compressed-flag-without-grpc-encoding", frame(gzipped, compressed=True), (), INTERNAL, "grpc-encoding"),
        ("unsupported-grpc-encoding", frame(gzipped, compressed=True), (("grpc-encoding", "snappy"),),
         UNIMPLEMENTED, "snappy"),
        ("gzip-bomb", frame(gzip_bomb(limit), compressed=True), (("grpc-encoding", "gzip"),), RESOURCE_EXHAUSTED,
         "decompressed"),
        ("compressed-flag-2", b"\x02" + frame(message)[1:], (), INTERNAL, "compressed flag"),
        ("malformed-grpc-timeout", frame(message), (("grpc-timeout", "abc"),), INTERNAL, "grpc-timeout"),
        ("grpc-timeout-of-nine-digits", frame(message), (("grpc-timeout", "123456789S"),), INTERNAL,
         "grpc-timeout"),
    ]


def cardinality_faults(message: bytes) -> list[Fault]:
    """A method that takes one request message (unary, server streaming) given none, or two: UNIMPLEMENTED, as
    the spec's status codes say of a cardinality violation (and grpcio answers)."""
    return [
        ("unary-with-zero-messages", b"", (), UNIMPLEMENTED, "no request message"),
        ("unary-with-two-messages", frame(message) * 2, (), UNIMPLEMENTED, "more than one"),
    ]
