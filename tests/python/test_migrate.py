"""`covet migrate` (covet.migrate): FastAPI/Starlette code rewritten to CovetPy's names, then run.

The samples under migrate_samples/ are FastAPI code (the design doc's "From FastAPI" example, and `shop`, a
package with routers, models, dependencies, middleware, exception handlers and its own tests using
fastapi.testclient.TestClient; its tests pass under FastAPI 0.165 too). Each test copies a sample to a temporary
directory, migrates the copy, and runs what a user would: the app's own tests (pytest in a subprocess), `covet run`
answering through a real socket, `covet migrate --check` in CI.
"""

from __future__ import annotations

import difflib
import http.client
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from serverproc import ServerProcess, fastapi_reference_python, require_compiled_engine, skip_or_fail

if importlib.util.find_spec("libcst") is None:  # the `migrate` extra; requirements-dev.txt installs it
    if os.environ.get("COVET_REQUIRE_NATIVE"):
        pytest.fail("libcst is not installed: pip install -r requirements-dev.txt", pytrace=False)
    pytest.skip("libcst is not installed (pip install -r requirements-dev.txt)", allow_module_level=True)

from covet.migrate import MigrateError, migrate  # noqa: E402
from covet.server.cli import main as cli_main  # noqa: E402

SAMPLES = Path(__file__).resolve().parent / "migrate_samples"
ROOT = Path(__file__).resolve().parents[2]
ENV = {k: v for k, v in os.environ.items() if k != "COVET_NATIVE"}


def run_migrate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "covet", "migrate", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env=ENV)


def migrate_in_process(*paths: Path, check: bool = False, diff: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    code = migrate([str(p) for p in paths], check=check, diff=diff, out=out)
    return code, out.getvalue()


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def get(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET",
        body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


# ---- the design doc's example --------------------------------------------------------------------------

DESIGN_DOC_AFTER = '''# FastAPI (before)
from covet import CovetPy
app = CovetPy()

@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str = None):
    return {"item_id": item_id, "q": q}
'''


def test_design_doc_example_check_diff_then_rewrite(tmp_path: Path) -> None:
    main = tmp_path / "main.py"
    shutil.copy(SAMPLES / "design_doc" / "main.py", main)
    before = main.read_bytes()

    code, out = migrate_in_process(main, check=True)
    assert code == 1, out
    assert f"{main}: would rewrite" in out
    assert "line 2: from fastapi import FastAPI -> from covet import CovetPy" in out
    assert main.read_bytes() == before  # --check writes nothing

    code, out = migrate_in_process(main, diff=True)
    assert code == 0, out
    expected = "".join(difflib.unified_diff(before.decode().splitlines(keepends=True),
                                            DESIGN_DOC_AFTER.splitlines(keepends=True), str(main), str(main)))
    assert expected in out
    assert main.read_bytes() == before  # --diff writes nothing either

    done = run_migrate("main.py", cwd=tmp_path)  # the command itself
    assert done.returncode == 0, done.stdout + done.stderr
    assert "main.py: rewritten" in done.stdout
    assert main.read_text() == DESIGN_DOC_AFTER  # the design doc's "CovetPy (after)", comment kept
    code, out = migrate_in_process(tmp_path, check=True)
    assert code == 0 and "0 to rewrite, 1 unchanged" in out, out

    sys.path.insert(0, str(tmp_path))
    try:
        spec = importlib.util.spec_from_file_location("migrated_design_doc_main", main)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(tmp_path))
    from covet.testing import TestClient

    with TestClient(module.app) as client:
        assert client.get("/items/5", params={"q": "x"}).json() == {"item_id": 5, "q": "x"}
        assert client.get("/items/5").json() == {"item_id": 5, "q": None}


# ---- the multi-file sample app ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A migrated copy of migrate_samples/shop and what `covet migrate` printed."""
    root = tmp_path_factory.mktemp("migrate") / "shop"
    shutil.copytree(SAMPLES / "shop", root)
    result = run_migrate(".", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root, result.stdout


def test_shop_imports_are_covets_and_nothing_else_changed(shop: tuple[Path, str]) -> None:
    root, output = shop
    assert "covet migrate: 14 files checked: 9 rewritten, 5 unchanged" in output
    assert "shop/middleware.py: rewritten\n  line 3: from starlette.middleware.base import BaseHTTPMiddleware -> " \
           "from covet.middleware.base import BaseHTTPMiddleware" in output
    assert "line 2: from fastapi.testclient import TestClient -> from covet.testing import TestClient" in output
    assert "line 58: fastapi.FastAPI -> covet.CovetPy" in output
    original = snapshot(SAMPLES / "shop")
    migrated = snapshot(root)
    assert sorted(migrated) == sorted(original)
    for name, before in original.items():
        old, new = before.decode().splitlines(), migrated[name].decode().splitlines()
        assert len(old) == len(new), name
        for a, b in zip(old, new):
            if a != b:  # only import lines and the renamed class change; comments and layout stay
                assert "covet" in b or "CovetPy" in b, (name, a, b)
                assert a.replace("fastapi", "covet").replace("FastAPI", "CovetPy").replace("starlette", "covet") \
                    .replace("covet.testclient", "covet.testing") == b, (name, a, b)
        assert "fastapi" not in migrated[name].decode().replace("FastAPI", "").lower().replace(
            "written against fastapi", ""), name
    main = migrated["shop/main.py"].decode()
    assert "    app = CovetPy(title=\"Shop\", version=\"1.2.0\", lifespan=lifespan)\n" in main
    assert "async def lifespan(app: CovetPy):\n    app.state.db = Store()  # one store per app, made at startup" in main
    assert "app.add_middleware(\n        CORSMiddleware,\n        allow_origins=" in main


def test_shop_own_tests_pass_on_covet(shop: tuple[Path, str]) -> None:
    require_compiled_engine()
    root, _ = shop
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=root,
                            capture_output=True, text=True, timeout=120, env=ENV)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "10 passed" in result.stdout


def test_shop_own_tests_pass_on_fastapi_before_the_migration(tmp_path: Path) -> None:
    """The same tests, unmigrated, on FastAPI 0.165: the differential test's pinned venv, once it has been built
    (tests/differential/run.sh; pydantic is the same version as here)."""
    venv = fastapi_reference_python().parent.parent
    site = next(venv.glob("lib/python3.*/site-packages/fastapi"), None)
    if site is None:
        skip_or_fail(f"no FastAPI in {venv} (tests/differential/venv.sh installs it)", "COVET_REQUIRE_FASTAPI_VENV")
    root = tmp_path / "shop"
    shutil.copytree(SAMPLES / "shop", root)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", "tests"],
                            cwd=root, capture_output=True, text=True, timeout=120,
                            env={**ENV, "PYTHONPATH": str(site.parent)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "10 passed" in result.stdout


def test_shop_served_by_covet_run(shop: tuple[Path, str]) -> None:
    require_compiled_engine()
    root, _ = shop
    with ServerProcess([sys.executable, "-m", "covet", "run", "shop.main:app", "--port", "0"], cwd=root,
                       env=ENV) as server:
        status, headers, body = get(server.port, "/health")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert headers["x-powered-by"] == "shop" and float(headers["x-process-time"]) >= 0
        status, _, body = get(server.port, "/items/", method="POST", body=b'{"name": "pen", "price": 2}',
                              headers={"Authorization": "Bearer bob-token", "Content-Type": "application/json"})
        assert (status, json.loads(body)) == (201, {"name": "pen", "price": 2.0, "tags": [], "id": 1, "owner": "bob"})
        status, _, body = get(server.port, "/items/7")
        assert (status, json.loads(body)) == (404, {"error": "item_not_found", "item_id": 7})
        server.stop()

    code, out = migrate_in_process(root, check=True)  # a migrated tree passes the CI check
    assert code == 0, out
    assert "0 to rewrite, 14 unchanged" in out


# ---- what it cannot map, and the CLI's edges ------------------------------------------------------------

UNMAPPED = '''import uvicorn
from fastapi import FastAPI, NotAName  # partly mappable
from starlette.config import Config

app = FastAPI(openapi_prefix="/v1")

if __name__ == "__main__":
    uvicorn.run("main:app", reload=True)
from starlette.routing import Route
from .base import FastAPI as Base
app.frontend("/", directory="dist")
'''


def test_reports_what_it_cannot_map_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(UNMAPPED)
    (tmp_path / "broken.py").write_text("from fastapi import FastAPI\ndef (:\n")
    code, out = migrate_in_process(tmp_path)
    assert code == 1
    main = str(tmp_path / "main.py")
    assert f"{main}:2: cannot map `from fastapi import NotAName`: covet has no NotAName" in out
    assert f"{main}:3: cannot map `from starlette.config import Config`: covet has no module for" in out
    assert f"{main}:5: covet.CovetPy() has no parameter 'openapi_prefix'" in out
    assert f"{main}:8: uvicorn.run('main:app', ...): serve it with `covet run module:app`" \
        in out.replace('"main:app"', "'main:app'")
    assert f"{main}:9: cannot map `from starlette.routing import Route`: covet.routing.Route is covet's " \
           "route-table entry, not Starlette's Route(path, endpoint)" in out
    assert f"{main}:10: `from .base import FastAPI`: if .base is migrated too, it names it CovetPy now" in out
    assert f"{main}:11: covet.CovetPy has no attribute 'frontend' (`app.frontend`, app = FastAPI(...))" in out
    assert f"{tmp_path / 'broken.py'}:2: cannot parse, left as it is" in out
    assert "2 files checked: 1 rewritten, 0 unchanged, 7 not mapped" in out and "1 not parsed" in out
    assert (tmp_path / "main.py").read_text() == UNMAPPED.replace(
        "from fastapi import FastAPI, NotAName  # partly mappable",
        "from covet import CovetPy  # partly mappable\nfrom fastapi import NotAName",
    ).replace("app = FastAPI(", "app = CovetPy(")
    assert (tmp_path / "broken.py").read_text() == "from fastapi import FastAPI\ndef (:\n"


def test_module_imports_attribute_uses_and_uvicorn_run(tmp_path: Path) -> None:
    source = tmp_path / "app.py"
    source.write_text(
        "import uvicorn\n"
        "import fastapi\n"
        "import fastapi.responses as responses\n"
        "from starlette.types import ASGIApp, Receive, Scope, Send\n"
        "from fastapi import (\n"
        "    FastAPI as App,  # aliased: the alias stays\n"
        "    status,\n"
        ")\n"
        "\n"
        "app: fastapi.FastAPI = App()\n"
        "kind = fastapi.responses.JSONResponse.media_type\n"
        "plain = responses.PlainTextResponse\n"
        "code = status.HTTP_200_OK\n"
        "\n"
        "\n"
        "def shadowed(fastapi):\n"
        "    return fastapi.FastAPI  # a parameter, not the module: unchanged\n"
        "\n"
        "\n"
        "if __name__ == '__main__':\n"
        "    uvicorn.run(app, host='0.0.0.0', port=8000)\n")
    code, out = migrate_in_process(source)
    assert code == 0, out
    assert source.read_text() == (
        "import covet\n"
        "import covet.responses as responses\n"
        "from covet.asgi.types import ASGIApp, Receive, Scope, Send\n"
        "from covet import (\n"
        "    CovetPy as App,  # aliased: the alias stays\n"
        "    status,\n"
        ")\n"
        "\n"
        "app: covet.CovetPy = App()\n"
        "kind = covet.responses.JSONResponse.media_type\n"
        "plain = responses.PlainTextResponse\n"
        "code = status.HTTP_200_OK\n"
        "\n"
        "\n"
        "def shadowed(fastapi):\n"
        "    return fastapi.FastAPI  # a parameter, not the module: unchanged\n"
        "\n"
        "\n"
        "if __name__ == '__main__':\n"
        "    app.run(host='0.0.0.0', port=8000)\n")
    assert "uvicorn.run(app, host='0.0.0.0', port=8000) -> app.run(host='0.0.0.0', port=8000)" in out
    compile(source.read_text(), str(source), "exec")


def test_walk_skips_virtualenvs_build_dirs_and_git(tmp_path: Path) -> None:
    code_line = "from fastapi import FastAPI\n"
    for skipped in (".venv/lib/x.py", "env2/x.py", "build/x.py", ".git/x.py", "dist/x.py", "pkg.egg-info/x.py"):
        (tmp_path / skipped).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / skipped).write_text(code_line)
    (tmp_path / "env2" / "pyvenv.cfg").write_text("home = /usr\n")  # a virtualenv under any name
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(code_line)
    (tmp_path / "src" / "notes.txt").write_text(code_line)
    code, out = migrate_in_process(tmp_path, check=True)
    assert code == 1
    assert "1 file checked: 1 to rewrite" in out and "src/app.py: would rewrite" in out
    assert (tmp_path / "src" / "app.py").read_text() == code_line


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(MigrateError, match="no such file or directory: .*nowhere"):
        migrate([str(tmp_path / "nowhere")])
    assert cli_main(["migrate", str(tmp_path / "nowhere.py")]) == 2
    assert f"covet: migrate: no such file or directory: {tmp_path / 'nowhere.py'}" in capsys.readouterr().err
    (tmp_path / "a.py").write_text("from fastapi import FastAPI\n")
    no_libcst = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['libcst'] = None; from covet.server.cli import main; "
                               "sys.exit(main(['migrate', 'a.py']))"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=ENV)
    assert no_libcst.returncode == 2
    assert "covet: migrate: libcst is not installed: pip install 'covetpy[migrate]'" in no_libcst.stderr
    assert (tmp_path / "a.py").read_text() == "from fastapi import FastAPI\n"


def test_names_in_annotation_strings_and_all(tmp_path: Path) -> None:
    source = tmp_path / "factory.py"
    source.write_text('from fastapi import FastAPI\n\n__all__ = ["FastAPI", "make"]\n\n\n'
                      'def make() -> "FastAPI":\n    app: "FastAPI" = FastAPI()\n'
                      '    label = "FastAPI"  # a plain string: unchanged\n    return app\n')
    code, out = migrate_in_process(source)
    assert code == 0, out
    assert source.read_text() == ('from covet import CovetPy\n\n__all__ = ["CovetPy", "make"]\n\n\n'
                                  'def make() -> "CovetPy":\n    app: "CovetPy" = CovetPy()\n'
                                  '    label = "FastAPI"  # a plain string: unchanged\n    return app\n')
