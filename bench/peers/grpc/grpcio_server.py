"""The bench Greeter on grpcio's asyncio server (grpc.aio), one process: `python grpcio_server.py PORT`."""

import asyncio
import sys

import greeter_pb2_grpc
import grpc
from servicer import Greeter


async def main(port: int) -> None:
    server = grpc.aio.server()
    greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"serving on http://127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
