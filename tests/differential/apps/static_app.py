"""StaticFiles mounts and Jinja2 templates (issue 14). The served directories are made at import time under a
temporary directory, with fixed modification times, so that both frameworks send the same ETag and Last-Modified."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from _framework import FastAPI, Jinja2Templates, Request, StaticFiles

MTIME = 1_700_000_000  # 2023-11-14 22:13:20 UTC

BASE = Path(tempfile.mkdtemp(prefix="covet-diff-static-"))
PUBLIC = BASE / "public"
SITE = BASE / "site"
TEMPLATES = BASE / "templates"
FILES = {
    PUBLIC / "hello.txt": b"hello world\n",
    PUBLIC / "site.css": b"body { color: red }\n",
    PUBLIC / "app.js": b"console.log('hi');\n",
    PUBLIC / "data.json": b'{"a": 1}\n',
    PUBLIC / "image.png": bytes(range(256)),
    PUBLIC / "nested" / "deep.txt": b"deep\n",
    PUBLIC / "UPPER.TXT": b"upper\n",
    PUBLIC / "noext": b"no extension\n",
    PUBLIC / "a b.txt": b"space in name\n",
    BASE / "secret.txt": b"outside the root\n",
    SITE / "index.html": b"<h1>home</h1>\n",
    SITE / "docs" / "index.html": b"<h1>docs</h1>\n",
    SITE / "404.html": b"<h1>not here</h1>\n",
    TEMPLATES / "page.html": b"<title>{{ title }}</title><p>{{ body }}</p>\n",
    TEMPLATES / "plain.txt": b"Hello {{ name }} & co\n",
}
for path, content in FILES.items():
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (MTIME, MTIME))
(PUBLIC / "out-link.txt").symlink_to(BASE / "secret.txt")
(PUBLIC / "in-link.txt").symlink_to("hello.txt")

app = FastAPI()
app.mount("/static", StaticFiles(directory=PUBLIC), name="static")
app.mount("/site", StaticFiles(directory=SITE, html=True), name="site")
templates = Jinja2Templates(directory=TEMPLATES)


@app.get("/page")
async def page(request: Request, title: str = "Home") -> object:
    return templates.TemplateResponse(request, "page.html", {"title": title, "body": "<b>escaped</b>"})


@app.get("/plain")
async def plain(request: Request) -> object:
    return templates.TemplateResponse(request, "plain.txt", {"name": "<x>"}, media_type="text/plain", status_code=201)


@app.get("/api/ping")
async def ping() -> dict[str, str]:
    return {"ping": "pong"}
