"""The image's CMD and the Deployment's args and COVET_* variables, read by the installed covet itself: every
flag exists in `covet run`, and every variable is one covet reads (a misspelt COVET_ name would be ignored
silently) with a value it accepts."""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from deploy_support import KUBERNETES, REPO, load_docs, pod_spec

# The COVET_* variables `covet run` reads besides the engine options' (docs/operations.md).
OTHER_VARIABLES = {"COVET_HOST", "COVET_PORT", "COVET_WORKERS", "COVET_BACKEND", "COVET_ROOT_PATH"}


def covet_or_skip() -> Any:
    try:
        from covet.server import options
    except ImportError as e:
        if os.environ.get("COVET_REQUIRE_NATIVE") == "1":
            pytest.fail(f"covet is not installed: {e}")
        pytest.skip(f"covet is not installed: {e}")
    return options


def container() -> dict[str, Any]:
    (deployment,) = [d for d in load_docs(KUBERNETES / "deployment.yaml") if d["kind"] == "Deployment"]
    (c,) = pod_spec(deployment)["containers"]
    return c  # type: ignore[no-any-return]


def dockerfile_cmd() -> list[str]:
    lines = (REPO / "Dockerfile").read_text().splitlines()
    (cmd,) = [ln for ln in lines if ln.startswith("CMD ")]
    return json.loads(cmd[len("CMD "):])  # type: ignore[no-any-return]


def run_help() -> str:
    return subprocess.run([sys.executable, "-m", "covet", "run", "--help"], capture_output=True, text=True,
                          timeout=60, check=True).stdout


@pytest.mark.parametrize("where", ["Dockerfile CMD", "Deployment args"])
def test_every_flag_exists(where: str) -> None:
    covet_or_skip()
    argv = dockerfile_cmd() if where == "Dockerfile CMD" else container()["args"]
    known = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", run_help()))
    assert {"--host", "--port", "--workers"} <= known
    if "--ops-port" not in known:
        pytest.skip("this covet has no --ops-port yet (the operations listener of issue 16)")
    flags = {a for a in argv if a.startswith("--")}
    assert flags and flags <= known, f"covet run has no {sorted(flags - known)}"


def test_every_variable_is_read_and_accepted() -> None:
    options = covet_or_skip()
    env = {e["name"]: e.get("value") for e in container()["env"]}
    known = {o.env for o in options.ENGINE_OPTIONS} | OTHER_VARIABLES
    assert set(env) <= known, f"covet reads none of {sorted(set(env) - known)}"
    values = {k: v for k, v in env.items() if v is not None}  # COVET_WORKERS comes from the CPU limit
    parsed = options.engine_options(argparse.Namespace(), values)
    by_env = {o.env: o.kwarg for o in options.ENGINE_OPTIONS}
    for name in values:
        if name in by_env:
            assert by_env[name] in parsed, name
    assert parsed["shutdown_timeout_ms"] == 20_000
