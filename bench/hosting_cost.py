"""Instructions per request of a hosted ASGI app: CovetPy hosting (``covet _worker --interface asgi3``) against
Granian ASGI, both under ``valgrind --tool=callgrind``, on the hosting bench's FastAPI app (bench/peers/fastapi).

Each (server, scenario) runs twice, with N=SMALL and N=LARGE requests (a fixed count, from a client in another
process: CONNECTIONS keep-alive connections, one request in flight on each); the figure is the difference of the two
totals (every process of the server, Granian's worker included) over the difference of N, so start-up, imports and
shut-down cancel out. Instruction counts do not depend on the machine's load (the wall clock under callgrind does).

    python3 bench/hosting_cost.py [--servers covet,granian] [--scenarios params,plaintext] [--small 300]
                                  [--large 1300] [--connections 16] [--keep DIR] [--app trivial|fastapi]

CovetPy runs on this checkout's .venv (or --covet-python), the app's packages from the hosting venv
(bench/.venvs/hosting, or --venv) on PYTHONPATH, as bench/hosting.py does; Granian is that venv's.
"""

from __future__ import annotations

import argparse
import glob
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCENARIOS = {
    "plaintext": ("GET", "/plaintext", b""),
    "json": ("GET", "/json", b""),
    "params": ("GET", "/users/123?q=x", b""),
    "post-json": ("POST", "/items", None),  # body: bench's 1 KB item
}
TRIVIAL_APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": b"Hello, World!"})
'''


def item_body() -> bytes:
    sys.path.insert(0, str(ROOT))
    from bench.scenarios import item_payload
    return item_payload()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {stderr[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(1 << 16):
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("server not ready")


def load(port: int, total: int, connections: int, method: str, path: str, body: bytes) -> None:
    """`total` requests over `connections` keep-alive connections, one in flight on each, every response read."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    request = head.encode() + b"\r\n" + body
    sel = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytes] = {}
    issued = done = 0
    for _ in range(min(connections, total)):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        buffers[s] = b""
        s.sendall(request)
        issued += 1
    while done < total:
        for key, _ in sel.select(timeout=600):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            data = s.recv(1 << 16)
            if not data:
                raise RuntimeError("the server closed a connection")
            buf = buffers[s] + data
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                headers = buf[:end].lower()
                status = headers[9:12]
                if status != b"200":
                    raise RuntimeError(f"status {status!r}: {buf[:200]!r}")
                i = headers.find(b"content-length:")
                if i < 0:
                    raise RuntimeError(f"no content-length: {headers!r}")
                stop = headers.find(b"\r\n", i)
                length = int(headers[i + 15:stop if stop > 0 else None])
                if len(buf) < end + 4 + length:
                    break
                buf = buf[end + 4 + length:]
                done += 1
                if issued < total:
                    s.sendall(request)
                    issued += 1
            buffers[s] = buf
    for s in buffers:
        s.close()


def server_command(server: str, port: int, app_dir: Path, app: str, args: argparse.Namespace) -> list[str]:
    venv = Path(args.venv)
    if server == "covet":
        return [args.covet_python, "-m", "covet", "_worker", app, "--interface", "asgi3", "--port", str(port),
                "--threads", "0", "--log-level", "warning", "--app-dir", str(app_dir), *args.covet_flag]
    if server == "granian":
        return [str(venv / "bin" / "python"), "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", "--runtime-threads", "1", "--loop", "uvloop",
                "--no-access-log", "--log-level", "warning", "--no-ws", "--working-dir", str(app_dir), app]
    raise SystemExit(f"unknown server {server}")


def instructions(server: str, scenario: str, n: int, args: argparse.Namespace, app_dir: Path, app: str,
                 keep: Path) -> int:
    port = free_port()
    out = Path(tempfile.mkdtemp(prefix="cg-", dir=keep))
    path = [str(Path(args.venv) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages")]
    if server == "covet" and args.covet_path:
        path.insert(0, args.covet_path)
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=os.pathsep.join(path))
    cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={out}/callgrind.out.%p",
           *server_command(server, port, app_dir, app, args)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(app_dir))
    try:
        wait_ready(port, proc)
        method, path, body = SCENARIOS[scenario]
        load(port, n, args.connections, method, path, item_body() if body is None else body)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    total = 0
    files = glob.glob(f"{out}/callgrind.out.*")
    for file in files:
        with open(file) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    total += int(line.split()[1])
                    break
    (out / "n").write_text(f"{server} {scenario} {n}\n")
    print(f"  {server} {scenario} N={n}: {total:,} instructions ({len(files)} process(es), {out})", flush=True)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="covet,granian")
    ap.add_argument("--scenarios", default="params,plaintext")
    ap.add_argument("--small", type=int, default=300)
    ap.add_argument("--large", type=int, default=1300)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--app", choices=("fastapi", "trivial"), default="fastapi")
    ap.add_argument("--venv", default=str(ROOT / "bench" / ".venvs" / "hosting"),
                    help="the hosting venv (python -m bench --hosting makes it)")
    ap.add_argument("--covet-python", default=str(ROOT / ".venv" / "bin" / "python"))
    ap.add_argument("--covet-path", default="",
                    help="a directory holding a covet package (with its _native module) to run instead of the "
                    "installed one (with --covet-python of a venv without covet, such as --venv's)")
    ap.add_argument("--covet-flag", action="append", default=[], help="an extra flag for covet _worker")
    ap.add_argument("--keep", default="", help="keep the callgrind files under this directory")
    args = ap.parse_args()
    keep = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hosting-cost-"))
    keep.mkdir(parents=True, exist_ok=True)
    app_dir = ROOT / "bench" / "peers" / "fastapi"
    app = "app:app"
    if args.app == "trivial":
        app_dir = keep / "trivial"
        app_dir.mkdir(exist_ok=True)
        (app_dir / "trivial_app.py").write_text(TRIVIAL_APP)
        app = "trivial_app:app"
    results: dict[tuple[str, str], float] = {}
    for scenario in args.scenarios.split(","):
        for server in args.servers.split(","):
            a = instructions(server, scenario, args.small, args, app_dir, app, keep)
            b = instructions(server, scenario, args.large, args, app_dir, app, keep)
            per = (b - a) / (args.large - args.small)
            results[server, scenario] = per
            print(f"{server} {scenario}: {per:,.0f} instructions per request", flush=True)
    for scenario in args.scenarios.split(","):
        c, g = results.get(("covet", scenario)), results.get(("granian", scenario))
        if c and g:
            print(f"{scenario}: covet {c:,.0f} vs granian {g:,.0f} per request: {g / c:.2f}x")
    if not args.keep:
        shutil.rmtree(keep, ignore_errors=True)


if __name__ == "__main__":
    main()
