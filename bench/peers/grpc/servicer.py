"""The gRPC scenarios' Greeter, one async servicer class for every Python server (greeter_pb2* are generated from
examples/native/grpc_greeter/greeter.proto by the suite, bench/servers.py, into bench/.grpc/py on PYTHONPATH)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import greeter_pb2
import greeter_pb2_grpc


class Greeter(greeter_pb2_grpc.GreeterServicer):
    async def SayHello(self, request: Any, context: Any) -> Any:
        return greeter_pb2.HelloReply(message="Hello, " + request.name)

    async def SayHellos(self, request: Any, context: Any) -> AsyncIterator[Any]:
        reply = greeter_pb2.HelloReply(message="Hello, " + request.name)
        for _ in range(request.count):
            yield reply
