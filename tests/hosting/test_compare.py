"""`covet compare` on the real apps of this suite: the FastAPI app under uvicorn, hosted by `covet run` and on the
compatibility shim (routes from its OpenAPI schema), the Flask app under uvicorn's WSGI interface and hosted by
`covet run` (routes from a URL list); their answers compared, each route loaded for a moment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import APPS


def _compare(*args: str) -> tuple[int, Any]:
    run = subprocess.run([sys.executable, "-m", "covet", "compare", *args, "--app-dir", str(APPS), "--json",
                          "--duration", "0.3", "--connections", "2", "--load-tool", "loadtester"],
                         capture_output=True, text=True, timeout=180)
    try:
        return run.returncode, json.loads(run.stdout)
    except ValueError:
        raise AssertionError(f"no JSON report (exit {run.returncode}): {run.stdout[-800:]} {run.stderr[-2000:]}") \
            from None


def _check_loads(report: Any, servers: set[str], not_found: tuple[str, ...] = ()) -> None:
    """Every route loaded under every server that ran; the load counts a 404 as an error."""
    loads = {(load["server"], load["path"]): load for load in report["loads"]}
    assert set(loads) == {(s, p) for s in servers for p in report["routes"]}
    for load in loads.values():
        errors = load["requests"] if load["path"] in not_found else 0
        assert load["requests"] > 0 and load["errors"] == errors and load["requests_per_second"] > 0, load


def test_fastapi_app_under_uvicorn_hosted_and_on_the_shim() -> None:
    code, report = _compare("fastapi_app:app")
    assert report["kind"] == "fastapi" and report["routes_from"] == "/openapi.json"
    assert report["routes"] == ["/items/", "/whoami"]  # /items/{item_id} needs a parameter: left out
    servers = report["servers"]
    assert (servers["uvicorn"], servers["covet-hosted"], servers["covet-compat"]) == ("ran", "ran", "ran"), servers
    assert servers["covet"].startswith("skipped: not a CovetPy app")
    assert report["reference"] == "uvicorn"
    assert code == 0 and report["differences"] == [], report["differences"]
    _check_loads(report, {"uvicorn", "covet-hosted", "covet-compat"})


def test_flask_app_under_uvicorn_wsgi_and_hosted(tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("/\n/users/7\n/users/x\n")  # a 404 is an answer like any other
    code, report = _compare("flask_app:app", "--urls", str(urls))
    assert report["kind"] == "wsgi" and report["routes"] == ["/", "/users/7", "/users/x"]
    servers = report["servers"]
    assert (servers["uvicorn"], servers["covet-hosted"]) == ("ran", "ran"), servers
    assert servers["covet-compat"].startswith("skipped: the compatibility shim is for FastAPI/Starlette apps")
    assert code == 0 and report["differences"] == [], report["differences"]
    _check_loads(report, {"uvicorn", "covet-hosted"}, not_found=("/users/x",))
