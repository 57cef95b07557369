"""``covet run module:app`` with a WSGI application in real processes: ``wsgi.multiprocess`` says whether several
worker processes serve the app (``--workers N``), as PEP 3333 asks."""

from __future__ import annotations

import http.client
import sys
import textwrap
from pathlib import Path

import pytest
from serverproc import ServerProcess, require_compiled_engine

APP = textwrap.dedent('''
    import json

    def app(environ, start_response):
        body = json.dumps({"multiprocess": environ["wsgi.multiprocess"],
                           "multithread": environ["wsgi.multithread"]}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
''')


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_compiled_engine()
    path = tmp_path_factory.mktemp("wsgi_apps")
    (path / "flags.py").write_text(APP)
    return path


def get_json(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200
        return response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(("workers", "expected"), [("2", b'"multiprocess": true'), ("1", b'"multiprocess": false')])
def test_wsgi_multiprocess_follows_the_worker_count(app_dir: Path, workers: str, expected: bytes) -> None:
    command = [sys.executable, "-m", "covet", "run", "flags:app", "--workers", workers, "--app-dir", str(app_dir),
               "--port", "0"]
    with ServerProcess(command) as server:
        server.wait_for(r"serving on", count=int(workers))
        assert expected in get_json(server.port, "/")
        server.stop()
