"""A connect-python service (apps/connect_app.py) through `covet run` (and uvicorn / hypercorn): the Connect
protocol over HTTP/1.1 with connect-python's own client and with plain JSON, and the gRPC protocol with grpcio's
client over h2c, whose status travels in HTTP/2 trailers (ASGI's http.response.trailers)."""

from __future__ import annotations

import json
import queue
import struct
import time
from collections.abc import Iterator

import grpc
import httpx
import pytest
from conftest import ASGI_SERVERS, H2C_SERVERS, Server, serve
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from greet.greet_connect import GreetServiceClientSync
from greet.greet_pb2 import CountRequest, CountResponse, GreetRequest, GreetResponse, SumRequest, SumResponse

TARGET = "connect_app:app"


@pytest.fixture(scope="module", params=ASGI_SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with serve(request.param, TARGET) as running:
        yield running


@pytest.fixture(scope="module", params=H2C_SERVERS)
def h2c_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with serve(request.param, TARGET) as running:
        yield running


def test_connect_protocol_with_its_client(server: Server) -> None:
    with GreetServiceClientSync(server.url) as client:
        assert client.greet(GreetRequest(name="Ada")).greeting == "Hello, Ada!"
        with pytest.raises(ConnectError) as error:
            client.greet(GreetRequest())
        assert error.value.code == Code.INVALID_ARGUMENT and "name is required" in str(error.value)
        assert [r.number for r in client.count(CountRequest(up_to=4))] == [1, 2, 3, 4]


def test_connect_protocol_as_json(server: Server) -> None:
    url = server.url + "/greet.v1.GreetService/"
    r = httpx.post(url + "Greet", json={"name": "Bo"}, headers={"connect-protocol-version": "1"}, timeout=10)
    assert r.status_code == 200 and r.json() == {"greeting": "Hello, Bo!"}
    r = httpx.post(url + "Greet", json={}, headers={"connect-protocol-version": "1"}, timeout=10)
    assert r.status_code == 400 and r.json() == {"code": "invalid_argument", "message": "name is required"}
    # Server streaming: enveloped messages (flags byte, big-endian length), the last one (flags 2) the end of stream
    request = json.dumps({"upTo": 3}).encode()
    r = httpx.post(url + "Count", content=struct.pack(">BI", 0, len(request)) + request, timeout=10,
                   headers={"content-type": "application/connect+json", "connect-protocol-version": "1"})
    assert r.status_code == 200
    body, frames = r.content, []
    while body:
        flags, size = struct.unpack(">BI", body[:5])
        frames.append((flags, json.loads(body[5:5 + size])))
        body = body[5 + size:]
    assert frames == [(0, {"number": 1}), (0, {"number": 2}), (0, {"number": 3}), (2, {})]


def test_grpc_over_h2c_trailers(h2c_server: Server) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{h2c_server.port}") as channel:
        greet = channel.unary_unary("/greet.v1.GreetService/Greet", request_serializer=GreetRequest.SerializeToString,
                                    response_deserializer=GreetResponse.FromString)
        reply, call = greet.with_call(GreetRequest(name="Cy"), timeout=10)
        assert reply.greeting == "Hello, Cy!" and call.code() == grpc.StatusCode.OK
        with pytest.raises(grpc.RpcError) as error:
            greet(GreetRequest(), timeout=10)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert error.value.details() == "name is required"  # type: ignore[attr-defined]
        count = channel.unary_stream("/greet.v1.GreetService/Count", request_serializer=CountRequest.SerializeToString,
                                     response_deserializer=CountResponse.FromString)
        assert [r.number for r in count(CountRequest(up_to=5), timeout=10)] == [1, 2, 3, 4, 5]


def test_grpc_client_streaming(h2c_server: Server) -> None:
    """The request body streams in (2000 messages), one reply and the status in trailers after it ends."""
    with grpc.insecure_channel(f"127.0.0.1:{h2c_server.port}") as channel:
        total = channel.stream_unary("/greet.v1.GreetService/Sum", request_serializer=SumRequest.SerializeToString,
                                     response_deserializer=SumResponse.FromString)
        reply = total(iter([SumRequest(number=n) for n in range(2000)]), timeout=20)
        assert (reply.total, reply.count) == (sum(range(2000)), 2000)


def test_grpc_bidirectional_lock_step(h2c_server: Server) -> None:
    """Each reply must arrive before the next request message is sent: the server answers while its request body
    is still open (full duplex on one HTTP/2 stream), the client pausing between messages as a chat would."""
    with grpc.insecure_channel(f"127.0.0.1:{h2c_server.port}") as channel:
        running = channel.stream_stream("/greet.v1.GreetService/RunningSum",
                                        request_serializer=SumRequest.SerializeToString,
                                        response_deserializer=SumResponse.FromString)
        outbox: queue.Queue[SumRequest | None] = queue.Queue()
        replies = running(iter(outbox.get, None), timeout=20)
        expected = 0
        for n in range(1, 6):
            outbox.put(SumRequest(number=n))
            expected += n
            answer = next(replies)
            assert (answer.total, answer.count) == (expected, n)
            time.sleep(0.2)
        outbox.put(None)
        assert list(replies) == []
