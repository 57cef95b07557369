"""StaticFiles served by the engine, through real sockets (`python -m covet run`, raw HTTP/1.1 requests so that
traversal attempts reach the server unnormalised): Range, conditional requests, traversal (``..``, ``%2e%2e``,
symlinks out of the root, NUL bytes), HEAD, html=True, precompressed siblings, the SPA fallback, app.mount of
a CovetPy sub-application, Jinja2Templates, and the mount's errors."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serverproc import ServerProcess, require_compiled_engine, self_signed_cert

MTIME = 1_700_000_000

APP = '''
from covet import CovetPy, Request
from covet.staticfiles import StaticFiles
from covet.templating import Jinja2Templates

root = {root!r}
app = CovetPy(docs_url=None)  # the root mount has a docs/ directory (the app's /docs route would win)
app.mount("/static", StaticFiles(directory=root + "/public"), name="static")
app.mount("/site", StaticFiles(directory=root + "/site", html=True), name="site")
app.mount("/follow", StaticFiles(directory=root + "/public", follow_symlink=True))
app.mount("/pre", StaticFiles(directory=root + "/public", precompressed=True))
app.mount("/spa", StaticFiles(directory=root + "/site", fallback="index.html"))

sub = CovetPy()
@sub.get("/hello")
async def sub_hello() -> dict:
    return {{"from": "sub"}}
sub.mount("/assets", StaticFiles(directory=root + "/public"))
app.mount("/sub", sub)

templates = Jinja2Templates(directory=root + "/templates")
app.mount("/", StaticFiles(directory=root + "/site", html=True), name="root")  # an SPA's shell beside the API

@app.get("/page")
async def page(request: Request, name: str = "world"):
    return templates.TemplateResponse(request, "page.html", {{"name": name}})
'''


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (MTIME, MTIME))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    require_compiled_engine()
    base = tmp_path_factory.mktemp("static")
    root = base / "root"
    _write(root / "public" / "hello.txt", b"hello world")
    _write(root / "public" / "nested" / "deep.txt", b"deep")
    _write(root / "public" / "app.js", b"console.log(1)")
    _write(root / "public" / "app.js.gz", b"GZIPPED")
    _write(root / "public" / "app.js.br", b"BROTLI")
    _write(root / "public" / "big.bin", bytes(range(256)) * 4096)  # 1 MiB
    _write(root / "site" / "index.html", b"<h1>home</h1>")
    _write(root / "site" / "docs" / "index.html", b"<h1>docs</h1>")
    _write(root / "site" / "404.html", b"<h1>missing</h1>")
    _write(root / "templates" / "page.html", b"<p>Hello {{ name }}</p>")
    _write(base / "secret.txt", b"top secret")
    (root / "public" / "out-link.txt").symlink_to(base / "secret.txt")
    (root / "public" / "in-link.txt").symlink_to("hello.txt")
    (base / "app.py").write_text(APP.format(root=str(root)))
    with ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", "0"], cwd=base) as proc:
        assert proc.port
        yield proc.port


def request(port: int, method: str, target: str,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    head = f"{method} {target} HTTP/1.1\r\nHost: testserver\r\nConnection: close\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    raw_head, _, body = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if method == "HEAD":
        assert body == b""
    else:
        assert len(body) == int(fields.get("content-length", len(body)))
    return status, fields, body


def starlette_etag(size: int) -> str:
    return '"' + hashlib.md5(f"{float(MTIME)}-{size}".encode(), usedforsecurity=False).hexdigest() + '"'


def test_file_with_validators(server: int) -> None:
    status, headers, body = request(server, "GET", "/static/hello.txt")
    assert (status, body) == (200, b"hello world")
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["accept-ranges"] == "bytes"
    assert headers["etag"] == starlette_etag(11)
    assert headers["last-modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"


def test_large_file_and_head(server: int) -> None:
    status, headers, body = request(server, "GET", "/static/big.bin")
    assert status == 200 and body == bytes(range(256)) * 4096
    status, headers, body = request(server, "HEAD", "/static/big.bin")
    assert status == 200 and headers["content-length"] == str(1 << 20) and body == b""


@pytest.mark.parametrize("target", [
    "/static/../secret.txt",
    "/static/nested/../../secret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2E%2Fsecret.txt",
    "/static/..%2fsecret.txt",
    "/static/nested/%2e%2e/%2e%2e/secret.txt",
    "/static/hello.txt%00",
    "/static/hello.txt%00.png",
    "/static/out-link.txt",
    "/static/nope.txt",
    "/static/nested",
])
def test_traversal_and_misses_are_404(server: int, target: str) -> None:
    status, headers, body = request(server, "GET", target)
    assert status == 404, (target, body)
    assert b"top secret" not in body
    assert headers["content-type"] == "application/json" and body == b'{"detail":"Not Found"}'


def test_links_inside_root_and_follow_symlink(server: int) -> None:
    assert request(server, "GET", "/static/in-link.txt")[2] == b"hello world"
    assert request(server, "GET", "/static/nested/../hello.txt")[2] == b"hello world"
    assert request(server, "GET", "/static/nested%2fdeep.txt")[2] == b"deep"
    assert request(server, "GET", "/follow/out-link.txt")[2] == b"top secret"  # follow_symlink=True
    assert request(server, "GET", "/follow/%2e%2e/secret.txt")[0] == 404  # but never a lexical escape


def test_conditional_requests(server: int) -> None:
    etag = starlette_etag(11)
    status, headers, body = request(server, "GET", "/static/hello.txt", {"If-None-Match": etag})
    assert (status, body, headers["etag"]) == (304, b"", etag)
    assert "content-length" not in headers and "content-type" not in headers
    assert request(server, "GET", "/static/hello.txt", {"If-None-Match": f'"x", W/{etag}'})[0] == 304
    assert request(server, "GET", "/static/hello.txt", {"If-None-Match": '"other"'})[0] == 200
    lm = "Tue, 14 Nov 2023 22:13:20 GMT"
    assert request(server, "GET", "/static/hello.txt", {"If-Modified-Since": lm})[0] == 304
    assert request(server, "GET", "/static/hello.txt", {"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"})[0] == 200
    assert request(server, "HEAD", "/static/hello.txt", {"If-None-Match": etag})[0] == 304


def test_ranges(server: int) -> None:
    status, headers, body = request(server, "GET", "/static/hello.txt", {"Range": "bytes=0-4"})
    assert (status, body, headers["content-range"]) == (206, b"hello", "bytes 0-4/11")
    assert request(server, "GET", "/static/hello.txt", {"Range": "bytes=-5"})[2] == b"world"
    assert request(server, "GET", "/static/hello.txt", {"Range": "bytes=6-"})[2] == b"world"
    status, headers, body = request(server, "GET", "/static/hello.txt", {"Range": "bytes=20-"})
    assert (status, headers["content-range"], body) == (416, "bytes */11", b"")
    status, _, body = request(server, "GET", "/static/hello.txt", {"Range": "bytes=4-1"})
    assert (status, body) == (400, b"Range header: start must be less than end")
    status, headers, body = request(server, "GET", "/static/hello.txt", {"Range": "bytes=0-0,6-6"})
    assert status == 206
    boundary = headers["content-type"].removeprefix("multipart/byteranges; boundary=")
    assert len(boundary) == 26
    assert body == (f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-0/11\r\n\r\n"
                    f"h\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 6-6/11"
                    f"\r\n\r\nw\r\n--{boundary}--").encode()
    # a range of the 1 MiB file, and If-Range
    status, _, body = request(server, "GET", "/static/big.bin", {"Range": "bytes=1000000-1000009"})
    assert (status, body) == (206, (bytes(range(256)) * 4096)[1000000:1000010])
    stale = {"Range": "bytes=0-4", "If-Range": '"stale"'}
    assert request(server, "GET", "/static/hello.txt", stale)[2] == b"hello world"
    assert request(server, "GET", "/static/hello.txt",
                   {"Range": "bytes=0-4", "If-Range": starlette_etag(11)})[2] == b"hello"
    status, headers, body = request(server, "HEAD", "/static/hello.txt", {"Range": "bytes=0-4"})
    assert (status, headers["content-length"], body) == (206, "5", b"")


def test_methods(server: int) -> None:
    status, headers, body = request(server, "POST", "/static/hello.txt")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert body == b'{"detail":"Method Not Allowed"}'
    status, headers, _ = request(server, "GET", "/static?x=1")
    assert (status, headers["location"]) == (307, "http://testserver/static/?x=1")


def test_html_mode(server: int) -> None:
    assert request(server, "GET", "/site/")[2] == b"<h1>home</h1>"
    status, headers, _ = request(server, "GET", "/site/docs")
    assert (status, headers["location"]) == (307, "http://testserver/site/docs/")
    status, headers, body = request(server, "GET", "/site/docs/")
    assert (status, body, headers["content-type"]) == (200, b"<h1>docs</h1>", "text/html; charset=utf-8")
    assert request(server, "GET", "/site/nope")[:3:2] == (404, b"<h1>missing</h1>")


def test_precompressed_siblings(server: int) -> None:
    status, headers, body = request(server, "GET", "/pre/app.js", {"Accept-Encoding": "gzip, deflate, br"})
    assert (status, body, headers["content-encoding"], headers["vary"]) == (200, b"BROTLI", "br", "Accept-Encoding")
    assert headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert request(server, "GET", "/pre/app.js", {"Accept-Encoding": "gzip"})[2] == b"GZIPPED"
    assert request(server, "GET", "/pre/app.js", {"Accept-Encoding": "br;q=0, gzip"})[2] == b"GZIPPED"
    status, headers, body = request(server, "GET", "/pre/app.js")
    assert body == b"console.log(1)" and "content-encoding" not in headers and headers["vary"] == "Accept-Encoding"


def test_spa_fallback(server: int) -> None:
    assert request(server, "GET", "/spa/some/client/route")[:3:2] == (200, b"<h1>home</h1>")
    assert request(server, "GET", "/spa/docs/index.html")[2] == b"<h1>docs</h1>"


def test_mounted_sub_application(server: int) -> None:
    assert request(server, "GET", "/sub/hello")[:3:2] == (200, b'{"from":"sub"}')
    assert request(server, "GET", "/sub/assets/hello.txt")[2] == b"hello world"


def test_mount_at_root_beside_routes(server: int) -> None:
    assert request(server, "GET", "/")[:3:2] == (200, b"<h1>home</h1>")
    status, headers, _ = request(server, "GET", "/docs")
    assert (status, headers["location"]) == (307, "http://testserver/docs/")
    assert request(server, "GET", "/nope")[:3:2] == (404, b"<h1>missing</h1>")
    assert request(server, "GET", "/page")[0] == 200  # the routes still answer
    assert request(server, "GET", "/static/nope.txt")[2] == b'{"detail":"Not Found"}'  # the longer mount wins


def test_template(server: int) -> None:
    status, headers, body = request(server, "GET", "/page?name=%3Cb%3E")
    assert (status, body) == (200, b"<p>Hello &lt;b&gt;</p>")
    assert headers["content-type"] == "text/html; charset=utf-8"


def test_mount_errors(tmp_path: Path) -> None:
    from covet import CovetPy
    from covet.staticfiles import StaticFiles

    with pytest.raises(RuntimeError, match="does not exist"):
        StaticFiles(directory=tmp_path / "absent")
    app: Any = CovetPy()
    with pytest.raises(TypeError, match="ASGI application"):
        app.mount("/asgi", object())  # an ASGI application is mounted (tests/python/test_asgi.py)
    files = StaticFiles(directory=tmp_path)
    app.mount("/static", files, name="static")
    mount = app.routes[-1]
    assert (mount.name, mount.path, mount.app, mount.url_path("a.css")) == ("static", "/static", files, "/static/a.css")


def test_tls_and_http2(tmp_path: Path) -> None:
    """The same files over HTTPS (HTTP/1.1 and h2 by ALPN): the body goes through the TLS transport and HTTP/2's
    data frames like any response; HEAD over h2 announces the length without a body."""
    import httpx

    cert, key = self_signed_cert(tmp_path)
    public = tmp_path / "public"
    _write(public / "big.bin", bytes(range(256)) * 4096)
    (tmp_path / "tlsapp.py").write_text(
        "from covet import CovetPy\nfrom covet.staticfiles import StaticFiles\n"
        f"app = CovetPy()\napp.mount('/static', StaticFiles(directory={str(public)!r}))\n")
    with ServerProcess([sys.executable, "-m", "covet", "run", "tlsapp:app", "--port", "0", "--ssl-certfile",
                        str(cert), "--ssl-keyfile", str(key)], cwd=tmp_path) as proc:
        for http2 in (False, True):
            with httpx.Client(verify=False, http2=http2, timeout=10) as client:
                url = f"https://127.0.0.1:{proc.port}/static/big.bin"
                r = client.get(url)
                assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
                assert r.status_code == 200 and r.content == bytes(range(256)) * 4096
                r = client.get(url, headers={"Range": "bytes=10-19"})
                assert r.status_code == 206 and r.content == bytes(range(10, 20))
                r = client.head(url)
                assert r.status_code == 200 and r.headers["content-length"] == str(1 << 20) and r.content == b""


def test_packages_and_a_directory_missing_at_start(tmp_path: Path) -> None:
    """`packages=` finds a package's statics folder; check_dir=False defers the check to start-up, where the
    engine refuses the mount naming the directory (the worker exits; the supervisor retries with back-off, so a
    directory made later is picked up)."""
    from covet import CovetPy
    from covet.staticfiles import StaticFiles

    pkg = tmp_path / "mypkg"
    _write(pkg / "__init__.py", b"")
    _write(pkg / "statics" / "logo.svg", b"<svg/>")
    _write(pkg / "assets" / "x.css", b"x")
    sys.path.insert(0, str(tmp_path))
    try:
        files = StaticFiles(packages=["mypkg", ("mypkg", "assets")])
        assert files.all_directories == [str(pkg / "statics"), str(pkg / "assets")]
        with pytest.raises(RuntimeError, match="could not be found"):
            StaticFiles(packages=[("mypkg", "nope")])
    finally:
        sys.path.remove(str(tmp_path))
    app: Any = CovetPy()
    app.mount("/s", StaticFiles(directory=tmp_path / "gone", check_dir=False))  # may be made before start-up
    (tmp_path / "lateapp.py").write_text(
        "from covet import CovetPy\nfrom covet.staticfiles import StaticFiles\napp = CovetPy()\n"
        f"app.mount('/s', StaticFiles(directory={str(tmp_path / 'gone')!r}, check_dir=False))\n")
    with pytest.raises(AssertionError, match=r"StaticFiles directory '.*gone' cannot be opened"):
        ServerProcess([sys.executable, "-m", "covet", "run", "lateapp:app", "--port", "0"], cwd=tmp_path, timeout=4)


def test_testclient_serves_mounts(tmp_path: Path) -> None:
    """TestClient runs the real engine in-process, so mounts answer in tests as they do in production."""
    require_compiled_engine()
    from covet import CovetPy
    from covet.staticfiles import StaticFiles
    from covet.testing import TestClient

    _write(tmp_path / "a.txt", b"0123456789")
    app = CovetPy()
    app.mount("/static", StaticFiles(directory=tmp_path), name="static")
    with TestClient(app) as client:
        r = client.get("/static/a.txt", headers={"Range": "bytes=2-4"})
        assert (r.status_code, r.content, r.headers["content-range"]) == (206, b"234", "bytes 2-4/10")
