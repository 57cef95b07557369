"""The WebSocket load generator of the matrix: bench/tools/wsload (Go, github.com/gorilla/websocket, pinned in
its go.mod/go.sum), built by the suite into bench/tools/wsload/bin/ (gitignored); its command lines, output
parsing and the WebSocket correctness gate. Pure helpers are unit-tested in bench/tests/test_matrix_ws.py.

wsload prints ``WSLOAD_MARK start`` / ``WSLOAD_MARK end`` around its timed window (after connecting and warming
up inside the same process) and one ``WSLOAD_RESULT {json}`` line at the end; the runner samples the server's
CPU (/proc) exactly at the two marks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from . import BENCH
from .loadgen import parse_marked_result

WSLOAD_DIR = BENCH / "tools" / "wsload"
WSLOAD_BIN = WSLOAD_DIR / "bin" / "wsload"
RESULT_PREFIX = "WSLOAD_RESULT "
MARK_START = "WSLOAD_MARK start"
MARK_END = "WSLOAD_MARK end"
BROADCAST_ROOM = "bench"


class WsloadError(RuntimeError):
    """wsload could not be built here; the message is the exclusion reason."""


def build(log=print) -> Path:
    """``go build`` the tool (incremental; modules pinned by go.sum, -mod=readonly) into bench/tools/wsload/bin."""
    go = shutil.which("go")
    if not go:
        raise WsloadError("Go is not installed (the WebSocket load generator bench/tools/wsload is written in Go)")
    if not WSLOAD_BIN.exists():
        log("building the WebSocket load generator: go build (bench/tools/wsload)")
    env = {**os.environ, "GOFLAGS": "-mod=readonly", "CGO_ENABLED": "0"}
    p = subprocess.run([go, "build", "-trimpath", "-o", str(WSLOAD_BIN), "."], cwd=WSLOAD_DIR, env=env,
                       capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        tail = " / ".join((p.stderr or p.stdout).strip().splitlines()[-4:])
        raise WsloadError(f"`go build` of bench/tools/wsload exited {p.returncode}: {tail}")
    return WSLOAD_BIN


def versions() -> str:
    """``wsload 1 (github.com/gorilla/websocket v1.5.3, go1.26.8)`` from go.mod and ``go version``."""
    try:
        mod = (WSLOAD_DIR / "go.mod").read_text()
    except OSError:
        return "missing"
    m = re.search(r"github\.com/gorilla/websocket (v\S+)", mod)
    go = ""
    if shutil.which("go"):
        p = subprocess.run(["go", "version"], capture_output=True, text=True)
        g = re.search(r"go\d+\.\d+(\.\d+)?", p.stdout)
        go = f", {g.group(0)}" if g else ""
    return f"wsload (bench/tools/wsload; github.com/gorilla/websocket {m.group(1) if m else '?'}{go})"


def ws_url(port: int, path: str) -> str:
    return f"ws://127.0.0.1:{port}{path}"


def command(sc, port: int, warmup: float, duration: float, client_cpus: str | None,
            binary: Path = WSLOAD_BIN, check: bool = False) -> list[str]:
    """wsload's command line for scenario ``sc`` (``sc.ws``: echo | broadcast); pinned with taskset when
    ``client_cpus`` is given. ``check``: the correctness run instead of the load."""
    cmd = [] if client_cpus is None else ["taskset", "-c", client_cpus]
    cmd += [str(binary), "-mode", sc.ws, "-url", ws_url(port, sc.path), "-size", str(sc.size)]
    if sc.ws == "echo":
        cmd += ["-c", str(4 if check else sc.connections), "-inflight", str(sc.inflight)]
    else:
        cmd += ["-subs", str(3 if check else sc.subscribers), "-window", str(sc.window)]
    if check:
        return cmd + ["-check"]
    return cmd + [f"-warmup={warmup:g}s", f"-d={duration:g}s"]


def parse_output(text: str) -> dict[str, Any]:
    """The ``WSLOAD_RESULT`` JSON of a run (the last one), plus ``marks``: how many window marks it printed.

    Raises ValueError when there is none (the tool crashed or was killed)."""
    return parse_marked_result(text, "wsload", RESULT_PREFIX, (MARK_START, MARK_END), "a wsload")


def to_run(parsed: dict[str, Any]) -> dict[str, Any]:
    """A wsload result in the suite's per-run vocabulary: ``requests_per_sec`` = messages/s (echoes received,
    or deliveries to subscribers), ``requests`` = messages, ``errors`` = every counted error."""
    return {
        "requests_per_sec": parsed.get("messages_per_sec"),
        "requests": parsed.get("messages"),
        "messages": parsed.get("messages"),
        "published": parsed.get("published"),
        "published_per_sec": parsed.get("published_per_sec"),
        "window_s": parsed.get("duration_s"),
        "latency_ms": parsed.get("latency_ms") or {},
        "errors": int(parsed.get("errors_total") or 0),
        "error_counts": parsed.get("errors"),
        "first_error": parsed.get("first_error"),
    }


def judge_check(code: int, text: str) -> tuple[bool, str]:
    """Is a ``wsload -check`` run a pass? (ok, reason when not)."""
    try:
        out = parse_output(text)
    except ValueError as exc:
        return False, f"wsload -check exited {code}: {exc}"
    if code == 0 and out.get("ok"):
        return True, ""
    what = "echo" if out.get("mode") == "echo" else "broadcast"
    reason = out.get("reason") or out.get("first_error") or f"{out.get('errors_total')} errors"
    counts = {k: v for k, v in (out.get("errors") or {}).items() if v}
    return False, f"WebSocket {what} check failed: {reason}" + (f" (errors: {counts})" if counts else "")


def gate(port: int, sc, binary: Path = WSLOAD_BIN, timeout: float = 60) -> tuple[bool, str]:
    """The WebSocket correctness gate: ``wsload -check``. Echo: 4 connections each send 10 text messages of
    1 B … 70,000 B (UTF-8, across the 7-bit/16-bit/64-bit frame-length encodings) and every echo must come back
    identical, as text. Broadcast: 3 subscribers + the publisher join the room, the publisher sends 200 messages
    (at most ``sc.window`` undelivered) and every subscriber must receive every one, in order, intact."""
    if not Path(binary).exists():
        return False, f"wsload not built ({binary})"
    try:
        p = subprocess.run(command(sc, port, 0, 0, None, binary, check=True), capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"wsload -check did not finish in {timeout:.0f} s"
    return judge_check(p.returncode, p.stdout + p.stderr)
