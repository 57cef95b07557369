"""A connect-python service (Connect RPC, gRPC and gRPC-Web protocols) as an ASGI app, from greet/greet.proto's
generated code: a unary method (and an error with a Connect code), server streaming, client streaming and
bidirectional streaming (each request answered while the request body still streams in)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from greet.greet_connect import GreetServiceASGIApplication
from greet.greet_pb2 import CountRequest, CountResponse, GreetRequest, GreetResponse, SumRequest, SumResponse


class Greeter:
    async def greet(self, request: GreetRequest, ctx: RequestContext) -> GreetResponse:
        if not request.name:
            raise ConnectError(Code.INVALID_ARGUMENT, "name is required")
        return GreetResponse(greeting=f"Hello, {request.name}!")

    async def count(self, request: CountRequest, ctx: RequestContext) -> AsyncIterator[CountResponse]:
        for number in range(1, request.up_to + 1):
            yield CountResponse(number=number)

    async def sum(self, request: AsyncIterator[SumRequest], ctx: RequestContext) -> SumResponse:
        total = count = 0
        async for item in request:
            total, count = total + item.number, count + 1
        return SumResponse(total=total, count=count)

    async def running_sum(self, request: AsyncIterator[SumRequest], ctx: RequestContext) -> AsyncIterator[SumResponse]:
        total = count = 0
        async for item in request:
            total, count = total + item.number, count + 1
            yield SumResponse(total=total, count=count)


app = GreetServiceASGIApplication(Greeter())
