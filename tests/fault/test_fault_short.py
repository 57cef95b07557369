"""The short fault-injection run (issue 12): every scenario, scaled down, against the native `hello`
example (both backends, or $COVET_BACKEND) and the Python app under `covet run` (threads=0, the default
engine mode). About 3 minutes on 2 cores; ``scripts/soak.sh`` runs the long versions.

  COVET_HELLO_BIN        the hello binary (default: build-release's, else build/'s ASan build)
  COVET_BACKEND          uring or asio: only this backend for the native target
  COVET_REQUIRE_SERVER=1 fail instead of skip when the hello binary is missing
  COVET_REQUIRE_NATIVE=1 fail instead of skip when covet's compiled engine is not importable
  COVET_FAULT_REPORT     append each scenario's report (JSON lines) to this file
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from fault import harness, scenarios
from fault.harness import TargetSpec


def _backends() -> list[str]:
    env = os.environ.get("COVET_BACKEND", "").strip()
    return [env] if env else ["uring", "asio"]


NATIVE = [TargetSpec("native", backend=b) for b in _backends()]
PYTHON = TargetSpec("python")                 # covet run --workers 1, threads=0
PYTHON_2 = TargetSpec("python", workers=2)    # covet run --workers 2
ALL = NATIVE + [PYTHON]


def _id(spec: TargetSpec) -> str:
    return spec.label().replace("/", "-")


@pytest.fixture(autouse=True)
def _target_available(request):
    spec = request.node.callspec.params.get("spec") if hasattr(request.node, "callspec") else PYTHON_2
    if spec.kind == "native":
        path = harness.hello_binary()
        if not (path.is_file() and os.access(path, os.X_OK)):
            msg = f"hello binary not found at {path} (scripts/build.sh release or asan, or set COVET_HELLO_BIN)"
            if os.environ.get("COVET_REQUIRE_SERVER"):
                pytest.fail(msg)
            pytest.skip(msg)
    else:
        rc = subprocess.run([harness.python_executable(), "-c", "import covet._native"], capture_output=True).returncode
        if rc != 0:
            msg = f"covet (with its native module) is not importable by {harness.python_executable()}"
            if os.environ.get("COVET_REQUIRE_NATIVE"):
                pytest.fail(msg)
            pytest.skip(msg)


def _ok(report: dict) -> None:
    failed = [c for c in report["checks"] if not c["ok"]]
    assert report["ok"], scenarios.format_line(report) + "\n" + json.dumps(failed, indent=1)


@pytest.mark.parametrize("spec", ALL, ids=_id)
def test_graceful_stop(spec, record):
    _ok(record(scenarios.graceful_stop(spec, before_s=1.5)))


def test_sigkill_worker(record):
    _ok(record(scenarios.sigkill_worker(PYTHON_2, before_s=1.5, after_s=2.0)))


def test_rolling_restart(record):
    _ok(record(scenarios.rolling_restart(PYTHON_2, restarts=3, settle_s=0.7)))


@pytest.mark.parametrize("spec", ALL, ids=_id)
def test_slowloris_heads(spec, record):
    _ok(record(scenarios.slowloris_heads(spec, slow=200, header_timeout_ms=2000)))


@pytest.mark.parametrize("spec", ALL, ids=_id)
def test_slowloris_bodies(spec, record):
    _ok(record(scenarios.slowloris_bodies(spec, slow=200, grace_ms=2000)))


@pytest.mark.parametrize("spec", ALL, ids=_id)
def test_idle_connections(spec, record):
    _ok(record(scenarios.idle_connections(spec, idle=2000, probe_s=2.0)))


@pytest.mark.parametrize("spec", ALL, ids=_id)
def test_memory_drift(spec, record):
    if spec.kind == "native":  # the uring backend grows its buffer pools over the first ~25K requests
        requests, warmup = (20_000, 0.5) if spec.asan else (60_000, 0.5)
    else:
        requests, warmup = 40_000, 0.4
    _ok(record(scenarios.memory_drift(spec, requests=requests, warmup=warmup)))


@pytest.mark.parametrize("spec", ALL, ids=_id)
def test_mutation_fuzz(spec, record):
    _ok(record(scenarios.mutation_fuzz(spec, duration_s=6.0, seed=1)))


@pytest.mark.parametrize("spec", [NATIVE[0], PYTHON], ids=_id)
def test_stray_empty_lines(spec, record):
    _ok(record(scenarios.stray_empty_lines(spec)))
