"""File bodies sent by the engine from the file (sendfile on plain TCP, bounded reads under TLS and HTTP/2), through
real sockets on both reactor backends and both engine placements: StaticFiles (whole file, single Range, HEAD),
a FileResponse offering ``_file_region()`` (covet/server/filesend.py), a large sparse file compared by checksum,
a client that leaves mid-transfer, and a file truncated mid-transfer (the connection closes; the server goes
on serving)."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import fake_native
import pytest
from serverproc import self_signed_cert

from covet import CovetPy
from covet.responses import FileResponse
from covet.staticfiles import StaticFiles

BIG = 80 * 1024 * 1024  # sparse: a few data blocks, the rest holes


class RegionResponse(FileResponse):
    """A FileResponse that offers its body as one file region (the contract covet/server/filesend.py reads)."""

    def __init__(self, path: str, offset: int = 0, count: Optional[int] = None) -> None:
        super().__init__(path, media_type="application/octet-stream")
        size = os.path.getsize(path)
        self._region = (os.path.abspath(path), offset, size - offset if count is None else count)
        self.headers["content-length"] = str(self._region[2])

    def _file_region(self) -> Optional[tuple[str, int, int]]:
        return self._region


def _pattern(n: int, seed: int) -> bytes:
    return hashlib.shake_256(seed.to_bytes(4, "little")).digest(n)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("sendfile")
    (d / "one.bin").write_bytes(_pattern(1024 * 1024, 1))
    (d / "small.txt").write_bytes(b"hello sendfile")
    with open(d / "sparse.bin", "wb") as f:  # data at the start, in the middle and at the end
        f.write(_pattern(70_000, 2))
        f.seek(BIG // 2)
        f.write(_pattern(50_000, 3))
        f.seek(BIG - 30_000)
        f.write(_pattern(30_000, 4))
    assert os.path.getsize(d / "sparse.bin") == BIG
    return d


def _app(root: Path) -> CovetPy:
    app = CovetPy()
    app.mount("/static", StaticFiles(directory=str(root)))

    @app.api_route("/region/{name}", methods=["GET", "HEAD"])
    async def region(name: str, offset: int = 0, count: Optional[int] = None) -> RegionResponse:
        return RegionResponse(str(root / name), offset, count)

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    return app


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _file_md5(path: Path, offset: int = 0, count: Optional[int] = None) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        return _md5(f.read(count if count is not None else -1))


@pytest.fixture(params=["uring-loop", "uring-thread", "asio-loop"])
def server(request: pytest.FixtureRequest, native: Any, files: Path) -> Iterator[Any]:
    if native is fake_native:
        pytest.skip("file bodies are sent by the compiled engine")
    from covet.serve import ThreadedWorker

    backend, placement = request.param.split("-")
    worker = ThreadedWorker(_app(files), threads=0 if placement == "loop" else 1, backend=backend).start()
    yield worker
    worker.stop()


def _get(port: int, path: str, headers: Optional[dict[str, str]] = None,
         method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def test_static_whole_range_and_head(server: Any, files: Path) -> None:
    status, headers, body = _get(server.port, "/static/one.bin")
    assert status == 200 and headers["content-length"] == str(1024 * 1024)
    assert _md5(body) == _file_md5(files / "one.bin")
    status, headers, body = _get(server.port, "/static/one.bin", {"Range": "bytes=1000-200999"})
    assert status == 206 and headers["content-range"] == f"bytes 1000-200999/{1024 * 1024}"
    assert body == (files / "one.bin").read_bytes()[1000:201000]
    status, headers, body = _get(server.port, "/static/one.bin", method="HEAD")
    assert status == 200 and headers["content-length"] == str(1024 * 1024) and body == b""
    etag = headers["etag"]
    assert _get(server.port, "/static/one.bin", {"If-None-Match": etag})[0] == 304


def test_keep_alive_pipelined_file_responses_stay_in_order(server: Any, files: Path) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"GET /static/small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /static/one.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(1 << 20):
            data += chunk
    _, rest = data.split(b"\r\n\r\n", 1)
    assert rest.startswith(b"hello sendfile")
    rest = rest[len(b"hello sendfile"):]
    head, rest = rest.split(b"\r\n\r\n", 1)
    assert b"Content-Length: 1048576" in head
    assert rest[:1024 * 1024] == (files / "one.bin").read_bytes()
    assert rest[1024 * 1024:].endswith(b'{"ok":true}')


def test_large_sparse_file_arrives_whole(server: Any, files: Path) -> None:
    status, _, body = _get(server.port, "/static/sparse.bin")
    assert status == 200 and len(body) == BIG
    assert _md5(body) == _file_md5(files / "sparse.bin")


def test_file_response_region_is_sent_by_the_engine(server: Any, files: Path) -> None:
    status, headers, body = _get(server.port, "/region/one.bin?offset=5&count=300000")
    assert status == 200 and headers["content-length"] == "300000"
    assert body == (files / "one.bin").read_bytes()[5:300005]
    status, headers, body = _get(server.port, "/region/sparse.bin")
    assert len(body) == BIG and _md5(body) == _file_md5(files / "sparse.bin")
    status, headers, body = _get(server.port, "/region/one.bin", method="HEAD")
    assert headers["content-length"] == str(1024 * 1024) and body == b""


def test_file_response_region_past_the_end_is_a_500(server: Any, files: Path) -> None:
    status, _, _ = _get(server.port, "/region/small.txt?offset=0&count=999999")
    assert status == 500
    assert _get(server.port, "/ping")[0] == 200


def test_client_leaving_mid_transfer_leaves_the_server_serving(server: Any) -> None:
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(b"GET /static/sparse.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(65536)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    status, _, body = _get(server.port, "/static/small.txt")
    assert (status, body) == (200, b"hello sendfile")


@pytest.mark.parametrize("route", ["/static/victim.bin", "/region/victim.bin"])
def test_file_truncated_mid_transfer_closes_the_connection(server: Any, files: Path, route: str) -> None:
    victim = files / "victim.bin"
    victim.write_bytes(b"")
    with open(victim, "r+b") as f:
        f.truncate(BIG)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(f"GET {route} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        got = s.recv(65536)
        assert got.startswith(b"HTTP/1.1 200")
        time.sleep(0.2)  # the server fills the socket buffers and waits for POLLOUT
        os.truncate(victim, 1_000_000)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += chunk
        else:
            pytest.fail("the connection stayed open after its file shrank")
    body = got.split(b"\r\n\r\n", 1)[1]
    assert len(body) < BIG  # cut short, not padded, not hanging
    status, _, body = _get(server.port, "/static/small.txt")  # the server is fine
    assert (status, body) == (200, b"hello sendfile")


# ---- TLS and HTTP/2 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    self_signed_cert(d, san="DNS:localhost")
    return d


@pytest.fixture(params=["uring", "asio"])
def tls_server(request: pytest.FixtureRequest, native: Any, files: Path, certs: Path) -> Iterator[Any]:
    if native is fake_native:
        pytest.skip("TLS needs the compiled engine")
    from covet.serve import ThreadedWorker

    worker = ThreadedWorker(_app(files), backend=request.param, ssl_certfile=str(certs / "cert.pem"),
                            ssl_keyfile=str(certs / "key.pem")).start()
    yield worker
    worker.stop()


def _tls_context(certs: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / "cert.pem"))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def test_tls_static_and_region_bodies(tls_server: Any, files: Path, certs: Path) -> None:
    conn = http.client.HTTPSConnection("localhost", tls_server.port, context=_tls_context(certs), timeout=60)
    try:
        for path, expected in (("/static/one.bin", _file_md5(files / "one.bin")),
                               ("/static/sparse.bin", _file_md5(files / "sparse.bin")),
                               ("/region/one.bin?offset=7&count=500000", _file_md5(files / "one.bin", 7, 500000))):
            conn.request("GET", path)
            resp = conn.getresponse()
            assert resp.status == 200 and _md5(resp.read()) == expected  # one keep-alive connection
        conn.request("GET", "/static/one.bin", headers={"Range": "bytes=10-19"})
        resp = conn.getresponse()
        assert resp.status == 206 and resp.read() == (files / "one.bin").read_bytes()[10:20]
    finally:
        conn.close()


def test_tls_file_truncated_mid_transfer_closes_the_connection(tls_server: Any, files: Path, certs: Path) -> None:
    victim = files / "tls-victim.bin"
    with open(victim, "wb") as f:
        f.truncate(BIG)
    raw = socket.create_connection(("127.0.0.1", tls_server.port), timeout=30)
    with _tls_context(certs).wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"GET /static/tls-victim.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        got = s.recv(65536)
        time.sleep(0.2)
        os.truncate(victim, 1_000_000)
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                got += chunk
            else:
                pytest.fail("the TLS connection stayed open after its file shrank")
        except (ssl.SSLError, ConnectionError):
            pass  # closed without close_notify: also a close
    assert len(got) < BIG
    conn = http.client.HTTPSConnection("localhost", tls_server.port, context=_tls_context(certs), timeout=30)
    conn.request("GET", "/static/small.txt")
    assert conn.getresponse().read() == b"hello sendfile"
    conn.close()


h2_connection = pytest.importorskip("h2.connection")
h2_events = pytest.importorskip("h2.events")
h2_config = pytest.importorskip("h2.config")


def _h2_get(port: int, paths: list[str]) -> dict[str, tuple[int, bytes]]:
    """GETs over one h2c (prior knowledge) connection, all streams at once; returns status and body per path."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn = h2_connection.H2Connection(config=h2_config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.increment_flow_control_window(2**30)
    streams: dict[int, str] = {}
    for path in paths:
        sid = conn.get_next_available_stream_id()
        streams[sid] = path
        conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "x")],
                          end_stream=True)
        conn.increment_flow_control_window(2**30, stream_id=sid)
    sock.sendall(conn.data_to_send())
    status: dict[int, int] = {}
    bodies: dict[int, bytearray] = {sid: bytearray() for sid in streams}
    done: set[int] = set()
    try:
        while len(done) < len(streams):
            data = sock.recv(1 << 20)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2_events.ResponseReceived):
                    status[event.stream_id] = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2_events.DataReceived):
                    bodies[event.stream_id] += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, (h2_events.StreamEnded, h2_events.StreamReset)):
                    done.add(event.stream_id)
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()
    return {streams[sid]: (status.get(sid, 0), bytes(bodies[sid])) for sid in streams}


@pytest.mark.parametrize("backend", ["uring", "asio"])
def test_h2c_static_and_region_bodies(native: Any, files: Path, backend: str) -> None:
    if native is fake_native:
        pytest.skip("HTTP/2 needs the compiled engine")
    from covet.serve import ThreadedWorker

    worker = ThreadedWorker(_app(files), backend=backend).start()
    try:
        got = _h2_get(worker.port, ["/static/one.bin", "/static/one.bin?again", "/region/one.bin?offset=3&count=70000",
                                    "/static/small.txt"])
    finally:
        worker.stop()
    assert got["/static/one.bin"][0] == 200 and _md5(got["/static/one.bin"][1]) == _file_md5(files / "one.bin")
    assert got["/static/one.bin?again"][1] == got["/static/one.bin"][1]
    assert got["/region/one.bin?offset=3&count=70000"][1] == (files / "one.bin").read_bytes()[3:70003]
    assert got["/static/small.txt"] == (200, b"hello sendfile")
