"""Tests for the matrix suite's TLS and HTTP/2 scenarios (bench): h2load/wrk-over-TLS parsing, the nginx
TLS config, certificate generation, the HTTP/2 gate and the exclusion of servers without h2. No load runs:
the samples below were captured from short runs against nginx 1.22 (TLS + h2) and Granian 2.8 (h2c) here."""

from __future__ import annotations

import http.server
import shutil
import socketserver
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, so `bench` imports as a package

from bench import cli, loadgen, measure, report, runner, scenarios, servers, summary, tls  # noqa: E402

H2LOAD_TLS_H2 = '''\
starting benchmark...
spawning thread #0: 64 total client(s). Timing-based test with 0s of warm-up time and 2s of main duration for measurements.
Warm-up started for thread #0.
progress: 9% of clients started
progress: 18% of clients started
progress: 28% of clients started
progress: 37% of clients started
progress: 46% of clients started
progress: 56% of clients started
progress: 65% of clients started
progress: 75% of clients started
progress: 84% of clients started
progress: 93% of clients started
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
TLS Protocol: TLSv1.3
Cipher: TLS_AES_128_GCM_SHA256
Server Temp Key: X25519 253 bits
Application protocol: h2
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 2.14s, 28189.00 req/s, 2.15MB/s
requests: 56378 total, 62778 started, 56378 done, 56378 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 56378 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 4.30MB (4513376) total, 2.63MB (2762522) headers (space savings 50.51%), 715.74KB (732914) data
                     min         max         mean         sd        +/- sd
time for request:    17.59ms    245.64ms    133.64ms     45.72ms    56.51%
time for connect:    30.75ms    265.92ms    152.56ms     72.61ms    57.81%
time to 1st byte:   292.69ms    482.97ms    388.57ms     58.97ms    54.69%
req/s           :     377.61      483.89      421.20       24.69    75.00%
'''

WRK_HTTPS = '''\
Running 2s test @ https://127.0.0.1:40443/plaintext
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.22ms    6.91ms  64.07ms   84.39%
    Req/Sec     8.92k     2.85k   11.95k    85.00%
  Latency Distribution
     50%    7.34ms
     75%   11.41ms
     90%   16.97ms
     99%   25.08ms
  18363 requests in 2.08s, 2.82MB read
Requests/sec:   8847.07
Transfer/sec:      1.36MB
BENCH_LATENCY_US 50 7343
BENCH_LATENCY_US 90 16968
BENCH_LATENCY_US 99 25083
BENCH_LATENCY_US 99.9 48785
BENCH_LATENCY_US 99.99 57237
BENCH_LATENCY_US max 64069
'''

H2LOAD_H2C_GATE = '''\
starting benchmark...
spawning thread #0: 1 total client(s). 4 total requests
Application protocol: h2c
progress: 25% done
progress: 50% done
progress: 75% done
progress: 100% done

finished in 4.64ms, 862.44 req/s, 53.06KB/s
requests: 4 total, 4 started, 4 done, 4 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 4 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 252B (252) total, 73B (73) headers (space savings 80.59%), 52B (52) data
                     min         max         mean         sd        +/- sd
time for request:       80us       698us       249us       300us    75.00%
time for connect:     1.18ms      1.18ms      1.18ms         0us   100.00%
time to 1st byte:     1.95ms      1.95ms      1.95ms         0us   100.00%
req/s           :    1720.95     1720.95     1720.95        0.00   100.00%
'''

# h2load against uvicorn with TLS: no ALPN, so h2load falls back to HTTP/1.1 (and still "succeeds")
H2LOAD_TLS_FALLBACK = """\
starting benchmark...
spawning thread #0: 1 total client(s). 4 total requests
TLS Protocol: TLSv1.3
Cipher: TLS_AES_256_GCM_SHA384
Server Temp Key: X25519 253 bits
No protocol negotiated. Fallback behaviour may be activated
Server does not support NPN/ALPN. Falling back to HTTP/1.1.
Application protocol: http/1.1
progress: 25% done
progress: 50% done
progress: 75% done
progress: 100% done

finished in 9.26ms, 432.15 req/s, 62.04KB/s
requests: 4 total, 4 started, 4 done, 4 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 4 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 588B (588) total, 396B (396) headers (space savings 0.00%), 52B (52) data
"""

M = scenarios.CURL_MARK


def curl_out(*transfers: tuple[str, str, str, str, str]) -> str:
    """What ``curl -w CURL_WRITE_OUT URL URL`` prints: body, then the write-out line, per transfer."""
    return "".join(f"{body}\n{M} {code} {version} {connects} {ctype}\n" for body, code, version, connects, ctype
                   in transfers)


SC = scenarios.build_scenarios()


# ---- parsing ----------------------------------------------------------------------------------------

def test_parse_h2load_tls_h2_sample():
    out = loadgen.parse_h2load_output(H2LOAD_TLS_H2)
    assert out["requests_per_sec"] == pytest.approx(28189.0)
    assert out["requests"] == 56378 and out["succeeded"] == 56378 and out["requests_total"] == 56378
    assert out["errors"] == 0 and out["non_2xx"] == 0
    assert out["duration_s"] == pytest.approx(2.14)
    assert out["protocol"] == "h2"
    assert out["tls"] == {"version": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256",
                          "key_exchange": "X25519 253 bits"}
    assert out["request_time_ms"] == {"min": 17.59, "max": 245.64, "mean": 133.64, "sd": 45.72}


def test_parse_h2load_h2c_sample_has_no_tls():
    out = loadgen.parse_h2load_output(H2LOAD_H2C_GATE)
    assert out["protocol"] == "h2c" and out["tls"] is None
    assert out["duration_s"] == pytest.approx(4.64e-3) and out["requests"] == 4
    assert out["request_time_ms"] == {"min": 0.08, "max": 0.698, "mean": 0.249, "sd": 0.3}


def test_parse_wrk_https_sample():
    out = loadgen.parse_wrk(WRK_HTTPS)
    assert out["requests_per_sec"] == pytest.approx(8847.07)
    assert out["requests"] == 18363
    assert out["latency_ms"]["50"] == pytest.approx(7.343)
    assert out["latency_ms"]["99.9"] == pytest.approx(48.785)
    assert out["errors"] == 0


# ---- commands -----------------------------------------------------------------------------------------

def test_tls_and_h2_scenarios_and_commands():
    https, h2, h2c = SC["https-plaintext"], SC["h2-plaintext"], SC["h2c-plaintext"]
    assert (https.protocol, h2.protocol, h2c.protocol) == ("h1-tls", "h2", "h2c")
    assert https.tls and h2.tls and not h2c.tls and not SC["plaintext"].tls
    assert not (https.quick or h2.quick or h2c.quick)
    w = loadgen.wrk_command(https, 4000, 3, "1", 1, timed=True)
    assert w[-1] == "https://127.0.0.1:4000/plaintext" and "--latency" in w
    c = loadgen.h2load_h2_command(h2, 4000, 3, "1", 1, Path("/tmp/r.log"))
    assert c[:4] == ["taskset", "-c", "1", "h2load"]
    assert "-m100" in c and "-c64" in c and "-D3" in c and "--log-file=/tmp/r.log" in c
    assert c[-1] == "https://127.0.0.1:4000/plaintext"
    assert loadgen.h2load_h2_command(h2c, 4000, 1, "1", 1)[-1] == "http://127.0.0.1:4000/plaintext"


def test_curl_h2_commands():
    files = tls.TlsFiles(ca=Path("/x/ca.pem"), cert=Path("/x/s.pem"), key=Path("/x/s.key"))
    t = scenarios.curl_h2_command(4000, SC["h2-plaintext"], files)
    assert "--http2" in t and "--cacert" in t and "/x/ca.pem" in t
    assert t[-2:] == ["https://127.0.0.1:4000/plaintext"] * 2  # two transfers: connection reuse is checked
    c = scenarios.curl_h2_command(4000, SC["h2c-plaintext"], None)
    assert "--http2-prior-knowledge" in c and c[-1] == "http://127.0.0.1:4000/plaintext"


# ---- the gate's protocol checks -----------------------------------------------------------------------

def test_curl_transfers_h2_ok_and_failures():
    ok = ("Hello, World!", "200", "2", "1", "text/plain")
    reuse = ("Hello, World!", "200", "2", "0", "text/plain")
    assert scenarios.check_curl_transfers(curl_out(ok, reuse), "plaintext", "2") == (True, "")
    assert scenarios.check_curl_transfers(curl_out(ok), "plaintext", "2") == (True, "")
    # a server without h2 in its ALPN: curl --http2 falls back to HTTP/1.1 (uvicorn, with charset)
    h1 = ("Hello, World!", "200", "1.1", "1", "text/plain; charset=utf-8")
    good, why = scenarios.check_curl_transfers(curl_out(h1, h1[:3] + ("0", h1[4])), "plaintext", "2")
    assert not good and "HTTP/1.1, not HTTP/2" in why
    assert scenarios.check_curl_transfers(curl_out(h1, h1[:3] + ("0", h1[4])), "plaintext", "1.1") == (True, "")
    good, why = scenarios.check_curl_transfers(curl_out(ok, ok), "plaintext", "2")
    assert not good and "new connection" in why
    good, why = scenarios.check_curl_transfers(curl_out(("Hello", "200", "2", "1", "text/plain")), "plaintext", "2")
    assert not good and "wrong body" in why
    good, why = scenarios.check_curl_transfers(curl_out(("Hello, World!", "200", "2", "1", "text/html")),
                                          "plaintext", "2")
    assert not good and "Content-Type" in why
    good, why = scenarios.check_curl_transfers(curl_out(("oops", "503", "2", "1", "text/plain")), "plaintext", "2")
    assert not good and "503" in why
    good, why = scenarios.check_curl_transfers("", "plaintext", "2")
    assert not good and "no transfer summary" in why


def test_h2load_gate_and_run_protocol_checks():
    assert scenarios.check_h2load_gate(H2LOAD_H2C_GATE, 4, "h2c") == (True, "")
    ok, why = scenarios.check_h2load_gate(H2LOAD_TLS_FALLBACK, 4, "h2")
    assert not ok and "http/1.1, not h2" in why
    ok, why = scenarios.check_h2load_gate(H2LOAD_H2C_GATE.replace("4 succeeded", "3 succeeded"), 4, "h2c")
    assert not ok and "3 of 4" in why
    assert not scenarios.check_h2load_gate("connect to 127.0.0.1 failed\n", 4, "h2c")[0]
    # a timed run whose h2load fell back to HTTP/1.1 is an error, not an HTTP/2 figure
    assert measure.check_h2load_protocol(SC["h2-plaintext"], loadgen.parse_h2load_output(H2LOAD_TLS_H2)) is None
    assert "http/1.1, not h2" in measure.check_h2load_protocol(SC["h2-plaintext"],
                                                              loadgen.parse_h2load_output(H2LOAD_TLS_FALLBACK))
    assert measure.check_h2load_protocol(SC["h2c-plaintext"], loadgen.parse_h2load_output(H2LOAD_H2C_GATE)) is None
    assert "not h2c" in measure.check_h2load_protocol(SC["h2c-plaintext"], loadgen.parse_h2load_output(H2LOAD_TLS_H2))


def test_tls_scenarios_need_a_certificate():
    ok, why = scenarios.gate(1, SC["https-plaintext"], None)
    assert not ok and "certificate" in why


# ---- certificates, and the gate against an in-process TLS server ---------------------------------------

needs_openssl = pytest.mark.skipif(not shutil.which("openssl"), reason="openssl CLI not installed")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not installed")
    return tls.generate(tmp_path_factory.mktemp("tls"))


@needs_openssl
def test_generate_certificate(tls_files):
    for p in (tls_files.ca, tls_files.cert, tls_files.key):
        assert p.exists()
    assert tls_files.key.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8 (Granian needs it)
    assert tls_files.key.stat().st_mode & 0o077 == 0
    text = subprocess.run(["openssl", "x509", "-in", str(tls_files.cert), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text and "P-256" in text
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(tls_files.ca), str(tls_files.cert)],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    assert tls_files.describe()["key_type"].startswith("ECDSA P-256")


class _Plain(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = b"Hello, World!" if self.path == "/plaintext" else b"nope"
        self.send_response(200 if self.path == "/plaintext" else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def https_h1_port(tls_files):
    """An HTTP/1.1-only HTTPS server (ALPN offers http/1.1 only), like uvicorn with --ssl-certfile."""
    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
    srv = Server(("127.0.0.1", 0), _Plain)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tls_files.cert), str(tls_files.key))
    ctx.set_alpn_protocols(["http/1.1"])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()


@needs_openssl
def test_https_gate_and_handshake_against_tls_server(tls_files, https_h1_port):
    assert scenarios.gate(https_h1_port, SC["https-plaintext"], tls_files) == (True, "")
    hs = scenarios.tls_handshake(https_h1_port, tls_files, ["h2", "http/1.1"])
    assert hs["version"] == "TLSv1.3" and hs["alpn"] == "http/1.1" and hs["cipher"].startswith("TLS_")
    # a client that does not trust the run's CA fails verification
    other = tls.generate(tls_files.ca.parent.parent / "other")
    ok, why = scenarios.gate(https_h1_port, SC["https-plaintext"], other)
    assert not ok and ("verif" in why.lower() or "certificate" in why.lower())


@needs_openssl
def test_h2_gate_excludes_a_tls_server_without_h2(tls_files, https_h1_port):
    if not shutil.which("h2load") or not scenarios.curl_has_http2():
        pytest.skip("h2load / curl with HTTP/2 not installed")
    ok, why = scenarios.gate(https_h1_port, SC["h2-plaintext"], tls_files)
    assert not ok and "selected http/1.1" in why


@needs_openssl
def test_wait_for_200_tls(tls_files, https_h1_port):
    import time
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert servers.wait_for_200_tls(proc, https_h1_port, time.monotonic() + 5, tls_files) == ""
    finally:
        proc.kill()
        proc.wait()


# ---- nginx's TLS configuration --------------------------------------------------------------------------

def test_nginx_tls_config_rendering(tmp_path):
    files = tls.TlsFiles(ca=tmp_path / "ca.pem", cert=tmp_path / "server.pem", key=tmp_path / "server.key")
    conf = servers.nginx_conf(servers.Ctx(workers=2), 40443, tmp_path, files).read_text()
    assert "@" not in conf.replace("@TMPDIR", "")  # no unfilled placeholder
    assert "listen 127.0.0.1:40443 ssl http2 backlog=4096;" in conf
    assert f"ssl_certificate {files.cert};" in conf and f"ssl_certificate_key {files.key};" in conf
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf
    assert "access_log off;" in conf and "keepalive_requests 1000000000;" in conf
    assert 'default_type text/plain;\n            return 200 "Hello, World!";' in conf
    assert "worker_processes 2;" in conf and "worker_connections 20000;" in conf
    plain = servers.nginx_conf(servers.Ctx(), 40080, tmp_path).read_text()
    assert "listen 127.0.0.1:40080 backlog=4096;" in plain and "ssl" not in plain


@needs_openssl
@pytest.mark.skipif(not Path(servers.NGINX).exists(), reason="nginx not installed")
def test_nginx_tls_config_passes_nginx_t(tls_files, tmp_path):
    conf = servers.nginx_conf(servers.Ctx(), 40443, tmp_path, tls_files)
    p = subprocess.run([servers.NGINX, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr


# ---- which servers run which TLS/h2 scenario ------------------------------------------------------------

NEW = [SC["https-plaintext"], SC["h2-plaintext"], SC["h2c-plaintext"]]


def _excluded(name, **kw):
    kw = {"have_h2load": True, "have_curl_h2": True, "tls_error": None, **kw}
    return runner.unsupported_pairs(servers.all_specs()[name], NEW, **kw)


def test_servers_without_h2_are_excluded_with_a_reason():
    specs = servers.all_specs()
    for name in ("covet-native", "covet-async", "granian-rsgi", "granian-asgi"):
        assert _excluded(name) == {}, name
    fastapi = _excluded("fastapi")
    assert set(fastapi) == {"h2-plaintext", "h2c-plaintext"} and "uvicorn has no HTTP/2" in fastapi["h2-plaintext"]
    assert set(_excluded("nginx")) == {"h2c-plaintext"}
    for name in ("robyn", "socketify", "express", "actix", "covet-sync", "starlette", "blacksheep"):
        assert {"h2-plaintext", "h2c-plaintext"} <= set(_excluded(name)), name
    for name, spec in specs.items():  # no TLS configuration means no TLS scenario, always with a reason
        ex = _excluded(name)
        if spec.tls_command is None:
            assert {"https-plaintext", "h2-plaintext"} <= set(ex) and all(ex.values()), name
    # a spec without TLS and without a stated reason still gets one
    bare = servers.ServerSpec("bare", "Bare", "cfg", lambda c: None, lambda c, p: ["x"], lambda c: {})
    ex = runner.unsupported_pairs(bare, NEW, have_h2load=True, have_curl_h2=True, tls_error=None)
    assert ex == {"https-plaintext": "no TLS configuration for bare in the suite",
                  "h2-plaintext": "no TLS configuration for bare in the suite"}
    # missing tools / certificate
    assert "h2load not installed" in _excluded("granian-rsgi", have_h2load=False)["h2c-plaintext"]
    assert "curl" in _excluded("granian-rsgi", have_curl_h2=False)["h2-plaintext"]
    assert "no certificate" in _excluded("granian-rsgi", tls_error="openssl missing")["https-plaintext"]
    assert "h2c-plaintext" not in _excluded("granian-rsgi", tls_error="openssl missing")


def test_tls_commands():
    specs = servers.all_specs()
    ctx = servers.Ctx(native_binary=Path("/b/hello"))
    files = tls.TlsFiles(ca=Path("/t/ca.pem"), cert=Path("/t/server.pem"), key=Path("/t/server.key"))
    native = specs["covet-native"].tls_command(ctx, 4000, files)
    assert native[:3] == ["/b/hello", "--port", "4000"] and native[-4:] == ["--tls-cert", "/t/server.pem",
                                                                            "--tls-key", "/t/server.key"]
    covet = specs["covet-async"].tls_command(ctx, 4000, files)
    assert covet[3] == "run" and covet[-4:] == ["--ssl-certfile", "/t/server.pem", "--ssl-keyfile", "/t/server.key"]
    gr = specs["granian-rsgi"].tls_command(ctx, 4000, files)
    assert gr[-1] == "app_rsgi:app" and "--ssl-certificate" in gr and "--ssl-keyfile" in gr
    assert gr[gr.index("--http") + 1] == "auto"
    uv = specs["fastapi"].tls_command(ctx, 4000, files)
    assert "uvicorn" in uv and uv[-4:] == ["--ssl-certfile", "/t/server.pem", "--ssl-keyfile", "/t/server.key"]
    with pytest.raises(ValueError):
        servers.Running(specs["robyn"], ctx, files)
    r = servers.Running(specs["granian-asgi"], ctx, files)
    try:
        d = r.describe()
        assert "CERT.pem" in d and "KEY.pem" in d and "--port N" in d
    finally:
        r.cleanup()


# ---- CLI, rounds and the estimate --------------------------------------------------------------------------

def test_cli_tls_rounds():
    a = cli.parse_args([])
    names = [s.name for s in a.scenario_list]
    assert names[-5:] == ["https-plaintext", "h2-plaintext", "h2c-plaintext", "h3-plaintext", "h3-download"]
    assert a.tls_runs == 2 and runner.runs_of(SC["h2c-plaintext"], a) == 2 and runner.runs_of(SC["json"], a) == 3
    q = cli.parse_args(["--quick"])
    assert not {"https-plaintext", "h2-plaintext", "h2c-plaintext"} & {s.name for s in q.scenario_list}
    assert q.tls_runs == 1
    assert cli.parse_args(["--runs", "1"]).tls_runs == 1
    assert cli.parse_args(["--tls-runs", "3"]).tls_runs == 3
    s = cli.parse_args(["--quick", "--scenarios", "h2-plaintext,https-plaintext"])
    assert [x.name for x in s.scenario_list] == ["h2-plaintext", "https-plaintext"]


def test_estimate_counts_tls_rounds_and_starts():
    base = summary.estimate_seconds(13, 100, 3, 1, 3, 3)
    with_tls = summary.estimate_seconds(13, 115, 3, 1, 3, 3, tls_servers=6, tls_pairs=15, tls_runs=2)
    assert with_tls == pytest.approx(base + 2 * (6 * 2.0 + 15 * 4.3))
    assert with_tls < 30 * 60  # the default matrix with the TLS/HTTP/2 scenarios


# ---- report ---------------------------------------------------------------------------------------------

def test_report_names_tools_and_tls_parameters():
    sc = [{"name": n, "title": n, "path": "/plaintext", "method": "GET", "tool": t, "connections": 64, "pipeline": 1,
           "tls": tl, "streams": st} for n, t, tl, st in (("https-plaintext", "wrk", True, 1),
                                                          ("h2-plaintext", "h2load-h2", True, 100),
                                                          ("h2c-plaintext", "h2load-h2", False, 100))]
    result = {
        "date_utc": "2026-11-26T00:00:00Z", "git": "abc", "wall_seconds": 60, "argv": ["python", "-m", "bench"],
        "options": {"server_cpus": "0", "client_cpus": "1", "workers": 1, "warmup": 1, "duration": 3, "runs": 3,
                    "rate": 2000, "tls_runs": 2},
        "machine": {"nproc": 2, "cpu_model": "cpu", "mem_gib": 24, "kernel": "6", "python": "3.11"},
        "tools": {"wrk": "wrk 4", "h2load": "h2load 1", "matplotlib": "3", "openssl": "OpenSSL 3.0.19"},
        "covet_python": {"interpreter": "/x/.venv/bin/python", "choice": "reused"},
        "servers": {"nginx": {"label": "nginx", "config": "cfg", "command": "plain-cmd", "tls_command": "tls-cmd",
                              "versions": {}, "excluded": None}},
        "scenarios": sc,
        "summary": [{"server": "nginx", "scenario": "h2-plaintext", "rps": {"median": 60000, "min": 59000,
                     "max": 61000, "n": 2}, "p50_ms": 50.0, "p99_ms": 100.0, "p999_ms": 105.0,
                     "cpu_s_per_100k": {"median": 0.7}, "errors": 0, "run_errors": []},
                    {"server": "nginx", "scenario": "h2c-plaintext", "excluded": "nginx 1.22 speaks h2c only …"}],
        "per_server": {},
        "tls": {"key_type": "ECDSA P-256 (prime256v1)", "certificate": "leaf", "openssl": "OpenSSL 3.0.19",
                "handshakes": {"nginx/h2-plaintext": {"version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384",
                                                      "bits": 256, "alpn": "h2"}},
                "h2load": {"nginx/h2-plaintext": {"version": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256",
                                                  "key_exchange": "X25519 253 bits"}}},
    }
    md = report.render_markdown(result, json_path="x.json", chart=None, docs=None)
    assert "(wrk over TLS (HTTPS, HTTP/1.1), 64 connections)" in md
    assert "(h2load HTTP/2 (over TLS, ALPN h2), 64 connections × 100 concurrent streams)" in md
    assert "(h2load HTTP/2 (h2c, prior knowledge), 64 connections × 100 concurrent streams)" in md
    assert "| nginx | 60,000 (59,000–61,000) |" in md
    assert "### TLS and HTTP/2 setup" in md and "ECDSA P-256" in md
    assert "| nginx | h2-plaintext | TLSv1.3 | TLS_AES_256_GCM_SHA384 | h2 | TLS_AES_128_GCM_SHA256, X25519 253 bits |" in md
    assert "first 2 round(s)" in md and "OpenSSL 3.0.19" in md
    assert "`plain-cmd`; TLS: `tls-cmd`" in md
    assert "| nginx | h2c-plaintext | nginx 1.22 speaks h2c only … |" in md
    # results written before these scenarios existed still render
    old = {**result, "tls": None, "scenarios": [dict(sc[0], tls=None)], "summary": []}
    old["options"] = {k: v for k, v in result["options"].items() if k != "tls_runs"}
    assert "TLS and HTTP/2 setup" not in report.render_markdown(old, json_path="x.json", chart=None, docs=None)
