"""The servers of the benchmark: how each is installed (pinned, from its own registry), started and described,
and ``Running``, the one launcher every measurement goes through (pinned with taskset, first 200 OK timed,
stopped with its whole session).

Every HTTP peer serves the same five routes with the same payloads (bench/peers/<name>/):
  GET /plaintext -> ``Hello, World!`` (text/plain)        GET /json -> ``{"message":"Hello, World!"}``
  GET /users/123?q=x -> ``{"id":123,"q":"x"}``             POST /items (1 KB JSON, validated by a model)
  GET /sleep -> awaits 1 ms, then ``Hello, World!``
Headers are each framework's defaults (Date, Server, ... wherever a framework sends them, for us too);
access logging is off everywhere. The gRPC scenarios' servers (CovetPy's two, and the gRPC peers grpcio, grpc-go,
grpc-cpp, which serve nothing else) serve the Greeter of examples/native/grpc_greeter/greeter.proto over h2c, from
bench/peers/grpc/ (and examples/native/grpc_greeter for CovetPy's C++ API). The HTTP/3 scenarios' servers answer
GET /plaintext and POST /echo (the body back, with its content type) over QUIC on an instance of their own started
with the run's certificate: CovetPy's two with --http3, and the HTTP/3 peers Caddy (bench/peers/caddy) and Hypercorn
with aioquic (bench/peers/hypercorn-h3, the FastAPI app), which serve TLS scenarios only.
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

from . import BENCH, REPO, h3load
from .loadgen import GO_BIN_CACHE, GREETER_PROTO, GoToolError, go_binary, go_install
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
    # the command of the instance serving the gRPC scenarios (the Greeter over h2c, an instance of its own, started
    # last), its environment on top of ``env``, and what it needs installed beyond ``install``; None: no gRPC
    grpc_command: Callable[[Ctx, int], list[str]] | None = None
    grpc_env: dict[str, str] = field(default_factory=dict)
    grpc_install: Callable[[Ctx], None] | None = None
    serves_http: bool = True  # False: a gRPC peer, which sits out every HTTP scenario (and the cold starts)
    # the command of the instance serving the HTTP/3 scenarios (QUIC on the TLS port number, with the run's
    # certificate; an instance of its own, started after the TLS one); None: no HTTP/3
    h3_command: Callable[[Ctx, int, TlsFiles], list[str]] | None = None
    # True: an HTTP/3 peer: serves over TLS only (it sits out the cleartext scenarios and the cold starts) and is in
    # the default list only when an HTTP/3 scenario runs
    h3_peer: bool = False
    # writes what the command needs into the instance's temp directory before it starts (a configuration file):
    # (ctx, port, tmp, tls, h3)
    prepare: Callable[[Ctx, int, Path, TlsFiles | None, bool], None] | None = None
    config_template: Path | None = None  # what ``prepare`` fills in (named in the described command)


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


# CovetPy's `speed` extra as the fresh venv gets it (the same uvloop as the uvicorn and Granian peers): `covet run`'s
# `--loop auto` serves on it when it is installed, as a user's `pip install covetpy[speed]` does.
COVET_UVLOOP = "uvloop==0.23.0"


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
          "--config-settings=build-dir=" + str(BENCH / ".build-covet"), f"{REPO}[speed]", "pydantic==2.14.4",
          COVET_UVLOOP],
         timeout=3600)
    if commit is not None:
        (venv / COVET_VENV_STAMP).write_text(commit + "\n")
    return py


def covet_python_versions(ctx: Ctx) -> dict[str, Any]:
    # uvloop: "missing" when the interpreter has none, and `covet run` then serves on asyncio's own loop
    v = pip_versions(ctx.covet_python, ("covetpy", "pydantic", "pydantic_core", "uvloop"))
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


def _covet_python_h3_cmd(module: str) -> Callable[[Ctx, int, TlsFiles], list[str]]:
    """The TLS instance's command with ``--http3``: HTTP/3 over QUIC on the same port number (UDP)."""
    secure = _covet_python_tls_cmd(module)
    return lambda ctx, port, tls: secure(ctx, port, tls) + ["--http3"]


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
    out = {"binary": str(b.relative_to(REPO)) if b and b.is_relative_to(REPO) else str(b),
           "sha256": file_sha256(str(b))[:16] if b else None, "git": git_revision()}
    greeter = greeter_binary(ctx)
    if greeter.exists():  # the gRPC instance's binary
        out["grpc_greeter"] = (f"{greeter.relative_to(REPO) if greeter.is_relative_to(REPO) else greeter} "
                               f"(sha256 {(file_sha256(str(greeter)) or '?')[:16]})")
    return out


def covet_native_cmd(ctx: Ctx, port: int) -> list[str]:
    return [str(native_binary(ctx)), "--port", str(port), "--threads", str(ctx.workers), "--log-level", "warn"]


def covet_native_tls_cmd(ctx: Ctx, port: int, tls: TlsFiles) -> list[str]:
    """HTTPS with h2 via ALPN (on by default in hello; ``--no-http2`` turns it off)."""
    return covet_native_cmd(ctx, port) + ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]


def covet_native_h3_cmd(ctx: Ctx, port: int, tls: TlsFiles) -> list[str]:
    """The TLS instance's command with ``--http3``: HTTP/3 over QUIC on the same port number (UDP)."""
    return covet_native_tls_cmd(ctx, port, tls) + ["--http3"]


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


# ---- gRPC: the Greeter (examples/native/grpc_greeter/greeter.proto) on every gRPC server -----------------

GRPC_PEER = PEERS / "grpc"  # the Python servicer and apps, grpc-go's and C++ gRPC's servers, the gate's client
GRPC_VENV = VENVS / "grpc"  # bench/peers/grpc/requirements.txt: grpcio, grpcio-tools, protobuf, pinned
GRPC_PYTHON = GRPC_VENV / "bin" / "python"
GRPC_BUILD = BENCH / ".grpc"  # generated code and built peers (gitignored), rebuilt when their inputs change
GRPC_GEN = GRPC_BUILD / "py"  # greeter_pb2.py, greeter_pb2_grpc.py
GO_GREETER = GRPC_BUILD / "greeter-go"
CPP_GREETER = GRPC_BUILD / "greeter-cpp"
PROTOC_GEN_GO_VERSION = "v1.36.12"  # google.golang.org/protobuf, as grpc-go v1.85.0 (bench/peers/grpc/go) requires
PROTOC_GEN_GO_GRPC_VERSION = "v1.6.1"  # google.golang.org/grpc/cmd/protoc-gen-go-grpc
GREETER_ENV = "COVET_GRPC_GREETER"  # the path of CovetPy's C++ Greeter, instead of the one next to hello


def venv_site_packages(venv: Path) -> Path:
    """A venv's site-packages (the suite makes its venvs with its own Python, the version CovetPy runs on)."""
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


GRPC_PYTHON_ENV = {"PYTHONPATH": str(GRPC_GEN)}
# CovetPy's interpreter with the gRPC venv's packages first: the very grpcio/protobuf (and generated code) of grpcio
COVET_GRPC_ENV = {"PYTHONPATH": f"{GRPC_GEN}{os.pathsep}{venv_site_packages(GRPC_VENV)}"}


def grpc_check_command() -> tuple[list[str], dict[str, str]]:
    """The gRPC gate's client (bench/peers/grpc/check.py) and its environment."""
    return [str(GRPC_PYTHON), str(GRPC_PEER / "check.py")], GRPC_PYTHON_ENV


def build_once(target: Path, inputs: tuple[Path, ...], build: Callable[[], None], extra: str = "") -> Path:
    """Run ``build`` (which makes ``target``) unless ``target`` was made from these very inputs (and ``extra``: the
    versions of what made it), as recorded next to it in ``<target>.inputs``."""
    stamp = target.with_name(target.name + ".inputs")
    want = _digest(*inputs) + extra
    if target.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return target
    stamp.unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    build()
    stamp.write_text(want + "\n")
    return target


def _protoc(*args: str, cwd: Path | None = None) -> None:
    """The gRPC venv's protoc (grpcio-tools) on greeter.proto."""
    _run([str(GRPC_PYTHON), "-m", "grpc_tools.protoc", f"-I{GREETER_PROTO.parent}", *args, str(GREETER_PROTO)],
         cwd=cwd)


def ensure_grpc_python(ctx: Ctx) -> None:
    """The gRPC venv and the Greeter's Python code, generated by its protoc into bench/.grpc/py."""
    ensure_venv("grpc", ctx)

    def generate() -> None:
        shutil.rmtree(GRPC_GEN, ignore_errors=True)
        GRPC_GEN.mkdir(parents=True)
        _protoc(f"--python_out={GRPC_GEN}", f"--grpc_python_out={GRPC_GEN}")
    build_once(GRPC_GEN, (GREETER_PROTO, GRPC_PEER / "requirements.txt"), generate)


def install_covet_grpc(ctx: Ctx) -> None:
    """covet-async's gRPC instance: CovetPy's interpreter must import covet.grpc and the generated code with the
    gRPC venv's packages first on its path."""
    ensure_grpc_python(ctx)
    probe = subprocess.run([str(ctx.covet_python), "-c", "import covet.grpc, greeter_pb2_grpc"], capture_output=True,
                           text=True, cwd="/", env={**os.environ, **COVET_GRPC_ENV})
    if probe.returncode != 0:
        raise InstallError(f"CovetPy's interpreter cannot import covet.grpc with the gRPC venv's packages: "
                           f"{probe.stderr.strip()[-200:]}")


def grpc_versions(ctx: Ctx) -> dict[str, Any]:
    return pip_versions(GRPC_PYTHON, ("grpcio", "protobuf"))


def grpcio_cmd(ctx: Ctx, port: int) -> list[str]:
    return [str(GRPC_PYTHON), str(GRPC_PEER / "grpcio_server.py"), str(port)]


def greeter_binary(ctx: Ctx) -> Path:
    """CovetPy's C++ Greeter (examples/native/grpc_greeter) of the build tree the native hello binary comes from
    (build-release when there is none yet); $COVET_GRPC_GREETER names another."""
    if os.environ.get(GREETER_ENV):
        return Path(os.environ[GREETER_ENV])
    hello = native_binary(ctx) or NATIVE_BINARIES[0]
    return hello.parents[1] / "grpc_greeter" / "grpc_greeter"


def install_covet_native_grpc(ctx: Ctx) -> None:
    """The C++ Greeter: built with ``cmake --build <tree> --target grpc_greeter`` when the tree lacks it."""
    greeter = greeter_binary(ctx)
    tree = greeter.parents[3]
    if not greeter.exists() and not os.environ.get(GREETER_ENV) and (tree / "CMakeCache.txt").exists():
        ctx.log(f"building the C++ Greeter: cmake --build {tree.relative_to(REPO)} --target grpc_greeter")
        _run(["cmake", "--build", str(tree), "--target", "grpc_greeter"], timeout=3600)
    if not greeter.exists():
        raise InstallError(f"{greeter} is not built (examples/native/grpc_greeter needs protobuf: libprotobuf-dev, "
                           "protobuf-compiler)")


def covet_native_grpc_cmd(ctx: Ctx, port: int) -> list[str]:
    return [str(greeter_binary(ctx)), str(port), "--threads", str(ctx.workers)]


def install_grpc_go(ctx: Ctx) -> None:
    """bench/peers/grpc/go (grpc-go, pinned by its go.mod/go.sum) with its code generated by protoc-gen-go and
    protoc-gen-go-grpc (pinned, ``go install``-ed into the cache) into bench/.grpc/greeter-go."""
    go = go_binary()
    if go is None:
        raise InstallError("no Go toolchain (scripts/setup.sh installs one)")
    ensure_grpc_python(ctx)  # its protoc generates the Go code too
    try:
        gen_go = go_install("google.golang.org/protobuf/cmd/protoc-gen-go", PROTOC_GEN_GO_VERSION, "protoc-gen-go",
                            ctx.log)
        gen_grpc = go_install("google.golang.org/grpc/cmd/protoc-gen-go-grpc", PROTOC_GEN_GO_GRPC_VERSION,
                              "protoc-gen-go-grpc", ctx.log)
    except GoToolError as exc:
        raise InstallError(str(exc)) from None

    def build() -> None:
        ctx.log("building grpc-go's Greeter: protoc-gen-go(-grpc), go build (bench/peers/grpc/go)")
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "go"
            shutil.copytree(GRPC_PEER / "go", source)
            module = "covet.example/greeter"
            _protoc(f"--plugin=protoc-gen-go={gen_go}", f"--plugin=protoc-gen-go-grpc={gen_grpc}",
                    f"--go_out={source}", f"--go-grpc_out={source}", f"--go_opt=Mgreeter.proto={module}/pb",
                    f"--go-grpc_opt=Mgreeter.proto={module}/pb", f"--go_opt=module={module}",
                    f"--go-grpc_opt=module={module}")
            _run([go, "build", "-o", str(GO_GREETER), "."], cwd=source)
    sources = tuple(GRPC_PEER / "go" / f for f in ("main.go", "go.mod", "go.sum"))
    build_once(GO_GREETER, (GREETER_PROTO, *sources), build,
               extra=f" {PROTOC_GEN_GO_VERSION} {PROTOC_GEN_GO_GRPC_VERSION} {cmd_output([go, 'version'])}")


def grpc_go_versions(ctx: Ctx) -> dict[str, Any]:
    mod = (GRPC_PEER / "go" / "go.mod").read_text()
    out = {m: (re.search(rf"{re.escape(m)} (v\S+)", mod) or [None, "?"])[1]
           for m in ("google.golang.org/grpc", "google.golang.org/protobuf")}
    go = go_binary()
    out["go"] = cmd_output([go, "version"]) if go else "missing"
    return out


def _pkg_config(*args: str) -> str | None:
    if not shutil.which("pkg-config"):
        return None
    p = subprocess.run(["pkg-config", *args, "grpc++", "protobuf"], capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else None


def install_grpc_cpp(ctx: Ctx) -> None:
    """bench/peers/grpc/cpp on the C++ gRPC server (Debian's libgrpc++-dev, protobuf-compiler-grpc), its code
    generated by protoc + grpc_cpp_plugin, ``g++ -O2`` into bench/.grpc/greeter-cpp."""
    plugin, protoc, flags = shutil.which("grpc_cpp_plugin"), shutil.which("protoc"), _pkg_config("--cflags", "--libs")
    if plugin is None or protoc is None or flags is None:
        raise InstallError("no grpc_cpp_plugin, protoc or grpc++ (apt-get install protobuf-compiler-grpc "
                           "libgrpc++-dev)")

    def build() -> None:
        ctx.log("building C++ gRPC's Greeter: protoc, g++ -O2 (bench/peers/grpc/cpp)")
        with tempfile.TemporaryDirectory() as tmp:
            _run([protoc, f"-I{GREETER_PROTO.parent}", f"--cpp_out={tmp}", f"--grpc_out={tmp}",
                  f"--plugin=protoc-gen-grpc={plugin}", str(GREETER_PROTO)])
            _run(["g++", "-O2", "-std=c++17", f"-I{tmp}", str(GRPC_PEER / "cpp" / "greeter_server.cc"),
                  f"{tmp}/greeter.pb.cc", f"{tmp}/greeter.grpc.pb.cc", "-o", str(CPP_GREETER), *flags.split()],
                 timeout=3600)
    build_once(CPP_GREETER, (GREETER_PROTO, GRPC_PEER / "cpp" / "greeter_server.cc"), build,
               extra=" " + " ".join((_pkg_config("--modversion") or "").split()))


def grpc_cpp_versions(ctx: Ctx) -> dict[str, Any]:
    grpcpp, _, protobuf = (_pkg_config("--modversion") or "? ?").strip().partition("\n")
    return {"grpc++": grpcpp, "protobuf": protobuf or "?", "g++": cmd_output(["g++", "-dumpfullversion"])}


def grpc_peer(name: str, label: str, config: str, install: Callable[[Ctx], None],
              command: Callable[[Ctx, int], list[str]], versions: Callable[[Ctx], dict[str, Any]],
              env: dict[str, str] | None = None) -> ServerSpec:
    """A gRPC-only peer: its one instance serves the Greeter; every HTTP scenario is excluded."""
    return ServerSpec(name, label, config, install, command, versions, cwd=GRPC_PEER, multi_worker=False,
                      grpc_command=command, grpc_env=env or {}, serves_http=False)


# ---- HTTP/3 peers: Caddy (quic-go) and Hypercorn with aioquic ----------------------------------------------------

CADDY_PACKAGE = "github.com/caddyserver/caddy/v2/cmd/caddy"
CADDY_VERSION = "v2.11.9"  # built from the Go module proxy (its go.mod pins quic-go, x/net, ...)
CADDY_TEMPLATE = PEERS / "caddy" / "Caddyfile.template"
HYPERCORN_H3 = "hypercorn-h3"  # bench/peers/hypercorn-h3/requirements.txt -> bench/.venvs/hypercorn-h3
FASTAPI_APP_DIR = PEERS / "fastapi"  # the app Hypercorn serves


def caddy_binary() -> Path:
    """Where the pinned Caddy is (or will be) built: the same cache as ghz's."""
    return GO_BIN_CACHE / f"caddy-{CADDY_VERSION}"


def install_caddy(ctx: Ctx) -> None:
    try:
        go_install(CADDY_PACKAGE, CADDY_VERSION, "caddy", ctx.log)
    except GoToolError as exc:
        raise InstallError(str(exc)) from None


def go_module_versions(binary: Path, modules: tuple[str, ...]) -> dict[str, str]:
    """The versions of ``modules`` a Go binary was built with (``go version -m``): what it really runs."""
    go = go_binary()
    text = cmd_output([go, "version", "-m", str(binary)]) if go and Path(binary).exists() else ""
    out = {}
    for m in modules:
        found = re.search(rf"^\s*(?:dep|mod)\s+{re.escape(m)}\s+(v\S+)", text, re.M)
        out[m] = found.group(1) if found else "?"
    return out


def caddy_versions(ctx: Ctx) -> dict[str, Any]:
    """From the binary's build information (``caddy version`` says "unknown" for a `go install` build: it looks for
    Caddy among the dependencies, as xcaddy builds it)."""
    mods = go_module_versions(caddy_binary(), ("github.com/caddyserver/caddy/v2", "github.com/quic-go/quic-go"))
    out = {"caddy": mods["github.com/caddyserver/caddy/v2"], "quic-go": mods["github.com/quic-go/quic-go"]}
    go = go_binary()
    out["go"] = cmd_output([go, "version"]).replace("go version ", "") if go else "missing"
    return out


def render_caddyfile(template: str, port: int, tmpdir: str, tls: TlsFiles, h3: bool) -> str:
    """Fill the Caddyfile template: port, temp directory (Caddy's storage), certificate and key, and the protocols
    (``h1 h2 h3`` for the HTTP/3 instance, ``h1 h2`` otherwise: no QUIC listener and no Alt-Svc)."""
    conf = (template.replace("@PORT@", str(port)).replace("@TMPDIR@", tmpdir).replace("@TLS_CERT@", str(tls.cert))
            .replace("@TLS_KEY@", str(tls.key)).replace("@PROTOCOLS@", "h1 h2 h3" if h3 else "h1 h2"))
    left = re.findall(r"@[A-Z_]+@", conf)
    if left:
        raise ValueError(f"unfilled placeholders in the Caddyfile template: {sorted(set(left))}")
    return conf


def caddy_prepare(ctx: Ctx, port: int, tmp: Path, tls: TlsFiles | None, h3: bool) -> None:
    if tls is None:
        raise StartError("the Caddy peer serves TLS only (no certificate given)")
    (tmp / "Caddyfile").write_text(render_caddyfile(CADDY_TEMPLATE.read_text(), port, str(tmp), tls, h3))


def caddy_cmd(ctx: Ctx, port: int, tls: TlsFiles | None = None) -> list[str]:
    """``caddy run`` on the Caddyfile ``caddy_prepare`` wrote into the instance's directory (its working
    directory). GOMAXPROCS follows the CPUs taskset gives it (--server-cpus)."""
    return [str(caddy_binary()), "run", "--adapter", "caddyfile", "--config", "Caddyfile"]


def hypercorn_h3_cmd(ctx: Ctx, port: int, tls: TlsFiles | None = None, quic: bool = False) -> list[str]:
    """Hypercorn as the hosting comparison runs it (uvloop worker, backlog 4096, log level warning) with the run's
    certificate (HTTP/1.1 and h2 by ALPN on TCP) and, for the HTTP/3 instance, ``--quic-bind`` on the same port
    number (aioquic)."""
    out = [str(VENVS / HYPERCORN_H3 / "bin" / "hypercorn"), "--bind", f"127.0.0.1:{port}", "--workers",
           str(ctx.workers), "--worker-class", "uvloop", "--backlog", "4096", "--log-level", "warning"]
    if tls is not None:
        out += ["--certfile", str(tls.cert), "--keyfile", str(tls.key)]
    if quic:
        out += ["--quic-bind", f"127.0.0.1:{port}"]
    return out + ["app:app"]


# Why a server sits out the HTTP/3 scenarios (h3-plaintext, h3-download).
def _no_h3(reason: str) -> dict[str, str]:
    return {"h3-plaintext": reason, "h3-download": reason}


HYPERCORN_H2 = ("Hypercorn's h2 under h2-plaintext's 64 connections × 100 streams: ~100 req/s, and h2load ends ~30 s "
                "after its -D (measured on this machine: 204 responses in 31.7 s for -D2; the matrix's timed run is "
                "killed at duration + 90 s with nothing measured), so it would only cost the run minutes")
H3_PEER_HTTPS = ("an HTTP/3 peer: left out of https-plaintext to keep the run short (its h2-plaintext is there to "
                 "compare its HTTP/2 with its HTTP/3)")
COVET_SYNC_H3 = ("same engine and HTTP/3 layer as covet-async (only handler dispatch differs); left out of the HTTP/3 "
                 "scenarios to keep the default run short")
UVICORN_NO_H3 = "uvicorn has no HTTP/3 (HTTP/1.1 only)"
GRANIAN_NO_H3 = "Granian has no HTTP/3 (HTTP/1.1 and HTTP/2 only)"


def h3_peer(name: str, label: str, config: str, install: Callable[[Ctx], None],
            command: Callable[[Ctx, int], list[str]], tls_command: Callable[[Ctx, int, TlsFiles], list[str]],
            h3_command: Callable[[Ctx, int, TlsFiles], list[str]], versions: Callable[[Ctx], dict[str, Any]],
            unsupported: dict[str, str] | None = None, **kw: Any) -> ServerSpec:
    """A peer of the HTTP/3 scenarios: it serves the TLS ones only (HTTP/3 and, on an instance without it, h2),
    sits out every cleartext scenario and the cold starts, and is in the default list only when an HTTP/3 scenario
    runs."""
    return ServerSpec(name, label, config, install, command, versions, tls_command=tls_command,
                      h3_command=h3_command, h3_peer=True,
                      unsupported={"https-plaintext": H3_PEER_HTTPS, **(unsupported or {})}, **kw)


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


COVET_INLINE_SLEEP = ("an inline handler runs on the event loop's thread: its blocking `time.sleep` would stall every "
                      "connection (what `inline=True` is not for; covet-sync measures the sync sleep in the pool)")
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
            "TLS: `--tls-cert/--tls-key` (h2 via ALPN on by default; h2c on the plain port); "
            "HTTP/3: the TLS command with `--http3` (QUIC on the same port number; h3-download: its POST /echo); "
            "gRPC: examples/native/grpc_greeter (`covet::grpc`, the same build tree), `--threads 1`",
            install_covet_native, covet_native_cmd, covet_native_versions,
            tls_command=covet_native_tls_cmd, h3_command=covet_native_h3_cmd,
            grpc_command=covet_native_grpc_cmd, grpc_install=install_covet_native_grpc,
        ),
        ServerSpec(
            "covet-async", "CovetPy Python async",
            "`python -m covet run app_async:app --threads 0 --log-level warning` (one process, the engine on its "
            "event-loop thread: uvloop's when installed, the `speed` extra, else asyncio's; see the versions); "
            "TLS: `--ssl-certfile/--ssl-keyfile` (HTTP/2 via ALPN on by default); "
            "HTTP/3: the TLS command with `--http3` (h3-download: `POST /echo`, `await request.body()` back); "
            "gRPC: `covet run covet_app:app` (bench/peers/grpc: grpcio's generated servicer, `async def`, h2c), "
            "with the gRPC venv's grpcio/protobuf first on PYTHONPATH",
            install_covet_python, _covet_python_cmd("app_async"), covet_python_versions,
            tls_command=_covet_python_tls_cmd("app_async"), h3_command=_covet_python_h3_cmd("app_async"),
            grpc_command=covet_run_command("covet_app:app", GRPC_PEER), grpc_env=COVET_GRPC_ENV,
            grpc_install=install_covet_grpc,
        ),
        ServerSpec(
            "covet-sync", "CovetPy Python sync",
            "`def` handlers in covet's thread pool (the default for sync handlers), otherwise as covet-async",
            install_covet_python, _covet_python_cmd("app_sync"), covet_python_versions,
            unsupported={**_reasons(COVET_SYNC_TLS, COVET_SYNC_TLS, COVET_SYNC_TLS), **_no_ws(COVET_SYNC_WS),
                         **_no_h3(COVET_SYNC_H3)},
        ),
        ServerSpec(
            "covet-inline", "CovetPy Python sync inline",
            "the `def` handlers of covet-sync run on the event loop's thread (`sync_handlers=\"inline\"`, "
            "app_inline.py: no pool hand-off, no Task), as socketify.py's sync handlers run on its loop; otherwise "
            "as covet-async",
            install_covet_python, _covet_python_cmd("app_inline"), covet_python_versions,
            unsupported={**_reasons(COVET_SYNC_TLS, COVET_SYNC_TLS, COVET_SYNC_TLS), **_no_ws(COVET_SYNC_WS),
                         **_no_h3(COVET_SYNC_H3), "io-sleep": COVET_INLINE_SLEEP},
        ),
        ServerSpec(
            "fastapi", "FastAPI + uvicorn",
            "uvicorn `--loop uvloop --http httptools --no-access-log --log-level warning`, one process; "
            "TLS: `--ssl-certfile/--ssl-keyfile`; WebSocket: its instance with `--ws websockets` (the "
            "`websockets` library's implementation, which uvicorn 0.54 marks deprecated in favour of "
            "websockets-sansio); broadcast = a Python loop over the room's set of connections)",
            _venv_installer("fastapi"), _uvicorn("fastapi"),
            _venv_versions("fastapi", ("fastapi", "starlette", "pydantic") + UVICORN_PKGS[:3] + ("websockets",)),
            unsupported={**_reasons(None, NO_H2_UVICORN, NO_H2_UVICORN), **_no_h3(UVICORN_NO_H3)},
            tls_command=_uvicorn_tls("fastapi"),
            ws_command=_uvicorn("fastapi", ws="websockets"),
        ),
        ServerSpec(
            "starlette", "Starlette + uvicorn",
            "uvicorn as for FastAPI; pydantic `model_validate_json` in the POST handler",
            _venv_installer("starlette"), _uvicorn("starlette"),
            _venv_versions("starlette", ("starlette",) + UVICORN_PKGS),
            unsupported={**_reasons(UVICORN_TLS_ONCE, NO_H2_UVICORN, NO_H2_UVICORN), **_no_ws(UVICORN_WS_ONCE),
                         **_no_h3(UVICORN_NO_H3)},
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
            unsupported=_no_h3(GRANIAN_NO_H3),
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
            unsupported=_no_h3(GRANIAN_NO_H3),
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
                                    "uWebSockets (socketify.py) has no HTTP/2",
                                    "uWebSockets (socketify.py) has no HTTP/2"),
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
                                  "in the suite)"), **_no_h3(UVICORN_NO_H3)},
        ),
        ServerSpec(
            "express", "Express (Node.js)",
            "`NODE_ENV=production node app.js`, one process, no logging middleware, `express.json()` + hand check",
            install_express, lambda ctx, port: ["node", str(PEERS / "express" / "app.js")], express_versions,
            cwd=PEERS / "express", env={"NODE_ENV": "production"}, multi_worker=False,
            unsupported={**_reasons("the peer listens with node:http (TLS via node:https is not configured in the "
                                    "suite)",
                                    "Express runs on node:http (HTTP/1.1); the peer does not use node:http2",
                                    "Express runs on node:http (HTTP/1.1); the peer does not use node:http2"),
                         **_no_ws("Express has no WebSocket support of its own (it takes a library such as `ws`, "
                                  "not installed in the peer)"),
                         **_no_h3("Express runs on node:http (HTTP/1.1); Node has no stable HTTP/3 server")},
        ),
        ServerSpec(
            "actix", "actix-web (Rust)",
            "`HttpServer::workers(1)`, release build (LTO, codegen-units 1), no logger, `web::Json<Item>` (serde)",
            install_actix, lambda ctx, port: [str(ACTIX_BIN)], actix_versions,
            unsupported={**_reasons(
                "the peer is built without actix-web's rustls/openssl features (no TLS)",
                "the peer is built without actix-web's rustls/openssl features (no TLS, so no h2 via ALPN)",
                "the peer binds with `HttpServer::bind` (HTTP/1.1; h2c would need `bind_auto_h2c`)"),
                **_no_ws("actix-web's WebSocket support is a separate crate (actix-ws), not in the peer's Cargo.lock"),
                **_no_h3("actix-web has no HTTP/3 server")},
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
                                  "application)"),
                         **_no_h3("nginx 1.22 (Debian bookworm) has no HTTP/3: ngx_http_v3_module came with 1.25")},
            stop_signal=signal.SIGQUIT,
            tls_command=lambda ctx, port, tls: [NGINX],  # + -c TMP/nginx.conf from nginx-tls.conf.template
        ),
        h3_peer("caddy", "Caddy (quic-go)",
                f"Caddy {CADDY_VERSION} built from the Go module proxy (`go install {CADDY_PACKAGE}@{CADDY_VERSION}`), "
                "bench/peers/caddy/Caddyfile.template: `respond` for /plaintext, `respond \"{http.request.body}\"` "
                "for POST /echo (Caddy has no echo handler; the placeholder buffers the body: Caddy's docs call it "
                "inefficient), TLS with the run's certificate, admin API and logs off, GOMAXPROCS = the server CPUs; "
                "HTTP/3: `protocols h1 h2 h3` (quic-go, the version Caddy's go.mod pins), otherwise `h1 h2`",
                install_caddy, caddy_cmd, lambda ctx, port, tls: caddy_cmd(ctx, port, tls),
                lambda ctx, port, tls: caddy_cmd(ctx, port, tls), caddy_versions, prepare=caddy_prepare,
                config_template=CADDY_TEMPLATE),
        h3_peer(HYPERCORN_H3, "FastAPI + Hypercorn (aioquic)",
                "`hypercorn --workers 1 --worker-class uvloop --backlog 4096 --log-level warning --certfile --keyfile "
                "app:app` (h11/h2 by ALPN; access log off by default) serving bench/peers/fastapi/app.py (POST /echo: "
                "`await request.body()` back); HTTP/3: `--quic-bind` on the same port number (aioquic); venv "
                "bench/.venvs/hypercorn-h3 from bench/peers/hypercorn-h3/requirements.txt",
                _venv_installer(HYPERCORN_H3), lambda ctx, port: hypercorn_h3_cmd(ctx, port),
                lambda ctx, port, tls: hypercorn_h3_cmd(ctx, port, tls),
                lambda ctx, port, tls: hypercorn_h3_cmd(ctx, port, tls, quic=True),
                _venv_versions(HYPERCORN_H3, ("hypercorn", "aioquic", "fastapi", "starlette", "pydantic", "uvloop",
                                              "h2")),
                cwd=FASTAPI_APP_DIR, unsupported={"h2-plaintext": HYPERCORN_H2}),
        grpc_peer("grpcio", "grpcio (grpc.aio)",
                  "`python grpcio_server.py PORT` (bench/peers/grpc): grpcio's asyncio server, one process, the same "
                  "servicer class as CovetPy's gRPC instance", ensure_grpc_python, grpcio_cmd, grpc_versions,
                  env=GRPC_PYTHON_ENV),
        grpc_peer("grpc-go", "grpc-go",
                  "bench/peers/grpc/go: `grpc.NewServer()` with its defaults (GOMAXPROCS from the CPU affinity: the "
                  "server CPUs), code from protoc-gen-go/protoc-gen-go-grpc", install_grpc_go,
                  lambda ctx, port: [str(GO_GREETER), str(port)], grpc_go_versions),
        grpc_peer("grpc-cpp", "C++ gRPC (callback API)",
                  "bench/peers/grpc/cpp: `grpc::CallbackService` (the API gRPC recommends for performance) on "
                  "Debian's libgrpc++, `g++ -O2`, the server's default thread pool", install_grpc_cpp,
                  lambda ctx, port: [str(CPP_GREETER), str(port)], grpc_cpp_versions),
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


def udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_until(proc: subprocess.Popen[bytes], deadline: float, ready: Callable[[], bool], late: str,
               pause: float) -> str:
    """Polls ``ready()`` every ``pause`` s: "" once it holds, else why not (the process exited first, or
    ``deadline`` (time.monotonic) passed: ``late``)."""
    while True:
        if proc.poll() is not None:
            return f"exited with status {proc.returncode} before answering"
        if time.monotonic() > deadline:
            return late
        if ready():
            return ""
        time.sleep(pause)


def answers_200(port: int, path: str) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp.status == 200
    except (OSError, http.client.HTTPException):
        return False


def wait_for_200(proc: subprocess.Popen[bytes], port: int, deadline: float, path: str = "/plaintext") -> str:
    """Polls ``GET path`` until the server answers 200 OK: "" then, else why not (the process exited first,
    or `deadline` (time.monotonic) passed). Used to time launch -> first 200 OK."""
    return wait_until(proc, deadline, lambda: answers_200(port, path), f"no 200 OK on GET {path} in time", 0.002)


# The HTTP/2 client connection preface and an empty SETTINGS frame (RFC 9113, 3.4).
H2C_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def answers_h2c(port: int, timeout: float = 2) -> bool:
    """Does the port speak HTTP/2 by prior knowledge: is the server's first frame SETTINGS (type 4)?"""
    head = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(H2C_PREFACE)
            while len(head) < 9:
                chunk = s.recv(9 - len(head))
                if not chunk:
                    return False
                head += chunk
    except OSError:
        return False
    return head[3] == 4


def wait_for_h2c(proc: subprocess.Popen[bytes], port: int, deadline: float) -> str:
    """As ``wait_for_200`` for a gRPC server: polls until the port answers the h2c preface with SETTINGS (the gate
    then checks the calls)."""
    return wait_until(proc, deadline, lambda: answers_h2c(port), "no HTTP/2 SETTINGS frame in answer to the h2c "
                      "preface in time", 0.005)


def wait_for_h3(proc: subprocess.Popen[bytes], port: int, deadline: float, tls: TlsFiles,
                answers: Callable[[int, Path], bool] | None = None) -> str:
    """As ``wait_for_200`` over HTTP/3 (QUIC on the UDP port of the same number, verified against the run's CA,
    by ``h3load -check -n 1``): a server's TCP listener may answer before its QUIC socket does."""
    probe = answers or h3load.answers
    return wait_until(proc, deadline, lambda: probe(port, tls.ca), "no 2xx on GET /plaintext over HTTP/3 (QUIC) in "
                      "time", 0.05)


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


DESCRIBE_PORT = 65535  # the port ``Running.describe`` builds a command with, shown as N


class Running:
    """One started server process (tree), pinned to the server CPUs; with ``tls``, its HTTPS configuration (and with
    ``h3`` too, its HTTP/3 instance); with ``ws``, its WebSocket instance; with ``grpc``, its gRPC one. ``round_env``
    is set in its environment too but not shown in `describe` (what differs from round to round: --overhead's hash
    seed)."""

    def __init__(self, spec: ServerSpec, ctx: Ctx, tls: TlsFiles | None = None, ws: bool = False,
                 grpc: bool = False, h3: bool = False, round_env: dict[str, str] | None = None):
        if tls is not None and spec.tls_command is None:
            raise ValueError(f"{spec.name} has no TLS configuration")
        if grpc and spec.grpc_command is None:
            raise ValueError(f"{spec.name} serves no gRPC")
        if h3 and (spec.h3_command is None or tls is None):
            raise ValueError(f"{spec.name} has no HTTP/3 configuration" if spec.h3_command is None
                             else "HTTP/3 needs the run's certificate")
        self.spec, self.ctx, self.tls, self.ws, self.grpc, self.h3 = spec, ctx, tls, ws, grpc, h3
        self.round_env = round_env or {}
        self.tmp = Path(tempfile.mkdtemp(prefix=f"covet-matrix-{spec.name}-"))
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.startup_ms: float | None = None
        self.command: list[str] = []

    def _command(self, port: int) -> list[str]:
        if self.h3:
            return self.spec.h3_command(self.ctx, port, self.tls)
        if self.tls is not None:
            return self.spec.tls_command(self.ctx, port, self.tls)
        if self.grpc:
            return self.spec.grpc_command(self.ctx, port)
        if self.ws and self.spec.ws_command is not None:
            return self.spec.ws_command(self.ctx, port)
        return self.spec.command(self.ctx, port)

    @property
    def what(self) -> str:
        """Which instance, for messages: "" (the plain one), " with TLS", " for HTTP/3", " for WebSocket" or
        " for gRPC"."""
        if self.h3:
            return " for HTTP/3"
        if self.tls is not None:
            return " with TLS"
        return " for gRPC" if self.grpc else " for WebSocket" if self.ws else ""

    def _env(self) -> dict[str, str]:
        return {**self.spec.env, **(self.spec.grpc_env if self.grpc else {})}

    def describe(self) -> str:
        cmd = self._command(DESCRIBE_PORT)
        if self.spec.name == "nginx":
            cmd = cmd + ["-p", "TMP", "-c", "TMP/nginx.conf", "-g", "'daemon off;'"]
        text = " ".join(shlex.quote(c) if c != "'daemon off;'" else c for c in cmd)
        text = text.replace(str(DESCRIBE_PORT), "N").replace(str(REPO) + "/", "")
        if self.tls is not None:
            text = text.replace(str(self.tls.cert), "CERT.pem").replace(str(self.tls.key), "KEY.pem")
            if self.spec.name == "nginx":
                text += f" ({NGINX_TLS_TEMPLATE.relative_to(REPO)})"
        if self.spec.config_template is not None:
            text += f" ({self.spec.config_template.relative_to(REPO)})"
        env = " ".join(f"{k}={v}" for k, v in self._env().items()).replace(str(REPO) + "/", "")
        port_env = "BENCH_PORT=N " if self.spec.name in ("robyn", "socketify", "express", "actix") else ""
        return f"{port_env}{env + ' ' if env else ''}taskset -c {self.ctx.server_cpus} {text}"

    def start(self, timeout: float = 45.0) -> float:
        """Launch, wait for the first ``200`` on GET /plaintext (over verified TLS for a TLS instance, and then over
        HTTP/3 too for an HTTP/3 one; for a gRPC one, an HTTP/2 SETTINGS frame in answer to the h2c preface); returns
        launch -> ready in ms."""
        self.stop()
        self.port = free_port()
        if self.h3:  # the UDP port of the same number must be free too
            while not udp_port_free(self.port):
                self.port = free_port()
        cmd = self._command(self.port)
        if self.spec.prepare is not None:
            self.spec.prepare(self.ctx, self.port, self.tmp, self.tls, self.h3)
        if self.spec.name == "nginx":
            conf = nginx_conf(self.ctx, self.port, self.tmp, self.tls)
            cmd = cmd + ["-p", str(self.tmp), "-e", str(self.tmp / "error.log"), "-c", str(conf), "-g", "daemon off;"]
        self.command = ["taskset", "-c", self.ctx.server_cpus] + cmd
        env = {**os.environ, **self._env(), **self.round_env, "BENCH_PORT": str(self.port),
               "BENCH_WORKERS": str(self.ctx.workers), "PYTHONUNBUFFERED": "1"}
        log = open(self.tmp / "server.log", "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True, cwd=str(self.spec.cwd or self.tmp), env=env,
                                     preexec_fn=raise_nofile)
        log.close()
        if self.grpc:
            failure = wait_for_h2c(self.proc, self.port, t0 + timeout)
        elif self.tls is None:
            failure = wait_for_200(self.proc, self.port, t0 + timeout)
        else:
            failure = wait_for_200_tls(self.proc, self.port, t0 + timeout, self.tls)
            if not failure and self.h3:
                failure = wait_for_h3(self.proc, self.port, t0 + timeout, self.tls)
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
