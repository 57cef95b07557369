"""gRPC per core (issue 20), now two scenarios of the matrix: this script runs

    python -m bench --scenarios grpc-unary,grpc-stream --servers covet-async,covet-native,grpcio,grpc-go,grpc-cpp \
        --no-docs [more options of python -m bench]

The Greeter of examples/native/grpc_greeter/greeter.proto on CovetPy (grpcio's generated servicer on `covet run`:
covet-async's gRPC instance), CovetPy's C++ API (examples/native/grpc_greeter: covet-native's), grpcio's asyncio
server, grpc-go and the C++ gRPC server (Debian's libgrpc++, callback API); ghz (pinned) unary and 100-message
server-streaming calls; server CPU per successful call. Servers, builds, load and report are the bench package's
(bench/servers.py, bench/loadgen.py, bench/README.md). Later options win, e.g.

    .venv/bin/python bench/grpc_bench.py --runs 3 --duration 5
    .venv/bin/python bench/grpc_bench.py --servers covet-async,grpcio --scenarios grpc-unary

Writes bench/results/matrix-<UTC>.json and .md (--no-docs: docs/benchmarks.md's matrix section is left alone).
"""

from __future__ import annotations

import sys
from pathlib import Path

GRPC_MATRIX = ["--scenarios", "grpc-unary,grpc-stream", "--servers", "covet-async,covet-native,grpcio,grpc-go,grpc-cpp",
               "--no-docs"]

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # the repository, not bench/, so that `bench` imports
    from bench.runner import main

    sys.exit(main(GRPC_MATRIX + sys.argv[1:]))
