"""``covet compare``: real servers in subprocesses (uvicorn, ``covet run``; ``covet run --interface asgi3`` where
this CovetPy hosts ASGI apps), the app's routes from its OpenAPI or a URL list, differences found, load measured
(LoadTester, and wrk when installed); the parsers on their own."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from serverproc import require_compiled_engine

from covet.compare import app_kind, parse_wrk, read_url_list, routes_from_openapi

COVET_APP = """
import os
from covet import CovetPy
app = CovetPy()

@app.get("/")
async def root():
    return {"hello": "world"}

@app.get("/text")
async def text(n: int = 3):
    return "x" * n

@app.get("/pid")
async def pid():
    return {"pid": os.getpid()}

@app.get("/items/{item_id}")
async def item(item_id: int):
    return {"id": item_id}
"""

ASGI_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b'{"path": "%s", "n": 1}' % scope["path"].encode()
    await send({"type": "http.response.start", "status": 404 if scope["path"] == "/missing" else 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""


@pytest.fixture(scope="module", autouse=True)
def _compiled() -> None:
    require_compiled_engine()


def _compare(tmp_path: Path, source: str, *args: str) -> tuple[int, Any, str]:
    (tmp_path / "app_under_test.py").write_text(textwrap.dedent(source))
    run = subprocess.run([sys.executable, "-m", "covet", "compare", "app_under_test:app", "--app-dir",
                          str(tmp_path), "--json", *args], capture_output=True, text=True, timeout=120)
    try:
        report = json.loads(run.stdout)
    except ValueError:
        raise AssertionError(f"no JSON report (exit {run.returncode}): {run.stdout[-800:]} {run.stderr[-1500:]}") \
            from None
    return run.returncode, report, run.stderr


def test_covet_app_native_and_under_uvicorn(tmp_path: Path) -> None:
    """Routes from /openapi.json (the one with a path parameter left out); /pid differs between the two server
    processes, so the exit status is 1 and the difference is named; each route loaded under each server."""
    code, report, _ = _compare(tmp_path, COVET_APP, "--duration", "0.3", "--connections", "4",
                               "--load-tool", "loadtester")
    assert report["kind"] == "covet" and report["routes"] == ["/", "/text", "/pid"]
    assert report["routes_from"] == "/openapi.json"
    servers = report["servers"]
    assert servers["uvicorn"] == "ran" and servers["covet"] == "ran" and report["reference"] == "uvicorn"
    assert servers["covet-hosted"].startswith("skipped: a CovetPy app")
    assert servers["covet-compat"].startswith("skipped: the compatibility shim is for FastAPI")
    assert [(d["path"], d["server"], d["what"]) for d in report["differences"]] == [("/pid", "covet", "body")]
    assert code == 1 and report["ok"] is False
    loads = {(load["server"], load["path"]): load for load in report["loads"]}
    assert set(loads) == {(s, p) for s in ("uvicorn", "covet") for p in ("/", "/text", "/pid")}
    for load in loads.values():
        assert load["tool"] == "loadtester" and load["requests"] > 0 and load["errors"] == 0
        assert load["requests_per_second"] > 0 and load["p99_ms"] > 0 and load["cpu_us_per_request"] >= 0
    # the server's CPU time is charged: over all six runs, some ticks were seen
    assert sum(load["cpu_us_per_request"] for load in loads.values()) > 0


def test_plain_asgi_app_from_a_url_list(tmp_path: Path) -> None:
    """A bare ASGI callable: uvicorn, and CovetPy hosting it where this CovetPy can (else skipped with the
    reason); the URL list's paths are compared as given (a 404 is a response like any other)."""
    urls = tmp_path / "urls.txt"
    urls.write_text("# paths to compare\n/\n/a?b=1   # with a query\nhttp://example.com/missing\n")
    code, report, _ = _compare(tmp_path, ASGI_APP, "--urls", str(urls), "--duration", "0")
    assert report["kind"] == "asgi" and report["routes"] == ["/", "/a?b=1", "/missing"]
    assert report["servers"]["uvicorn"] == "ran" and report["loads"] == []
    hosted = report["servers"]["covet-hosted"]
    if importlib.util.find_spec("covet.asgi.server") is not None:  # this CovetPy hosts ASGI apps: compared too
        assert hosted == "ran" and report["reference"] == "uvicorn"
    else:
        assert hosted.startswith("skipped: this CovetPy cannot host ASGI apps yet"), hosted
    assert report["servers"]["covet"].startswith("skipped: not a CovetPy app")
    assert code == 0 and report["differences"] == []


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_load_and_the_text_table(tmp_path: Path) -> None:
    (tmp_path / "app_under_test.py").write_text(COVET_APP)
    (tmp_path / "urls.txt").write_text("/text?n=5\n")
    run = subprocess.run([sys.executable, "-m", "covet", "compare", "app_under_test:app", "--app-dir", str(tmp_path),
                          "--urls", str(tmp_path / "urls.txt"), "--servers", "covet", "--duration", "1",
                          "--connections", "8"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert "uvicorn       skipped: not selected (--servers)" in run.stdout
    assert any(line.startswith("responses: identical") for line in lines)
    assert any(line.startswith("load: wrk, 8 connections, 1 s per route") for line in lines)
    row = next(line.split() for line in lines if line.strip().startswith("/text?n=5"))
    assert row[1] == "covet" and float(row[2].replace(",", "")) > 0 and row[-1] == "0"


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    (tmp_path / "app_under_test.py").write_text(ASGI_APP)
    for args, message in ((["--servers", "nginx"], "unknown nginx"),
                          (["--connections", "0"], "--connections must be at least 1"),
                          (["--urls", str(tmp_path / "none.txt")], "No such file")):
        run = subprocess.run([sys.executable, "-m", "covet", "compare", "app_under_test:app", "--app-dir",
                              str(tmp_path), *args], capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and message in run.stderr, (args, run.stderr)


def test_parsers() -> None:
    schema = {"paths": {
        "/": {"get": {}},
        "/q": {"get": {"parameters": [{"name": "q", "in": "query", "required": True}]}},
        "/opt": {"get": {"parameters": [{"name": "q", "in": "query", "required": False}]}},
        "/items/{id}": {"get": {}},
        "/post": {"post": {}},
    }}
    assert routes_from_openapi(schema) == ["/", "/opt"]
    assert routes_from_openapi({"openapi": "3.1.0"}) == [] and routes_from_openapi([]) == []
    wrk = textwrap.dedent("""\
        Running 1s test @ http://127.0.0.1:8000/
          1 threads and 8 connections
          Latency Distribution
             50%  310.00us
             75%  401.00us
             90%  520.00us
             99%    1.25ms
          12345 requests in 1.00s, 1.52MB read
          Socket errors: connect 0, read 2, write 0, timeout 1
          Non-2xx or 3xx responses: 7
        Requests/sec:  12345.00
        """)
    assert parse_wrk(wrk) == (12345, 1.0, 1.25, 10)
    with pytest.raises(ValueError, match="unexpected wrk output"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


def test_read_url_list_and_app_kind(tmp_path: Path) -> None:
    urls = tmp_path / "u.txt"
    urls.write_text("/a\n\n  # nothing\nhttps://h:1/b/c?d=e\n")
    assert read_url_list(str(urls)) == ["/a", "/b/c?d=e"]
    urls.write_text("relative\n")
    with pytest.raises(Exception, match="not a path starting with '/'"):
        read_url_list(str(urls))

    async def asgi(scope: Any, receive: Any, send: Any) -> None: ...

    def wsgi(environ: Any, start_response: Any) -> list[bytes]:
        return []

    class AsgiClass:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...

    import covet

    assert app_kind(asgi) == "asgi" and app_kind(AsgiClass()) == "asgi" and app_kind(wsgi) == "wsgi"
    assert app_kind(covet.CovetPy()) == "covet"
