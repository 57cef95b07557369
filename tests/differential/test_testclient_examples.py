"""The same test code (testclient_examples.py: FastAPI's documented testing examples and Starlette TestClient
behaviours) run with FastAPI's TestClient (the reference venv, which needs httpx) and with covet.testing's:
every example passes under both, and observes the same values."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import COMPAT, DEFAULT_FASTAPI_PYTHON, HERE

SCRIPT = HERE / "testclient_examples.py"
EXAMPLES = re.findall(r"^def (example_\w+)\(", SCRIPT.read_text(encoding="utf-8"), flags=re.MULTILINE)


# DIFF_COVET_MODE=compat: the CovetPy side runs the FastAPI imports (fastapi.testclient too) under covet.compat.
COMPAT_RUN = "import covet.compat, runpy, sys; covet.compat.install('fastapi'); sys.argv[:1] = []; " \
    "runpy.run_path(sys.argv[0], run_name='__main__')"


def _run(python: str, framework: str, out: Path) -> dict[str, Any]:
    compat = COMPAT and framework == "covet"
    env = {**os.environ, "DIFF_FRAMEWORK": "fastapi" if compat else framework, "PYTHONDONTWRITEBYTECODE": "1"}
    command = [python, *(["-c", COMPAT_RUN] if compat else []), str(SCRIPT), str(out)]
    proc = subprocess.run(command, env=env, cwd=HERE, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 or not out.exists():
        pytest.fail(f"{framework}: testclient_examples.py failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    results: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return results


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    reference = os.environ.get("DIFF_FASTAPI_PYTHON", str(DEFAULT_FASTAPI_PYTHON))
    probe = subprocess.run([reference, "-c", "import fastapi.testclient"], capture_output=True, text=True) \
        if Path(reference).exists() else None
    if probe is None or probe.returncode != 0:
        reason = (f"FastAPI's TestClient cannot be imported with {reference} (it needs httpx, pinned in "
                  "tests/differential/requirements.txt): run tests/differential/run.sh to refresh the venv")
        if os.environ.get("DIFF_REQUIRE"):
            pytest.fail(reason)
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("testclient")
    return {"fastapi": _run(reference, "fastapi", tmp / "fastapi.json"),
            "covet": _run(sys.executable, "covet", tmp / "covet.json")}


@pytest.mark.parametrize("name", EXAMPLES)
def test_testclient_example(name: str, results: dict[str, dict[str, Any]]) -> None:
    fastapi, covet = results["fastapi"][name], results["covet"][name]
    assert fastapi["ok"], f"the example fails under FastAPI itself: {fastapi['error']}\n{fastapi.get('trace')}"
    assert covet["ok"], f"passes under FastAPI, fails under CovetPy: {covet['error']}\n{covet.get('trace')}"
    assert covet["seen"] == fastapi["seen"]
