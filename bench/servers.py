"""The servers of the benchmark: how each is installed (pinned, from its own registry), started and described,
and ``Running``, the one launcher every measurement goes through (pinned with taskset, first 200 OK timed,
stopped with its whole session).

Every peer serves the same five routes with the same payloads (bench/peers/<name>/):
  GET /plaintext -> ``Hello, World!`` (text/plain)        GET /json -> ``{"message":"Hello, World!"}``
  GET /users/123?q=x -> ``{"id":123,"q":"x"}``             POST /items (1 KB JSON, validated by a model)
  GET /sleep -> awaits 1 ms, then ``Hello, World!``
Headers are each framework's defaults (Date, Server, ... wherever a framework sends them, for us too);
access logging is off everywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import http.client
import resource
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import BENCH, REPO
from .system import cmd_output, file_sha256, git_revision, package_versions, tree_cpu_snapshot, tree_rss_kib
from .tls import TlsFiles, client_context

PEERS = BENCH / "peers"
VENVS = BENCH / ".venvs"
NOFILE = 65536
COVET_PYTHON = REPO / ".venv" / "bin" / "python"  # the repo's dev venv, reused when its covet is complete
NATIVE_BINARIES = (  # examples/native/hello, release build first
    REPO / "build-release" / "examples" / "native" / "hello" / "hello",
    REPO / "build" / "examples" / "native" / "hello" / "hello",
)


class InstallError(RuntimeError):
    """A peer could not be installed here; the message is the exclusion reason."""


class StartError(RuntimeError):
    pass


@dataclass
class Ctx:
    server_cpus: str = "0"
    workers: int = 1
    covet_python: Path = COVET_PYTHON
    covet_python_choice: str = ""
    native_binary: Path | None = None
    log: Callable[[str], None] = print


def _run(cmd: list[str], cwd: Path | None = None, env: dict | None = None, timeout: float = 1200) -> str:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-6:]
        raise InstallError(f"`{shlex.join(cmd)}` exited {p.returncode}: {' / '.join(tail)}")
    return p.stdout


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def ensure_venv(name: str, ctx: Ctx) -> Path:
    """bench/.venvs/<name> with bench/peers/<name>/requirements.txt (exact pins); reinstalled when the pins change."""
    req = PEERS / name / "requirements.txt"
    venv = VENVS / name
    py = venv / "bin" / "python"
    marker = venv / ".bench-requirements"
    want = _digest(req)
    if py.exists() and marker.exists() and marker.read_text().strip() == want:
        return py
    ctx.log(f"installing {name}: pip install -r {req.relative_to(REPO)} into {venv.relative_to(REPO)}")
    if not py.exists():
        _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(req)])
    marker.write_text(want + "\n")
    return py


def pip_versions(py: Path, packages: tuple[str, ...]) -> dict[str, str]:
    return package_versions(py, packages)


# --------------------------------------------------------------------------------------------------
# Server specifications
# --------------------------------------------------------------------------------------------------


@dataclass
class ServerSpec:
    name: str
    label: str
    config: str  # the configuration used, in words ("documented fast configuration")
    install: Callable[[Ctx], None]
    command: Callable[[Ctx, int], list[str]]  # without the taskset prefix
    versions: Callable[[Ctx], dict[str, Any]]
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    unsupported: dict[str, str] = field(default_factory=dict)  # scenario -> reason
    multi_worker: bool = True
    stop_signal: int = signal.SIGTERM
    # the command serving HTTPS (HTTP/1.1 and, where the server has it, h2 via ALPN) with the run's certificate;
    # None: no TLS configuration (its TLS scenarios are excluded, with a reason in ``unsupported``)
    tls_command: Callable[[Ctx, int, TlsFiles], list[str]] | None = None
    # the command of the instance serving the WebSocket scenarios (their own instance, started after the plain
    # one); None: the plain command
    ws_command: Callable[[Ctx, int], list[str]] | None = None


def _uvicorn_tls(app_dir: str) -> Callable[[Ctx, int, TlsFiles], list[str]]:
    plain = _uvicorn(app_dir)
    return lambda ctx, port, tls: plain(ctx, port) + ["--ssl-certfile", str(tls.cert), "--ssl-keyfile", str(tls.key)]


def _uvicorn(app_dir: str, ws: str | None = None) -> Callable[[Ctx, int], list[str]]:
    def cmd(ctx: Ctx, port: int) -> list[str]:
        out = [str(VENVS / app_dir / "bin" / "python"), "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
               "--port", str(port), "--loop", "uvloop", "--http", "httptools"]
        if ws:
            out += ["--ws", ws]
        out += ["--no-access-log", "--log-level", "warning", "--backlog", "4096", "--app-dir", str(PEERS / app_dir)]
        if ctx.workers > 1:
            out += ["--workers", str(ctx.workers)]
        return out
    return cmd


def _venv_installer(name: str) -> Callable[[Ctx], None]:
    return lambda ctx: (ensure_venv(name, ctx), None)[1]


def _venv_versions(name: str, packages: tuple[str, ...]) -> Callable[[Ctx], dict[str, Any]]:
    return lambda ctx: pip_versions(VENVS / name / "bin" / "python", packages)


# ---- CovetPy ------------------------------------------------------------------------------------

def covet_import_error(python: Path) -> str | None:
    """None when ``python`` imports covet with its native module (and pydantic), else why not.

    Run from / so that the checkout's own bindings/python cannot stand in for an installed covet."""
    if not python.exists():
        return f"{python} does not exist"
    probe = subprocess.run([str(python), "-c", "import covet._native, covet.cli, pydantic"],
                           capture_output=True, text=True, cwd="/")
    return None if probe.returncode == 0 else (probe.stderr.strip()[-200:] or f"exit status {probe.returncode}")


def install_covet_python(ctx: Ctx) -> None:
    error = covet_import_error(Path(ctx.covet_python))
    if error is not None:
        raise InstallError(f"covet not importable by {ctx.covet_python}: {error} "
                           f"(run with --covet-venv fresh to pip install the repo into bench/.venv-covet)")


COVET_VENV_STAMP = "covet-source-commit"  # in bench/.venv-covet: the commit it was installed from


def source_commit_if_clean(repo: Path = REPO) -> str | None:
    """HEAD's full hash when no file that goes into the wheel differs from it, else None.

    Changes under bench/ and docs/ don't count: runs write results there and neither is in the wheel."""
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True)
    if head.returncode != 0 or status.returncode != 0:
        return None
    for line in status.stdout.splitlines():
        path = line[3:].split(" -> ")[-1].strip('"')
        if not path.startswith(("bench/", "docs/")):
            return None
    return head.stdout.strip() or None


def covet_venv_is_current(venv: Path, commit: str | None) -> bool:
    """True when ``venv`` was pip-installed from ``commit`` (a clean checkout) and its covet still imports."""
    stamp = venv / COVET_VENV_STAMP
    if commit is None or not stamp.exists() or stamp.read_text().strip() != commit:
        return False
    return covet_import_error(venv / "bin" / "python") is None


def ensure_fresh_covet_venv(ctx: Ctx) -> Path:
    """pip install this repo into bench/.venv-covet (build dir under bench/, not the repo's build-py/).

    Skipped when the venv already holds this very commit of a clean checkout (a second `--quick` pass shouldn't pay
    for a pip rebuild); any local change to the sources reinstalls."""
    venv = BENCH / ".venv-covet"
    py = venv / "bin" / "python"
    commit = source_commit_if_clean()
    if covet_venv_is_current(venv, commit):
        ctx.log(f"bench/.venv-covet already holds this checkout ({commit[:12]}, clean); not reinstalling")
        return py
    if not py.exists():
        _run([sys.executable, "-m", "venv", str(venv)])
    ctx.log("pip installing this repo into bench/.venv-covet (C++ build, several minutes)")
    (venv / COVET_VENV_STAMP).unlink(missing_ok=True)
    _run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
          "--config-settings=build-dir=" + str(BENCH / ".build-covet"), str(REPO), "pydantic==2.14.4"],
         timeout=3600)
    if commit is not None:
        (venv / COVET_VENV_STAMP).write_text(commit + "\n")
    return py


def covet_python_versions(ctx: Ctx) -> dict[str, Any]:
    v = pip_versions(ctx.covet_python, ("covetpy", "pydantic", "pydantic_core"))
    v["git"] = git_revision()
    v["interpreter"] = str(ctx.covet_python)
    v["choice"] = ctx.covet_python_choice
    return v


def covet_run_command(app: str, app_dir: Path, *flags: str) -> Callable[[Ctx, int], list[str]]:
    """``covet run APP`` as a user starts it: one worker serves in that process (engine on its event-loop thread),
    ``--workers N`` for more (a master and N worker processes)."""
    def cmd(ctx: Ctx, port: int) -> list[str]:
        workers = ["--workers", str(ctx.workers)] if ctx.workers > 1 else []
        return [str(ctx.covet_python), "-m", "covet", "run", app, *workers, "--port", str(port), "--threads", "0",
                "--log-level", "warning", "--app-dir", str(app_dir), *flags]
    return cmd


def _covet_python_cmd(module: str) -> Callable[[Ctx, int], list[str]]:
    return covet_run_command(f"{module}:app", PEERS / "covet")


def _covet_python_tls_cmd(module: str) -> Callable[[Ctx, int, TlsFiles], list[str]]:
    """covet's TLS flags (HTTP/2 via ALPN is on by default; ``--no-http2`` would turn it off)."""
    plain = _covet_python_cmd(module)
    return lambda ctx, port, tls: plain(ctx, port) + ["--ssl-certfile", str(tls.cert), "--ssl-keyfile", str(tls.key)]


def native_binary(ctx: Ctx) -> Path | None:
    if ctx.native_binary:
        return ctx.native_binary
    for p in NATIVE_BINARIES:
        if Path(p).exists():
            return Path(p)
    return None


def install_covet_native(ctx: Ctx) -> None:
    if native_binary(ctx) is None:
        ctx.log("building the native example: scripts/build.sh release")
        _run(["bash", str(REPO / "scripts" / "build.sh"), "release"], cwd=REPO, timeout=3600)
        if native_binary(ctx) is None:
            raise InstallError("scripts/build.sh release did not produce build-release/examples/native/hello/hello")


def covet_native_versions(ctx: Ctx) -> dict[str, Any]:
    b = native_binary(ctx)
    return {"binary": str(b.relative_to(REPO)) if b and b.is_relative_to(REPO) else str(b),
            "sha256": file_sha256(str(b))[:16] if b else None, "git": git_revision()}


def covet_native_cmd(ctx: Ctx, port: int) -> list[str]:
    return [str(native_binary(ctx)), "--port", str(port), "--threads", str(ctx.workers), "--log-level", "warn"]


def covet_native_tls_cmd(ctx: Ctx, port: int, tls: TlsFiles) -> list[str]:
    """HTTPS with h2 via ALPN (on by default in hello; ``--no-http2`` turns it off)."""
    return covet_native_cmd(ctx, port) + ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]


# ---- nginx --------------------------------------------------------------------------------------

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def install_nginx(ctx: Ctx) -> None:
    if not Path(NGINX).exists():
        ctx.log("installing nginx-light (apt)")
        _run(["apt-get", "install", "-y", "-q", "nginx-light"])
    if not Path(NGINX).exists() and not shutil.which("nginx"):
        raise InstallError("nginx not found and `apt-get install nginx-light` did not provide it")


NGINX_TEMPLATE = PEERS / "nginx" / "nginx.conf.template"
NGINX_TLS_TEMPLATE = PEERS / "nginx" / "nginx-tls.conf.template"


def render_nginx_conf(template: str, port: int, tmpdir: str, user: str | None) -> str:
    """Fill an nginx template's placeholders; ``user`` is emitted only when the master runs as root."""
    conf = (
        template.replace("@PORT@", str(port))
        .replace("@TMPDIR@", tmpdir)
        .replace("@USER_DIRECTIVE@", f"user {user};" if user else "")
    )
    left = re.findall(r"@[A-Z_]+@", conf)
    if left:
        raise ValueError(f"unfilled placeholders in nginx template: {sorted(set(left))}")
    return conf


def nginx_conf(ctx: Ctx, port: int, tmp: Path, tls: TlsFiles | None = None) -> Path:
    """bench/peers/nginx/nginx.conf.template, with worker_processes = --workers and room for 10,000 connections.

    With ``tls``: bench/peers/nginx/nginx-tls.conf.template (``listen … ssl http2``, TLSv1.2/1.3, the run's
    certificate), otherwise the same routes, payloads and settings."""
    if tls is None:
        template = NGINX_TEMPLATE.read_text()
    else:
        template = (NGINX_TLS_TEMPLATE.read_text().replace("@TLS_CERT@", str(tls.cert))
                    .replace("@TLS_KEY@", str(tls.key)))
    template = template.replace("worker_processes 1;", f"worker_processes {ctx.workers};")
    template = template.replace("worker_connections 8192;", "worker_connections 20000;")
    template = template.replace("events {", f"worker_rlimit_nofile {NOFILE};\n\nevents {{")
    user = None
    if os.geteuid() == 0:
        import pwd
        user = pwd.getpwuid(os.geteuid()).pw_name
    conf = tmp / "nginx.conf"
    conf.write_text(render_nginx_conf(template, port, str(tmp), user))
    return conf


def nginx_versions(ctx: Ctx) -> dict[str, Any]:
    return {"nginx": cmd_output([NGINX, "-v"]).replace("nginx version: ", "")}


# ---- Node / Express -----------------------------------------------------------------------------

def install_express(ctx: Ctx) -> None:
    d = PEERS / "express"
    if not shutil.which("node") or not shutil.which("npm"):
        raise InstallError("node/npm not installed (apt-get install nodejs npm)")
    marker = d / "node_modules" / ".bench-lock"
    want = _digest(d / "package-lock.json")
    if marker.exists() and marker.read_text().strip() == want:
        return
    ctx.log("installing express: npm ci (bench/peers/express/package-lock.json)")
    _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=d)
    marker.write_text(want + "\n")


def express_versions(ctx: Ctx) -> dict[str, Any]:
    pkg = PEERS / "express" / "node_modules" / "express" / "package.json"
    try:
        ev = json.loads(pkg.read_text())["version"]
    except (OSError, ValueError, KeyError):
        ev = "missing"
    return {"express": ev, "node": cmd_output(["node", "--version"])}


# ---- actix-web ----------------------------------------------------------------------------------

ACTIX_BIN = PEERS / "actix" / "target" / "release" / "covet-bench-actix"


def install_actix(ctx: Ctx) -> None:
    if not shutil.which("cargo"):
        raise InstallError("cargo not installed (rustup or apt-get install cargo)")
    if not ACTIX_BIN.exists():
        ctx.log("building actix peer: cargo build --release --locked (a few minutes)")
    _run(["cargo", "build", "--release", "--locked", "-q"], cwd=PEERS / "actix", timeout=3600)


def actix_versions(ctx: Ctx) -> dict[str, Any]:
    lock = (PEERS / "actix" / "Cargo.lock").read_text()
    out = {}
    for crate in ("actix-web", "actix-http", "tokio", "serde_json"):
        m = re.search(r'name = "%s"\nversion = "([^"]+)"' % re.escape(crate), lock)
        out[crate] = m.group(1) if m else "?"
    out["rustc"] = cmd_output(["rustc", "--version"])
    return out


# --------------------------------------------------------------------------------------------------

UVICORN_PKGS = ("uvicorn", "uvloop", "httptools", "pydantic")

# Why a server sits out the TLS / HTTP/2 scenarios (https-plaintext, h2-plaintext, h2c-plaintext).
NO_H2_UVICORN = "uvicorn has no HTTP/2 (HTTP/1.1 only, h11 or httptools)"
UVICORN_TLS_ONCE = ("uvicorn's TLS (`--ssl-certfile`) is measured once, with the FastAPI app (same uvicorn + uvloop + "
                    "httptools stack), to keep the default run short")
COVET_SYNC_TLS = ("same engine, TLS and HTTP/2 layer as covet-async (only handler dispatch differs); left out of the "
                  "TLS/HTTP/2 scenarios to keep the default run short")


def _reasons(https: str | None, h2: str | None, h2c: str | None) -> dict[str, str]:
    return {k: v for k, v in (("https-plaintext", https), ("h2-plaintext", h2), ("h2c-plaintext", h2c)) if v}


# Why a server sits out the WebSocket scenarios (ws-echo, ws-broadcast).
def _no_ws(reason: str) -> dict[str, str]:
    return {"ws-echo": reason, "ws-broadcast": reason}


COVET_SYNC_WS = ("same engine and WebSocket layer as covet-async (WebSocket handlers are `async def` either way); "
                 "left out of the WebSocket scenarios to keep the default run short")
UVICORN_WS_ONCE = ("uvicorn's WebSocket stack (`--ws websockets`, Starlette's `WebSocket`) is measured once, with the "
                   "FastAPI app, to keep the default run short")


def all_specs() -> dict[str, ServerSpec]:
    specs = [
        ServerSpec(
            "covet-native", "CovetPy native (C++)",
            "examples/native/hello, `--threads 1`, backend auto (io_uring where available), log level warn; "
            "post-json: `covet::json_body<Item>` (the C++ model layer on simdjson); "
            "TLS: `--tls-cert/--tls-key` (h2 via ALPN on by default; h2c on the plain port)",
            install_covet_native, covet_native_cmd, covet_native_versions,
            tls_command=covet_native_tls_cmd,
        ),
        ServerSpec(
            "covet-async", "CovetPy Python async",
            "`python -m covet run app_async:app --threads 0 --log-level warning` (one process, the engine on its "
            "event-loop thread); "
            "TLS: `--ssl-certfile/--ssl-keyfile` (HTTP/2 via ALPN on by default)",
            install_covet_python, _covet_python_cmd("app_async"), covet_python_versions,
            tls_command=_covet_python_tls_cmd("app_async"),
        ),
        ServerSpec(
            "covet-sync", "CovetPy Python sync",
            "`def` handlers in covet's thread pool (the default for sync handlers), otherwise as covet-async",
            install_covet_python, _covet_python_cmd("app_sync"), covet_python_versions,
            unsupported={**_reasons(COVET_SYNC_TLS, COVET_SYNC_TLS, COVET_SYNC_TLS), **_no_ws(COVET_SYNC_WS)},
        ),
        ServerSpec(
            "fastapi", "FastAPI + uvicorn",
            "uvicorn `--loop uvloop --http httptools --no-access-log --log-level warning`, one process; "
            "TLS: `--ssl-certfile/--ssl-keyfile`; WebSocket: its instance with `--ws websockets` (the "
            "`websockets` library's implementation, which uvicorn 0.54 marks deprecated in favour of websockets-sansio); broadcast = a Python loop over the room's set of connections)",
            _venv_installer("fastapi"), _uvicorn("fastapi"),
            _venv_versions("fastapi", ("fastapi", "starlette", "pydantic") + UVICORN_PKGS[:3] + ("websockets",)),
            unsupported=_reasons(None, NO_H2_UVICORN, NO_H2_UVICORN), tls_command=_uvicorn_tls("fastapi"),
            ws_command=_uvicorn("fastapi", ws="websockets"),
        ),
        ServerSpec(
            "starlette", "Starlette + uvicorn",
            "uvicorn as for FastAPI; pydantic `model_validate_json` in the POST handler",
            _venv_installer("starlette"), _uvicorn("starlette"),
            _venv_versions("starlette", ("starlette",) + UVICORN_PKGS),
            unsupported={**_reasons(UVICORN_TLS_ONCE, NO_H2_UVICORN, NO_H2_UVICORN), **_no_ws(UVICORN_WS_ONCE)},
        ),
        ServerSpec(
            "granian-rsgi", "Granian RSGI",
            "`granian --interface rsgi --workers 1 --runtime-threads 1 --loop uvloop --no-access-log`, bare RSGI app "
            "(`response_str`/`response_bytes`, orjson); TLS: `--ssl-certificate/--ssl-keyfile --http auto` (h2 or "
            "HTTP/1.1 by ALPN, TLS 1.3 minimum by default); WebSocket: its instance without `--no-ws`, RSGI's "
            "WebSocket protocol (`proto.accept()`, `send_str`), broadcast = a Python loop over the room's transports",
            _venv_installer("granian"), lambda ctx, port: _granian(ctx, port, "rsgi"),
            _venv_versions("granian", ("granian", "uvloop", "orjson", "pydantic")),
            tls_command=lambda ctx, port, tls: _granian(ctx, port, "rsgi", tls),
            ws_command=lambda ctx, port: _granian(ctx, port, "rsgi", ws=True),
        ),
        ServerSpec(
            "granian-asgi", "Granian ASGI",
            "as granian-rsgi with `--interface asgi`, bare ASGI app (no framework); WebSocket: Granian's own "
            "WebSocket server (instance without `--no-ws`) with Starlette's `WebSocket` class, broadcast = a Python "
            "loop over the room's set of connections",
            _venv_installer("granian"), lambda ctx, port: _granian(ctx, port, "asgi"),
            _venv_versions("granian", ("granian", "uvloop", "orjson", "pydantic", "starlette")),
            tls_command=lambda ctx, port, tls: _granian(ctx, port, "asgi", tls),
            ws_command=lambda ctx, port: _granian(ctx, port, "asgi", ws=True),
        ),
        ServerSpec(
            "robyn", "Robyn",
            "`python app.py --processes 1 --workers 1 --log-level WARN`, async handlers, pydantic body",
            _venv_installer("robyn"), _robyn, _venv_versions("robyn", ("robyn", "pydantic")),
            cwd=PEERS / "robyn",
            unsupported={**_reasons(*["Robyn's CLI/`app.start` have no TLS or HTTP/2 options"] * 3),
                         **_no_ws("the peer has no WebSocket routes (Robyn's own WebSocket API is not configured in "
                                  "the suite)")},
        ),
        ServerSpec(
            "socketify", "socketify.py",
            "`python app.py` (CPython, one process, sync handlers except /items and /sleep, which answer with "
            "`cork_send` after their `await` as socketify's async examples do), orjson, pydantic. /items keeps a "
            "reference to the response while `await res.get_data()` waits: without it socketify 0.0.31 dies under "
            "concurrent POSTs (the garbage collector frees the response/future/task cycle that only uWS's raw handle "
            "points to: Fatal Python error `ffi.from_handle()` in its on_data callback, as in socketify.py#36)",
            _venv_installer("socketify"),
            lambda ctx, port: [str(VENVS / "socketify" / "bin" / "python"), str(PEERS / "socketify" / "app.py")],
            _venv_versions("socketify", ("socketify", "cffi", "orjson", "pydantic")),
            cwd=PEERS / "socketify", multi_worker=False,
            unsupported={**_reasons("the peer serves plain HTTP (socketify's SSL app is not configured in the suite)",
                                    "uWebSockets (socketify.py) has no HTTP/2", "uWebSockets (socketify.py) has no HTTP/2"),
                         **_no_ws("the peer has no WebSocket routes (socketify's `app.ws` behaviors are not "
                                  "configured in the suite)")},
        ),
        ServerSpec(
            "blacksheep", "BlackSheep + uvicorn",
            "uvicorn as for FastAPI; body bound with `FromJSON[Item]` (pydantic)",
            _venv_installer("blacksheep"), _uvicorn("blacksheep"),
            _venv_versions("blacksheep", ("blacksheep", "pydantic") + UVICORN_PKGS[:3]),
            unsupported={**_reasons(UVICORN_TLS_ONCE, NO_H2_UVICORN, NO_H2_UVICORN),
                         **_no_ws("the peer has no WebSocket routes (BlackSheep's `@ws` routes are not configured "
                                  "in the suite)")},
        ),
        ServerSpec(
            "express", "Express (Node.js)",
            "`NODE_ENV=production node app.js`, one process, no logging middleware, `express.json()` + hand check",
            install_express, lambda ctx, port: ["node", str(PEERS / "express" / "app.js")], express_versions,
            cwd=PEERS / "express", env={"NODE_ENV": "production"}, multi_worker=False,
            unsupported={**_reasons("the peer listens with node:http (TLS via node:https is not configured in the suite)",
                                    "Express runs on node:http (HTTP/1.1); the peer does not use node:http2",
                                    "Express runs on node:http (HTTP/1.1); the peer does not use node:http2"),
                         **_no_ws("Express has no WebSocket support of its own (it takes a library such as `ws`, "
                                  "not installed in the peer)")},
        ),
        ServerSpec(
            "actix", "actix-web (Rust)",
            "`HttpServer::workers(1)`, release build (LTO, codegen-units 1), no logger, `web::Json<Item>` (serde)",
            install_actix, lambda ctx, port: [str(ACTIX_BIN)], actix_versions,
            unsupported={**_reasons(
                "the peer is built without actix-web's rustls/openssl features (no TLS)",
                "the peer is built without actix-web's rustls/openssl features (no TLS, so no h2 via ALPN)",
                "the peer binds with `HttpServer::bind` (HTTP/1.1; h2c would need `bind_auto_h2c`)"),
                **_no_ws("actix-web's WebSocket support is a separate crate (actix-ws), not in the peer's Cargo.lock")},
        ),
        ServerSpec(
            "nginx", "nginx `return 200`",
            "bench/peers/nginx/nginx.conf.template: 1 worker, access_log off, `return 200` for /plaintext and /json; "
            "TLS: bench/peers/nginx/nginx-tls.conf.template (`listen … ssl http2`, TLSv1.2/1.3, same routes)",
            install_nginx, lambda ctx, port: [NGINX], nginx_versions,
            unsupported={**{s: "nginx is the C reference: static `return 200` routes only"
                            for s in ("params", "post-json", "io-sleep")},
                         "h2c-plaintext": "nginx 1.22 speaks h2c only on a `listen … http2` port without TLS, which "
                                          "then refuses HTTP/1.1 (no prior-knowledge detection before 1.25.1)",
                         **_no_ws("nginx proxies WebSocket but cannot echo or broadcast messages itself (no "
                                  "application)")},
            stop_signal=signal.SIGQUIT,
            tls_command=lambda ctx, port, tls: [NGINX],  # + -c TMP/nginx.conf from nginx-tls.conf.template
        ),
    ]
    from .hosting import hosting_specs  # the hosting comparison's servers (`--hosting`); it imports this module
    specs += hosting_specs()
    from .overhead import overhead_specs  # the observability overhead's servers (`--overhead`)
    specs += overhead_specs()
    return {s.name: s for s in specs}


def _granian(ctx: Ctx, port: int, iface: str, tls: TlsFiles | None = None, ws: bool = False) -> list[str]:
    """Granian's command; ``ws``: with its WebSocket support (the default), for the WebSocket instance only, so the
    HTTP scenarios keep `--no-ws`."""
    out = [str(VENVS / "granian" / "bin" / "granian"), "--interface", iface, "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(ctx.workers), "--runtime-threads", "1", "--loop", "uvloop",
           "--no-access-log", "--log-level", "warning", "--backlog", "4096"] + ([] if ws else ["--no-ws"]) + [
           "--working-dir", str(PEERS / "granian")]
    if tls is not None:
        # `--http auto` (the default, spelled out): h2 or HTTP/1.1 by ALPN; TLS 1.3 minimum is Granian's default
        out += ["--http", "auto", "--ssl-certificate", str(tls.cert), "--ssl-keyfile", str(tls.key)]
    return out + [f"app_{iface}:app"]


def _robyn(ctx: Ctx, port: int) -> list[str]:
    return [str(VENVS / "robyn" / "bin" / "python"), str(PEERS / "robyn" / "app.py"),
            "--processes", str(ctx.workers), "--workers", "1", "--log-level", "WARN"]


# --------------------------------------------------------------------------------------------------
# A running server
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_200(proc: subprocess.Popen[bytes], port: int, deadline: float, path: str = "/plaintext") -> str:
    """Polls ``GET path`` until the server answers 200 OK: "" then, else why not (the process exited first,
    or `deadline` (time.monotonic) passed). Used to time launch -> first 200 OK."""
    while True:
        if proc.poll() is not None:
            return f"exited with status {proc.returncode} before answering"
        if time.monotonic() > deadline:
            return f"no 200 OK on GET {path} in time"
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                return ""
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.002)


def wait_for_200_tls(proc: subprocess.Popen, port: int, deadline: float, tls: TlsFiles,
                     path: str = "/plaintext") -> str:
    """As ``wait_for_200``, over HTTPS verified against the run's CA. A handshake that fails verification is
    reported at once (it will not get better by waiting)."""
    ctx = client_context(tls, ["http/1.1"])
    last = ""
    tls_errors = 0
    while True:
        if proc.poll() is not None:
            return f"exited with status {proc.returncode} before answering over TLS"
        if time.monotonic() > deadline:
            return f"no 200 OK on GET https://…{path} in time{f' (last: {last})' if last else ''}"
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=ctx)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                return ""
            last = f"status {resp.status}"
        except ssl.SSLCertVerificationError as exc:
            return f"TLS certificate verification failed: {exc}"
        except ssl.SSLError as exc:  # the port is open but does not speak TLS (as configured)
            tls_errors += 1
            if tls_errors >= 20:
                return f"no TLS handshake on the port: {exc}"
            last = repr(exc)[:120]
        except (OSError, http.client.HTTPException) as exc:
            last = repr(exc)[:120]
        time.sleep(0.005)


def stop_process(proc: subprocess.Popen[bytes] | None, graceful: int, grace: float) -> None:
    """Stops a server started with start_new_session=True: `graceful` signal, SIGKILL after `grace` s,
    then whatever is left of its session (e.g. an nginx worker), by process group id."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(graceful)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def file_tail(path: Path, n: int = 800) -> str:
    try:
        data = path.read_bytes()[-n:]
    except FileNotFoundError:
        return ""
    return data.decode("utf-8", "replace").strip()


def raise_nofile() -> None:
    """Lift this process's open-file limit (10,000 connections need it; servers inherit it)."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Running:
    """One started server process (tree), pinned to the server CPUs; with ``tls``, its HTTPS configuration."""

    def __init__(self, spec: ServerSpec, ctx: Ctx, tls: TlsFiles | None = None, ws: bool = False):
        if tls is not None and spec.tls_command is None:
            raise ValueError(f"{spec.name} has no TLS configuration")
        self.spec, self.ctx, self.tls, self.ws = spec, ctx, tls, ws
        self.tmp = Path(tempfile.mkdtemp(prefix=f"covet-matrix-{spec.name}-"))
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.startup_ms: float | None = None
        self.command: list[str] = []

    def _command(self, port: int) -> list[str]:
        if self.tls is not None:
            return self.spec.tls_command(self.ctx, port, self.tls)
        if self.ws and self.spec.ws_command is not None:
            return self.spec.ws_command(self.ctx, port)
        return self.spec.command(self.ctx, port)

    def describe(self) -> str:
        cmd = self._command(0)
        if self.spec.name == "nginx":
            cmd = cmd + ["-p", "TMP", "-c", "TMP/nginx.conf", "-g", "'daemon off;'"]
        text = " ".join(shlex.quote(c) if c != "'daemon off;'" else c for c in cmd)
        text = text.replace("--port 0", "--port N").replace(str(REPO) + "/", "")
        if self.tls is not None:
            text = text.replace(str(self.tls.cert), "CERT.pem").replace(str(self.tls.key), "KEY.pem")
            if self.spec.name == "nginx":
                text += f" ({NGINX_TLS_TEMPLATE.relative_to(REPO)})"
        env = " ".join(f"{k}={v}" for k, v in self.spec.env.items())
        port_env = "BENCH_PORT=N " if self.spec.name in ("robyn", "socketify", "express", "actix") else ""
        return f"{port_env}{env + ' ' if env else ''}taskset -c {self.ctx.server_cpus} {text}"

    def start(self, timeout: float = 45.0) -> float:
        """Launch, wait for the first ``200`` on GET /plaintext (over verified TLS for a TLS instance);
        returns launch -> first 200 OK in ms."""
        self.stop()
        self.port = free_port()
        cmd = self._command(self.port)
        if self.spec.name == "nginx":
            conf = nginx_conf(self.ctx, self.port, self.tmp, self.tls)
            cmd = cmd + ["-p", str(self.tmp), "-e", str(self.tmp / "error.log"), "-c", str(conf), "-g", "daemon off;"]
        self.command = ["taskset", "-c", self.ctx.server_cpus] + cmd
        env = {**os.environ, **self.spec.env, "BENCH_PORT": str(self.port), "BENCH_WORKERS": str(self.ctx.workers),
               "PYTHONUNBUFFERED": "1"}
        log = open(self.tmp / "server.log", "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True, cwd=str(self.spec.cwd or self.tmp), env=env,
                                     preexec_fn=raise_nofile)
        log.close()
        if self.tls is None:
            failure = wait_for_200(self.proc, self.port, t0 + timeout)
        else:
            failure = wait_for_200_tls(self.proc, self.port, t0 + timeout, self.tls)
        if failure:
            raise StartError(f"{failure} (limit {timeout:.0f} s): {self.log_tail()}")
        self.startup_ms = (time.monotonic() - t0) * 1e3
        return self.startup_ms

    def log_tail(self, n: int = 400) -> str:
        return (file_tail(self.tmp / "server.log", n) or file_tail(self.tmp / "error.log", n)).replace("\n", " / ")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int:
        return tree_rss_kib(self.proc.pid) if self.alive() else 0

    def cpu_ticks(self) -> dict[int, int]:
        return tree_cpu_snapshot(self.proc.pid) if self.alive() else {}

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc, self.spec.stop_signal, grace=5)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
