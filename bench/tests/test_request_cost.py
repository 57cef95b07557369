"""bench/request_cost.sh's app (bench/peers/covet/app_headers.py): every route it measures answers 200 with what
its handler reads, for the request the script sends (cg_load stops at any other status)."""

import importlib.util
from pathlib import Path

from covet.testing import TestClient

APP = Path(__file__).resolve().parents[1] / "peers" / "covet" / "app_headers.py"
FIELDS = [("User-Agent", "Mozilla/5.0"), ("Accept", "application/json, text/plain, */*"),
          ("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc"), ("Origin", "https://example.com")]


def test_each_measured_route_answers_what_it_reads():
    spec = importlib.util.spec_from_file_location("app_headers", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with TestClient(module.app) as client:
        assert client.get("/param", headers=FIELDS).json() == {"scheme": "Bearer"}
        assert client.get("/request", headers=FIELDS).json() == {"scheme": "Bearer"}
        answer = client.post("/items", headers=[*FIELDS, ("Content-Type", "application/json")],
                             content=b'{"name":"a","price":1.5}')
        assert (answer.status_code, answer.json()) == (200, {"name": "a"})
        assert client.get("/plaintext").json() == "Hello, World!"  # a str result is JSON, as in FastAPI
        assert client.get("/param").status_code == 422  # the header is required: the script must send it
