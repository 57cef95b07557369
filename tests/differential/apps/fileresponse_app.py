"""FileResponse as Starlette sends it (validators, Content-Disposition, Range, If-Range, HEAD, missing files) and
StaticFiles mounted under an app with an HTTP middleware, which FastAPI runs around the mount: CovetPy then
serves the mount in Python so that the middleware sees (and marks) every static answer too (issue 14).

The files are made at import time under a temporary directory, with a fixed modification time, so that both
frameworks send the same ETag and Last-Modified. multipart/byteranges boundaries are random in both frameworks
(``secrets.token_hex(13)``): fixed here, so that the bodies and Content-Type compare."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from _framework import FastAPI, FileResponse, Request, StaticFiles

MTIME = 1_700_000_000  # 2023-11-14 22:13:20 UTC
BOUNDARY = "0123456789abcdef0123456789"


def _fixed_boundary(nbytes: Any = None) -> str:
    return BOUNDARY


secrets.token_hex = _fixed_boundary  # CovetPy calls secrets.token_hex
if "starlette.responses" in sys.modules:  # Starlette imported token_hex into its module
    sys.modules["starlette.responses"].token_hex = _fixed_boundary  # type: ignore[attr-defined]

BASE = Path(tempfile.mkdtemp(prefix="covet-diff-fileresponse-"))
FILES_DIR = BASE / "files"
PUBLIC = BASE / "public"
SITE = BASE / "site"
TEXT = FILES_DIR / "report.txt"
BIG = FILES_DIR / "big.txt"  # above CovetPy's 1 MiB whole-read limit: streamed
CONTENT = {
    TEXT: b"0123456789abcdefghijklmnopqrstuvwxyz\n",
    FILES_DIR / "blob.unknownext": b"\x00\x01\x02binary",
    FILES_DIR / "page.html": b"<h1>page</h1>\n",
    FILES_DIR / "empty.txt": b"",
    BIG: b"".join(b"line %07d\n" % i for i in range(150_000)),
    PUBLIC / "hello.txt": b"hello world\n",
    PUBLIC / "style.css": b"body { color: red }\n",
    PUBLIC / "nested" / "deep.txt": b"deep\n",
    BASE / "secret.txt": b"outside the root\n",
    SITE / "index.html": b"<h1>home</h1>\n",
    SITE / "docs" / "index.html": b"<h1>docs</h1>\n",
    SITE / "404.html": b"<h1>not here</h1>\n",
}
for path, content in CONTENT.items():
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (MTIME, MTIME))
(PUBLIC / "out-link.txt").symlink_to(BASE / "secret.txt")
(PUBLIC / "in-link.txt").symlink_to("hello.txt")

app = FastAPI()


@app.middleware("http")
async def mark(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    response.headers["x-middleware"] = "seen"
    if "x-echo-status" in request.headers:  # the status the middleware sees
        response.headers["x-seen-status"] = str(response.status_code)
    disposition = response.headers.get("content-disposition")
    if disposition is not None:  # not among the compared headers: copied into one that is
        response.headers["x-content-disposition"] = disposition
    return response


app.mount("/static", StaticFiles(directory=PUBLIC), name="static")
app.mount("/site", StaticFiles(directory=SITE, html=True), name="site")


@app.api_route("/file/text", methods=["GET", "HEAD", "POST"])
async def text() -> Any:
    return FileResponse(TEXT)


@app.get("/file/filename")
async def filename() -> Any:
    return FileResponse(TEXT, filename="report.txt")


@app.get("/file/unicode-filename")
async def unicode_filename() -> Any:
    return FileResponse(TEXT, filename="résumé 2024 €.txt")


@app.get("/file/inline")
async def inline() -> Any:
    return FileResponse(FILES_DIR / "page.html", filename="page.html", content_disposition_type="inline")


@app.get("/file/media-type")
async def media_type() -> Any:
    return FileResponse(TEXT, media_type="application/x-report")


@app.get("/file/unknown-type")
async def unknown_type() -> Any:
    return FileResponse(FILES_DIR / "blob.unknownext")


@app.get("/file/guess-from-filename")
async def guess_from_filename() -> Any:
    return FileResponse(FILES_DIR / "blob.unknownext", filename="data.json")


@app.get("/file/stat-result")
async def stat_result() -> Any:
    return FileResponse(TEXT, stat_result=os.stat(TEXT))


@app.get("/file/headers")
async def headers() -> Any:
    return FileResponse(TEXT, headers={"Cache-Control": "max-age=60", "X-Custom": "yes", "ETag": '"mine"'})


@app.get("/file/created")
async def created() -> Any:
    return FileResponse(TEXT, status_code=201)


@app.get("/file/empty")
async def empty() -> Any:
    return FileResponse(FILES_DIR / "empty.txt")


@app.api_route("/file/big", methods=["GET", "HEAD"])
async def big() -> Any:
    return FileResponse(BIG)


@app.get("/file/missing")
async def missing() -> Any:
    return FileResponse(FILES_DIR / "nope.txt")


@app.get("/file/directory")
async def directory() -> Any:
    return FileResponse(FILES_DIR)
