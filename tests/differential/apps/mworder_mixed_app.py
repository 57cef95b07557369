"""Sample app: middleware order (issue 14) — CORS added first (inside the Python middleware: Python in CovetPy),
then an @app.middleware("http") looking at the response, then GZip added last (outermost: native in CovetPy). The
middleware sees CORS's headers and the uncompressed body; the client gets both. GZip outside an HTTP middleware
compresses even bodies under minimum_size (FastAPI's BaseHTTPMiddleware streams the responses it passes on)."""

from __future__ import annotations

from typing import Any

from _framework import CORSMiddleware, FastAPI, GZipMiddleware, Request

app = FastAPI()
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])


@app.middleware("http")
async def look(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    response.headers["X-Seen-Encoding"] = response.headers.get("content-encoding", "none")
    response.headers["X-Seen-Cors"] = response.headers.get("access-control-allow-origin", "none")
    return response


app.add_middleware(GZipMiddleware, minimum_size=200)

ROWS = [{"id": i, "name": f"row {i}"} for i in range(40)]


@app.get("/rows")
async def rows() -> list:
    return ROWS


@app.get("/small")
async def small() -> dict:
    return {"small": True}


@app.put("/rows")
async def put_rows() -> dict:
    return {"put": True}
