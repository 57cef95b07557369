"""Fixtures for the `covet` package tests.

Every test that uses the `native` fixture (directly or through `client`/`make_client`) runs twice: against
the pure-Python stand-in (`fake_native.py`) and against the compiled engine (``covet._native``), when it
can be found. Environment:

  COVET_NATIVE=fake|real     run against one engine only
  COVET_REQUIRE_NATIVE=1     fail (instead of skip) when the compiled engine is missing
  COVET_NATIVE_SO=path       the compiled module to load (default: ``covet._native`` if importable, else the
                             newest ``_native*.so`` under build-py*/)
  COVET_TEST_SOURCE=1        test bindings/python/covet even when a complete `covet` is installed

By default the installed package is tested when it is complete (as after `pip install .`); otherwise the
source tree is, with the compiled engine taken from the build directory.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
_EXTRA_PATHS = [str(HERE)]  # fake_native


def _installed_package_is_complete() -> bool:
    spec = importlib.util.find_spec("covet")
    if spec is None or not spec.submodule_search_locations:
        return False
    return any((Path(loc) / "app.py").is_file() for loc in spec.submodule_search_locations)


if os.environ.get("COVET_TEST_SOURCE") or not _installed_package_is_complete():
    _EXTRA_PATHS.insert(0, str(ROOT / "bindings" / "python"))
sys.path[:0] = _EXTRA_PATHS

import covet  # noqa: E402
from covet.server import engine as _engine  # noqa: E402

import fake_native  # noqa: E402

_real_native: Any = None
_real_error = ""


def _load_real() -> Any:
    global _real_native, _real_error
    if _real_native is not None or _real_error:
        return _real_native
    explicit = os.environ.get("COVET_NATIVE_SO")
    if not explicit:
        try:
            _real_native = importlib.import_module("covet._native")
            return _real_native
        except ImportError as exc:
            _real_error = str(exc)
    candidates = [explicit] if explicit else glob.glob(str(ROOT / "build-py*" / "**" / "_native*.so"), recursive=True)
    candidates = [c for c in candidates if c and os.path.isfile(c)]
    if not candidates:
        _real_error = _real_error or "no compiled covet._native found"
        return None
    path = max(candidates, key=os.path.getmtime)
    spec = importlib.util.spec_from_file_location("covet._native", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["covet._native"] = module
    _real_native = module
    _real_error = ""
    return module


_load_real()  # so that `import covet._native` works in every test module, source tree or not


def _engines() -> list[str]:
    only = os.environ.get("COVET_NATIVE", "").strip()
    return [only] if only else ["fake", "real"]


@pytest.fixture(params=_engines())
def native(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The engine module under test, installed as covet's engine for the test's duration."""
    if request.param == "fake":
        module: Any = fake_native
    else:
        module = _load_real()
        if module is None:
            if os.environ.get("COVET_REQUIRE_NATIVE"):
                pytest.fail(f"compiled engine required: {_real_error}")
            pytest.skip(f"compiled engine not available: {_real_error}")
    previous = _engine.use_native(module)
    try:
        yield module
    finally:
        _engine.use_native(previous)


@pytest.fixture
def make_client(native: Any) -> Iterator[Any]:
    """``make_client(app, **options)`` → a started TestClient (lifespan run), closed after the test."""
    from covet.testing import TestClient

    clients: list[TestClient] = []

    def make(app: covet.CovetPy, **options: Any) -> TestClient:
        client = TestClient(app, **options)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def serve(native: Any, make_client: Any) -> Any:
    """``serve(app)`` → a started TestClient on the compiled engine (the stand-in has no native middleware: tests of
    the engine's own middleware skip there)."""
    if getattr(native, "__name__", "") == "fake_native":
        pytest.skip("native middleware needs the compiled engine")
    return make_client


@pytest.fixture
def fake_engine() -> Iterator[Any]:
    """Only the pure-Python engine (for tests that drive requests without sockets)."""
    previous = _engine.use_native(fake_native)
    try:
        yield fake_native
    finally:
        _engine.use_native(previous)


@pytest.fixture
def engine_prelude(native: Any) -> str:
    """Python source that makes a fresh interpreter use the same `covet` and engine as this test."""
    engine = native
    lines = ["import sys", f"sys.path[:0] = {_EXTRA_PATHS!r}"]
    if engine is fake_native:
        lines += ["import fake_native", "from covet.server import engine as _engine", "_engine.use_native(fake_native)"]
    else:
        lines += [
            "import importlib.util",
            f"_spec = importlib.util.spec_from_file_location('covet._native', {engine.__file__!r})",
            "_mod = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(_mod)",
            "sys.modules['covet._native'] = _mod",
            "from covet.server import engine as _engine",
            "_engine.use_native(_mod)",
        ]
    return "\n".join(lines) + "\n"
