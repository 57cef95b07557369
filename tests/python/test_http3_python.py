"""HTTP/3 from Python: the ``http3`` option (TransportOptions, app.run keywords, ``covet run --http3`` and the flags
passed on to worker processes), and real HTTP/3 requests over QUIC through the compiled engine to a CovetPy app
(async and sync handlers, path parameters, pydantic bodies and their 422, streamed responses, request headers,
the HTTP version and TLS session the handler sees, client certificates), the Alt-Svc advertisement on the TCP
port, ``covet run --http3 --workers 2`` (the master's UDP sockets, routed by connection ID: NAT rebindings and
rolling restarts), and the engine embedded in the event loop (threads=0).

The HTTP/3 client is aioquic (tests/integration/h3_client.py), independent of the server's ngtcp2/nghttp3; it
verifies the server certificate against the test CA. Without the compiled engine or aioquic these tests skip
(fail under COVET_REQUIRE_NATIVE=1)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import fake_native
import pytest
from pydantic import BaseModel

import covet
from covet.tls import TransportOptions

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
ALT_SVC = 'h3=":{port}"; ma=86400'


# ---- options, without a server -------------------------------------------------------------------

@pytest.mark.parametrize("options", [{"http3": True}, {"http3": True, "http2": False},
                                     {"http3": True, "ssl_keyfile": "k.pem"}])
def test_http3_without_tls_is_refused_naming_the_fix(options: dict[str, Any]) -> None:
    opts = TransportOptions(**options)
    with pytest.raises(ValueError, match="ssl_certfile"):
        opts.validate()
    with pytest.raises(ValueError, match="ssl_certfile"):  # before any engine setting is touched
        opts.apply(object())


def test_http3_with_tls_validates_and_sets_the_engine_flag() -> None:
    class Engine:
        http2 = True
        http3 = False
        tls_args: Optional[tuple[Any, ...]] = None

        def configure_tls(self, *args: Any, **kwargs: Any) -> None:
            self.tls_args = args

    opts = TransportOptions(ssl_certfile="c.pem", ssl_keyfile="k.pem", http3=True)
    opts.validate()
    engine = Engine()
    opts.apply(engine)
    assert engine.http3 is True and engine.tls_args == ("c.pem", "k.pem")
    off = Engine()
    TransportOptions(ssl_certfile="c.pem", ssl_keyfile="k.pem").apply(off)
    assert off.http3 is False
    with pytest.raises(ValueError, match="no HTTP/3"):  # an engine built before HTTP/3: said, not ignored
        opts.apply(type("OldEngine", (), {"configure_tls": lambda self, *a, **k: None})())


def test_app_run_keywords_split_into_http3() -> None:
    opts, rest = TransportOptions.split({"ssl_certfile": "c.pem", "ssl_keyfile": "k.pem", "http3": True,
                                         "max_body_bytes": 10})
    assert (opts.http3, opts.tls, rest) == (True, True, {"max_body_bytes": 10})
    assert TransportOptions.split({"ssl_certfile": "c.pem", "ssl_keyfile": "k.pem"})[0].http3 is False


def test_cli_args_carry_http3_only_when_on() -> None:
    from covet.server.supervisor import WorkerOptions, worker_command

    on = TransportOptions(ssl_certfile="/c.pem", ssl_keyfile="/k.pem", http3=True)
    off = TransportOptions(ssl_certfile="/c.pem", ssl_keyfile="/k.pem")
    assert on.cli_args().count("--http3") == 1 and "--no-http3" not in on.cli_args()
    assert "--http3" not in off.cli_args()
    assert "--http3" in worker_command(WorkerOptions(app="main:app", transport=on))
    assert "--http3" not in worker_command(WorkerOptions(app="main:app", transport=off))


def test_the_cli_parses_http3_flags() -> None:
    from covet.server import cli

    tls = ["--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem"]

    def transport(*flags: str, command: str = "run") -> TransportOptions:
        return cli._transport(cli._parser().parse_args([command, "main:app", *tls, *flags]))

    assert transport().http3 is False
    assert transport("--http3").http3 is True
    assert transport("--http3", "--no-http3").http3 is False
    assert transport("--http3", command="_worker").http3 is True  # what worker processes get from cli_args()
    # A worker's flags round-trip through its parser.
    opts = TransportOptions(ssl_certfile="c.pem", ssl_keyfile="k.pem", http3=True)
    assert cli._transport(cli._parser().parse_args(["_worker", "main:app", *opts.cli_args()])) == opts
    with pytest.raises(SystemExit, match="ssl_certfile"):
        cli._transport(cli._parser().parse_args(["run", "main:app", "--http3"]))


def test_covet_run_http3_without_tls_exits_with_the_fix(tmp_path: Path) -> None:
    if subprocess.run([sys.executable, "-c", "import covet.server.cli"], capture_output=True).returncode:
        pytest.skip(f"{sys.executable} cannot import covet")
    (tmp_path / "app.py").write_text("from covet import CovetPy\napp = CovetPy()\n")
    result = subprocess.run([sys.executable, "-m", "covet", "run", "app:app", "--port", "0", "--http3"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0, result
    assert "ssl_certfile" in result.stderr and "--http3" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


# ---- fixtures for the real engine --------------------------------------------------------------------

def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a server certificate from it for localhost and 127.0.0.1 (as test_tls.py)."""
    if not shutil.which("openssl"):
        pytest.skip("the openssl command is needed to make test certificates")
    d = tmp_path_factory.mktemp("h3certs")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-subj", "/CN=Covet Test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=server-cn",
             "-keyout", "server.key", "-out", "server.csr", cwd=d)
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "server.ext", "-out", "server.pem", cwd=d)
    return d


@pytest.fixture(scope="module")
def client_certs(certs: Path) -> Path:
    """alice.pem/.key from the test CA, and mallory.pem/.key self-signed (no CA the server trusts)."""
    d = certs
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/O=Example/CN=alice",
             "-keyout", "alice.key", "-out", "alice.csr", cwd=d)
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    _openssl("x509", "-req", "-in", "alice.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", "client.ext", "-out", "alice.pem", cwd=d)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-subj", "/CN=mallory", "-keyout", "mallory.key", "-out", "mallory.pem", cwd=d)
    return d


def _tls(certs: Path) -> dict[str, str]:
    return {"ssl_certfile": str(certs / "server.pem"), "ssl_keyfile": str(certs / "server.key")}


@pytest.fixture(scope="module")
def h3() -> Any:
    """tests/integration/h3_client.py (aioquic)."""
    if str(INTEGRATION) not in sys.path:
        sys.path.append(str(INTEGRATION))
    try:
        import h3_client
    except ImportError as e:
        reason = (f"aioquic, the HTTP/3 client of these tests, is not importable ({e}): "
                  "pip install -r requirements-dev.txt")
        if os.environ.get("COVET_REQUIRE_NATIVE"):
            pytest.fail(reason)
        pytest.skip(reason)
    return h3_client


@pytest.fixture
def real_engine(native: Any) -> Any:
    if native is fake_native:  # the stand-in speaks neither TLS nor QUIC
        pytest.skip("HTTP/3 needs the compiled engine")
    if not hasattr(native.NativeServer, "http3"):
        message = f"{native.__file__} has no NativeServer.http3: rebuild it from this source tree"
        if os.environ.get("COVET_REQUIRE_NATIVE"):
            pytest.fail(message)
        pytest.skip(message)
    return native


# ---- the app ---------------------------------------------------------------------------------------

UPLOAD_STARTED = threading.Event()  # set by /upload?slow=1 when its first chunk came


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def _app() -> covet.CovetPy:
    app = covet.CovetPy()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: Optional[str] = None) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"item_id": item_id, "q": q, "handler": "async"}

    @app.get("/sync/{name}")
    def sync_handler(name: str) -> dict[str, Any]:
        time.sleep(0.005)
        return {"name": name, "handler": "sync", "thread": threading.current_thread().name}

    @app.post("/items", status_code=201)
    async def create_item(item: Item) -> dict[str, Any]:
        return {"created": item.model_dump(), "total": item.price * 2}

    @app.post("/echo")
    async def echo(request: covet.Request) -> dict[str, Any]:
        body = await request.body()
        return {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    @app.post("/upload")
    async def upload(request: covet.Request) -> dict[str, Any]:
        digest, sizes = hashlib.sha256(), []
        async for chunk in request.stream():
            if chunk:
                digest.update(chunk)
                sizes.append(len(chunk))
                if request.query_params.get("slow") and len(sizes) == 1:
                    UPLOAD_STARTED.set()
                    await asyncio.sleep(1.0)  # the client must be held back by the stream's window meanwhile
        return {"length": sum(sizes), "chunks": len(sizes), "sha256": digest.hexdigest(),
                "http_version": request.http_version}

    @app.post("/first")
    async def first(request: covet.Request) -> dict[str, Any]:
        async for chunk in request.stream():
            if chunk:  # answers with the first bytes, before the body has ended (full duplex)
                return {"first": chunk.decode()}
        return {"first": None}

    @app.get("/stream")
    async def stream() -> covet.StreamingResponse:
        async def chunks() -> Any:
            for i in range(4):
                yield f"chunk {i}\n".encode()
                await asyncio.sleep(0.05)

        return covet.StreamingResponse(chunks(), media_type="text/plain", headers={"x-streamed": "yes"})

    @app.get("/big")
    async def big() -> covet.Response:
        return covet.Response(b"0123456789abcdef" * 65536, media_type="application/octet-stream")

    @app.get("/headers")
    async def headers(request: covet.Request) -> dict[str, Any]:
        return {"x-test": request.headers.get("x-test"), "x-multi": request.headers.getlist("x-multi"),
                "user-agent": request.headers.get("user-agent"), "host": request.headers.get("host"),
                "url": str(request.url), "hostname": request.url.hostname, "port": request.url.port,
                "query": dict(request.query_params)}

    @app.get("/whoami")
    async def whoami(request: covet.Request) -> dict[str, Any]:
        tls = request.tls or {}
        return {key: tls.get(key) for key in ("client_cert_verified", "client_cert_name", "client_cert_common_name")}

    @app.get("/version")
    async def version(request: covet.Request) -> dict[str, Any]:
        tls = request.tls
        return {"http_version": request.http_version, "scope_http_version": request.scope["http_version"],
                "scheme": request.scheme, "scope_scheme": request.scope["scheme"],
                "alpn": tls and tls["alpn_protocol"], "tls_version": tls and tls["tls_version"],
                "client": list(request.client) if request.client else None}

    return app


def _serve(threads: int, **options: Any) -> Any:
    from covet.serve import ThreadedWorker

    return ThreadedWorker(_app(), threads=threads, **options).start()


@pytest.fixture
def h3_server(real_engine: Any, certs: Path, h3: Any) -> Iterator[Any]:
    """The app with TLS and HTTP/3, the engine on its own I/O thread."""
    server = _serve(1, **_tls(certs), http3=True)
    try:
        yield server
    finally:
        server.stop()


def _session(h3: Any, port: int, certs: Path, **kw: Any) -> Any:
    return h3.H3Session(port, server_name="localhost", ca=certs / "ca.pem", **kw)


def _json(response: Any) -> Any:
    assert response.complete, response
    assert response.media_type == "application/json", response
    return json.loads(response.body)


def _https_get(port: int, certs: Path, path: str) -> tuple[http.client.HTTPResponse, bytes]:
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.set_alpn_protocols(["http/1.1"])
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


# ---- a CovetPy app over HTTP/3 -----------------------------------------------------------------------

def test_async_and_sync_handlers_with_path_parameters(h3_server: Any, h3: Any, certs: Path) -> None:
    with _session(h3, h3_server.port, certs) as s:
        assert s.alpn == "h3"
        r = s.get("/items/42?q=abc")
        assert r.status == 200 and _json(r) == {"item_id": 42, "q": "abc", "handler": "async"}, r
        r = s.get("/sync/caf%C3%A9")
        assert r.status == 200, r
        data = _json(r)
        assert (data["name"], data["handler"]) == ("café", "sync") and data["thread"] != "covet-loop", data
        r = s.get("/items/not-a-number")
        assert r.status == 422, r
        assert [e["loc"] for e in _json(r)["detail"]] == [["path", "item_id"]], r
        r = s.get("/nowhere")
        assert r.status == 404 and r.complete, r
        r = s.request("DELETE", "/items/1")
        assert r.status == 405 and r.complete, r
        # Several requests at once on the connection (one stream each), async and sync handlers mixed.
        rs = s.gather([("GET", f"/items/{i}") if i % 2 else ("GET", f"/sync/n{i}") for i in range(12)])
        for i, r in enumerate(rs):
            assert r.status == 200, r
            assert _json(r)["item_id" if i % 2 else "name"] == (i if i % 2 else f"n{i}"), r


def test_json_body_and_validation(h3_server: Any, h3: Any, certs: Path) -> None:
    with _session(h3, h3_server.port, certs) as s:
        body = json.dumps({"name": "widget", "price": 2.5, "tags": ["a", "b"]}).encode()
        r = s.request("POST", "/items", [("content-type", "application/json")], body)
        assert r.status == 201, r
        assert _json(r) == {"created": {"name": "widget", "price": 2.5, "tags": ["a", "b"]}, "total": 5.0}, r
        r = s.request("POST", "/items", [("content-type", "application/json")], b'{"price": "cheap"}')
        assert r.status == 422, r
        errors = {(tuple(e["loc"]), e["type"]) for e in _json(r)["detail"]}
        assert errors == {(("body", "name"), "missing"), (("body", "price"), "float_parsing")}, r
        r = s.request("POST", "/items", [("content-type", "application/json")], b'{"name": "x", ')
        assert r.status == 422 and _json(r)["detail"][0]["type"] == "json_invalid", r


def test_request_bodies_and_responses_larger_than_a_window(h3_server: Any, h3: Any, certs: Path) -> None:
    payload = os.urandom(300 * 1024)
    with _session(h3, h3_server.port, certs) as s:
        r = s.request("POST", "/echo", [("content-type", "application/octet-stream")], payload)
        assert r.status == 200, r
        assert _json(r) == {"length": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
        r = s.get("/big")
        assert r.status == 200 and r.complete, r
        assert r.body == b"0123456789abcdef" * 65536
        assert r.header("content-length") in (None, str(len(r.body))), r


def test_large_upload_streams_to_the_handler(h3_server: Any, h3: Any, certs: Path) -> None:
    """A body over stream_body_threshold reaches `request.stream()` in pieces as it arrives (not
    buffered whole by the engine first), with and without a declared Content-Length."""
    payload = os.urandom(3 * 1024 * 1024 + 17)
    with _session(h3, h3_server.port, certs) as s:
        for headers in ([("content-length", str(len(payload)))], []):
            r = s.request("POST", "/upload", [("content-type", "application/octet-stream"), *headers], payload)
            got = _json(r)
            assert got["length"] == len(payload) and got["sha256"] == hashlib.sha256(payload).hexdigest(), got
            assert got["chunks"] > 1 and got["http_version"] == "3", got


def test_upload_back_pressure_holds_the_client(h3_server: Any, h3: Any, certs: Path) -> None:
    """While the handler does not take chunks, the stream's flow-control window stays shut: the client
    cannot have sent much more than one window (1 MiB) of an 8 MiB body; then the upload completes."""
    payload = os.urandom(8 * 1024 * 1024)
    UPLOAD_STARTED.clear()
    with _session(h3, h3_server.port, certs) as s:
        sid = s.start("POST", "/upload?slow=1", [("content-length", str(len(payload)))], end_stream=False)
        s.send_data(sid, payload, end_stream=True)
        assert UPLOAD_STARTED.wait(10), "the handler never got the first chunk"
        time.sleep(0.5)  # the handler sleeps 1 s after its first chunk
        credit = s._call(lambda: s._client._quic._streams[sid].max_stream_data_remote)
        assert credit < 3 * 1024 * 1024, f"the server let the client send {credit} bytes while the handler slept"
        got = _json(s.response(sid, timeout=30))
    assert got["length"] == len(payload) and got["sha256"] == hashlib.sha256(payload).hexdigest(), got


def test_handler_answers_before_the_body_ends(h3_server: Any, h3: Any, certs: Path) -> None:
    """Full duplex: a body without a declared length is offered to the handler with its first bytes;
    the handler answers while the client has not ended the body (and the rest is refused, the connection
    goes on)."""
    with _session(h3, h3_server.port, certs) as s:
        sid = s.start("POST", "/first", [("content-type", "text/plain")], end_stream=False)
        s.send_data(sid, b"hello")
        assert _json(s.response(sid, timeout=10)) == {"first": "hello"}
        assert _json(s.get("/items/7")) == {"item_id": 7, "q": None, "handler": "async"}


def test_streaming_response(h3_server: Any, h3: Any, certs: Path) -> None:
    with _session(h3, h3_server.port, certs) as s:
        r = s.get("/stream")
    assert r.status == 200 and r.complete, r
    assert r.body == b"".join(f"chunk {i}\n".encode() for i in range(4)), r
    assert r.media_type == "text/plain" and r.header("x-streamed") == "yes", r
    assert len([c for c in r.chunks if c]) >= 2, f"the chunks came as one piece, not streamed: {r.chunks}"
    assert r.header("transfer-encoding") is None, r  # connection-specific: malformed in HTTP/3


def test_handler_reads_request_headers(h3_server: Any, h3: Any, certs: Path) -> None:
    port = h3_server.port
    with _session(h3, port, certs) as s:
        r = s.get("/headers?a=1&b=two", [("x-test", "value 1"), ("x-multi", "one"), ("x-multi", "two"),
                                         ("user-agent", "aioquic-test/1")])
    assert r.status == 200, r
    data = _json(r)
    assert data["x-test"] == "value 1" and data["x-multi"] == ["one", "two"], data
    assert data["user-agent"] == "aioquic-test/1", data
    assert data["query"] == {"a": "1", "b": "two"}, data
    # No Host header in HTTP/3: the :authority pseudo-header takes its place (RFC 9114 section 4.3.1).
    assert data["host"] == f"localhost:{port}", data
    assert data["url"] == f"https://localhost:{port}/headers?a=1&b=two", data
    assert (data["hostname"], data["port"]) == ("localhost", port), data


def test_a_recycled_stream_carries_nothing_from_its_previous_request(h3_server: Any, h3: Any, certs: Path) -> None:
    """Request streams come from the worker's pool: one that carried a streamed upload with headers and a query
    must come back empty for the next request on the connection."""
    with _session(h3, h3_server.port, certs) as s:
        for _ in range(3):
            body = os.urandom(200_000)
            r = s.request("POST", "/upload?a=1", [("x-test", "old"), ("x-multi", "one"), ("x-multi", "two"),
                                                  ("content-type", "application/octet-stream")], body)
            assert _json(r)["sha256"] == hashlib.sha256(body).hexdigest(), r
            data = _json(s.get("/headers"))
            assert (data["x-test"], data["x-multi"], data["query"]) == (None, [], {}), data
            assert data["url"] == f"https://localhost:{h3_server.port}/headers", data
            r = s.request("POST", "/echo", [("content-type", "application/octet-stream")], b"")
            assert _json(r)["length"] == 0, r


def test_handler_sees_http_version_3_and_the_quic_tls_session(h3_server: Any, h3: Any, certs: Path) -> None:
    with _session(h3, h3_server.port, certs) as s:
        r = s.get("/version")
        local_port = s.local_port
    assert r.status == 200, r
    data = _json(r)
    assert (data["scheme"], data["scope_scheme"]) == ("https", "https"), data
    assert (data["alpn"], data["tls_version"]) == ("h3", "TLSv1.3"), data
    assert data["client"] == ["127.0.0.1", local_port], data
    # As ASGI servers write it ("2" for HTTP/2): "3", not "3.0".
    assert (data["http_version"], data["scope_http_version"]) == ("3", "3"), data


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps({"version": scope["http_version"], "scheme": scope["scheme"],
                       "host": dict(scope["headers"]).get(b"host", b"").decode()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"version": environ["SERVER_PROTOCOL"], "scheme": environ["wsgi.url_scheme"],
                        "host": environ.get("HTTP_HOST")}).encode()]


@pytest.mark.parametrize("kind, version", [("asgi", "3"), ("wsgi", "HTTP/3")])
def test_hosted_asgi_and_wsgi_apps_see_http3(real_engine: Any, certs: Path, h3: Any, kind: str,
                                             version: str) -> None:
    """A pure ASGI app's scope["http_version"] ("2" over HTTP/2) and a WSGI app's SERVER_PROTOCOL ("HTTP/2")."""
    from covet.serve import ThreadedWorker
    from covet.wsgi import WsgiHost

    app = _asgi_app if kind == "asgi" else WsgiHost(_wsgi_app, threads=2)
    server = ThreadedWorker(app, threads=1, lifespan=False, **_tls(certs), http3=True).start()
    try:
        r = h3.h3_request("127.0.0.1", server.port, "GET", "/anything", ca=certs / "ca.pem")
        assert r.status == 200, r
        assert _json(r) == {"version": version, "scheme": "https", "host": f"localhost:{server.port}"}, r
    finally:
        server.stop()


def test_tcp_answers_advertise_http3(h3_server: Any, certs: Path) -> None:
    port = h3_server.port
    want = ALT_SVC.format(port=port)
    for path, status in (("/items/7", 200), ("/sync/x", 200), ("/stream", 200), ("/items/x", 422),
                         ("/nowhere", 404)):
        response, body = _https_get(port, certs, path)
        assert response.status == status, (path, response.status, body)
        assert response.version == 11
        assert response.headers.get_all("Alt-Svc") == [want], (path, response.getheaders())
    response, body = _https_get(port, certs, "/version")
    assert json.loads(body)["http_version"] == "1.1"
    try:
        import h2  # noqa: F401
        import httpx
    except ImportError:
        return
    with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=str(certs / "ca.pem"))) as client:
        r = client.get(f"https://localhost:{port}/version")
    assert r.http_version == "HTTP/2" and r.json()["http_version"] == "2"
    assert r.headers.get_list("alt-svc") == [want], r.headers


def test_h3_answers_do_not_advertise_themselves(h3_server: Any, h3: Any, certs: Path) -> None:
    with _session(h3, h3_server.port, certs) as s:
        for path in ("/items/1", "/stream"):
            r = s.get(path)
            assert r.status == 200 and r.header("alt-svc") is None, r


def test_without_http3_no_quic_and_no_alt_svc(real_engine: Any, certs: Path, h3: Any) -> None:
    server = _serve(1, **_tls(certs))
    try:
        response, _ = _https_get(server.port, certs, "/items/1")
        assert response.status == 200 and response.getheader("Alt-Svc") is None, response.getheaders()
        with pytest.raises(h3.H3HandshakeError):
            _session(h3, server.port, certs, timeout=2).close()
    finally:
        server.stop()


@pytest.mark.parametrize("squatter_reuseport", [False, True], ids=["exclusive", "reuseport"])
def test_http3_on_a_port_whose_udp_side_is_taken_fails_at_start(real_engine: Any, certs: Path,
                                                                 squatter_reuseport: bool) -> None:
    """The UDP socket is bound beside the TCP listener: a port whose UDP side another socket holds must fail the
    start, not serve TCP alone; also when that socket has SO_REUSEPORT (the engine's first socket binds without
    it, so it does not join a stranger's group and share its datagrams). The failed start leaves nothing bound:
    the TCP port is free again while the worker object still exists."""
    import socket

    from covet.serve import ThreadedWorker

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        if squatter_reuseport:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        squatter.bind(("127.0.0.1", port))
        worker = ThreadedWorker(_app(), port=port, threads=1, **_tls(certs), http3=True)
        try:
            worker.start()
        except Exception as e:
            assert "UDP" in str(e) or "HTTP/3" in str(e), repr(e)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as again:
                again.bind(("127.0.0.1", port))  # EADDRINUSE while the failed server kept its listener
        else:
            worker.stop()
            pytest.fail(f"served on {port} although its UDP side is taken: HTTP/3 would silently not work")


# ---- the engine embedded in the event loop ---------------------------------------------------------

def test_embedded_engine_serves_http3(real_engine: Any, certs: Path, h3: Any) -> None:
    server = _serve(0, **_tls(certs), http3=True)
    try:
        engine = server.worker.server
        if os.environ.get("COVET_BACKEND", "auto") != "asio":
            assert engine.embedded, "threads=0 on io_uring should run the engine on the event-loop thread"
        elif not engine.embedded:
            pytest.skip("COVET_BACKEND=asio: the engine is never embedded")
        with _session(h3, server.port, certs) as s:
            r = s.get("/items/5")
            assert r.status == 200 and _json(r)["item_id"] == 5, r
            r = s.get("/stream")  # finished later, from the loop: the embedded engine must flush it
            assert r.status == 200 and r.body.count(b"chunk") == 4, r
            r = s.request("POST", "/items", [("content-type", "application/json")],
                          b'{"name": "e", "price": 1}')
            assert r.status == 201 and _json(r)["total"] == 2.0, r
            r = s.get("/sync/e")
            assert r.status == 200 and _json(r)["handler"] == "sync", r
    finally:
        server.stop()


# ---- client certificates (mTLS) over HTTP/3 ----------------------------------------------------------------

def _refused_by_the_handshake(h3: Any, port: int, certs: Path, **kw: Any) -> None:
    """The server ends the handshake with a TLS alert (QUIC CRYPTO_ERROR, 0x100 + alert: bad_certificate,
    certificate_required): the client may have completed its side first (TLS 1.3 clients authenticate last), so
    its first request gets no answer."""
    try:
        s = _session(h3, port, certs, timeout=3, **kw)
    except h3.H3HandshakeError:
        return
    with s:
        try:
            r = s.get("/whoami")
        except h3.H3Error:
            r = None
        assert r is None or r.status is None, r
        term = s.wait_terminated(3)
        assert term is not None and 0x100 <= term.error_code < 0x200, s.describe()


@pytest.mark.parametrize("reqs", ["required", "optional"])
def test_client_certificates_over_http3(real_engine: Any, client_certs: Path, h3: Any, reqs: str) -> None:
    """--ssl-ca-certs over QUIC as over TCP: a certificate from the CA is verified and reaches the handler; one
    from another CA fails the handshake; none fails it only when required."""
    certs = client_certs
    server = _serve(1, **_tls(certs), http3=True, ssl_ca_certs=str(certs / "ca.pem"), ssl_cert_reqs=reqs)
    try:
        alice = {"client_cert_verified": True, "client_cert_name": "CN=alice,O=Example",
                 "client_cert_common_name": "alice"}
        with _session(h3, server.port, certs, client_cert=(certs / "alice.pem", certs / "alice.key")) as s:
            assert _json(s.get("/whoami")) == alice
            assert s.tickets, "no session ticket"
        # Resumption: no certificate exchange; the session keeps the one its ticket was issued after.
        with _session(h3, server.port, certs, session_ticket=s.tickets[-1]) as resumed:
            assert resumed.session_resumed
            assert _json(resumed.get("/whoami")) == alice
        _refused_by_the_handshake(h3, server.port, certs, client_cert=(certs / "mallory.pem", certs / "mallory.key"))
        if reqs == "required":
            _refused_by_the_handshake(h3, server.port, certs)
        else:
            with _session(h3, server.port, certs) as s:
                assert _json(s.get("/whoami"))["client_cert_verified"] is False
    finally:
        server.stop()


# ---- covet run --http3 --workers 2 --------------------------------------------------------------------

WORKER_APP = textwrap.dedent("""
    import os
    from covet import CovetPy, Request

    app = CovetPy()

    @app.get("/pid")
    async def pid(request: Request):
        return {"pid": os.getpid(), "http_version": request.http_version}

    @app.get("/wait")
    async def wait(file: str):
        import asyncio, pathlib

        for _ in range(600):  # in flight until the test creates `file` (at most 30 s)
            if pathlib.Path(file).exists():
                break
            await asyncio.sleep(0.05)
        return {"pid": os.getpid()}
""")


@contextlib.contextmanager
def _covet_run_h3(certs: Path, tmp_path: Path, workers: int = 2, threads: int = 0,
                  backend: str = "auto") -> Iterator[tuple[Any, int]]:
    from serverproc import ServerProcess, free_port, require_compiled_engine

    require_compiled_engine("import covet._native as n; assert hasattr(n, 'attach_http3_router')",
                            "compiled engine with HTTP/3 routing between processes")
    (tmp_path / "app.py").write_text(WORKER_APP)
    port = free_port()
    command = [sys.executable, "-m", "covet", "run", "app:app", "--host", "127.0.0.1", "--port", str(port),
               "--ssl-certfile", str(certs / "server.pem"), "--ssl-keyfile", str(certs / "server.key"),
               "--http3", "--workers", str(workers), "--threads", str(threads)]
    with ServerProcess(command, cwd=tmp_path, ready=rf"{workers} worker\(s\) serving on", timeout=60,
                       env={"COVET_BACKEND": backend} if backend != "auto" else None) as server:
        yield server, port


def test_covet_run_http3_with_two_workers(certs: Path, h3: Any, tmp_path: Path) -> None:
    from serverproc import children

    with _covet_run_h3(certs, tmp_path) as (server, port):
        workers = set(children(server.proc.pid))
        assert len(workers) == 2, server.output()
        pids: Counter[int] = Counter()
        for _ in range(20):  # a new connection (a new UDP source port) each time
            r = h3.h3_request("127.0.0.1", port, "GET", "/pid", ca=certs / "ca.pem")
            assert r.status == 200, r
            data = _json(r)
            pids[data["pid"]] += 1
        assert sum(pids.values()) == 20
        assert set(pids) == workers, f"HTTP/3 connections by worker: {dict(pids)}, workers {workers}"
        response, body = _https_get(port, certs, "/pid")
        assert response.status == 200 and response.getheader("Alt-Svc") == ALT_SVC.format(port=port)
        # An idle HTTP/3 connection stays open across SIGTERM: the shutdown must not wait for its idle timeout.
        with _session(h3, port, certs) as idle:
            assert idle.get("/pid").status == 200
            took = server.stop()
            assert took < 5, f"SIGTERM took {took:.1f} s:\n{server.output(40)}"
            assert idle.wait_goaway(2) or idle.wait_terminated(2), f"not told of the shutdown: {idle.describe()}"


@pytest.mark.parametrize(("threads", "backend"), [(0, "uring"), (2, "asio")])
def test_covet_run_http3_routes_a_rebinding_client_to_its_process(certs: Path, h3: Any, tmp_path: Path,
                                                                   threads: int, backend: str) -> None:
    """The master's UDP sockets route by connection ID (covet.server.quic_group): after each of 8 NAT rebindings
    the kernel's hash of the new address would pick another socket most of the time, often another process's
    (which would answer with a stateless reset); the connection's own process must keep answering. With 2
    engine threads per worker, 4 sockets in a bank (on epoll; io_uring is the default)."""
    from serverproc import children

    import quic_cases as qc

    with _covet_run_h3(certs, tmp_path, threads=threads, backend=backend) as (server, port):
        workers = set(children(server.proc.pid))
        assert server.output().count(f"backend={backend}") == 2 or server.fell_back_to_epoll(), server.output()
        with qc.UdpRelay(port) as relay, _session(h3, relay.port, certs) as s:
            owner = _json(s.get("/pid"))["pid"]
            assert owner in workers, (owner, workers)
            for i in range(8):
                relay.rebind()
                try:
                    r = s.get("/pid", timeout=4)
                except Exception as e:
                    raise AssertionError(f"no answer after rebinding {i + 1}: {str(e)[:150]}; "
                                         f"{s.describe()}\n{server.output(20)}") from None
                assert r.status == 200 and _json(r)["pid"] == owner, (i, r)
        # Both processes take new connections (a client's first Initial is spread over the sockets).
        pids = {_json(h3.h3_request("127.0.0.1", port, "GET", "/pid", ca=certs / "ca.pem"))["pid"]
                for _ in range(16)}
        assert pids == workers, (pids, workers)


def test_covet_run_http3_rolling_restart_moves_new_connections_and_keeps_old_ones(
        certs: Path, h3: Any, tmp_path: Path) -> None:
    """SIGUSR2: the new generation's workers take new HTTP/3 connections on their own bank of sockets, while a
    request in flight on an old worker's connection still completes there (its packets name the old worker's
    sockets), after a GOAWAY."""
    from serverproc import children

    flag = tmp_path / "finish"
    with _covet_run_h3(certs, tmp_path) as (server, port):
        old_workers = set(children(server.proc.pid))
        with _session(h3, port, certs) as s:
            old = _json(s.get("/pid"))["pid"]
            pending = s.send("GET", f"/wait?file={flag}", timeout=45)
            time.sleep(0.2)
            os.kill(server.proc.pid, signal.SIGUSR2)
            server.wait_for(r"generation 2 ready", timeout=60)
            assert s.wait_goaway(5), f"the old worker sent no GOAWAY: {s.describe()}"
            for _ in range(8):
                r = h3.h3_request("127.0.0.1", port, "GET", "/pid", ca=certs / "ca.pem", timeout=5)
                assert r.status == 200 and _json(r)["pid"] not in old_workers, (r, old_workers)
            flag.touch()
            r = pending.result(15)
            assert r.status == 200 and _json(r)["pid"] == old, r
        # Once the old workers have gone, the next restart takes their bank again.
        second = set(children(server.proc.pid)) - old_workers
        deadline = time.monotonic() + 20
        while set(children(server.proc.pid)) != second and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(server.proc.pid, signal.SIGUSR2)
        server.wait_for(r"generation 3 ready", timeout=60)
        for _ in range(6):
            r = h3.h3_request("127.0.0.1", port, "GET", "/pid", ca=certs / "ca.pem", timeout=5)
            assert r.status == 200 and _json(r)["pid"] not in old_workers | second, r
