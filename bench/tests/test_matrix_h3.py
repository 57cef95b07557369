"""Tests for the HTTP/3 scenarios of the matrix (h3-plaintext, h3-download; bench/h3load.py, bench/tools/h3load):
h3load's output and command lines, the gate's verdicts and its plumbing (h3load replaced by scripts), the
scenarios, which servers sit them out and which the HTTP/3 peers sit out, the HTTP/3 instances' commands (CovetPy's
`--http3`, Caddy's Caddyfile, Hypercorn's `--quic-bind`), readiness over QUIC, CPU per request sampled at h3load's
marks, the report (CPU ratios to Caddy and Hypercorn and to the server's own h2) and the chart. No load: the Go
tool's own tests (`go test`: in-process quic-go servers, right and wrong ones, for about a second) run when Go is
installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import cli, h3load, measure, report, runner, scenarios, servers, summary, system  # noqa: E402
from bench.tls import TlsFiles  # noqa: E402
from test_matrix_ws import FakeServer, fake_tool  # noqa: E402

SC = scenarios.build_scenarios()
PLAIN, DOWN = SC["h3-plaintext"], SC["h3-download"]
H3 = [PLAIN, DOWN]
TLS = TlsFiles(ca=Path("/t/ca.pem"), cert=Path("/t/server.pem"), key=Path("/t/server.key"))


def result_line(**kw) -> str:
    base = {"tool": "h3load", "version": "1", "url": "https://127.0.0.1:1/plaintext", "method": "GET", "check": False,
            "ok": True, "connections": 64, "streams": 100, "body_size": 0, "warmup_s": 1, "duration_s": 2.0,
            "requests": 120000, "requests_per_sec": 60000.0, "bytes_read": 1560000, "bytes_sent": 0,
            "bytes_per_sec": 780000.0, "latency_ms": {"50": 90.0, "90": 120.0, "99": 200.0, "99.9": 300.0,
                                                      "max": 400.0},
            "status": {"2xx": 120000}, "protocol": "HTTP/3.0", "dials": 64,
            "tls": {"version": "TLS 1.3", "cipher": "TLS_AES_128_GCM_SHA256", "alpn": "h3"},
            "errors": {"connect": 0, "request": 0, "status": 0, "proto": 0, "body": 0, "header": 0},
            "errors_total": 0}
    base.update(kw)
    return h3load.RESULT_PREFIX + json.dumps(base)


LOAD_OUT = "\n".join([h3load.MARK_START, h3load.MARK_END,
                      "GET https://127.0.0.1:1/plaintext: 120000 requests in 2.00 s = 60000 req/s",
                      result_line()]) + "\n"


# ---- output parsing -------------------------------------------------------------------------------------

def test_parse_output_reads_the_result_and_marks():
    out = h3load.parse_output(LOAD_OUT)
    assert out["requests"] == 120000 and out["marks"] == 2 and out["latency_ms"]["99.9"] == 300.0
    run = h3load.to_run(out)
    assert run["requests_per_sec"] == 60000.0 and run["requests"] == 120000 and run["errors"] == 0
    assert run["protocol"] == "HTTP/3.0" and run["tls"]["alpn"] == "h3" and run["dials"] == 64
    assert run["bytes_read"] == 1560000 and run["bytes_per_sec"] == 780000.0


def test_parse_output_takes_the_last_result_and_counts_errors():
    text = result_line(requests=1) + "\n" + result_line(requests=500, errors_total=7, first_error="status 503: …",
                                                       errors={"connect": 0, "request": 2, "status": 5, "proto": 0,
                                                               "body": 0, "header": 0}) + "\n"
    run = h3load.to_run(h3load.parse_output(text))
    assert run["requests"] == 500 and run["errors"] == 7 and run["error_counts"]["status"] == 5
    assert run["first_error"] == "status 503: …"


@pytest.mark.parametrize("text", ["", "panic: runtime error\n", "H3LOAD_RESULT {not json\n",
                                  'H3LOAD_RESULT {"tool": "wsload"}\n'])
def test_parse_output_rejects_missing_or_foreign_results(text):
    with pytest.raises(ValueError):
        h3load.parse_output(text)


# ---- the gate's verdict and plumbing ------------------------------------------------------------------------

def test_judge_check_passes_a_clean_check():
    assert h3load.judge_check(0, result_line(check=True, requests=4)) == (True, "")


def test_judge_check_fails_wrong_answers_with_the_reason():
    text = result_line(check=True, ok=False, reason='request 1 of 4: body "Hello, World", want "Hello, World!"',
                       errors_total=4, errors={"connect": 0, "request": 0, "status": 0, "proto": 0, "body": 4,
                                               "header": 0})
    ok, why = h3load.judge_check(1, text)
    assert not ok and why.startswith('HTTP/3 check failed: request 1 of 4: body "Hello, World"') and "'body': 4" in why
    ok, why = h3load.judge_check(1, result_line(check=True, ok=False, errors_total=1, errors={"connect": 1},
                                                reason="no QUIC connection (HTTP/3) to 127.0.0.1:1: timeout: no "
                                                       "recent network activity"))
    assert not ok and "no QUIC connection" in why and "'connect': 1" in why
    ok, why = h3load.judge_check(2, "segfault\n")
    assert not ok and why.startswith("h3load -check exited 2")


def test_gate_without_the_binary_says_so(tmp_path):
    ok, why = h3load.gate(1, PLAIN, TLS.ca, binary=tmp_path / "nope")
    assert not ok and "h3load not built" in why


def _recording_tool(tmp_path: Path, line: str, code: int = 0) -> Path:
    """An h3load stand-in that writes its argv next to itself and prints ``line``."""
    return fake_tool(tmp_path, f"""
        import json, sys
        open({str(tmp_path / "argv.json")!r}, "w").write(json.dumps(sys.argv[1:]))
        print({line!r})
        sys.exit({code})
    """)


def test_gate_runs_the_check_with_the_scenarios_expectations(tmp_path):
    tool = _recording_tool(tmp_path, result_line(check=True, requests=4))
    assert h3load.gate(4242, DOWN, TLS.ca, binary=tool) == (True, "")
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv == ["-url", "https://127.0.0.1:4242/echo", "-ca", "/t/ca.pem", "-method", "POST", "-body-size",
                    "1048576", "-expect-echo", "-expect-type", "application/octet-stream", "-check", "-n", "4"]
    tool = _recording_tool(tmp_path, result_line(check=True, ok=False, reason="ALPN \"h3-29\", not h3"), code=1)
    ok, why = h3load.gate(4242, PLAIN, TLS.ca, binary=tool)
    assert not ok and why == 'HTTP/3 check failed: ALPN "h3-29", not h3'
    assert scenarios.gate(4242, PLAIN, None) == (False, "no TLS certificate for this run")


def test_handshake_and_readiness_probe(tmp_path):
    tool = _recording_tool(tmp_path, result_line(check=True, requests=1))
    assert h3load.handshake(4242, PLAIN, TLS.ca, binary=tool) == {"version": "TLS 1.3",
                                                                  "cipher": "TLS_AES_128_GCM_SHA256", "alpn": "h3"}
    assert json.loads((tmp_path / "argv.json").read_text())[-2:] == ["-n", "1"]
    assert h3load.answers(4242, TLS.ca, binary=tool)
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[:2] == ["-url", "https://127.0.0.1:4242/plaintext"] and "-handshake-timeout=1s" in argv
    refused = _recording_tool(tmp_path, result_line(check=True, ok=False, status={}, requests=0), code=1)
    assert not h3load.answers(4242, TLS.ca, binary=refused)
    assert "error" in h3load.handshake(4242, PLAIN, TLS.ca, binary=refused)
    assert not h3load.answers(4242, TLS.ca, binary=tmp_path / "nope")


def test_wait_for_h3_polls_until_quic_answers_or_the_process_exits():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        calls = []

        def probe(port, ca):
            calls.append((port, ca))
            return len(calls) >= 3
        assert servers.wait_for_h3(proc, 4242, time.monotonic() + 10, TLS, probe) == ""
        assert calls == [(4242, TLS.ca)] * 3
        late = servers.wait_for_h3(proc, 4242, time.monotonic() + 0.1, TLS, lambda p, c: False)
        assert late == "no 2xx on GET /plaintext over HTTP/3 (QUIC) in time"
    finally:
        proc.kill()
        proc.wait()
    assert servers.wait_for_h3(proc, 4242, time.monotonic() + 10, TLS, lambda p, c: False).startswith("exited")


# ---- scenarios and command lines ----------------------------------------------------------------------------

def test_h3_scenarios():
    assert (PLAIN.tool, PLAIN.path, PLAIN.method, PLAIN.connections, PLAIN.streams, PLAIN.protocol, PLAIN.expect) == (
        "h3load", "/plaintext", "GET", 64, 100, "h3", "plaintext")
    assert (DOWN.path, DOWN.method, DOWN.body_size, DOWN.connections, DOWN.streams, DOWN.expect) == (
        "/echo", "POST", 1024 * 1024, 8, 4, "echo")
    assert all(s.is_h3 and s.tls and not s.quick and s.scheme == "https" for s in H3)
    assert not SC["h2-plaintext"].is_h3 and runner.reduced_rounds(PLAIN)
    # 1 MiB: CovetPy's default max_body_bytes (a larger body would be refused with 413)
    assert scenarios.H3_DOWNLOAD_BYTES == 1048576


def test_h3load_commands():
    load = h3load.command(PLAIN, 4242, TLS.ca, 1, 2, "1", binary=Path("/x/h3load"))
    assert load == ["taskset", "-c", "1", "/x/h3load", "-url", "https://127.0.0.1:4242/plaintext", "-ca", "/t/ca.pem",
                    "-method", "GET", "-expect-body=Hello, World!", "-expect-type", "text/plain", "-c", "64", "-m",
                    "100", "-warmup=1s", "-d=2s"]
    down = h3load.command(DOWN, 4242, TLS.ca, 1, 2, None, binary=Path("/x/h3load"))
    assert down[0] == "/x/h3load" and down[-6:] == ["-c", "8", "-m", "4", "-warmup=1s", "-d=2s"]
    assert "-expect-echo" in down and down[down.index("-body-size") + 1] == "1048576"
    with pytest.raises(ValueError):
        h3load.expectations(SC["json"])


def test_cli_h3_rounds_and_quick_and_default_peers():
    a = cli.parse_args([])
    assert {"h3-plaintext", "h3-download"} <= {s.name for s in a.scenario_list}
    assert runner.runs_of(PLAIN, a) == a.tls_runs == 2 and {"caddy", "hypercorn-h3"} <= set(a.server_list)
    q = cli.parse_args(["--quick"])
    assert not {"h3-plaintext", "h3-download"} & {s.name for s in q.scenario_list}
    assert not {"caddy", "hypercorn-h3"} & set(q.server_list)  # the HTTP/3 peers only when an h3 scenario runs
    assert not {"caddy", "hypercorn-h3"} & set(cli.parse_args(["--scenarios", "h2-plaintext"]).server_list)
    n = cli.parse_args(["--quick", "--scenarios", "h3-plaintext,h3-download,h2-plaintext", "--servers",
                        "covet-native,covet-async,caddy,hypercorn-h3"])
    assert [s.name for s in n.scenario_list] == ["h3-plaintext", "h3-download", "h2-plaintext"] and n.tls_runs == 1


# ---- exclusions -------------------------------------------------------------------------------------------

H3_SERVERS = {"covet-native", "covet-async", "caddy", "hypercorn-h3"}


def _excluded(spec, scen, **kw):
    return runner.unsupported_pairs(spec, scen, have_h2load=True, have_curl_h2=True, tls_error=None, **kw)


def test_servers_without_http3_sit_it_out_with_a_reason():
    for name, spec in servers.all_specs().items():
        out = _excluded(spec, H3)
        if name in H3_SERVERS:
            assert out == {}, name
        else:
            assert set(out) == {"h3-plaintext", "h3-download"}, name
            assert all(len(r) > 20 for r in out.values()), (name, out)
    specs = servers.all_specs()
    assert "nginx 1.22" in _excluded(specs["nginx"], H3)["h3-plaintext"]
    assert "Granian has no HTTP/3" in _excluded(specs["granian-rsgi"], H3)["h3-download"]
    assert "same engine and HTTP/3 layer as covet-async" in _excluded(specs["covet-sync"], H3)["h3-plaintext"]
    assert _excluded(specs["robyn"], H3)["h3-plaintext"] == "no HTTP/3 configuration for robyn in the suite"
    assert _excluded(specs["grpcio"], H3)["h3-plaintext"].startswith("grpcio is a gRPC peer")


def test_http3_peers_serve_tls_scenarios_only():
    specs = servers.all_specs()
    every = list(SC.values())
    for name in ("caddy", "hypercorn-h3"):
        spec = specs[name]
        out = _excluded(spec, every)
        assert spec.h3_peer and not runner.has_plain_instance(spec)
        serves = {"h3-plaintext", "h3-download"} | ({"h2-plaintext"} if name == "caddy" else set())
        assert {s for s in SC if s not in out} == serves, name
        assert out["plaintext"].startswith(f"{name} is an HTTP/3 peer: it serves the TLS scenarios only")
        assert out["h2c-plaintext"] == out["plaintext"] and "keep the run short" in out["https-plaintext"]
        assert out["grpc-unary"] == f"no gRPC service in the suite's {name} peer (it serves the HTTP routes only)"
    assert "h2load ends ~30 s after its -D" in _excluded(specs["hypercorn-h3"], every)["h2-plaintext"]
    assert runner.has_plain_instance(specs["covet-native"]) and not runner.has_plain_instance(specs["grpcio"])


def test_no_load_generator_excludes_only_the_h3_pairs():
    spec = servers.all_specs()["covet-native"]
    out = _excluded(spec, [SC["h2-plaintext"], *H3], h3load_error="Go is not installed")
    assert set(out) == {"h3-plaintext", "h3-download"}
    assert out["h3-plaintext"] == "no HTTP/3 load generator: Go is not installed"


def test_no_install_run_without_h3load_excludes_the_h3_scenarios(tmp_path, monkeypatch):
    args = cli.parse_args(["--no-install", "--scenarios", "h3-plaintext", "--servers", "covet-native",
                           "--quiet-file", str(tmp_path / "no-quiet-file")])
    assert args.h3_load == "h3bench"  # the default load; h3load is the gate, needed either way
    m = runner.Matrix(args, time.monotonic())
    monkeypatch.setattr(h3load, "H3LOAD_BIN", tmp_path / "bin" / "h3load")
    monkeypatch.setattr(h3load, "H3BENCH_BIN", tmp_path / "bin" / "h3bench")
    monkeypatch.setattr(runner, "REPO", tmp_path)
    assert m.build_h3load() == "bin/h3load not built (--no-install)"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "h3load").write_text("")
    assert m.build_h3load() == "bin/h3bench not built (--no-install)"
    (tmp_path / "bin" / "h3bench").write_text("")
    assert m.build_h3load() is None and m.tool_versions["h3load"].startswith("h3load (bench/tools/h3load; "
                                                                            "github.com/quic-go/quic-go v0.")
    assert m.tool_versions["h3bench"].startswith("h3bench (bench/tools/h3bench")
    m.args.h3_load = "h3load"  # the quic-go load: h3bench is not needed
    (tmp_path / "bin" / "h3bench").unlink()
    assert m.build_h3load() is None


def test_load_binary_names_the_generator():
    assert h3load.load_binary("h3bench") == h3load.H3BENCH_BIN
    assert h3load.load_binary("h3load") == h3load.H3LOAD_BIN
    with pytest.raises(ValueError, match="unknown HTTP/3 load generator"):
        h3load.load_binary("h2load")


# ---- the HTTP/3 instances' commands ----------------------------------------------------------------------

def test_h3_instance_commands():
    specs = servers.all_specs()
    ctx = servers.Ctx(covet_python=Path("/py/bin/python"), native_binary=Path("/b/examples/native/hello/hello"))
    native = servers.Running(specs["covet-native"], ctx, TLS, h3=True)
    assert native._command(9000) == ["/b/examples/native/hello/hello", "--port", "9000", "--threads", "1",
                                     "--log-level", "warn", "--tls-cert", "/t/server.pem", "--tls-key",
                                     "/t/server.key", "--http3"]
    assert native.what == " for HTTP/3"
    assert "--http3" not in servers.Running(specs["covet-native"], ctx, TLS)._command(1)
    py = servers.Running(specs["covet-async"], ctx, TLS, h3=True)._command(9000)
    assert py[:5] == ["/py/bin/python", "-m", "covet", "run", "app_async:app"] and py[-1] == "--http3"
    assert py[py.index("--ssl-certfile") + 1] == "/t/server.pem"
    hyper = specs["hypercorn-h3"]
    h3cmd = servers.Running(hyper, ctx, TLS, h3=True)._command(9000)
    tlscmd = servers.Running(hyper, ctx, TLS)._command(9000)
    assert h3cmd[h3cmd.index("--quic-bind") + 1] == "127.0.0.1:9000" and "--quic-bind" not in tlscmd
    assert h3cmd[h3cmd.index("--certfile") + 1] == "/t/server.pem" and h3cmd[-1] == "app:app"
    assert hyper.cwd == servers.PEERS / "fastapi" and h3cmd[0].endswith(".venvs/hypercorn-h3/bin/hypercorn")
    for bad in (dict(tls=None, h3=True), dict(tls=TLS, h3=True)):
        with pytest.raises(ValueError):
            servers.Running(specs["covet-native" if bad["tls"] is None else "fastapi"], ctx, **bad)


def test_caddyfile_per_instance(tmp_path):
    template = servers.CADDY_TEMPLATE.read_text()
    h3 = servers.render_caddyfile(template, 9000, str(tmp_path), TLS, h3=True)
    plain = servers.render_caddyfile(template, 9000, str(tmp_path), TLS, h3=False)
    assert "protocols h1 h2 h3" in h3 and "protocols h1 h2\n" in plain and "h3" not in plain.split("protocols")[1][:8]
    assert "https://127.0.0.1:9000 {" in h3 and "tls /t/server.pem /t/server.key" in h3
    assert f"storage file_system {tmp_path}/data" in h3 and "admin off" in h3
    assert 'respond /plaintext "Hello, World!" 200' in h3 and 'respond "{http.request.body}" 200' in h3
    with pytest.raises(ValueError):
        servers.render_caddyfile(template + "@NEW@", 9000, str(tmp_path), TLS, h3=True)
    spec = servers.all_specs()["caddy"]
    spec.prepare(servers.Ctx(), 9000, tmp_path, TLS, True)
    assert (tmp_path / "Caddyfile").read_text() == h3
    with pytest.raises(servers.StartError):
        spec.prepare(servers.Ctx(), 9000, tmp_path, None, False)
    r = servers.Running(spec, servers.Ctx(), TLS, h3=True)
    try:
        assert r.describe() == (f"taskset -c 0 {servers.caddy_binary()} run --adapter caddyfile --config Caddyfile "
                                "(bench/peers/caddy/Caddyfile.template)")
        assert servers.caddy_binary().name == f"caddy-{servers.CADDY_VERSION}"
    finally:
        r.cleanup()


def test_h3_peer_pins_and_echo_routes():
    req = (servers.PEERS / "hypercorn-h3" / "requirements.txt").read_text()
    pins = [line for line in req.splitlines() if line and not line.startswith("#")]
    assert all("==" in p for p in pins) and any(p.startswith("hypercorn[h3") for p in pins)
    assert "aioquic==" in req
    assert (h3load.H3LOAD_DIR / "go.sum").exists() and h3load.quic_go_version().startswith("v0.")
    assert servers.CADDY_VERSION.startswith("v2.")
    for f in ("covet/app_async.py", "fastapi/app.py"):
        text = (servers.PEERS / f).read_text()
        assert '@app.post("/echo")' in text and "await request.body()" in text, f


def test_go_module_versions_reads_what_a_binary_was_built_with(tmp_path):
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go not installed")
    assert servers.go_module_versions(tmp_path / "missing", ("github.com/quic-go/quic-go",)) == {
        "github.com/quic-go/quic-go": "?"}


# ---- measuring: CPU sampled at h3load's marks -------------------------------------------------------------

def _args():
    cpu = str(sorted(os.sched_getaffinity(0))[0])
    return SimpleNamespace(warmup=0, duration=0, client_cpus=cpu)


@pytest.mark.skipif(not shutil.which("taskset"), reason="taskset not installed")
def test_measure_h3_samples_cpu_between_the_marks(tmp_path):
    tool = fake_tool(tmp_path, f"""
        import time
        print({h3load.MARK_START!r}, flush=True)
        time.sleep(0.15)
        print({h3load.MARK_END!r}, flush=True)
        print({result_line(requests=30000, bytes_read=30000 * 13)!r})
    """)
    reads = iter([{"InDatagrams": 1000, "InErrors": 5, "RcvbufErrors": 5, "ServerDrops": 100},
                  {"InDatagrams": 91000, "InErrors": 47, "RcvbufErrors": 45, "ServerDrops": 130}])
    r = measure.measure_h3(FakeServer(), PLAIN, _args(), 100, Path("/t/ca.pem"), binary=tool,
                           counters=lambda: next(reads))
    assert "error" not in r, r
    assert r["udp_drops"] == {"rcvbuf": 40, "in_errors": 42, "in_datagrams": 90000, "server": 30}  # at the marks
    # FakeServer's tree gains 150 ticks between the marks: 1.5 s at 100 Hz, over 30,000 responses
    assert r["cpu_s"] == pytest.approx(1.5) and r["cpu_s_per_100k"] == pytest.approx(5.0)
    assert r["requests_per_sec"] == 60000.0 and r["bytes_per_response"] == 13 and r["peak_rss_kib"] == 2048
    assert r["command"].startswith("taskset -c ") and "-ca CA.pem" in r["command"]


@pytest.mark.skipif(not shutil.which("taskset"), reason="taskset not installed")
def test_measure_h3_reports_failed_runs(tmp_path):
    tool = fake_tool(tmp_path, f"""
        import sys
        print({result_line(ok=False, reason="connection 3 of 64: timeout: handshake did not complete in time")!r})
        sys.exit(2)
    """)
    r = measure.measure_h3(FakeServer(), PLAIN, _args(), 100, Path("/t/ca.pem"), binary=tool)
    assert r["error"] == "h3load exited 2: connection 3 of 64: timeout: handshake did not complete in time"
    tool = fake_tool(tmp_path, f"print({result_line()!r})\n")
    assert "no timed window" in measure.measure_h3(FakeServer(), PLAIN, _args(), 100, Path("/c"), binary=tool)["error"]
    tool = fake_tool(tmp_path, f"""
        print({h3load.MARK_START!r}, flush=True)
        print({h3load.MARK_END!r}, flush=True)
        print({result_line(protocol="HTTP/2.0")!r})
    """)
    r = measure.measure_h3(FakeServer(), PLAIN, _args(), 100, Path("/c"), binary=tool)
    assert r["error"] == "h3load's responses came over HTTP/2.0, not HTTP/3"
    tool = fake_tool(tmp_path, f"""
        print({h3load.MARK_START!r}, flush=True)
        print({h3load.MARK_END!r}, flush=True)
        print({result_line(requests=0, duration_s=1.0, protocol=None, status={})!r})
    """)
    r = measure.measure_h3(FakeServer(), DOWN, _args(), 100, Path("/c"), binary=tool)
    assert r["error"] == ("no response completed in the 1.0 s window (32 requests in flight); a longer --duration "
                          "would show one")


def test_udp_counters_and_drops():
    text = ("Ip: Forwarding DefaultTTL\nIp: 1 64\n"
            "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti "
            "MemErrors\nUdp: 1524987 1476 23022 862413 23020 0 0 0 0\n"
            "UdpLite: InDatagrams NoPorts\nUdpLite: 0 0\n")
    got = system.parse_udp_counters(text)
    assert got["RcvbufErrors"] == 23020 and got["InErrors"] == 23022 and got["InDatagrams"] == 1524987
    assert system.parse_udp_counters("") == {} and measure.udp_drops({}, got) is None
    assert measure.udp_drops(got, {**got, "RcvbufErrors": 23030}) == {"rcvbuf": 10, "in_errors": 0, "in_datagrams": 0}
    assert "RcvbufErrors" in system.udp_counters() or not Path("/proc/net/snmp").exists()
    rows = summary.summarize_pair([{"udp_drops": {"rcvbuf": 3, "server": 2}}, {"udp_drops": {"rcvbuf": 4}},
                                   {"error": "x"}])
    assert rows["udp_drops"] == 6 and summary.summarize_pair([{"requests": 1}])["udp_drops"] is None
    udp = ("   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref "
           "pointer drops\n"
           "  641: 0100007F:A3D1 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 95120 2 "
           "0000000000000000 1799\n"
           "  642: 0100007F:A3D1 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 95121 2 "
           "0000000000000000 1\n"
           "  643: 0100007F:9C40 0100007F:A3D1 01 00000000:00000000 00:00000000 00000000     0        0 95122 2 "
           "0000000000000000 7\n")
    assert system.parse_udp_socket_drops(udp, 0xA3D1) == 1800 and system.parse_udp_socket_drops(udp, 1) == 0
    assert isinstance(system.udp_socket_drops(1), int)


# ---- report and chart ---------------------------------------------------------------------------------------

def _row(server, scenario, cpu, rps=50000.0, **kw):
    return {"server": server, "scenario": scenario, "rps": {"median": rps, "min": rps * 0.9, "max": rps * 1.1, "n": 2},
            "p50_ms": 80.0, "p99_ms": 150.0, "p999_ms": 200.0, "peak_rss_kib": 40960,
            "cpu_s_per_100k": {"median": cpu}, "errors": 0, **kw}


def _h3_result():
    labels = {"covet-native": "CovetPy native (C++)", "covet-async": "CovetPy Python async",
              "caddy": "Caddy (quic-go)", "hypercorn-h3": "FastAPI + Hypercorn (aioquic)", "nginx": "nginx"}
    srv = {n: {"label": label, "config": "c", "command": None, "tls_command": f"{n}-tls N",
               "h3_command": f"{n}-tls N --http3", "versions": {}, "excluded": None} for n, label in labels.items()}
    mb = 1024 * 1024
    rows = [_row("covet-native", "h3-plaintext", 2.0, udp_drops=12), _row("covet-native", "h2-plaintext", 1.25),
            _row("covet-async", "h3-plaintext", 8.0), _row("covet-async", "h2-plaintext", 5.0),
            _row("caddy", "h3-plaintext", 10.0), _row("caddy", "h2-plaintext", 4.0),
            _row("hypercorn-h3", "h3-plaintext", 40.0), {"server": "hypercorn-h3", "scenario": "h2-plaintext",
                                                         "excluded": "does not start with TLS"},
            _row("covet-native", "h3-download", 100.0, rps=300.0, bytes_per_sec={"median": 300.0 * mb}),
            _row("caddy", "h3-download", 400.0, rps=150.0, bytes_per_sec={"median": 150.0 * mb}),
            {"server": "nginx", "scenario": "h3-plaintext", "excluded": "nginx 1.22 (Debian bookworm) has no HTTP/3"}]
    return {
        "date_utc": "2026-12-05T19:00:00Z", "git": "abc", "wall_seconds": 120, "argv": ["python", "-m", "bench"],
        "options": {"server_cpus": "0", "client_cpus": "1", "workers": 1, "warmup": 1, "duration": 2, "runs": 1,
                    "rate": 2000, "tls_runs": 1},
        "machine": {"nproc": 2, "cpu_model": "cpu", "mem_gib": 24, "kernel": "6", "python": "3.11"},
        "tools": {"wrk": "wrk 4", "h2load": "h2load 1", "matplotlib": "3",
                  "h3load": "h3load (bench/tools/h3load; github.com/quic-go/quic-go v0.65.0, go1.26.8)"},
        "covet_python": {"interpreter": "/x/.venv/bin/python", "choice": "reused"},
        "servers": srv,
        "scenarios": [runner.scenario_entry(SC["h2-plaintext"], 1), runner.scenario_entry(PLAIN, 1),
                      runner.scenario_entry(DOWN, 1)],
        "summary": rows,
        "per_server": {},
        "runs": [],
    }


def test_report_h3_tables_cpu_ratios_to_the_peers_and_to_h2():
    result = _h3_result()
    md = report.render_markdown(result, json_path="x.json", chart=None, docs=None)
    heading = ("### h3-plaintext: HTTP/3 over QUIC, 100 streams per connection — `GET /plaintext` (h3load (quic-go "
               "HTTP/3, TLS 1.3 verified against the run's CA), 64 QUIC connections × 100 concurrent streams)")
    assert heading in md and "quic-go v0.65.0" in md and "**HTTP/3:**" in md
    assert "8 QUIC connections × 4 concurrent streams, each request a 1,048,576-byte body that comes back whole" in md
    plain = report.scenario_table(result, "h3-plaintext").splitlines()
    assert plain[0] == ("| server | req/s median (min–max) | p50 ms | p99 ms | p99.9 ms | peak RSS MB | "
                        "CPU s / 100K req | × less CPU than Caddy | × less CPU than Hypercorn | "
                        "CPU ÷ own h2-plaintext | UDP drops | errors | tool |")
    assert [line.split(" | ")[0] for line in plain[2:]] == ["| CovetPy native (C++)", "| CovetPy Python async",
                                                             "| Caddy (quic-go)", "| FastAPI + Hypercorn (aioquic)"]
    assert ("| CovetPy native (C++) | 50,000 (45,000–55,000) | 80.0 | 150 | 200 | 40.0 | 2.00 | 5.00× | 20.00× | "
            "1.60× | 12 | 0 | h3load |") in plain
    assert "| FastAPI + Hypercorn (aioquic) | 50,000 (45,000–55,000) | 80.0 | 150 | 200 | 40.0 | 40.00 | 0.25× | " \
           "1.00× | — | — | 0 | h3load |" in plain
    down = report.scenario_table(result, "h3-download").splitlines()
    assert down[0].startswith("| server | req/s median (min–max) | MB/s | p50 ms |") and "own h2" not in down[0]
    assert ("| CovetPy native (C++) | 300 (270–330) | 315 | 80.0 | 150 | 200 | 40.0 | 100.00 | 4.00× | — | — | 0 | "
            "h3load |") in down
    assert "| nginx | h3-plaintext | nginx 1.22 (Debian bookworm) has no HTTP/3 |" in md
    assert "; HTTP/3: `covet-native-tls N --http3`" in md


def test_report_without_h3_scenarios_says_nothing_of_http3():
    result = _h3_result()
    result["scenarios"] = result["scenarios"][:1]
    del result["tools"]["h3load"]  # not built without an HTTP/3 scenario
    md = report.render_markdown(result, json_path="x.json", chart=None, docs=None)
    assert "**HTTP/3:**" not in md and "with HTTP/3 on" not in md and "h3load" not in md


TOOLS_PY = servers.VENVS / "tools" / "bin" / "python"


@pytest.mark.skipif(not TOOLS_PY.exists(), reason="bench/.venvs/tools (matplotlib) not installed")
def test_chart_draws_cpu_per_request_for_h3(tmp_path):
    src, png = tmp_path / "matrix.json", tmp_path / "chart.png"
    src.write_text(json.dumps(_h3_result()))
    p = subprocess.run([str(TOOLS_PY), "-m", "bench.chart", str(src), str(png)], cwd=servers.REPO,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- the Go tool itself (in-process quic-go servers: right ones pass, wrong ones are caught) --------------------

@pytest.mark.skipif(not shutil.which("go"), reason="Go not installed")
def test_h3load_go_tests():
    env = {**os.environ, "GOFLAGS": "-mod=readonly"}
    p = subprocess.run(["go", "test", "-count=1", "./..."], cwd=h3load.H3LOAD_DIR, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
