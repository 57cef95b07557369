"""gRPC-Web (issue 20): a browser's gRPC over HTTP/1.1, from a client no one here wrote -- Connect's grpc-web
transport (@connectrpc/connect-web, npm, pinned by tests/python/grpc_web/package-lock.json) with messages generated
by protoc-gen-es -- against a CovetPy app's @app.grpc methods (examples/native/grpc_greeter/greeter.proto), on real
sockets in the engine's modes. The text variant (application/grpc-web-text, base64 both ways), which Connect does
not speak, is checked byte by byte.

(No ``from __future__ import annotations`` here: the methods' annotations name message classes imported inside
build_app, which @app.grpc must be able to resolve -- as with FastAPI, string annotations resolve from the
function's module globals only.)
"""


import base64
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from serverproc import require_compiled_engine

ROOT = Path(__file__).resolve().parents[2]
CLIENT_DIR = Path(__file__).resolve().parent / "grpc_web"
PROTO_DIR = ROOT / "examples" / "native" / "grpc_greeter"
MODES = [(0, "uring"), (1, "asio")]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """greeter.proto's Python messages (grpcio-tools) and JavaScript ones (protoc + protoc-gen-es)."""
    pytest.importorskip("grpc_tools", reason="grpcio-tools (requirements-dev.txt) generates the Python messages")
    plugin = CLIENT_DIR / "node_modules" / ".bin" / "protoc-gen-es"
    protoc = shutil.which("protoc")
    missing = [what for what, ok in (("node", shutil.which("node")), ("protoc (protobuf-compiler)", protoc),
                                     ("npm ci --prefix tests/python/grpc_web", plugin.exists())) if not ok]
    if missing:
        message = f"gRPC-Web test needs {', '.join(missing)} (scripts/setup.sh installs them)"
        if os.environ.get("COVET_REQUIRE_NATIVE"):
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path_factory.mktemp("grpc-web")
    python_out, js_out = work / "py", work / "js"
    python_out.mkdir()
    js_out.mkdir()
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={python_out}",
                    str(PROTO_DIR / "greeter.proto")], check=True)
    assert protoc is not None
    subprocess.run([protoc, f"-I{PROTO_DIR}", f"--plugin=protoc-gen-es={plugin}", f"--es_out={js_out}",
                    "--es_opt=target=js", str(PROTO_DIR / "greeter.proto")], check=True)
    (js_out / "node_modules").symlink_to(CLIENT_DIR / "node_modules")  # the generated module's imports
    sys.path.insert(0, str(python_out))
    return {"js": js_out}


def build_app() -> Any:
    import greeter_pb2 as pb
    import grpc

    from covet import CovetPy
    from covet.grpc import ServicerContext

    app = CovetPy()

    @app.grpc("bench.Greeter/SayHello")
    async def say_hello(request: pb.HelloRequest, context: ServicerContext) -> pb.HelloReply:
        if request.name == "refuse me":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "names like that are refused")
        context.set_trailing_metadata((("x-served-by", "covet"),))
        return pb.HelloReply(message="Hello, " + request.name)

    @app.grpc("bench.Greeter/SayHellos")
    async def say_hellos(request: pb.HelloRequest) -> AsyncIterator[pb.HelloReply]:
        for i in range(request.count):
            yield pb.HelloReply(message=f"Hello #{i}, {request.name}")

    return app


@pytest.fixture(scope="module", params=MODES, ids=[f"threads{t}-{b}" for t, b in MODES])
def served(request: pytest.FixtureRequest, generated: dict[str, Path]) -> Iterator[Any]:
    require_compiled_engine()
    from covet.serve import ThreadedWorker

    threads, backend = request.param
    worker = ThreadedWorker(build_app(), threads=threads, backend=backend).start()
    yield worker
    worker.stop()


def test_connect_web_client(served: Any, generated: dict[str, Path]) -> None:
    result = subprocess.run(["node", "client.mjs", f"http://127.0.0.1:{served.port}", str(generated["js"])],
                            cwd=CLIENT_DIR, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["unary"] == "Hello, web"
    assert out["stream"] == ["Hello #0, web", "Hello #1, web", "Hello #2, web"]
    assert out["error"] == {"code": 3, "message": "names like that are refused"}  # INVALID_ARGUMENT


def frames(body: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(body):
        flag, size = body[pos], int.from_bytes(body[pos + 1:pos + 5], "big")
        out.append((flag, body[pos + 5:pos + 5 + size]))
        pos += 5 + size
    assert pos == len(body), body
    return out


def post(port: int, path: str, content_type: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                     headers={"content-type": content_type, "x-grpc-web": "1"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()


def test_grpc_web_text_unary_by_hand(served: Any) -> None:
    import greeter_pb2 as pb

    message = pb.HelloRequest(name="text").SerializeToString()
    body = base64.b64encode(b"\x00" + len(message).to_bytes(4, "big") + message)
    status, headers, reply = post(served.port, "/bench.Greeter/SayHello", "application/grpc-web-text", body)
    assert status == 200
    assert headers["content-type"] == "application/grpc-web-text+proto"
    decoded = b"".join(base64.b64decode(part + b"=" * (-len(part) % 4)) for part in _b64_parts(reply))
    (flag, payload), (trailer_flag, trailer) = frames(decoded)
    assert flag == 0 and pb.HelloReply.FromString(payload).message == "Hello, text"
    assert trailer_flag == 0x80
    lines = dict(line.split(":", 1) for line in trailer.decode().split("\r\n") if line)
    assert lines["grpc-status"] == "0"
    assert lines["x-served-by"] == "covet"


def _b64_parts(text: bytes) -> list[bytes]:
    """A grpc-web-text body is base64 frames one after another, each padded: split after each padding run."""
    parts, start = [], 0
    for i in range(len(text)):
        if text[i:i + 1] == b"=" and (i + 1 == len(text) or text[i + 1:i + 2] != b"="):
            parts.append(text[start:i + 1])
            start = i + 1
    if start < len(text):
        parts.append(text[start:])
    return parts


def test_grpc_web_binary_stream_and_unknown_method(served: Any) -> None:
    import greeter_pb2 as pb

    message = pb.HelloRequest(name="bin", count=2).SerializeToString()
    status, headers, reply = post(served.port, "/bench.Greeter/SayHellos", "application/grpc-web+proto",
                                  b"\x00" + len(message).to_bytes(4, "big") + message)
    assert status == 200 and headers["content-type"] == "application/grpc-web+proto"
    parsed = frames(reply)
    assert [pb.HelloReply.FromString(p).message for f, p in parsed if f == 0] == ["Hello #0, bin", "Hello #1, bin"]
    assert parsed[-1][0] == 0x80 and b"grpc-status:0" in parsed[-1][1]
    status, headers, reply = post(served.port, "/bench.Greeter/Nope", "application/grpc-web+proto", b"")
    assert status == 200 and headers["grpc-status"] == "12" and reply == b""
