"""Scenarios of the matrix, the correctness gate, and the load-generator command lines."""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .core import (
    CURL_WRITE_OUT, body_ok, check_curl_transfers, content_type_ok, invalid_item_payload, item_payload, native_run,
    parse_h2load_output,
)
from .tls import TlsFiles, client_context
from . import wsload

SUITE = Path(__file__).resolve().parent
MATRIX_LUA = SUITE / "matrix.lua"
PIPELINE_LUA = native_run.PIPELINE_LUA
PIPELINE_DEPTH = 16
H2_STREAMS = 100  # h2load -m: concurrent streams per HTTP/2 connection
TLS_SCENARIOS = ("https-plaintext", "h2-plaintext")  # served by a second, TLS instance of a server
H2_SCENARIOS = ("h2-plaintext", "h2c-plaintext")
WS_SCENARIOS = ("ws-echo", "ws-broadcast")  # wsload (bench/tools/wsload), on an instance of their own
WS_MESSAGE_BYTES = 64
WS_SUBSCRIBERS = 100
WS_WINDOW = 16  # ws-broadcast: messages out before the publisher waits for every subscriber to have the oldest


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    path: str
    expect: str  # plaintext | json | users | item
    connections: int = 64
    method: str = "GET"
    tool: str = "wrk"  # wrk | h2load-rate (HTTP/1.1, fixed rate) | h2load-h2 (HTTP/2) | wsload (WebSocket)
    pipeline: int = 1
    quick: bool = True  # part of --quick
    tls: bool = False  # served over TLS by a second instance of the server started with the run's certificate
    streams: int = 1  # h2load -m: concurrent streams per HTTP/2 connection
    ws: str = ""  # wsload -mode: echo | broadcast
    size: int = 0  # WebSocket text message bytes
    inflight: int = 1  # ws echo: messages in flight per connection
    subscribers: int = 0  # ws broadcast: subscriber connections (plus one publisher)
    window: int = 1  # ws broadcast: messages the publisher may have out before every subscriber has them

    @property
    def protocol(self) -> str:
        """What goes over the wire: ``h1``, ``h1-tls`` (HTTPS), ``h2`` (TLS + ALPN), ``h2c`` (prior knowledge) or
        ``ws`` (WebSocket over cleartext HTTP/1.1 upgrade)."""
        if self.tool == "wsload":
            return "ws"
        if self.tool == "h2load-h2":
            return "h2" if self.tls else "h2c"
        return "h1-tls" if self.tls else "h1"

    @property
    def scheme(self) -> str:
        if self.tool == "wsload":
            return "ws"
        return "https" if self.tls else "http"

    @property
    def is_ws(self) -> bool:
        return self.tool == "wsload"

    @property
    def latency_valid(self) -> bool:
        # wrk times a whole pipelined batch from its first byte: its latency is wrong under pipelining
        return self.pipeline == 1


def build_scenarios(connections: int = 64, keepalive: tuple[int, ...] = (1000, 10000),
                    ws_window: int = WS_WINDOW) -> dict[str, Scenario]:
    sc = [
        Scenario("plaintext", "plaintext", "/plaintext", "plaintext", connections),
        Scenario("json", "JSON serialisation", "/json", "json", connections),
        Scenario("params", "path + query parameter", "/users/123?q=x", "users", connections),
        Scenario("post-json", "POST 1 KB JSON, model-validated", "/items", "item", connections, method="POST"),
        Scenario("io-sleep", "await asyncio.sleep(0.001)", "/sleep", "plaintext", connections),
        Scenario(f"pipelined{PIPELINE_DEPTH}", f"{PIPELINE_DEPTH}-deep pipelined plaintext", "/plaintext",
                 "plaintext", 256, pipeline=PIPELINE_DEPTH),
    ]
    for n in keepalive:
        sc.append(Scenario(f"keepalive-{n // 1000}k" if n % 1000 == 0 else f"keepalive-{n}",
                           f"{n:,} keep-alive connections", "/plaintext", "plaintext", n, quick=n <= 1000))
    sc.append(Scenario("open-loop", "fixed-rate latency (open loop)", "/plaintext", "plaintext", 50,
                       tool="h2load-rate"))
    # WebSocket (not in --quick unless named; in the first --ws-runs rounds only): wsload, text messages
    sc.append(Scenario("ws-echo", f"WebSocket echo, {WS_MESSAGE_BYTES}-byte text messages, 1 in flight per "
                       "connection", "/ws/echo", "ws-echo", connections, tool="wsload", quick=False, ws="echo",
                       size=WS_MESSAGE_BYTES))
    sc.append(Scenario("ws-broadcast", f"WebSocket broadcast: 1 publisher, {WS_SUBSCRIBERS} subscribers in one room, "
                       f"{WS_MESSAGE_BYTES}-byte text messages", f"/ws/room/{wsload.BROADCAST_ROOM}", "ws-broadcast",
                       WS_SUBSCRIBERS + 1, tool="wsload", quick=False, ws="broadcast", size=WS_MESSAGE_BYTES,
                       subscribers=WS_SUBSCRIBERS, window=ws_window))
    # TLS and HTTP/2 (not in --quick): HTTPS with wrk; HTTP/2 with h2load, H2_STREAMS streams per connection
    sc.append(Scenario("https-plaintext", "HTTPS (HTTP/1.1 over TLS)", "/plaintext", "plaintext", connections,
                       quick=False, tls=True))
    sc.append(Scenario("h2-plaintext", f"HTTP/2 over TLS (ALPN h2), {H2_STREAMS} streams per connection",
                       "/plaintext", "plaintext", connections, tool="h2load-h2", quick=False, tls=True,
                       streams=H2_STREAMS))
    sc.append(Scenario("h2c-plaintext", f"HTTP/2 cleartext (h2c, prior knowledge), {H2_STREAMS} streams per "
                       "connection", "/plaintext", "plaintext", connections, tool="h2load-h2", quick=False,
                       streams=H2_STREAMS))
    return {s.name: s for s in sc}



# --------------------------------------------------------------------------------------------------
# Correctness gate
# --------------------------------------------------------------------------------------------------


def _request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp, resp.read()


def gate(port: int, sc: Scenario, tls: TlsFiles | None = None) -> tuple[bool, str]:
    """Is the server right for ``sc`` before it is timed? (ok, reason when not).

    Two requests on one keep-alive connection: 2xx, the exact expected body and content type. POST also
    requires a 4xx for a body the model must reject (proof that it is validated). Pipelined scenarios
    require 16 correct responses to 16 requests in one write. HTTPS: the same over a verified TLS connection
    (the run's CA). HTTP/2: curl must fetch the body twice over one connection and report HTTP version 2
    (``--http2`` with ALPN over TLS, ``--http2-prior-knowledge`` for h2c), and over TLS the handshake must
    select ALPN ``h2``. WebSocket: ``wsload -check`` (echoes identical; every subscriber gets every broadcast, in
    order; see wsload.gate).
    """
    if sc.tls and tls is None:
        return False, "no TLS certificate for this run"
    if sc.tool == "wsload":
        return wsload.gate(port, sc)
    if sc.tool == "h2load-h2":
        return gate_h2(port, sc, tls)
    body = item_payload() if sc.method == "POST" else None
    what = f"{sc.method} {sc.scheme}://…{sc.path}" if sc.tls else f"{sc.method} {sc.path}"
    try:
        if sc.tls:
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5,
                                               context=client_context(tls, ["http/1.1"]))
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for attempt in (1, 2):
            resp, data = _request(conn, sc.method, sc.path, body)
            if not 200 <= resp.status < 300:
                return False, f"{what} -> {resp.status} {data[:80]!r}"
            if not body_ok(sc.expect, data):
                return False, f"{what}: wrong body {data[:100]!r}"
            if not content_type_ok(sc.expect, resp.getheader("Content-Type")):
                return False, f"{what}: wrong Content-Type {resp.getheader('Content-Type')!r}"
            if resp.will_close and attempt == 1:
                return False, f"{what}: no keep-alive (the server closes the connection)"
        if sc.method == "POST":
            resp, data = _request(conn, "POST", sc.path, invalid_item_payload())
            if not 400 <= resp.status < 500:
                return False, f"POST {sc.path} with an invalid item -> {resp.status} (a model must reject it)"
        conn.close()
    except ssl.SSLError as exc:
        return False, f"TLS handshake/verification failed: {exc}"
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{what} failed: {exc!r}"
    if sc.pipeline > 1:
        return native_run.check_pipelined(port, sc.path, sc.pipeline)
    return True, ""


def curl_has_http2() -> bool:
    if not shutil.which("curl"):
        return False
    p = subprocess.run(["curl", "-V"], capture_output=True, text=True)
    return "HTTP2" in p.stdout


def curl_h2_command(port: int, sc: Scenario, tls: TlsFiles | None) -> list[str]:
    """GETs with ``-w`` printing status, HTTP version, new connections, content type per transfer.

    Over TLS two GETs on one connection. For h2c only one: curl 7.88 (bookworm) fails to re-use an h2c
    prior-knowledge connection ("Error in the HTTP2 framing layer" before it sends the second request, seen
    against Granian, which h2load and nghttp use fine), so the h2c gate checks re-use with h2load instead."""
    url = f"{sc.scheme}://127.0.0.1:{port}{sc.path}"
    cmd = ["curl", "-sS", "--max-time", "10", "-w", CURL_WRITE_OUT]
    if sc.tls:
        return cmd + ["--http2", "--cacert", str(tls.ca), url, url]  # ALPN offers h2 and http/1.1
    return cmd + ["--http2-prior-knowledge", url]


def gate_h2(port: int, sc: Scenario, tls: TlsFiles | None = None) -> tuple[bool, str]:
    if not shutil.which("h2load"):
        return False, "h2load not installed (apt-get install nghttp2-client)"
    if not curl_has_http2():
        return False, "curl with HTTP/2 support not installed (the HTTP/2 gate uses it)"
    if sc.tls:
        info = tls_handshake(port, tls, ["h2", "http/1.1"])
        if info.get("error"):
            return False, f"TLS handshake failed: {info['error']}"
        if info.get("alpn") != "h2":
            return False, (f"no HTTP/2 over TLS: ALPN offered h2,http/1.1 and the server selected "
                           f"{info.get('alpn') or 'nothing'}")
    try:
        p = subprocess.run(curl_h2_command(port, sc, tls), capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return False, "curl over HTTP/2 timed out"
    if p.returncode != 0:
        how = "HTTP/2 over TLS" if sc.tls else "HTTP/2 over cleartext (h2c prior knowledge)"
        return False, f"no {how}: curl exited {p.returncode}: {p.stderr.strip()[-160:]}"
    ok, why = check_curl_transfers(p.stdout, sc.expect, "2")
    prefix = "HTTP/2 over TLS" if sc.tls else "HTTP/2 over cleartext (h2c prior knowledge)"
    if not ok:
        return False, f"{prefix}: {why}"
    if not sc.tls:
        try:
            p = subprocess.run(["h2load", "-n4", "-c1", "-m1", f"http://127.0.0.1:{port}{sc.path}"],
                               capture_output=True, text=True, timeout=15)
        except subprocess.TimeoutExpired:
            return False, f"{prefix}: h2load -n4 -c1 timed out"
        ok, why = check_h2load_gate(p.stdout, 4, "h2c")
        if not ok:
            return False, f"{prefix}: {why}"
    return True, ""


def check_h2load_gate(text: str, n: int, protocol: str) -> tuple[bool, str]:
    """``h2load -n N -c1`` output: N requests succeeded with 2xx over ``protocol`` on its one connection."""
    try:
        out = parse_h2load_output(text)
    except ValueError:
        return False, f"h2load printed no summary: {text.strip()[-120:]!r}"
    if out["protocol"] != protocol:
        return False, f"h2load negotiated {out['protocol'] or 'no application protocol'}, not {protocol}"
    if out["succeeded"] != n or out["status"]["2xx"] != n:
        return False, f"{out['succeeded']} of {n} requests on one connection succeeded ({out['status']['2xx']} 2xx)"
    return True, ""


def tls_handshake(port: int, tls: TlsFiles, alpn: list[str], timeout: float = 5) -> dict[str, Any]:
    """One verified TLS handshake with ``alpn`` offered: {version, cipher, bits, alpn} or {error}."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            with client_context(tls, alpn).wrap_socket(raw, server_hostname="127.0.0.1") as s:
                name, _proto, bits = s.cipher()
                return {"version": s.version(), "cipher": name, "bits": bits, "alpn": s.selected_alpn_protocol()}
    except (OSError, ssl.SSLError) as exc:
        return {"error": str(exc)}


# --------------------------------------------------------------------------------------------------
# Load-generator commands
# --------------------------------------------------------------------------------------------------


def wrk_command(sc: Scenario, port: int, duration: int, client_cpus: str, threads: int, timed: bool) -> list[str]:
    threads = max(1, min(threads, sc.connections))
    cmd = ["taskset", "-c", client_cpus, "wrk", f"-t{threads}", f"-c{sc.connections}", f"-d{duration}s"]
    if sc.pipeline > 1:
        cmd += ["-s", str(PIPELINE_LUA)]
    else:
        cmd += ["-s", str(MATRIX_LUA)]
        if timed:
            cmd.append("--latency")
    cmd.append(f"{sc.scheme}://127.0.0.1:{port}{sc.path}")
    if sc.pipeline > 1:
        cmd += ["--", str(sc.pipeline)]
    return cmd


def wrk_env(sc: Scenario, body_file: Path) -> dict[str, str]:
    if sc.method == "POST":
        return {"BENCH_METHOD": "POST", "BENCH_BODY_FILE": str(body_file), "BENCH_CONTENT_TYPE": "application/json"}
    return {"BENCH_METHOD": "", "BENCH_BODY_FILE": ""}


def h2load_rate_command(sc: Scenario, port: int, duration: int, rate: int, client_cpus: str, threads: int,
                        log_file: Path) -> list[str]:
    """Open loop at ``rate`` req/s in total: ``sc.connections`` HTTP/1.1 clients at rate/connections each."""
    per_client = max(1, round(rate / sc.connections))
    threads = max(1, min(threads, sc.connections))
    return ["taskset", "-c", client_cpus, "h2load", "--h1", f"-t{threads}", f"-c{sc.connections}",
            f"--rps={per_client}", f"-D{duration}", f"--log-file={log_file}", f"http://127.0.0.1:{port}{sc.path}"]


def h2load_h2_command(sc: Scenario, port: int, duration: int, client_cpus: str, threads: int,
                      log_file: Path | None = None) -> list[str]:
    """HTTP/2: over TLS h2load negotiates h2 by ALPN; over http:// it speaks h2c by prior knowledge."""
    threads = max(1, min(threads, sc.connections))
    cmd = ["taskset", "-c", client_cpus, "h2load", f"-t{threads}", f"-c{sc.connections}", f"-m{sc.streams}",
           f"-D{duration}"]
    if log_file is not None:
        cmd.append(f"--log-file={log_file}")
    return cmd + [f"{sc.scheme}://127.0.0.1:{port}{sc.path}"]
