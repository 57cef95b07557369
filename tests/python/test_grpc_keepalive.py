"""HTTP/2 keep-alive pings on gRPC calls (issue 20): the server pings a client that has gone silent during a long
call and, when the ping goes unanswered, closes the connection so the call's method is cancelled (a dead link
sends no FIN); clients that ping often themselves (grpcio's keepalive options) are served, not refused.
Both engine modes (the engine on the loop's thread with io_uring, on its own thread with epoll)."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from typing import Any

import pytest
from grpc_h2 import GrpcH2Client, frame
from serverproc import require_compiled_engine

grpc = pytest.importorskip("grpc")
h2_events = pytest.importorskip("h2.events")

from test_grpc import MODES, SERVICE, State, build_app, method  # noqa: E402

wrappers = pytest.importorskip("google.protobuf.wrappers_pb2")
String = wrappers.StringValue

PING_INTERVAL_MS = 300
PING_TIMEOUT_MS = 600


@pytest.fixture(params=MODES, ids=[f"threads{t}-{b}" for t, b in MODES])
def served(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    require_compiled_engine()
    from covet.serve import ThreadedWorker

    state = State()
    threads, backend = request.param
    worker = ThreadedWorker(build_app(state), threads=threads, backend=backend, http2=True,
                            h2_ping_interval_ms=PING_INTERVAL_MS, h2_ping_timeout_ms=PING_TIMEOUT_MS).start()
    try:
        yield {"state": state, "port": worker.port}
    finally:
        worker.stop()


class PingCountingClient(GrpcH2Client):
    """Counts the server's PINGs (h2 answers each one itself)."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.pings = 0

    def _handle(self, event: Any) -> None:
        if isinstance(event, h2_events.PingReceived):
            self.pings += 1
        super()._handle(event)


def open_waiting_call(client: GrpcH2Client) -> int:
    """A call whose method waits until it is cancelled; the client then sends nothing more."""
    stream_id = client.open(f"/{SERVICE}/WaitForever")
    client.send(stream_id, frame(String(value="x").SerializeToString()), end_stream=True)
    return stream_id


def test_the_server_pings_a_silent_client_during_a_long_call(served: dict[str, Any]) -> None:
    with PingCountingClient(served["port"]) as client:
        stream_id = open_waiting_call(client)
        started = time.monotonic()
        client.pump(lambda: client.pings >= 3, timeout=5)  # each one answered: the connection stays
        assert time.monotonic() - started >= 2 * PING_INTERVAL_MS / 1000
        assert not served["state"].cancelled.is_set(), "an answered ping must not end the call"
        assert client.replies[stream_id].headers == {} and not client.replies[stream_id].ended
        client.reset(stream_id)
    assert served["state"].cancelled.wait(5)


def test_an_unanswered_ping_closes_the_connection_and_cancels_the_call(served: dict[str, Any]) -> None:
    with GrpcH2Client(served["port"]) as client:
        open_waiting_call(client)
        # The client reads nothing from here on, so it answers no PING (a peer behind a dead link).
        started = time.monotonic()
        assert served["state"].cancelled.wait(10), "the call outlived its unanswered keep-alive ping"
        waited = time.monotonic() - started
        assert waited >= (PING_INTERVAL_MS + PING_TIMEOUT_MS) / 1000 - 0.1, waited
        raw = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and select.select([client.sock], [], [], 0.5)[0]:
            chunk = client.sock.recv(65536)
            if not chunk:
                break
            raw += chunk
        else:
            pytest.fail("the server did not close the connection")
        # The PING came; the close is at once (a GOAWAY may or may not make it: the peer is taken as gone).
        events = client.conn.receive_data(raw)
        assert any(isinstance(e, h2_events.PingReceived) for e in events), events


def test_clients_that_ping_often_are_served(served: dict[str, Any]) -> None:
    """grpcio's own keep-alive (a ping every 100 ms, with or without calls) is not held against the client: a long
    call and the calls after it go through on the same channel."""
    options = [("grpc.keepalive_time_ms", 100), ("grpc.keepalive_timeout_ms", 1000),
               ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0)]
    with grpc.insecure_channel(f"127.0.0.1:{served['port']}", options=options) as channel:
        with pytest.raises(grpc.RpcError) as failure:
            method(channel, "WaitForever", String, String)(String(), timeout=1.5)
        assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, failure.value
        time.sleep(0.5)  # pings without a call
        assert method(channel, "Echo", String, String)(String(value="after"), timeout=5).value == "after"
