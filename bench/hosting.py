"""The hosting comparison (issue 15 point 3; ``python -m bench --hosting`` or ``bench/hosting.sh``): one FastAPI app
(bench/peers/fastapi/app.py) served by uvicorn, Hypercorn, Granian ASGI, CovetPy hosting it as an ASGI app and
CovetPy running it through the compatibility shim; one Flask app (bench/peers/hosting/app_flask.py) served by
gunicorn, Granian WSGI and CovetPy hosting it as a WSGI app. Same payloads and correctness gate as the matrix.

The peers' packages are pinned in bench/peers/hosting/requirements.txt (one venv, bench/.venvs/hosting; uvicorn
keeps the matrix's FastAPI venv). CovetPy runs on the suite's CovetPy interpreter with that venv's site-packages on
PYTHONPATH (same Python version), so it imports the very same FastAPI/Flask/pydantic as the other servers.
A CovetPy mode this checkout does not have yet (``covet run --interface``, ``--compat``) is excluded with the reason.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Callable

from .servers import (PEERS, VENVS, Ctx, InstallError, ServerSpec, covet_python_versions, covet_run_command,
                      ensure_venv, install_covet_python, pip_versions, venv_site_packages)

HOSTING_ASGI = ("fastapi", "fastapi-hypercorn", "fastapi-granian", "covet-host-fastapi", "covet-compat-fastapi")
HOSTING_WSGI = ("flask-gunicorn", "flask-granian", "covet-host-flask")
HOSTING_SERVERS = HOSTING_ASGI + HOSTING_WSGI
HOSTING_SCENARIOS = ("plaintext", "json", "params", "post-json")

VENV = "hosting"
FASTAPI_DIR = PEERS / "fastapi"
FLASK_DIR = PEERS / "hosting"
GUNICORN_THREADS = 8
HTTP_ONLY = "the hosting comparison measures HTTP (WebSocket hosting is not part of it)"
NO_TLS = "not configured with TLS in the hosting comparison (plain HTTP/1.1 only)"
PACKAGES = ("fastapi", "starlette", "pydantic", "hypercorn", "granian", "uvloop", "flask", "werkzeug", "gunicorn",
            "orjson")


def site_packages(venv: Path = VENVS / VENV) -> Path:
    """The hosting venv's site-packages."""
    return venv_site_packages(venv)


def _bin(name: str) -> str:
    return str(VENVS / VENV / "bin" / name)


def install_peers(ctx: Ctx) -> None:
    ensure_venv(VENV, ctx)


def install_covet_mode(module: str, what: str) -> Callable[[Ctx], None]:
    """CovetPy's interpreter must import covet (as for covet-async) and `module` (the host or the shim), and the
    hosting venv must be there for the app's packages."""
    def install(ctx: Ctx) -> None:
        install_covet_python(ctx)
        probe = subprocess.run([str(ctx.covet_python), "-c", f"import {module}"], capture_output=True, text=True,
                               cwd="/")
        if probe.returncode != 0:
            raise InstallError(f"this checkout's CovetPy has no {what} yet ({module} does not import: "
                               f"{probe.stderr.strip().splitlines()[-1:] or ['?']})")
        ensure_venv(VENV, ctx)
    return install


def hypercorn_cmd(ctx: Ctx, port: int) -> list[str]:
    return [_bin("hypercorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(ctx.workers), "--worker-class",
            "uvloop", "--backlog", "4096", "--log-level", "warning", "app:app"]


def granian_cmd(interface: str, app: str, working_dir: Path) -> Callable[[Ctx, int], list[str]]:
    def cmd(ctx: Ctx, port: int) -> list[str]:
        out = [_bin("granian"), "--interface", interface, "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(ctx.workers), "--runtime-threads", "1"]
        if interface == "asgi":
            out += ["--loop", "uvloop"]
        return out + ["--no-access-log", "--log-level", "warning", "--backlog", "4096", "--no-ws",
                      "--working-dir", str(working_dir), app]
    return cmd


def gunicorn_cmd(ctx: Ctx, port: int) -> list[str]:
    return [_bin("gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(ctx.workers), "--worker-class",
            "gthread", "--threads", str(GUNICORN_THREADS), "--backlog", "4096", "--log-level", "warning",
            "--chdir", str(FLASK_DIR), "app_flask:app"]


def _peer_versions(ctx: Ctx) -> dict[str, Any]:
    return pip_versions(VENVS / VENV / "bin" / "python", PACKAGES)


def _covet_versions(ctx: Ctx) -> dict[str, Any]:
    return {**covet_python_versions(ctx), "app packages": _peer_versions(ctx)}


def hosting_specs() -> list[ServerSpec]:
    unsupported = {"ws-echo": HTTP_ONLY, "ws-broadcast": HTTP_ONLY}
    covet_env = {"PYTHONPATH": str(site_packages())}
    return [
        ServerSpec(
            "fastapi-hypercorn", "FastAPI + Hypercorn",
            "`hypercorn --workers 1 --worker-class uvloop --backlog 4096 --log-level warning app:app` (h11; no "
            "access log by default), bench/peers/fastapi/app.py",
            install_peers, hypercorn_cmd, _peer_versions, cwd=FASTAPI_DIR, unsupported=unsupported,
        ),
        ServerSpec(
            "fastapi-granian", "FastAPI + Granian ASGI",
            "`granian --interface asgi --workers 1 --runtime-threads 1 --loop uvloop --no-access-log --no-ws`, "
            "bench/peers/fastapi/app.py",
            install_peers, granian_cmd("asgi", "app:app", FASTAPI_DIR), _peer_versions, unsupported=unsupported,
        ),
        ServerSpec(
            "covet-host-fastapi", "FastAPI hosted by CovetPy (ASGI)",
            "`python -m covet run app:app --interface asgi3 --threads 0 --log-level warning` (the FastAPI app "
            "as an ASGI application on the native engine), bench/peers/fastapi/app.py, the hosting venv's packages "
            "on PYTHONPATH",
            install_covet_mode("covet.asgi.server", "ASGI hosting (`covet run --interface asgi3`)"),
            covet_run_command("app:app", FASTAPI_DIR, "--interface", "asgi3"), _covet_versions, env=covet_env,
            unsupported=unsupported,
        ),
        ServerSpec(
            "covet-compat-fastapi", "FastAPI on CovetPy's shim",
            "`python -m covet run app:app --compat fastapi --threads 0 --log-level warning` (the unchanged "
            "FastAPI app on CovetPy's own implementation of the names it imports), bench/peers/fastapi/app.py",
            install_covet_mode("covet.compat", "compatibility shim (`covet run --compat fastapi`)"),
            covet_run_command("app:app", FASTAPI_DIR, "--compat", "fastapi"), _covet_versions, env=covet_env,
            unsupported=unsupported,
        ),
        ServerSpec(
            "flask-gunicorn", "Flask + gunicorn",
            f"`gunicorn --workers 1 --worker-class gthread --threads {GUNICORN_THREADS} --backlog 4096` (keep-alive "
            "needs the threaded worker), bench/peers/hosting/app_flask.py",
            install_peers, gunicorn_cmd, _peer_versions, unsupported=unsupported,
        ),
        ServerSpec(
            "flask-granian", "Flask + Granian WSGI",
            "`granian --interface wsgi --workers 1 --runtime-threads 1 --no-access-log --no-ws`, "
            "bench/peers/hosting/app_flask.py",
            install_peers, granian_cmd("wsgi", "app_flask:app", FLASK_DIR), _peer_versions, unsupported=unsupported,
        ),
        ServerSpec(
            "covet-host-flask", "Flask hosted by CovetPy (WSGI)",
            "`python -m covet run app_flask:app --interface wsgi --threads 0 --log-level warning` (the WSGI "
            "host's default thread pool), bench/peers/hosting/app_flask.py, the hosting venv's packages on PYTHONPATH",
            install_covet_mode("covet.wsgi", "WSGI hosting (`covet run --interface wsgi`)"),
            covet_run_command("app_flask:app", FLASK_DIR, "--interface", "wsgi"), _covet_versions, env=covet_env,
            unsupported=unsupported,
        ),
    ]


__all__ = ["HOSTING_SERVERS", "HOSTING_SCENARIOS", "hosting_specs", "site_packages"]
