"""A connect-python service (Connect RPC, gRPC and gRPC-Web protocols) as an ASGI app, from greet/greet.proto's
generated code: a unary method and a server-streaming one, and an error with a Connect code."""

from __future__ import annotations

from collections.abc import AsyncIterator

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from greet.greet_connect import GreetServiceASGIApplication
from greet.greet_pb2 import CountRequest, CountResponse, GreetRequest, GreetResponse


class Greeter:
    async def greet(self, request: GreetRequest, ctx: RequestContext) -> GreetResponse:
        if not request.name:
            raise ConnectError(Code.INVALID_ARGUMENT, "name is required")
        return GreetResponse(greeting=f"Hello, {request.name}!")

    async def count(self, request: CountRequest, ctx: RequestContext) -> AsyncIterator[CountResponse]:
        for number in range(1, request.up_to + 1):
            yield CountResponse(number=number)


app = GreetServiceASGIApplication(Greeter())
