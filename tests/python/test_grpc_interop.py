"""gRPC (issue 20): the gRPC project's own interop test client (grpc-go's interop/client, built from the Go module
proxy by scripts/build-grpc-interop.sh) against grpc.testing.TestService
- written for grpcio and served by covet.grpc under `covet run` (tests/python/grpc_interop/service.py): the async
  and the sync servicer;
- written in C++ on covet::grpc (tests/grpc/interop_server.cpp, built by CMake into build/tests; COVET_GRPC_
  INTEROP_SERVER names another build);
over h2c and TLS, on the engine's modes and backends. The Python stubs are generated here by grpcio-tools, the
C++ messages by protoc (tests/grpc/generate_interop.sh), both from the descriptors grpc-go compiled in (no copy
of the protos in this repo).

grpc-go's client has no compression test cases ("Unsupported test case"): tests/python/test_grpc.py covers
message compression with grpcio's client.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serverproc import ServerProcess, free_port, require_compiled_engine, require_cpp_grpc_server, self_signed_cert

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PYTHON = sys.executable

CASES = ["empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong", "empty_stream",
         "timeout_on_sleeping_server", "cancel_after_begin", "cancel_after_first_response",
         "status_code_and_message", "special_status_message", "custom_metadata", "unimplemented_method",
         "unimplemented_service"]

# (servicer, transport, native I/O threads, backend); "cpp": tests/grpc/interop_server.cpp
SERVERS = [("async", "h2c", 0, "uring"), ("sync", "h2c", 0, "uring"), ("async", "tls", 1, "uring"),
           ("async", "h2c", 1, "asio"), ("sync", "tls", 1, "asio"), ("cpp", "h2c", 1, "uring"),
           ("cpp", "tls", 2, "asio"), ("cpp", "h2c", 2, "asio")]


@pytest.fixture(scope="module")
def interop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The interop client, and the directory of the generated Python modules (package grpc_testing_pb)."""
    require_compiled_engine()
    pytest.importorskip("grpc_tools", reason="grpcio-tools (requirements-dev.txt) generates the interop stubs")
    built = subprocess.run([str(ROOT / "scripts/build-grpc-interop.sh")], capture_output=True, text=True)
    assert built.returncode == 0, f"scripts/build-grpc-interop.sh failed:\n{built.stderr[-3000:]}"
    tools = Path(built.stdout.strip().splitlines()[-1])
    work = tmp_path_factory.mktemp("grpc-interop")
    descriptors = work / "interop.pb"
    descriptors.write_bytes(subprocess.run([str(tools / "descset")], check=True, capture_output=True).stdout)
    generated = work / "gen"
    generated.mkdir()
    subprocess.run([PYTHON, "-m", "grpc_tools.protoc", f"--descriptor_set_in={descriptors}",
                    f"--python_out={generated}", f"--grpc_python_out={generated}", "grpc_testing_pb/test.proto",
                    "grpc_testing_pb/messages.proto", "grpc_testing_pb/empty.proto"], check=True)
    return {"client": tools / "interop-client", "generated": generated, "work": work}


@pytest.fixture(scope="module", params=SERVERS, ids=["-".join(map(str, s)) for s in SERVERS])
def server(request: pytest.FixtureRequest, interop: dict[str, Path]) -> Iterator[dict[str, Any]]:
    servicer, transport, threads, backend = request.param
    port = free_port()
    if servicer == "cpp":
        command = [str(require_cpp_grpc_server()), str(port), "--threads", str(threads)]
    else:
        command = [PYTHON, "-m", "covet", "run", "service:app", "--port", str(port), "--threads", str(threads),
                   "--http2"]
    client_flags: list[str] = []
    if transport == "tls":
        cert, key = self_signed_cert(interop["work"], "DNS:localhost")
        command += (["--tls-cert", str(cert), "--tls-key", str(key)] if servicer == "cpp"
                    else ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)])
        client_flags = ["--use_tls", "--use_test_ca", f"--ca_file={cert}", "--server_host_override=localhost"]
    env = {"PYTHONPATH": f"{interop['generated']}:{HERE / 'grpc_interop'}", "COVET_BACKEND": backend,
           "COVET_INTEROP_SYNC": "1" if servicer == "sync" else "0"}
    with ServerProcess(command, env=env, cwd=ROOT) as process:
        yield {"port": port, "flags": client_flags, "process": process}


@pytest.mark.parametrize("case", CASES)
def test_interop_case(server: dict[str, Any], interop: dict[str, Path], case: str) -> None:
    result = subprocess.run([str(interop["client"]), f"--server_port={server['port']}", f"--test_case={case}",
                             *server["flags"]], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (f"grpc-go interop case {case} failed:\n{result.stderr[-2000:]}\n"
                                    f"server output:\n{server['process'].output(30)}")


def test_rest_route_on_the_same_port(server: dict[str, Any]) -> None:
    """The app's REST route answers on the port that serves gRPC (HTTP/1.1 here; TLS with the test cert)."""
    import ssl
    import urllib.request

    scheme = "https" if server["flags"] else "http"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"{scheme}://localhost:{server['port']}/rest", timeout=10,
                                context=context if scheme == "https" else None) as response:
        assert response.status == 200
        assert response.read() == b'{"served":"rest"}'
