"""The HTTP/3 load generators of the matrix, their command lines, output parsing and the HTTP/3 correctness gate.

- bench/tools/h3load (Go, github.com/quic-go/quic-go's http3, pinned in its go.mod/go.sum), built by the suite into
  bench/tools/h3load/bin/ (gitignored): the correctness gate (``-check``), the handshake record, the readiness probe,
  and the load with ``--h3-load h3load``. quic-go costs the client ~75 µs of CPU per small request, so its one core
  stops near 13K req/s with the server under test mostly idle.
- bench/tools/h3bench (C++ on ngtcp2 + nghttp3 + GnuTLS, Debian's packages, the libraries h2load's HTTP/2 side is
  made of), compiled by the suite into bench/tools/h3bench/bin/: the load by default. It takes h3load's load flags
  and prints the same lines, so the two are interchangeable for the load.

Pure helpers are unit-tested in bench/tests/test_matrix_h3.py; h3bench against the real server in
bench/tests/test_h3bench.py.

h3load makes its connections (TLS 1.3 verified against the run's CA, ALPN h3), warms up, then prints
``H3LOAD_MARK start`` / ``H3LOAD_MARK end`` around its timed window and one ``H3LOAD_RESULT {json}`` line at the
end; the runner samples the server's CPU (/proc) exactly at the two marks, as for wsload.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from . import BENCH
from .loadgen import go_binary, parse_marked_result

H3LOAD_DIR = BENCH / "tools" / "h3load"
H3LOAD_BIN = H3LOAD_DIR / "bin" / "h3load"
RESULT_PREFIX = "H3LOAD_RESULT "
MARK_START = "H3LOAD_MARK start"
MARK_END = "H3LOAD_MARK end"
PLAINTEXT = "Hello, World!"
ECHO_TYPE = "application/octet-stream"  # what h3load sends its body as; an echo answers with the same type


H3BENCH_DIR = BENCH / "tools" / "h3bench"
H3BENCH_SRC = H3BENCH_DIR / "h3bench.cpp"
H3BENCH_BIN = H3BENCH_DIR / "bin" / "h3bench"
H3BENCH_LIBS = ["-lngtcp2_crypto_gnutls", "-lngtcp2", "-lnghttp3", "-lgnutls"]
LOAD_TOOLS = ("h3bench", "h3load")  # --h3-load


class H3loadError(RuntimeError):
    """h3load could not be built here; the message is the exclusion reason."""


def build(log=print) -> Path:
    """``go build`` the tool (incremental; modules pinned by go.sum, -mod=readonly) into bench/tools/h3load/bin."""
    go = go_binary()
    if not go:
        raise H3loadError("Go is not installed (the HTTP/3 load generator bench/tools/h3load is written in Go)")
    if not H3LOAD_BIN.exists():
        log("building the HTTP/3 load generator: go build (bench/tools/h3load)")
    env = {**os.environ, "GOFLAGS": "-mod=readonly", "CGO_ENABLED": "0"}
    p = subprocess.run([go, "build", "-trimpath", "-o", str(H3LOAD_BIN), "."], cwd=H3LOAD_DIR, env=env,
                       capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        tail = " / ".join((p.stderr or p.stdout).strip().splitlines()[-4:])
        raise H3loadError(f"`go build` of bench/tools/h3load exited {p.returncode}: {tail}")
    return H3LOAD_BIN


def build_h3bench(log=print, binary: Path = H3BENCH_BIN) -> Path:
    """Compile bench/tools/h3bench with the system C++ compiler (again only when the source is newer)."""
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not cxx:
        raise H3loadError("no C++ compiler (bench/tools/h3bench is C++20; apt-get install g++)")
    if binary.exists() and binary.stat().st_mtime >= H3BENCH_SRC.stat().st_mtime:
        return binary
    log("building the HTTP/3 load generator: c++ (bench/tools/h3bench, ngtcp2 + nghttp3)")
    binary.parent.mkdir(parents=True, exist_ok=True)
    cmd = [cxx, "-std=c++20", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(binary), str(H3BENCH_SRC), *H3BENCH_LIBS]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        tail = " / ".join((p.stderr or p.stdout).strip().splitlines()[-4:])
        raise H3loadError(f"compiling bench/tools/h3bench exited {p.returncode} (needs libngtcp2-dev, "
                          f"libngtcp2-crypto-gnutls-dev, libnghttp3-dev, libgnutls28-dev): {tail}")
    return binary


def h3bench_version(binary: Path = H3BENCH_BIN) -> str:
    """``h3bench (bench/tools/h3bench; ngtcp2 0.12.1, nghttp3 0.8.0, GnuTLS 3.7.9)``: the libraries it runs on."""
    try:
        p = subprocess.run([str(binary), "-version"], capture_output=True, text=True, timeout=10)
        return f"h3bench (bench/tools/h3bench; {p.stdout.strip()})"
    except (OSError, subprocess.SubprocessError):
        return "h3bench (bench/tools/h3bench)"


def load_binary(tool: str) -> Path:
    """The binary of --h3-load ``tool``."""
    if tool not in LOAD_TOOLS:
        raise ValueError(f"unknown HTTP/3 load generator {tool!r}; known: {LOAD_TOOLS}")
    return H3BENCH_BIN if tool == "h3bench" else H3LOAD_BIN


def quic_go_version(go_mod: Path = H3LOAD_DIR / "go.mod") -> str:
    """The quic-go version h3load's go.mod pins (``?`` when it cannot be read)."""
    try:
        m = re.search(r"github\.com/quic-go/quic-go (v\S+)", go_mod.read_text())
    except OSError:
        return "?"
    return m.group(1) if m else "?"


def versions() -> str:
    """``h3load (bench/tools/h3load; github.com/quic-go/quic-go v0.65.0, go1.26.8)``."""
    go = ""
    exe = go_binary()
    if exe:
        p = subprocess.run([exe, "version"], capture_output=True, text=True)
        g = re.search(r"go\d+\.\d+(\.\d+)?", p.stdout)
        go = f", {g.group(0)}" if g else ""
    return f"h3load (bench/tools/h3load; github.com/quic-go/quic-go {quic_go_version()}{go})"


def h3_url(port: int, path: str) -> str:
    return f"https://127.0.0.1:{port}{path}"


def expectations(sc) -> list[str]:
    """What every response of ``sc`` must be: ``Hello, World!`` as text/plain, or the request body echoed back."""
    if sc.expect == "echo":
        return ["-method", sc.method, "-body-size", str(sc.body_size), "-expect-echo", "-expect-type", ECHO_TYPE]
    if sc.expect != "plaintext":
        raise ValueError(f"h3load checks plaintext or echo bodies, not {sc.expect!r}")
    return ["-method", sc.method, f"-expect-body={PLAINTEXT}", "-expect-type", "text/plain"]


def command(sc, port: int, ca: Path, warmup: float, duration: float, client_cpus: str | None,
            binary: Path = H3LOAD_BIN, check: bool = False, requests: int = 4) -> list[str]:
    """h3load's command line for scenario ``sc``: ``sc.connections`` QUIC connections x ``sc.streams`` streams;
    pinned with taskset when ``client_cpus`` is given. ``check``: the correctness run (one connection, ``requests``
    requests) instead of the load."""
    cmd = [] if client_cpus is None else ["taskset", "-c", client_cpus]
    cmd += [str(binary), "-url", h3_url(port, sc.path), "-ca", str(ca), *expectations(sc)]
    if check:
        return cmd + ["-check", "-n", str(requests)]
    return cmd + ["-c", str(sc.connections), "-m", str(sc.streams), f"-warmup={warmup:g}s", f"-d={duration:g}s"]


def parse_output(text: str, tool: str = "h3load") -> dict[str, Any]:
    """The ``H3LOAD_RESULT`` JSON of a run (the last one) of ``tool`` (h3load or h3bench), plus ``marks``: how many
    window marks it printed.

    Raises ValueError when there is none (the tool crashed or was killed)."""
    return parse_marked_result(text, tool, RESULT_PREFIX, (MARK_START, MARK_END), f"an {tool}")


def to_run(parsed: dict[str, Any]) -> dict[str, Any]:
    """An h3load result in the suite's per-run vocabulary: ``requests`` = correct responses in the timed window
    (what CPU per request is divided by), ``errors`` = every counted error, ``tls`` as the load's connections
    negotiated it."""
    requests = parsed.get("requests")
    read = parsed.get("bytes_read")
    return {
        "requests_per_sec": parsed.get("requests_per_sec"),
        "requests": requests,
        "window_s": parsed.get("duration_s"),
        "bytes_read": read,
        "bytes_sent": parsed.get("bytes_sent"),
        "bytes_per_sec": parsed.get("bytes_per_sec"),
        "latency_ms": parsed.get("latency_ms") or {},
        "status": parsed.get("status") or {},
        "protocol": parsed.get("protocol"),
        "dials": parsed.get("dials"),
        "tls": parsed.get("tls"),
        "errors": int(parsed.get("errors_total") or 0),
        "error_counts": parsed.get("errors"),
        "first_error": parsed.get("first_error"),
    }


def judge_check(code: int, text: str) -> tuple[bool, str]:
    """Is an ``h3load -check`` run a pass? (ok, reason when not)."""
    try:
        out = parse_output(text)
    except ValueError as exc:
        return False, f"h3load -check exited {code}: {exc}"
    if code == 0 and out.get("ok"):
        return True, ""
    reason = out.get("reason") or out.get("first_error") or f"{out.get('errors_total')} errors"
    counts = {k: v for k, v in (out.get("errors") or {}).items() if v}
    return False, f"HTTP/3 check failed: {reason}" + (f" (errors: {counts})" if counts else "")


def run_check(port: int, sc, ca: Path, binary: Path = H3LOAD_BIN, requests: int = 4,
              timeout: float = 60) -> tuple[int, str]:
    """``h3load -check`` against the port: (exit status, output)."""
    p = subprocess.run(command(sc, port, ca, 0, 0, None, binary, check=True, requests=requests), capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def gate(port: int, sc, ca: Path, binary: Path = H3LOAD_BIN, timeout: float = 60) -> tuple[bool, str]:
    """The HTTP/3 correctness gate: ``h3load -check`` on one QUIC connection (TLS 1.3 verified against the run's
    CA, ALPN h3): two requests one after the other, then two at once; each must come back over HTTP/3 with a 2xx,
    the exact body (``Hello, World!``, or the 1 MiB request body echoed byte for byte) and the content type
    (text/plain, or application/octet-stream as sent), all on that one connection."""
    if not Path(binary).exists():
        return False, f"h3load not built ({binary})"
    try:
        code, text = run_check(port, sc, ca, binary, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"h3load -check did not finish in {timeout:.0f} s"
    return judge_check(code, text)


def handshake(port: int, sc, ca: Path, binary: Path = H3LOAD_BIN, timeout: float = 30) -> dict[str, Any]:
    """One request over HTTP/3: the TLS version, cipher and ALPN the QUIC handshake negotiated, or {error}."""
    try:
        code, text = run_check(port, sc, ca, binary, requests=1, timeout=timeout)
        out = parse_output(text)
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)}
    if code != 0 or not out.get("tls"):
        return {"error": out.get("reason") or f"h3load -check exited {code}"}
    return dict(out["tls"])


def answers(port: int, ca: Path, binary: Path = H3LOAD_BIN, path: str = "/plaintext",
            handshake_timeout: float = 1.0) -> bool:
    """Does the port answer GET ``path`` with a 2xx over HTTP/3 (UDP)? For readiness: the TCP side of a server may
    be up before its QUIC side."""
    cmd = [str(binary), "-url", h3_url(port, path), "-ca", str(ca), "-check", "-n", "1",
           f"-handshake-timeout={handshake_timeout:g}s", f"-timeout={handshake_timeout + 2:g}s"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=handshake_timeout + 10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    try:
        out = parse_output(p.stdout)
    except ValueError:
        return False
    return (out.get("status") or {}).get("2xx", 0) >= 1

