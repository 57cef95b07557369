"""grpc.testing.TestService as the gRPC interop spec describes it, written against grpcio's generated code
(grpcio-tools, from grpc-go's own protos: scripts/build-grpc-interop.sh) and served by covet.grpc.

`covet run` serves `app` (h2c, or TLS with --ssl-*). The generated modules (package `grpc_testing_pb`) must be
importable: tests/python/test_grpc_interop.py generates them and puts their directory on PYTHONPATH.
COVET_INTEROP_SYNC=1 serves the same service written as a sync (thread pool) servicer.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
from grpc_testing_pb import empty_pb2, messages_pb2, test_pb2_grpc

from covet import CovetPy
from covet.grpc import GrpcServer

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"


def payload(size: int) -> Any:
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=b"\0" * size)


def echo_metadata(context: Any) -> None:
    metadata = dict(context.invocation_metadata())
    if ECHO_INITIAL in metadata:
        context.send_initial_metadata(((ECHO_INITIAL, metadata[ECHO_INITIAL]),))
    if ECHO_TRAILING in metadata:
        context.set_trailing_metadata(((ECHO_TRAILING, metadata[ECHO_TRAILING]),))


def check_status(request: Any, context: Any) -> None:
    if request.HasField("response_status") and request.response_status.code != 0:
        context.abort(request.response_status.code, request.response_status.message)


def check_compression(request: Any, context: Any) -> None:
    if request.HasField("response_compressed"):
        context.set_compression(grpc.Compression.Gzip if request.response_compressed.value
                                else grpc.Compression.NoCompression)


class AsyncTestService(test_pb2_grpc.TestServiceServicer):
    async def EmptyCall(self, request: Any, context: Any) -> Any:
        echo_metadata(context)
        return empty_pb2.Empty()

    async def UnaryCall(self, request: Any, context: Any) -> Any:
        echo_metadata(context)
        check_compression(request, context)
        check_status(request, context)
        return messages_pb2.SimpleResponse(payload=payload(request.response_size))

    async def StreamingOutputCall(self, request: Any, context: Any) -> AsyncIterator[Any]:
        for parameters in request.response_parameters:
            if parameters.interval_us:
                await asyncio.sleep(parameters.interval_us / 1e6)
            yield messages_pb2.StreamingOutputCallResponse(payload=payload(parameters.size))
        check_status(request, context)

    async def StreamingInputCall(self, request_iterator: AsyncIterator[Any], context: Any) -> Any:
        total = 0
        async for request in request_iterator:
            total += len(request.payload.body)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    async def FullDuplexCall(self, request_iterator: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        echo_metadata(context)
        async for request in request_iterator:
            check_status(request, context)
            for parameters in request.response_parameters:
                if parameters.interval_us:
                    await asyncio.sleep(parameters.interval_us / 1e6)
                yield messages_pb2.StreamingOutputCallResponse(payload=payload(parameters.size))


class SyncTestService(test_pb2_grpc.TestServiceServicer):
    def EmptyCall(self, request: Any, context: Any) -> Any:
        echo_metadata(context)
        return empty_pb2.Empty()

    def UnaryCall(self, request: Any, context: Any) -> Any:
        echo_metadata(context)
        check_compression(request, context)
        check_status(request, context)
        return messages_pb2.SimpleResponse(payload=payload(request.response_size))

    def StreamingOutputCall(self, request: Any, context: Any) -> Iterator[Any]:
        for parameters in request.response_parameters:
            if parameters.interval_us:
                time.sleep(parameters.interval_us / 1e6)
            yield messages_pb2.StreamingOutputCallResponse(payload=payload(parameters.size))
        check_status(request, context)

    def StreamingInputCall(self, request_iterator: Iterator[Any], context: Any) -> Any:
        return messages_pb2.StreamingInputCallResponse(
            aggregated_payload_size=sum(len(request.payload.body) for request in request_iterator))

    def FullDuplexCall(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        echo_metadata(context)
        for request in request_iterator:
            check_status(request, context)
            for parameters in request.response_parameters:
                if parameters.interval_us:
                    time.sleep(parameters.interval_us / 1e6)
                yield messages_pb2.StreamingOutputCallResponse(payload=payload(parameters.size))


app = CovetPy()


@app.get("/rest")
async def rest() -> dict[str, str]:
    """A REST route next to the gRPC service, on the same port."""
    return {"served": "rest"}


server = GrpcServer(app)
test_pb2_grpc.add_TestServiceServicer_to_server(
    SyncTestService() if os.environ.get("COVET_INTEROP_SYNC") == "1" else AsyncTestService(), server)
