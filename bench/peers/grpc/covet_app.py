"""The bench Greeter on CovetPy: `covet run covet_app:app` (grpcio's generated code, unchanged; h2c is on by
default), covet-async's gRPC instance in `python -m bench`."""

import greeter_pb2_grpc
from servicer import Greeter

from covet import CovetPy

app = CovetPy(openapi_url=None)
greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter(), app.grpc_server)
