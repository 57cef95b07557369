"""The scenario model of the benchmark, the payloads every server must answer with, and the correctness gate
each (server, scenario) passes before it is timed (HTTP/1.1, pipelining, HTTPS, HTTP/2, WebSocket, gRPC, HTTP/3)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from . import h3load, wsload
from .loadgen import parse_h2load_output
from .servers import grpc_check_command
from .tls import TlsFiles, client_context

PIPELINE_DEPTH = 16
H2_STREAMS = 100  # h2load -m: concurrent streams per HTTP/2 connection
TLS_SCENARIOS = ("https-plaintext", "h2-plaintext")  # served by a second, TLS instance of a server
H2_SCENARIOS = ("h2-plaintext", "h2c-plaintext")
WS_SCENARIOS = ("ws-echo", "ws-broadcast")  # wsload (bench/tools/wsload), on an instance of their own
WS_MESSAGE_BYTES = 64
WS_SUBSCRIBERS = 100
WS_WINDOW = 16  # ws-broadcast: messages out before the publisher waits for every subscriber to have the oldest
GRPC_CONCURRENCY = 50  # ghz -c: calls in flight
GRPC_CONNECTIONS = 4  # ghz --connections: HTTP/2 connections they share
GRPC_STREAM_MESSAGES = 100  # replies per grpc-stream call
H3_SCENARIOS = ("h3-plaintext", "h3-download")  # h3load (bench/tools/h3load), on an HTTP/3 instance of their own
H3_STREAMS = 100  # h3load -m: request streams per QUIC connection (as h2's -m; CovetPy's and quic-go's limit)
# h3-download: the body every request carries and gets echoed back. 1 MiB is CovetPy's default max_body_bytes (a
# larger body gets 413); the apps have no route that sends 1 MiB for a GET, so the download is POST /echo's answer.
H3_DOWNLOAD_BYTES = 1024 * 1024
H3_DOWNLOAD_CONNECTIONS = 8
H3_DOWNLOAD_STREAMS = 4


# --------------------------------------------------------------------------------------------------
# Payloads: what every server answers (bench/peers/*), and the POST bodies
# --------------------------------------------------------------------------------------------------

PLAINTEXT_BODY = b"Hello, World!"
JSON_BODY = {"message": "Hello, World!"}
USERS_BODY = {"id": 123, "q": "x"}
ITEM_RESPONSE = {"name": "widget", "tag_count": 3}


def item_payload(size: int = 1024) -> bytes:
    """The POST body: a JSON object for the `Item` model, padded with `description` to exactly ``size`` bytes."""
    base = {"name": "widget", "price": 9.99, "tags": ["red", "green", "blue"], "description": ""}
    empty = len(json.dumps(base, separators=(",", ":")).encode())
    base["description"] = "x" * max(0, size - empty)
    out = json.dumps(base, separators=(",", ":")).encode()
    assert len(out) == max(size, empty)
    return out


def invalid_item_payload() -> bytes:
    """A body the model must reject (no `tags`, `price` not a number): the gate wants a 4xx for it."""
    return json.dumps({"name": "widget", "price": "cheap", "description": "x"}).encode()


def body_ok(expect: str, body: bytes) -> bool:
    """Does ``body`` equal the expected payload ``expect`` (plaintext | json | users | item)? JSON is compared
    parsed."""
    if expect == "plaintext":
        return body == PLAINTEXT_BODY
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return parsed == {"json": JSON_BODY, "users": USERS_BODY, "item": ITEM_RESPONSE}.get(expect)


def content_type_ok(expect: str, ctype: str | None) -> bool:
    want = "text/plain" if expect == "plaintext" else "application/json"
    return (ctype or "").split(";")[0].strip().lower() == want



@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    path: str
    expect: str  # plaintext | json | users | item
    connections: int = 64
    method: str = "GET"
    tool: str = "wrk"  # wrk | h2load-rate (HTTP/1.1, fixed rate) | h2load-h2 (HTTP/2) | wsload (WebSocket) | ghz
    #                    | h3load (HTTP/3)
    pipeline: int = 1
    quick: bool = True  # part of --quick
    tls: bool = False  # served over TLS by a second instance of the server started with the run's certificate
    streams: int = 1  # h2load/h3load -m: concurrent streams per HTTP/2 or QUIC connection
    ws: str = ""  # wsload -mode: echo | broadcast
    size: int = 0  # WebSocket text message bytes
    inflight: int = 1  # ws echo: messages in flight per connection
    subscribers: int = 0  # ws broadcast: subscriber connections (plus one publisher)
    window: int = 1  # ws broadcast: messages the publisher may have out before every subscriber has them
    stagger_ms: int = 0  # h2load-rate: start the connections this far apart (0: together, their timers in step)
    concurrency: int = 0  # ghz -c: gRPC calls in flight, over ``connections`` HTTP/2 connections
    messages: int = 1  # gRPC: replies per call (1: unary; more: a server stream of that many)
    body_size: int = 0  # h3load: request body bytes (h3-download: echoed back)

    @property
    def protocol(self) -> str:
        """What goes over the wire: ``h1``, ``h1-tls`` (HTTPS), ``h2`` (TLS + ALPN), ``h2c`` (prior knowledge),
        ``ws`` (WebSocket over cleartext HTTP/1.1 upgrade), ``grpc`` (gRPC over h2c) or ``h3`` (HTTP/3 over QUIC)."""
        if self.tool == "h3load":
            return "h3"
        if self.tool == "wsload":
            return "ws"
        if self.tool == "ghz":
            return "grpc"
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
    def is_grpc(self) -> bool:
        return self.tool == "ghz"

    @property
    def is_h3(self) -> bool:
        return self.tool == "h3load"

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
    # The same rate with arrivals spread out: h2load's connections fire their timers together (open-loop's 50
    # requests arrive as one burst every 25 ms); 25 connections started 1 ms apart at 80 req/s each land one request
    # every 0.5 ms (docs/benchmarks.md, "What the open-loop scenario measures").
    sc.append(Scenario("open-loop-spread", "fixed-rate latency, arrivals spread (open loop)", "/plaintext",
                       "plaintext", 25, tool="h2load-rate", stagger_ms=1, quick=False))
    # WebSocket (not in --quick unless named; in the first --ws-runs rounds only): wsload, text messages
    sc.append(Scenario("ws-echo", f"WebSocket echo, {WS_MESSAGE_BYTES}-byte text messages, 1 in flight per "
                       "connection", "/ws/echo", "ws-echo", connections, tool="wsload", quick=False, ws="echo",
                       size=WS_MESSAGE_BYTES))
    sc.append(Scenario("ws-broadcast", f"WebSocket broadcast: 1 publisher, {WS_SUBSCRIBERS} subscribers in one room, "
                       f"{WS_MESSAGE_BYTES}-byte text messages", f"/ws/room/{wsload.BROADCAST_ROOM}", "ws-broadcast",
                       WS_SUBSCRIBERS + 1, tool="wsload", quick=False, ws="broadcast", size=WS_MESSAGE_BYTES,
                       subscribers=WS_SUBSCRIBERS, window=ws_window))
    # gRPC (not in --quick unless named): ghz, the Greeter of examples/native/grpc_greeter/greeter.proto over h2c
    grpc = {"tool": "ghz", "method": "POST", "quick": False, "concurrency": GRPC_CONCURRENCY}
    sc.append(Scenario("grpc-unary", "gRPC unary call", "/bench.Greeter/SayHello", "grpc", GRPC_CONNECTIONS, **grpc))
    sc.append(Scenario("grpc-stream", f"gRPC server stream of {GRPC_STREAM_MESSAGES} messages per call",
                       "/bench.Greeter/SayHellos", "grpc", GRPC_CONNECTIONS, messages=GRPC_STREAM_MESSAGES, **grpc))
    # TLS and HTTP/2 (not in --quick): HTTPS with wrk; HTTP/2 with h2load, H2_STREAMS streams per connection
    sc.append(Scenario("https-plaintext", "HTTPS (HTTP/1.1 over TLS)", "/plaintext", "plaintext", connections,
                       quick=False, tls=True))
    sc.append(Scenario("h2-plaintext", f"HTTP/2 over TLS (ALPN h2), {H2_STREAMS} streams per connection",
                       "/plaintext", "plaintext", connections, tool="h2load-h2", quick=False, tls=True,
                       streams=H2_STREAMS))
    sc.append(Scenario("h2c-plaintext", f"HTTP/2 cleartext (h2c, prior knowledge), {H2_STREAMS} streams per "
                       "connection", "/plaintext", "plaintext", connections, tool="h2load-h2", quick=False,
                       streams=H2_STREAMS))
    # HTTP/3 (not in --quick unless named; in the first --tls-runs rounds only): h3load (quic-go), on an instance of
    # each server started with the run's certificate and HTTP/3 on
    h3 = {"tool": "h3load", "quick": False, "tls": True}
    sc.append(Scenario("h3-plaintext", f"HTTP/3 over QUIC, {H3_STREAMS} streams per connection", "/plaintext",
                       "plaintext", connections, streams=H3_STREAMS, **h3))
    sc.append(Scenario("h3-download", f"HTTP/3, {H3_DOWNLOAD_BYTES // 1024 // 1024} MiB responses: a "
                       f"{H3_DOWNLOAD_BYTES // 1024 // 1024} MiB POST echoed back (examples/native/hello has no 1 MiB "
                       "GET route)", "/echo",
                       "echo", H3_DOWNLOAD_CONNECTIONS, method="POST", streams=H3_DOWNLOAD_STREAMS,
                       body_size=H3_DOWNLOAD_BYTES, **h3))
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
    order; see wsload.gate). gRPC: bench/peers/grpc/check.py (see gate_grpc). HTTP/3: ``h3load -check`` on one QUIC
    connection verified against the run's CA (see h3load.gate).
    """
    if sc.tls and tls is None:
        return False, "no TLS certificate for this run"
    if sc.is_h3:
        return h3load.gate(port, sc, tls.ca)
    if sc.tool == "wsload":
        return wsload.gate(port, sc)
    if sc.is_grpc:
        return gate_grpc(port, sc)
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
        return check_pipelined(port, sc.path, sc.pipeline)
    return True, ""


def count_pipelined_responses(data: bytes, body: bytes) -> int:
    """How many complete ``200`` responses carrying ``body`` are in ``data``.

    A deliberately simple HTTP/1.1 response splitter (Content-Length framing only), used to check that a server
    answers a pipelined batch before timing it.
    """
    n = 0
    pos = 0
    while True:
        head_end = data.find(b"\r\n\r\n", pos)
        if head_end < 0:
            return n
        lines = data[pos:head_end].decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 200"):
            return n
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        start = head_end + 4
        if length is None or len(data) < start + length or data[start : start + length] != body:
            return n
        n += 1
        pos = start + length


def check_pipelined(port: int, path: str, depth: int = PIPELINE_DEPTH) -> tuple[bool, str]:
    """``depth`` GETs of ``path`` in one write must get ``depth`` correct plaintext responses."""
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(req * depth)
            deadline = time.monotonic() + 5
            while count_pipelined_responses(data, PLAINTEXT_BODY) < depth:
                if time.monotonic() > deadline:
                    break
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        return False, f"pipelined check failed: {exc!r}"
    got = count_pipelined_responses(data, PLAINTEXT_BODY)
    if got < depth:
        return False, f"{depth} pipelined GETs in one write: only {got} correct responses"
    return True, ""



CURL_MARK = "@@BENCH"
CURL_WRITE_OUT = "\n" + CURL_MARK + " %{http_code} %{http_version} %{num_connects} %{content_type}\n"


def check_curl_transfers(text: str, expect: str, want_version: str) -> tuple[bool, str]:
    """Judge ``curl -w CURL_WRITE_OUT URL URL`` output: every transfer 2xx with the expected body and content
    type over HTTP version ``want_version`` ("2" or "1.1", as curl's ``%{http_version}`` prints it), and the
    second transfer reusing the first one's connection (``num_connects`` 0). (ok, reason when not)."""
    chunks = text.split("\n" + CURL_MARK + " ")
    if len(chunks) < 2:
        return False, f"curl printed no transfer summary: {text[-120:]!r}"
    transfers = []
    body = chunks[0]
    for chunk in chunks[1:]:
        line, _, rest = chunk.partition("\n")
        fields = line.split(" ", 3)
        if len(fields) < 3:
            return False, f"unreadable curl summary {line!r}"
        transfers.append((body, fields))
        body = rest
    for i, (body, fields) in enumerate(transfers, 1):
        code, version, connects = fields[0], fields[1], fields[2]
        ctype = fields[3] if len(fields) > 3 else ""
        if version != want_version:
            name = {"2": "HTTP/2", "1.1": "HTTP/1.1"}.get(want_version, want_version)
            return False, f"request {i} went over HTTP/{version}, not {name}"
        if not code.isdigit() or not 200 <= int(code) < 300:
            return False, f"request {i} -> status {code}"
        if not body_ok(expect, body.encode()):
            return False, f"request {i}: wrong body {body[:100]!r}"
        if not content_type_ok(expect, ctype):
            return False, f"request {i}: wrong Content-Type {ctype!r}"
        if i > 1 and connects != "0":
            return False, f"request {i} opened a new connection (no keep-alive / connection reuse)"
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


def gate_grpc(port: int, sc: Scenario, client: list[str] | None = None, env: dict[str, str] | None = None,
              timeout: float = 30) -> tuple[bool, str]:
    """The gRPC gate: bench/peers/grpc/check.py, a grpcio client on the generated stubs, makes the scenario's call
    twice on one channel with a name of its own (``gate-<pid>``): SayHello must answer ``Hello, <name>``; SayHellos
    with ``count`` = ``sc.messages`` must stream exactly that many such replies and end with status OK.
    ``client``/``env``: the check's command and environment (default: the suite's gRPC venv and generated code)."""
    if client is None:
        client, env = grpc_check_command()
    try:
        p = subprocess.run([*client, str(port), sc.path, str(sc.messages)], capture_output=True, text=True,
                           timeout=timeout, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return False, f"the gRPC check did not finish in {timeout:.0f} s"
    except OSError as exc:
        return False, f"the gRPC check could not run: {exc}"
    return judge_grpc_check(p.returncode, p.stdout + p.stderr)


def judge_grpc_check(code: int, text: str) -> tuple[bool, str]:
    """check.py prints ``ok`` and exits 0, or prints why not and exits 1; anything else is the check failing."""
    lines = text.strip().splitlines()
    if code == 0 and lines and lines[-1] == "ok":
        return True, ""
    if code == 1 and lines:
        return False, lines[-1]
    return False, f"the gRPC check exited {code}: {' / '.join(lines[-3:])[-300:]}"
