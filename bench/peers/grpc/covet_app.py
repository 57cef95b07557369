"""The bench Greeter on CovetPy: `covet run covet_app:app --http2` (grpcio's generated code, unchanged)."""

import greeter_pb2_grpc
from servicer import Greeter

from covet import CovetPy

app = CovetPy(openapi_url=None)
greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter(), app.grpc_server)
