"""HTTP/3 interoperability of the hello example (--http3) with clients that share no code with the server
(ngtcp2 + nghttp3) nor with the aioquic tests of test_http3.py, on both backends:

  * quic-go's HTTP/3 client: the Go program in h3_go/ (quic-go pinned in h3_go/go.mod), built once per
    session with `go build`. It does all its requests over ONE http3.Transport, verifies the server
    certificate against the test CA, prints a JSON line per response (status, proto, length, sha256)
    and a summary (connections dialled, ALPN, TLS version) and exits non-zero on any error.
  * headless Chromium: `--dump-dom` of /tls with QUIC forced on the server's origin, and, over the
    DevTools protocol (a pipe, no port), the upgrade a browser does by itself: first visit over TCP
    (HTTP/2), then the alt-svc advertisement takes the next visits to HTTP/3.

What each test asks is checked twice: by the client, and in the server's own access log (JSON on
stderr), which names the protocol every request came over.

Environment:
  COVET_REQUIRE_SERVER=1    fail instead of skip when `go` is missing (as for the server binary)
  COVET_REQUIRE_CHROMIUM=1  fail instead of skip when chromium is missing
  GOPROXY, GOFLAGS, ...     passed to `go build` as they are
"""
from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import tls_certs
from covet_proc import free_port
from covet_wire import HELLO, STREAM_BODY
from tls_certs import cert_set, tls_args

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI is not installed")

HERE = Path(__file__).resolve().parent
GO_SRC = HERE / "h3_go"
MODULE_MAX_BODY = 4 << 20   # room for the 1 MiB echoes whatever the default limit
# The module-scoped `server` fixture (conftest.py, once per backend): TLS on TCP and HTTP/3 on the same UDP
# port, with a JSON access log on stderr (one line per request, with its protocol).
SERVER_ARGS = tls_certs.LazyArgs(lambda c: [*tls_args(c), "--http3", "--max-body", str(MODULE_MAX_BODY),
                                            "--access-log", "json", "--log-level", "info"])


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tagged(path: str) -> str:
    """The path with a query unique to this call, to find the request in the access log."""
    return f"{path}?t={uuid.uuid4().hex[:12]}"


def access_lines(srv, target: str, count: int, timeout: float = 5.0) -> list[dict]:
    """The server's access-log lines for `target`, once there are `count` of them (or after timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = []
        for line in srv.stderr_path.read_text(errors="replace").splitlines():
            if '"logger":"covet.access"' in line and target in line:
                entry = json.loads(line)
                if entry.get("target") == target:
                    lines.append(entry)
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def assert_served_over_h3(srv, target: str, count: int = 1, status: int = 200) -> list[dict]:
    lines = access_lines(srv, target, count)
    assert len(lines) == count, f"{len(lines)} access-log lines for {target}, want {count}: {lines}"
    bad = [entry for entry in lines if entry.get("protocol") != "HTTP/3" or entry.get("status") != status]
    assert not bad, f"the server logged requests for {target} not as HTTP/3 {status}: {bad}"
    return lines


# ---- the quic-go client ----------------------------------------------------------------------------------------

def go_binary() -> str | None:
    go = shutil.which("go")
    if go is None and os.access("/usr/local/go/bin/go", os.X_OK):
        go = "/usr/local/go/bin/go"
    return go


@pytest.fixture(scope="session")
def go_client(tmp_path_factory) -> Path:
    """h3_go/ built with `go build` (modules from GOPROXY as the environment says; go.sum is checked)."""
    go = go_binary()
    if go is None:
        msg = "the Go toolchain (`go`) is not installed: it builds the quic-go HTTP/3 client (scripts/setup.sh)"
        if os.environ.get("COVET_REQUIRE_SERVER"):
            pytest.fail(msg + " (COVET_REQUIRE_SERVER=1: not skipped)", pytrace=False)
        pytest.skip(msg)
    out = tmp_path_factory.mktemp("h3-go-client") / "h3-go-client"
    t0 = time.monotonic()
    try:
        p = subprocess.run(["nice", "-n", "10", go, "build", "-o", str(out), "."], cwd=GO_SRC,
                           capture_output=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`go build` of {GO_SRC} took over 600 s", pytrace=False)
    if p.returncode != 0:
        pytest.fail(f"`go build` of {GO_SRC} failed (rc={p.returncode}, {time.monotonic() - t0:.0f} s):\n"
                    f"{p.stdout.decode(errors='replace')}{p.stderr.decode(errors='replace')}", pytrace=False)
    return out


@dataclass
class GoRun:
    argv: list[str]
    rc: int
    responses: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    stderr: str = ""

    def __repr__(self) -> str:
        return (f"<GoRun rc={self.rc} responses={len(self.responses)} summary={self.summary}\n"
                f"  argv={' '.join(self.argv)}\n  stderr={self.stderr[-2000:]!r}>")

    def ok(self) -> "GoRun":
        assert self.rc == 0, f"the quic-go client failed: {self}"
        return self


def run_go(client: Path, srv_port: int, path: str, *args: str, ca: Path | None = None,
           timeout: float = 60.0) -> GoRun:
    """Run the quic-go client against https://localhost:PORT/path (verifying with the test CA unless `ca`)."""
    argv = [str(client), "-url", f"https://localhost:{srv_port}{path}", "-ca", str(ca or cert_set().ca),
            "-timeout", f"{timeout:.0f}s", *args]
    p = subprocess.run(argv, capture_output=True, timeout=timeout + 10, stdin=subprocess.DEVNULL)
    run = GoRun(argv, p.returncode, stderr=p.stderr.decode(errors="replace"))
    for line in p.stdout.decode(errors="replace").splitlines():
        obj = json.loads(line)
        if obj.get("type") == "response":
            run.responses.append(obj)
        elif obj.get("type") == "summary":
            run.summary = obj
    return run


def assert_one_h3_connection(run: GoRun, requests: int) -> None:
    s = run.summary
    assert s.get("requests") == requests and s.get("errors") == 0, run
    assert s.get("connections") == 1 and len(s.get("local_addrs", [])) == 1, \
        f"{requests} requests over one transport took {s.get('connections')} QUIC connections: {run}"
    assert (s.get("alpn"), s.get("tls_version"), s.get("server_name"), s.get("peer_cn")) == \
        ("h3", "TLS 1.3", "localhost", "localhost"), run


def assert_response(r: dict, body: bytes, content_type: str) -> None:
    assert (r["status"], r["proto"]) == (200, "HTTP/3.0"), r
    assert r["len"] == len(body) and r["sha256"] == sha256_hex(body), f"body differs from {body[:80]!r}: {r}"
    assert r["content_type"] == content_type, r


@pytest.mark.parametrize("path, body, media", [
    ("/plaintext", HELLO, "text/plain"),
    ("/stream", STREAM_BODY, "text/plain"),
])
def test_go_get(server, go_client, path, body, media):
    target = tagged(path)
    run = run_go(go_client, server.port, target).ok()
    assert len(run.responses) == 1, run
    r = run.responses[0]
    assert_response(r, body, media)
    assert r["body"].encode() == body, r
    assert_one_h3_connection(run, 1)
    assert_served_over_h3(server, target)


def test_go_get_tls_reports_http3(server, go_client):
    target = tagged("/tls")
    run = run_go(go_client, server.port, target).ok()
    assert len(run.responses) == 1, run
    r = run.responses[0]
    assert (r["status"], r["proto"], r["content_type"]) == (200, "HTTP/3.0", "application/json"), r
    info = json.loads(r["body"])
    assert (info["protocol"], info["alpn"], info["scheme"]) == ("HTTP/3", "h3", "https"), info
    assert (info["tls_version"], info["sni"]) == ("TLSv1.3", "localhost"), info
    assert_one_h3_connection(run, 1)
    assert_served_over_h3(server, target)


@pytest.mark.covet_timeout(90)
@pytest.mark.parametrize("in_flight", [1, 10])
def test_go_50_requests_on_one_connection(server, go_client, in_flight):
    """50 GETs over one transport, one after another or 10 at a time: one QUIC connection, 50 answers."""
    target = tagged("/plaintext")
    run = run_go(go_client, server.port, target, "-n", "50", "-c", str(in_flight)).ok()
    assert sorted(r["i"] for r in run.responses) == list(range(50)), run
    for r in run.responses:
        assert_response(r, HELLO, "text/plain")
    assert_one_h3_connection(run, 50)
    assert_served_over_h3(server, target, 50)


@pytest.mark.covet_timeout(120)
def test_go_post_echo_1mib(server, go_client):
    """Two 1 MiB POSTs on one connection, echoed byte for byte (sha256 of what was sent and what came back)."""
    target = tagged("/echo")
    run = run_go(go_client, server.port, target, "-method", "POST", "-body-size", str(1 << 20), "-n", "2",
                 timeout=90).ok()
    assert len(run.responses) == 2, run
    for r in run.responses:
        assert (r["status"], r["proto"]) == (200, "HTTP/3.0"), r
        assert r["sent_len"] == r["len"] == 1 << 20, f"{r['len']} bytes back of {r['sent_len']}: {r}"
        assert r["sha256"] == r["sent_sha256"], f"the echo differs from the body sent: {r}"
        assert r["content_type"] == "application/octet-stream", r
    assert run.responses[0]["sha256"] != run.responses[1]["sha256"], "the two requests sent the same body"
    assert_one_h3_connection(run, 2)
    lines = assert_served_over_h3(server, target, 2)
    assert [entry["bytes"] for entry in lines] == [1 << 20, 1 << 20], lines


def test_go_client_fails_without_http3(make_server, go_client):
    """The harness check: against TLS on TCP without --http3 (nothing on the UDP port) the client fails."""
    srv = make_server(*tls_args(cert_set()))
    run = run_go(go_client, srv.port, "/plaintext", "-handshake-timeout", "2s", timeout=20)
    assert run.rc != 0 and run.responses == [], f"the quic-go client succeeded without HTTP/3 on the port: {run}"
    assert run.summary.get("errors") == 1, run


def test_go_client_refuses_a_certificate_from_another_ca(server, go_client):
    """The harness check: the client really verifies the certificate (the test CA's, not another one's)."""
    run = run_go(go_client, server.port, "/plaintext", ca=cert_set().rogue_ca, timeout=20)
    assert run.rc != 0 and run.responses == [], f"the client accepted the certificate with another CA: {run}"
    assert "certificate signed by unknown authority" in run.stderr, run
    run_go(go_client, server.port, "/plaintext").ok()


# ---- headless Chromium -----------------------------------------------------------------------------------------

def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_binary()
    if path is None:
        msg = "chromium is not installed (scripts/setup.sh installs it)"
        if os.environ.get("COVET_REQUIRE_CHROMIUM") == "1":
            pytest.fail(msg + " (COVET_REQUIRE_CHROMIUM=1: not skipped)", pytrace=False)
        pytest.skip(msg)
    return path


def spki_sha256(cert: Path) -> str:
    """base64(sha256(SubjectPublicKeyInfo)), the form of --ignore-certificate-errors-spki-list."""
    p = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], capture_output=True,
                       timeout=30, check=True)
    pem = p.stdout.decode()
    der = base64.b64decode("".join(ln for ln in pem.splitlines() if ln and not ln.startswith("-----")))
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def chromium_flags(profile: str, *, force_quic_on: str) -> list[str]:
    """Headless Chromium with QUIC on and the test certificate accepted (by its public key only).

    `localhost` is mapped to 127.0.0.1 (the server listens there; Chromium would try [::1] first for QUIC
    and fail with ERR_QUIC_HANDSHAKE_FAILED) and every other name to NOTFOUND, so the browser's own
    background requests (updates, accounts) go nowhere. Chromium accepts a certificate from an unknown
    root (our test CA) over QUIC only for hosts named in --origin-to-force-quic-on."""
    return ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            "--disable-background-networking", "--disable-dev-shm-usage", "--disable-component-update",
            f"--user-data-dir={profile}",
            "--enable-quic", f"--origin-to-force-quic-on={force_quic_on}",
            "--host-resolver-rules=MAP localhost 127.0.0.1, MAP * ~NOTFOUND",
            f"--ignore-certificate-errors-spki-list={spki_sha256(cert_set().server_cert)}"]


def chromium_log(profile: str) -> str:
    try:
        text = (Path(profile) / "chromium.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    lines = [ln for ln in text.splitlines() if "dbus" not in ln and "shared_image" not in ln]
    return "\n".join(lines[-40:])


def kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # chromium's own process group (start_new_session)
        except ProcessLookupError:
            pass
    proc.wait(10)


def dump_dom(chromium: str, url: str, *, force_quic_on: str, timeout: float = 45.0) -> tuple[str, str]:
    """`chromium --dump-dom URL`: (the DOM, chromium's log)."""
    profile = tempfile.mkdtemp(prefix="covet-chromium-h3-")
    try:
        with open(Path(profile) / "chromium.log", "wb") as log:
            proc = subprocess.Popen([chromium, *chromium_flags(profile, force_quic_on=force_quic_on), "--dump-dom",
                                     url], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                    start_new_session=True)
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"chromium --dump-dom {url} did not finish in {timeout} s; log:\n"
                                     f"{chromium_log(profile)}") from None
            finally:
                kill_group(proc)
        return out.decode(errors="replace"), chromium_log(profile)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def page_json(dom: str) -> dict | None:
    """The JSON document Chromium shows for an application/json page (inside <pre>)."""
    m = re.search(r"<pre[^>]*>(.*?)</pre>", dom, re.S)
    if not m:
        return None
    text = m.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    try:
        return json.loads(text)
    except ValueError:
        return None


@pytest.mark.covet_timeout(90)
def test_chromium_loads_a_page_over_http3(server, chromium):
    target = tagged("/tls")
    url = f"https://localhost:{server.port}{target}"
    dom, log = dump_dom(chromium, url, force_quic_on=f"localhost:{server.port}")
    info = page_json(dom)
    assert info is not None, f"no JSON page from {url}; DOM: {dom[:500]!r}\nchromium log:\n{log}"
    assert (info["protocol"], info["alpn"], info["tls_version"], info["sni"]) == \
        ("HTTP/3", "h3", "TLSv1.3", "localhost"), f"the page Chromium loaded: {info}"
    assert_served_over_h3(server, target)


@pytest.mark.covet_timeout(90)
def test_chromium_forced_quic_fails_without_http3(make_server, chromium):
    """The harness check: with QUIC forced and no HTTP/3 on the port, Chromium shows no page (no TCP fallback)."""
    srv = make_server(*tls_args(cert_set()))
    dom, log = dump_dom(chromium, f"https://localhost:{srv.port}/tls", force_quic_on=f"localhost:{srv.port}")
    assert page_json(dom) is None, f"Chromium loaded /tls with no HTTP/3 on the port: {dom[:500]!r}"
    assert "ERR_QUIC" in log, f"Chromium did not fail on QUIC; log:\n{log}"


class DevTools:
    """Chromium with --remote-debugging-pipe: DevTools protocol messages (JSON, NUL-terminated) over fds 3
    (to the browser) and 4 (from it)."""

    def __init__(self, chromium: str, flags: list[str], profile: str):
        to_r, self._w = os.pipe()
        self._r, from_w = os.pipe()

        def child_fds():   # runs in the child before exec: the pipe ends at fds 3 and 4 (inheritable)
            a, b = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.close(a)
            os.close(b)

        self.log = open(Path(profile) / "chromium.log", "wb")
        # close_fds=False: Python's own descriptors are not inheritable (PEP 446); only 3 and 4 are passed on
        self.proc = subprocess.Popen([chromium, *flags, "--remote-debugging-pipe", "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     close_fds=False, preexec_fn=child_fds, start_new_session=True)
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no message from Chromium's DevTools pipe in time")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                data = os.read(self._r, 1 << 20)
                if not data:
                    raise AssertionError(f"Chromium closed its DevTools pipe (rc={self.proc.poll()})")
                self._buf += data
        raw, _, self._buf = self._buf.partition(b"\0")
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 20.0) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self._next_id:
                if "error" in m:
                    raise AssertionError(f"DevTools {method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        for i, m in enumerate(self.events):
            if m.get("method") == method:
                return self.events.pop(i)
        while True:
            m = self._read_message(deadline)
            if m.get("method") == method:
                return m
            self.events.append(m)

    def close(self) -> None:
        kill_group(self.proc)
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()


def navigate(dt: DevTools, session: str, url: str) -> tuple[str | None, dict, str]:
    """Load url in the page; returns (the protocol Chromium names for the document, its response headers,
    the page's text)."""
    dt.events.clear()
    dt.call("Page.navigate", {"url": url}, session)
    dt.wait_event("Page.loadEventFired")
    docs = [m["params"]["response"] for m in dt.events
            if m.get("method") == "Network.responseReceived" and m["params"].get("type") == "Document"]
    text = dt.call("Runtime.evaluate", {"expression": "document.body.innerText", "returnByValue": True},
                   session)["result"].get("value", "")
    if not docs:
        return None, {}, text
    headers = {k.lower(): v for k, v in docs[-1].get("headers", {}).items()}
    return docs[-1].get("protocol"), headers, text


@pytest.mark.covet_timeout(120)
def test_chromium_upgrades_to_http3_through_alt_svc(server, chromium):
    """What a browser does by itself: the first visit goes over TCP (HTTP/2), whose answer advertises
    h3 in alt-svc; a later visit goes over QUIC. QUIC is forced only on another port of localhost, which
    makes Chromium accept the test CA over QUIC for that host; the server's port is found through alt-svc."""
    profile = tempfile.mkdtemp(prefix="covet-chromium-h3-")
    dt = DevTools(chromium, chromium_flags(profile, force_quic_on=f"localhost:{free_port()}"), profile)
    seen = []
    try:
        target_id = dt.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = dt.call("Target.attachToTarget", {"targetId": target_id, "flatten": True})["sessionId"]
        dt.call("Network.enable", {}, session)
        dt.call("Page.enable", {}, session)

        target = tagged("/tls")
        proto, headers, text = navigate(dt, session, f"https://localhost:{server.port}{target}")
        info = json.loads(text)
        assert (proto, info["protocol"]) == ("h2", "HTTP/2"), f"first visit: {proto} {info}"
        assert headers.get("alt-svc") == f'h3=":{server.port}"; ma=86400', headers

        for _ in range(8):
            target = tagged("/tls")
            proto, headers, text = navigate(dt, session, f"https://localhost:{server.port}{target}")
            info = json.loads(text)
            seen.append((proto, info["protocol"]))
            if proto == "h3":
                break
            time.sleep(0.3)
        assert seen and seen[-1] == ("h3", "HTTP/3"), \
            f"Chromium never went over HTTP/3 after alt-svc; visits (browser, server): {seen}\n{chromium_log(profile)}"
        assert info["alpn"] == "h3", info
        assert_served_over_h3(server, target)
    finally:
        dt.close()
        shutil.rmtree(profile, ignore_errors=True)
