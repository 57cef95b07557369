"""The FastAPI compatibility shim (covet.compat, `covet run --compat fastapi`): an unchanged FastAPI app's imports
give covet's classes, win over a FastAPI installed in the environment, and a name CovetPy lacks fails at import
with its name, why, and the alternatives. Every check runs in a fresh interpreter (the shim changes sys.meta_path).
The differential test runs the sample apps this way too: tests/differential/run-compat.sh."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from serverproc import ServerProcess, free_port, require_compiled_engine

from covet.server.supervisor import WorkerOptions, worker_command

# A stand-in for a real FastAPI/Starlette installed in the environment: the shim must win over it.
REAL = {"fastapi/__init__.py": "FastAPI = 'the real fastapi'\n__version__ = 'real'\n",
        "fastapi/responses.py": "JSONResponse = 'the real one'\n",
        "starlette/__init__.py": "", "starlette/requests.py": "Request = 'the real one'\n"}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory with the stand-in real fastapi/starlette, to put on PYTHONPATH."""
    for name, text in REAL.items():
        (tmp_path / "site" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "site" / name).write_text(text)
    return tmp_path / "site"


def run_python(code: str, site: Path, last_line: bool = False) -> Any:
    """Runs `code` in a fresh interpreter with `site` on PYTHONPATH; returns what it printed (`last_line`: its last
    line, after a server's log lines), as JSON."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=60, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1] if last_line else result.stdout)


def test_the_shim_gives_covets_classes_and_wins_over_an_installed_fastapi(site: Path) -> None:
    seen = run_python("""
        import json, covet.compat
        import fastapi as before  # the stand-in real one, before the shim
        import sys
        real = before.FastAPI
        for name in [n for n in sys.modules if n.split(".")[0] in ("fastapi", "starlette")]:
            del sys.modules[name]
        covet.compat.install("fastapi")
        import covet, covet.responses, covet.routing, covet.middleware.base, covet.testing, covet.status
        import fastapi
        from fastapi import FastAPI, Depends, status
        from fastapi.responses import JSONResponse
        from fastapi.testclient import TestClient
        from fastapi.openapi import models
        from fastapi.security import OAuth2PasswordBearer
        from starlette.requests import Request
        from starlette.middleware.base import BaseHTTPMiddleware
        from starlette.routing import NoMatchFound
        from starlette.exceptions import HTTPException
        from starlette import status as starlette_status
        star = {}
        exec("from fastapi import *", star)
        print(json.dumps({
            "star": [star["FastAPI"] is FastAPI, star["status"] is sys.modules["fastapi.status"]],
            "real": real, "installed": covet.compat.installed(), "version": fastapi.__version__,
            "FastAPI": FastAPI is covet.CovetPy, "Depends": Depends is covet.Depends,
            "JSONResponse": JSONResponse is covet.responses.JSONResponse,
            "TestClient": TestClient is covet.testing.TestClient, "Request": Request is covet.Request,
            "BaseHTTPMiddleware": BaseHTTPMiddleware is covet.middleware.base.BaseHTTPMiddleware,
            "NoMatchFound": NoMatchFound is covet.routing.NoMatchFound,
            "HTTPException": HTTPException is covet.HTTPException,
            "status": status.HTTP_418_IM_A_TEAPOT == starlette_status.HTTP_418_IM_A_TEAPOT == 418,
            "models": models.OpenAPI.__module__,
            "submodule_attribute": fastapi.responses is sys.modules["fastapi.responses"],
            "getattr_default": getattr(fastapi, "NotAName", None), "hasattr": hasattr(fastapi, "NotAName"),
            "meta_path_first": repr(sys.meta_path[0]),
        }))
        """, site)
    assert seen.pop("real") == "the real fastapi"
    assert seen.pop("star") == [True, True]
    assert seen == {"installed": True, "version": "0.165.0", "FastAPI": True, "Depends": True, "JSONResponse": True,
                    "TestClient": True, "Request": True, "BaseHTTPMiddleware": True, "NoMatchFound": True,
                    "HTTPException": True, "status": True, "models": "covet.openapi.models",
                    "submodule_attribute": True, "getattr_default": None, "hasattr": False,
                    "meta_path_first": "<covet.compat shim finder>"}


UNSUPPORTED = {
    "from fastapi.routing import request_response": (
        "ImportError", "fastapi.routing.request_response is not provided by CovetPy's compatibility shim",
        "app.mount(path, asgi_app)"),
    "from starlette.applications import Starlette": (
        "ModuleNotFoundError", "starlette.applications is not provided", "application class is FastAPI's"),
    "from starlette.middleware.authentication import AuthenticationMiddleware": (
        "ModuleNotFoundError", "starlette.middleware.authentication is not provided", "use the security dependencies"),
    "import fastapi.middleware.wsgi": ("ModuleNotFoundError", "fastapi.middleware.wsgi is not provided", "a2wsgi"),
    "from fastapi.encoders import ENCODERS_BY_TYPE": (
        "ImportError", "fastapi.encoders.ENCODERS_BY_TYPE is not provided", "pass custom_encoder= to jsonable_encoder"),
    "from fastapi import NotAName": ("ImportError", "fastapi.NotAName is not provided", "no counterpart"),
}


def test_an_unsupported_name_fails_at_import_naming_it_and_the_alternatives(site: Path) -> None:
    seen = run_python(f"""
        import json, covet.compat
        covet.compat.install("fastapi")
        out = {{}}
        for statement in {list(UNSUPPORTED)!r}:
            try:
                exec(statement)
                out[statement] = None
            except ImportError as e:
                out[statement] = [type(e).__name__, str(e)]
        print(json.dumps(out))
        """, site)
    for statement, (kind, start, why) in UNSUPPORTED.items():
        assert seen[statement] is not None, f"{statement}: imported"
        error, message = seen[statement]
        assert error == kind and message.startswith(start), (statement, message)
        assert why in message, (statement, message)
        assert "covet run --interface asgi3 module:app" in message, message  # the way to run it unchanged


def test_install_refuses_a_framework_imported_before_it_and_uninstall_restores(site: Path) -> None:
    seen = run_python("""
        import json, sys, covet.compat
        out = {}
        try:
            covet.compat.install("flask")
        except ValueError as e:
            out["unknown"] = str(e)
        import fastapi.responses
        try:
            covet.compat.install("fastapi")
        except RuntimeError as e:
            out["late"] = str(e)
        out["installed_after_refusal"] = covet.compat.installed()
        for name in [n for n in sys.modules if n.split(".")[0] in ("fastapi", "starlette")]:
            del sys.modules[name]
        covet.compat.install("starlette")  # the same shim
        covet.compat.install("fastapi")    # idempotent
        import fastapi
        out["shim"] = fastapi.FastAPI.__name__
        covet.compat.uninstall()
        import fastapi
        out["after_uninstall"] = [fastapi.FastAPI, covet.compat.installed()]
        print(json.dumps(out))
        """, site)
    assert seen["unknown"].startswith("covet.compat.install: no shim for 'flask'")
    assert seen["late"].startswith("covet.compat.install: fastapi, fastapi.responses were imported before the shim")
    assert "covet run --compat fastapi module:app" in seen["late"]
    assert seen["installed_after_refusal"] is False
    assert seen["shim"] == "CovetPy"
    assert seen["after_uninstall"] == ["the real fastapi", False]


def test_every_fastapi_name_docs_python_md_lists_as_provided_imports_under_the_shim(site: Path) -> None:
    """The shim and docs/python.md's "FastAPI names" table (scripts/fastapi_names.py over fastapi_names.json)
    agree: a FastAPI name imports under the shim exactly when the table says covet has it."""
    root = Path(__file__).resolve().parents[2]
    mismatches = run_python(f"""
        import importlib, json, sys
        sys.path.insert(0, {str(root / "scripts")!r})
        import fastapi_names
        names = json.load(open({str(root / "tests" / "differential" / "fastapi_names.json")!r}))["modules"]
        table = {{(m, n): fastapi_names._resolve(m, n) is not None for m, members in names.items() for n in members}}
        import covet.compat
        covet.compat.install("fastapi")
        out = []
        for (module, name), provided in sorted(table.items()):
            try:
                imported = hasattr(importlib.import_module(module), name)
            except ImportError as e:
                imported = False
                assert module in str(e) and "covet run --interface asgi3" in str(e), str(e)
            if imported != provided:
                out.append([module, name, provided])
        print(json.dumps([len(table), out]))
        """, site)
    count, wrong = mismatches
    assert count > 300 and wrong == [], wrong


# ---- covet run --compat fastapi -----------------------------------------------------------------------------

APP = textwrap.dedent("""
    import os
    from typing import Annotated

    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.middleware.base import BaseHTTPMiddleware

    app = FastAPI()

    class Stamp(BaseHTTPMiddleware):
        async def dispatch(self, request, call_next):
            response = await call_next(request)
            response.headers["x-pid"] = str(os.getpid())
            return response

    app.add_middleware(Stamp)

    @app.exception_handler(StarletteHTTPException)
    async def teapot(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"oops": exc.detail}, status_code=exc.status_code)

    def who() -> str:
        return type(app).__module__ + "." + type(app).__name__

    @app.get("/items/{item_id}")
    async def item(item_id: int, app_class: Annotated[str, Depends(who)]) -> dict[str, object]:
        if item_id == 0:
            raise StarletteHTTPException(404, "no item 0")
        return {"item_id": item_id, "app": app_class}
    """)


def get(port: int, target: str) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(response.read())
    finally:
        conn.close()


def test_covet_run_compat_serves_an_unchanged_fastapi_app_in_every_worker(tmp_path: Path, site: Path) -> None:
    require_compiled_engine()
    (tmp_path / "main.py").write_text(APP)
    port = free_port()
    with ServerProcess([sys.executable, "-m", "covet", "run", "main:app", "--compat", "fastapi", "--workers", "2",
                        "--host", "127.0.0.1", "--port", str(port)], cwd=tmp_path,
                       env={"PYTHONPATH": str(site)}) as server:
        server.wait_for(r"serving on", count=2)  # both workers
        pids = set()
        for _ in range(8):
            status, headers, body = get(port, "/items/3")
            assert (status, body) == (200, {"item_id": 3, "app": "covet.app.CovetPy"})
            pids.add(headers["x-pid"])
        assert get(port, "/items/0")[::2] == (404, {"oops": "no item 0"})
        assert get(port, "/items/x")[0] == 422
        server.stop()
    assert pids  # (which worker answers is the kernel's choice: both are checked by their 'serving' lines)


def test_covet_run_compat_names_an_unsupported_import_and_exits(tmp_path: Path, site: Path) -> None:
    (tmp_path / "main.py").write_text("from fastapi import FastAPI\nfrom starlette.middleware.authentication "
                                      "import AuthenticationMiddleware\napp = FastAPI()\n")
    result = subprocess.run([sys.executable, "-m", "covet", "run", "main:app", "--compat", "fastapi"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(site)})
    assert result.returncode == 1
    assert result.stderr.startswith("covet: cannot import module 'main': starlette.middleware.authentication is "
                                    "not provided by CovetPy's compatibility shim"), result.stderr
    assert "covet run --interface asgi3" in result.stderr


def test_worker_command_passes_compat() -> None:
    command = worker_command(WorkerOptions(app="main:app", compat="fastapi"))
    assert command[command.index("--compat") + 1] == "fastapi"
    assert "--compat" not in worker_command(WorkerOptions(app="main:app"))


def test_covet_run_refuses_compat_with_a_hosting_interface(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("app = None\n")
    result = subprocess.run([sys.executable, "-m", "covet", "run", "main:app", "--compat", "fastapi", "--interface",
                             "asgi3"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("covet: --compat fastapi serves the app as a CovetPy app, not --interface asgi3")


def test_app_run_with_workers_under_the_shim_installs_it_in_the_workers(tmp_path: Path, site: Path) -> None:
    require_compiled_engine()
    (tmp_path / "main.py").write_text(APP)
    port = free_port()
    script = ("import covet.compat; covet.compat.install('fastapi'); from main import app; "
              f"app.run(host='127.0.0.1', port={port}, workers=2)")
    with ServerProcess([sys.executable, "-c", script], cwd=tmp_path, env={"PYTHONPATH": str(site)}) as server:
        server.wait_for(r"serving on", count=2)
        assert get(port, "/items/5")[::2] == (200, {"item_id": 5, "app": "covet.app.CovetPy"})
        server.stop()


def test_starlette_session_middleware_is_covets_with_starlettes_arguments_and_defaults(site: Path) -> None:
    """`starlette.middleware.sessions.SessionMiddleware` under the shim: covet's sessions, Starlette's constructor
    (positional and keyword) and defaults (https_only False); request.session through a real request. The same
    behaviour against Starlette itself, request by request: tests/differential/test_sessions.py."""
    seen = run_python("""
        import json, covet.compat
        covet.compat.install("fastapi")
        from fastapi import FastAPI, Request
        from fastapi.testclient import TestClient
        from starlette.middleware.sessions import SessionMiddleware
        import covet.middleware.sessions
        app = FastAPI()
        app.add_middleware(SessionMiddleware, "k" * 32, "sid", 600, "/", "strict", domain=None)

        @app.get("/count")
        async def count(request: Request) -> dict:
            request.session["n"] = request.session.get("n", 0) + 1
            return dict(request.session)

        with TestClient(app) as client:
            first = client.get("/count")
            second = client.get("/count")
        print(json.dumps({"covet": issubclass(SessionMiddleware, covet.middleware.sessions.SessionMiddleware),
                          "cookie": first.headers["set-cookie"].split(";", 1)[1].lower(),
                          "counts": [first.json(), second.json()]}))
    """, site, last_line=True)
    assert seen["covet"] is True
    attributes = {a.strip() for a in seen["cookie"].split(";")}
    assert {"httponly", "samesite=strict", "path=/", "max-age=600"} <= attributes and "secure" not in attributes
    assert seen["counts"] == [{"n": 1}, {"n": 2}]
