"""FileResponse (Starlette's headers, Range, If-Range, HEAD, missing files) and StaticFiles mounts served through
the app's Python HTTP middleware, over real sockets (`python -m covet run`; requests sent as written, so that
traversal attempts reach the server unnormalised)."""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from serverproc import ServerProcess, require_compiled_engine

from covet.responses import FileResponse

MTIME = 1_700_000_000
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"
TEXT = b"0123456789abcdefghijklmnopqrstuvwxyz\n"  # 37 bytes
BIG = bytes(range(256)) * 8192  # 2 MiB: above FileResponse.whole_read_limit, streamed

APP = '''
from covet import CovetPy
from covet.responses import FileResponse
from covet.staticfiles import StaticFiles

root = {root!r}
app = CovetPy()

@app.middleware("http")
async def mark(request, call_next):
    response = await call_next(request)
    response.headers["x-mw"] = "seen"
    response.headers["x-mw-status"] = str(response.status_code)  # what the middleware saw
    return response

app.mount("/static", StaticFiles(directory=root + "/public"), name="static")
app.mount("/site", StaticFiles(directory=root + "/site", html=True))
app.mount("/follow", StaticFiles(directory=root + "/public", follow_symlink=True))
app.mount("/pre", StaticFiles(directory=root + "/public", precompressed=True))
app.mount("/spa", StaticFiles(directory=root + "/site", fallback="index.html"))

@app.api_route("/file/text", methods=["GET", "HEAD", "POST"])
async def text():
    return FileResponse(root + "/files/report.txt")

@app.get("/file/named")
async def named(name: str, kind: str = "attachment"):
    return FileResponse(root + "/files/report.txt", filename=name, content_disposition_type=kind)

@app.get("/file/blob")
async def blob():
    return FileResponse(root + "/files/blob")

@app.api_route("/file/big", methods=["GET", "HEAD"])
async def big():
    return FileResponse(root + "/files/big.bin")

@app.get("/file/head-only")
async def head_only():
    return FileResponse(root + "/files/report.txt", method="HEAD")

@app.get("/file/missing")
async def missing():
    return FileResponse(root + "/files/nope.txt")
'''


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (MTIME, MTIME))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    require_compiled_engine()
    base = tmp_path_factory.mktemp("fileresponse")
    root = base / "root"
    _write(root / "files" / "report.txt", TEXT)
    _write(root / "files" / "blob", b"\x00\x01")
    _write(root / "files" / "big.bin", BIG)
    _write(root / "public" / "hello.txt", b"hello world")
    _write(root / "public" / "nested" / "deep.txt", b"deep")
    _write(root / "public" / "app.js", b"console.log(1)")
    _write(root / "public" / "app.js.br", b"BROTLI")
    _write(root / "site" / "index.html", b"<h1>home</h1>")
    _write(root / "site" / "docs" / "index.html", b"<h1>docs</h1>")
    _write(root / "site" / "404.html", b"<h1>missing</h1>")
    _write(base / "secret.txt", b"top secret")
    (root / "public" / "out-link.txt").symlink_to(base / "secret.txt")
    (root / "public" / "in-link.txt").symlink_to("hello.txt")
    (base / "app.py").write_text(APP.format(root=str(root)))
    with ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", "0"], cwd=base) as proc:
        assert proc.port
        yield proc.port


def request(port: int, method: str, target: str,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", "testserver")
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
        fields = {name.lower(): value for name, value in response.getheaders()}
        return response.status, fields, body
    finally:
        conn.close()


def starlette_etag(size: int) -> str:
    return '"' + hashlib.md5(f"{float(MTIME)}-{size}".encode(), usedforsecurity=False).hexdigest() + '"'


# -- FileResponse ---------------------------------------------------------------------------------------------
def test_validators_and_length(server: int) -> None:
    status, headers, body = request(server, "GET", "/file/text")
    assert (status, body) == (200, TEXT)
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["content-length"] == "37"
    assert headers["accept-ranges"] == "bytes"
    assert headers["etag"] == starlette_etag(37)
    assert headers["last-modified"] == LAST_MODIFIED
    assert headers["x-mw"] == "seen"
    status, headers, _ = request(server, "GET", "/file/blob")
    assert headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize(("query", "disposition"), [
    ("name=report.txt", 'attachment; filename="report.txt"'),
    ("name=r%C3%A9sum%C3%A9%20%E2%82%AC.txt", "attachment; filename*=utf-8''r%C3%A9sum%C3%A9%20%E2%82%AC.txt"),
    ("name=a.txt&kind=inline", 'inline; filename="a.txt"'),
])
def test_content_disposition(server: int, query: str, disposition: str) -> None:
    status, headers, _ = request(server, "GET", f"/file/named?{query}")
    assert status == 200 and headers["content-disposition"] == disposition


def test_head_and_method_head(server: int) -> None:
    status, headers, body = request(server, "HEAD", "/file/text")
    assert (status, body, headers["content-length"]) == (200, b"", "37")
    status, headers, body = request(server, "GET", "/file/head-only")  # FileResponse(method="HEAD")
    assert (status, body) == (200, b"")


def test_single_range(server: int) -> None:
    status, headers, body = request(server, "GET", "/file/text", {"Range": "bytes=10-19"})
    assert (status, body) == (206, TEXT[10:20])
    assert headers["content-range"] == "bytes 10-19/37" and headers["content-length"] == "10"
    assert headers["x-mw"] == "seen"
    assert request(server, "GET", "/file/text", {"Range": "bytes=-5"})[2] == TEXT[-5:]
    assert request(server, "GET", "/file/text", {"Range": "bytes=30-999"})[1]["content-range"] == "bytes 30-36/37"
    status, headers, body = request(server, "HEAD", "/file/text", {"Range": "bytes=0-3"})
    assert (status, body, headers["content-length"]) == (206, b"", "4")


def test_range_ignored_for_other_methods(server: int) -> None:
    status, headers, body = request(server, "POST", "/file/text", {"Range": "bytes=0-3"})
    assert (status, body) == (200, TEXT) and "content-range" not in headers


def _multipart(boundary: str, parts: list[tuple[int, int]], data: bytes, part_type: str) -> bytes:
    out = b""
    for start, end in parts:
        out += (f"--{boundary}\r\nContent-Type: {part_type}\r\nContent-Range: bytes {start}-{end - 1}/{len(data)}"
                "\r\n\r\n").encode() + data[start:end] + b"\r\n"
    return out + f"--{boundary}--".encode()


def test_multiple_ranges(server: int) -> None:
    status, headers, body = request(server, "GET", "/file/text", {"Range": "bytes=20-22,0-3,2-5"})
    assert status == 206
    kind, _, boundary = headers["content-type"].partition("; boundary=")
    assert kind == "multipart/byteranges" and len(boundary) == 26
    # sorted, overlapping ones merged (Starlette's)
    assert body == _multipart(boundary, [(0, 6), (20, 23)], TEXT, "text/plain; charset=utf-8")
    assert headers["content-length"] == str(len(body))
    status, headers, body = request(server, "HEAD", "/file/text", {"Range": "bytes=0-1,5-6"})
    assert status == 206 and body == b"" and int(headers["content-length"]) > 4


@pytest.mark.parametrize(("range_", "status", "body"), [
    ("bytes=37-", 416, b""),
    ("bytes=0-1,99-", 416, b""),
    ("bytes 0-4", 400, b"Malformed range header."),
    ("lines=0-4", 400, b"Only support bytes range"),
    ("bytes=9-3", 400, b"Range header: start must be less than end"),
    ("bytes=a-b", 400, b"Range header: range must be requested"),
])
def test_bad_ranges(server: int, range_: str, status: int, body: bytes) -> None:
    got, headers, content = request(server, "GET", "/file/text", {"Range": range_})
    assert (got, content) == (status, body)
    assert headers["x-mw"] == "seen"  # the middleware marks the answer sent instead of the file
    if status == 416:
        assert headers["content-range"] == "bytes */37"
    assert "etag" not in headers


@pytest.mark.parametrize(("if_range", "partial"), [
    (starlette_etag(37), True),
    (LAST_MODIFIED, True),
    ('"stale"', False),
    (f"W/{starlette_etag(37)}", False),
])
def test_if_range(server: int, if_range: str, partial: bool) -> None:
    status, _, body = request(server, "GET", "/file/text", {"Range": "bytes=0-3", "If-Range": if_range})
    assert (status, body) == ((206, TEXT[:4]) if partial else (200, TEXT))


def test_large_file_streamed(server: int) -> None:
    status, headers, body = request(server, "GET", "/file/big")
    assert status == 200 and body == BIG and headers["etag"] == starlette_etag(len(BIG))
    status, headers, body = request(server, "GET", "/file/big", {"Range": "bytes=100-1500099"})
    assert (status, body) == (206, BIG[100:1500100])
    assert headers["content-range"] == f"bytes 100-1500099/{len(BIG)}"
    status, headers, body = request(server, "GET", "/file/big", {"Range": "bytes=0-9,1000000-2097151"})
    boundary = headers["content-type"].partition("; boundary=")[2]
    assert status == 206
    assert body == _multipart(boundary, [(0, 10), (1000000, 2097152)], BIG, "application/octet-stream")
    status, headers, body = request(server, "HEAD", "/file/big")
    assert (status, body) == (200, b"")


def test_missing_file_is_a_server_error(server: int) -> None:
    status, _, body = request(server, "GET", "/file/missing")
    assert (status, body) == (500, b"Internal Server Error")


def test_file_region_contract(tmp_path: Path) -> None:
    """The region the engine may send itself: the whole file, or the one range; None for several ranges."""
    path = tmp_path / "f.txt"
    path.write_bytes(TEXT)

    def region(headers: list[tuple[str, str]], method: str = "GET") -> object:
        response = FileResponse(path)
        response._request_head = SimpleNamespace(method=method, headers=headers)
        return response._file_region()

    assert region([]) == (str(path), 0, 37)
    assert region([("range", "bytes=5-9")]) == (str(path), 5, 5)
    assert region([("range", "bytes=5-9")], "HEAD") == (str(path), 5, 5)
    assert region([("range", "bytes=0-1,5-9")]) is None
    assert region([("range", "bytes=99-")]) is None
    response = FileResponse(path)
    response._request_head = SimpleNamespace(method="GET", headers=[("range", "bytes=5-9")])
    response._file_region()
    assert response.status_code == 206 and response.headers["content-length"] == "5"


# -- StaticFiles through the app's middleware ----------------------------------------------------------------
def test_static_file_through_middleware(server: int) -> None:
    status, headers, body = request(server, "GET", "/static/hello.txt")
    assert (status, body) == (200, b"hello world")
    assert headers["x-mw"] == "seen" and headers["etag"] == starlette_etag(11)
    assert headers["last-modified"] == LAST_MODIFIED
    status, headers, body = request(server, "HEAD", "/static/hello.txt")
    assert (status, body, headers["content-length"], headers["x-mw"]) == (200, b"", "11", "seen")
    status, headers, body = request(server, "GET", "/static/hello.txt", {"Range": "bytes=0-4"})
    assert (status, body, headers["content-range"]) == (206, b"hello", "bytes 0-4/11")
    assert headers["x-mw-status"] == "206"  # decided before the middleware sees it, as in Starlette
    status, headers, body = request(server, "GET", "/static/hello.txt", {"Range": "bytes=0-1,6-7"})
    assert (status, headers["x-mw-status"]) == (206, "206")
    assert body == _multipart(headers["content-type"].partition("; boundary=")[2], [(0, 2), (6, 8)],
                              b"hello world", "text/plain; charset=utf-8")
    status, headers, body = request(server, "GET", "/static/hello.txt", {"Range": "bytes=11-"})
    assert (status, headers["x-mw-status"], headers["content-range"]) == (416, "416", "bytes */11")


@pytest.mark.parametrize("conditional", [
    {"If-None-Match": starlette_etag(11)},
    {"If-None-Match": f'"x", W/{starlette_etag(11)}'},
    {"If-None-Match": "*"},
    {"If-Modified-Since": LAST_MODIFIED},
])
def test_static_not_modified(server: int, conditional: dict[str, str]) -> None:
    status, headers, body = request(server, "GET", "/static/hello.txt", conditional)
    assert (status, body, headers["x-mw"]) == (304, b"", "seen")
    assert headers["etag"] == starlette_etag(11) and "last-modified" not in headers


@pytest.mark.parametrize("target", [
    "/static/../secret.txt",
    "/static/nested/../../secret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2E%2Fsecret.txt",
    "/static/..%2fsecret.txt",
    "/static/nested/%2e%2e/%2e%2e/secret.txt",
    "/static/out-link.txt",  # a symbolic link out of the root
    "/static/hello.txt%00",  # NUL bytes
    "/static/%00",
    "/static/nope.txt",
    "/static/" + "a" * 300,  # too long a name
])
def test_static_traversal_refused(server: int, target: str) -> None:
    status, headers, body = request(server, "GET", target)
    assert (status, body) == (404, b'{"detail":"Not Found"}')
    assert headers["x-mw"] == "seen"


def test_static_symlinks_and_dotdot_inside(server: int) -> None:
    assert request(server, "GET", "/static/in-link.txt")[2] == b"hello world"
    assert request(server, "GET", "/static/nested/../hello.txt")[2] == b"hello world"
    assert request(server, "GET", "/follow/out-link.txt")[2] == b"top secret"  # follow_symlink=True


def test_static_methods_and_directories(server: int) -> None:
    status, headers, _ = request(server, "POST", "/static/hello.txt")
    assert (status, headers["allow"], headers["x-mw"]) == (405, "GET, HEAD", "seen")
    status, headers, _ = request(server, "GET", "/static?v=1")
    assert (status, headers["location"]) == (307, "http://testserver/static/?v=1")
    assert request(server, "GET", "/static/nested")[0] == 404  # no html=True


def test_static_html_mode(server: int) -> None:
    assert request(server, "GET", "/site/")[2] == b"<h1>home</h1>"
    status, headers, _ = request(server, "GET", "/site/docs?lang=en")
    assert (status, headers["location"], headers["x-mw"]) == (307, "http://testserver/site/docs/?lang=en", "seen")
    assert request(server, "GET", "/site/docs/")[2] == b"<h1>docs</h1>"
    status, headers, body = request(server, "GET", "/site/nope")
    assert (status, body, headers["x-mw"]) == (404, b"<h1>missing</h1>", "seen")


def test_static_precompressed_and_fallback(server: int) -> None:
    status, headers, body = request(server, "GET", "/pre/app.js", {"Accept-Encoding": "gzip, br"})
    assert (status, body, headers["content-encoding"]) == (200, b"BROTLI", "br")
    assert headers["content-type"] == "text/javascript; charset=utf-8" and headers["vary"] == "Accept-Encoding"
    status, headers, body = request(server, "GET", "/pre/app.js", {"Accept-Encoding": "br;q=0"})
    assert (status, body) == (200, b"console.log(1)") and "content-encoding" not in headers
    status, _, body = request(server, "GET", "/spa/some/client/route")
    assert (status, body) == (200, b"<h1>home</h1>")


def test_missing_directory_fails_the_start(tmp_path: Path) -> None:
    """check_dir=False with Python middleware: the start fails naming the directory, as on the engine's path."""
    (tmp_path / "lateapp.py").write_text(
        "from covet import CovetPy\nfrom covet.staticfiles import StaticFiles\napp = CovetPy()\n"
        "@app.middleware('http')\nasync def mw(request, call_next):\n    return await call_next(request)\n"
        f"app.mount('/s', StaticFiles(directory={str(tmp_path / 'gone')!r}, check_dir=False))\n")
    with pytest.raises(AssertionError, match=r"StaticFiles directory '.*gone' does not exist"):
        ServerProcess([sys.executable, "-m", "covet", "run", "lateapp:app", "--port", "0"], cwd=tmp_path, timeout=4)
