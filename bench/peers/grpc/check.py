"""The gRPC scenarios' correctness gate (bench/scenarios.py, gate_grpc): a grpcio client on the stubs generated from
examples/native/grpc_greeter/greeter.proto (on PYTHONPATH), run by the suite's gRPC venv.

    check.py PORT METHOD_PATH MESSAGES        e.g. check.py 50051 /bench.Greeter/SayHellos 100

Two calls on one channel (one connection), with a name no server could have hard-coded: SayHello must answer
"Hello, <name>"; SayHellos must stream exactly MESSAGES such replies and end with status OK. Prints "ok" and exits
0, or prints why not and exits 1.
"""

from __future__ import annotations

import os
import sys

import greeter_pb2
import greeter_pb2_grpc
import grpc


def check(port: int, path: str, messages: int) -> str | None:
    name = f"gate-{os.getpid()}"
    want = "Hello, " + name
    method = path.rsplit("/", 1)[-1]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = greeter_pb2_grpc.GreeterStub(channel)
        for call in (1, 2):
            try:
                if method == "SayHello":
                    replies = [stub.SayHello(greeter_pb2.HelloRequest(name=name), timeout=10).message]
                elif method == "SayHellos":
                    request = greeter_pb2.HelloRequest(name=name, count=messages)
                    replies = [r.message for r in stub.SayHellos(request, timeout=10)]
                else:
                    return f"the Greeter has no method {method!r}"
            except grpc.RpcError as exc:
                return f"{method} call {call}: status {exc.code().name}: {exc.details()}"
            if len(replies) != messages:
                return f"{method} call {call}: {len(replies)} replies, want {messages}"
            wrong = next((r for r in replies if r != want), None)
            if wrong is not None:
                return f"{method} call {call}: reply {wrong[:80]!r}, want {want!r}"
    return None


if __name__ == "__main__":
    reason = check(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
    print(reason or "ok")
    sys.exit(1 if reason else 0)
