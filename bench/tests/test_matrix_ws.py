"""Tests for the WebSocket scenarios of the matrix (bench/wsload.py, bench/tools/wsload): wsload's output
parsing, the gate's verdicts, command lines, exclusions, rounds and the estimate, the report. No long loads: the
Go tool's own tests (`go test`, in-process servers, a few hundred messages) run when Go is installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import cli, measure, report, runner, scenarios, servers, summary, wsload  # noqa: E402

SC = scenarios.build_scenarios()


def result_line(**kw) -> str:
    base = {"tool": "wsload", "version": "1", "mode": "echo", "url": "ws://127.0.0.1:1/ws/echo", "check": False,
            "ok": True, "connections": 64, "inflight": 1, "size": 64, "warmup_s": 1, "duration_s": 3.0,
            "messages": 300000, "messages_per_sec": 100000.0,
            "latency_ms": {"50": 0.5, "90": 0.8, "99": 1.5, "99.9": 3.0, "max": 9.0},
            "errors": {"connect": 0, "read": 0, "write": 0, "mismatch": 0, "order": 0, "missing": 0, "stalled": 0},
            "errors_total": 0}
    base.update(kw)
    return wsload.RESULT_PREFIX + json.dumps(base)


ECHO_OUT = "\n".join([wsload.MARK_START, wsload.MARK_END,
                      "echo ws://127.0.0.1:1/ws/echo: 300000 messages in 3.00 s = 100000 msg/s; p50 0.500 ms",
                      result_line()]) + "\n"


# ---- output parsing -------------------------------------------------------------------------------------

def test_parse_output_reads_the_result_and_marks():
    out = wsload.parse_output(ECHO_OUT)
    assert out["messages_per_sec"] == 100000.0 and out["messages"] == 300000
    assert out["latency_ms"]["99.9"] == 3.0
    assert out["marks"] == 2
    run = wsload.to_run(out)
    assert run["requests_per_sec"] == 100000.0 and run["requests"] == 300000 and run["errors"] == 0
    assert summary.cpu_s_per_100k(1.5, run["requests"]) == pytest.approx(0.5)


def test_parse_output_takes_the_last_result_and_counts_errors():
    text = result_line(messages=1) + "\n" + result_line(
        mode="broadcast", messages=5000, messages_per_sec=2500.0, published=50, errors_total=3,
        errors={"connect": 0, "read": 0, "write": 0, "mismatch": 0, "order": 1, "missing": 2, "stalled": 0}) + "\n"
    run = wsload.to_run(wsload.parse_output(text))
    assert run["requests"] == 5000 and run["published"] == 50 and run["errors"] == 3
    assert run["error_counts"]["missing"] == 2


@pytest.mark.parametrize("text", ["", "panic: runtime error\n", "WSLOAD_RESULT {not json\n",
                                  'WSLOAD_RESULT {"tool": "other"}\n'])
def test_parse_output_rejects_missing_or_foreign_results(text):
    with pytest.raises(ValueError):
        wsload.parse_output(text)


# ---- the gate's verdict -----------------------------------------------------------------------------------

def test_judge_check_passes_a_clean_check():
    assert wsload.judge_check(0, result_line(check=True, messages=40)) == (True, "")


def test_judge_check_fails_on_a_mismatched_echo():
    text = result_line(check=True, ok=False, reason="echo differs: sent 64 bytes 'e0:1:…', got 63 bytes",
                       errors_total=1, errors={"connect": 0, "read": 0, "write": 0, "mismatch": 1, "order": 0,
                                               "missing": 0, "stalled": 0})
    ok, why = wsload.judge_check(1, text)
    assert not ok and "echo check failed: echo differs" in why and "'mismatch': 1" in why


def test_judge_check_fails_on_out_of_order_or_missing_broadcasts():
    text = result_line(mode="broadcast", check=True, ok=False, reason="subscriber expected message 7, got 8",
                       errors_total=2, errors={"connect": 0, "read": 0, "write": 0, "mismatch": 0, "order": 1,
                                               "missing": 1, "stalled": 0})
    ok, why = wsload.judge_check(1, text)
    assert not ok and why.startswith("WebSocket broadcast check failed: subscriber expected message 7")


def test_judge_check_fails_when_the_server_refuses_the_upgrade_or_the_tool_crashes():
    text = result_line(check=True, ok=False, reason="connect 1 of 4: websocket: bad handshake (HTTP 404)",
                       errors_total=1, errors={"connect": 1})
    ok, why = wsload.judge_check(2, text)
    assert not ok and "HTTP 404" in why
    ok, why = wsload.judge_check(2, "segfault\n")
    assert not ok and "exited 2" in why


def test_gate_without_the_binary_says_so(tmp_path):
    ok, why = wsload.gate(1, SC["ws-echo"], binary=tmp_path / "nope")
    assert not ok and "wsload not built" in why


# ---- scenarios and command lines -------------------------------------------------------------------------

def test_ws_scenarios():
    e, b = SC["ws-echo"], SC["ws-broadcast"]
    assert (e.tool, e.ws, e.path, e.connections, e.size, e.inflight, e.protocol) == (
        "wsload", "echo", "/ws/echo", 64, 64, 1, "ws")
    assert (b.ws, b.path, b.subscribers, b.connections, b.size, b.window) == (
        "broadcast", "/ws/room/bench", 100, 101, 64, 16)
    assert e.is_ws and b.is_ws and not SC["plaintext"].is_ws
    assert not e.quick and not b.quick and not e.tls


def test_wsload_commands():
    e = wsload.command(SC["ws-echo"], 4242, 1, 3, "1", binary=Path("/x/wsload"))
    assert e == ["taskset", "-c", "1", "/x/wsload", "-mode", "echo", "-url", "ws://127.0.0.1:4242/ws/echo",
                 "-size", "64", "-c", "64", "-inflight", "1", "-warmup=1s", "-d=3s"]
    b = wsload.command(SC["ws-broadcast"], 4242, 1, 3, "1-2", binary=Path("/x/wsload"))
    assert b[:3] == ["taskset", "-c", "1-2"]
    assert b[3:] == ["/x/wsload", "-mode", "broadcast", "-url", "ws://127.0.0.1:4242/ws/room/bench", "-size", "64",
                     "-subs", "100", "-window", "16", "-warmup=1s", "-d=3s"]
    chk = wsload.command(SC["ws-broadcast"], 4242, 0, 0, None, binary=Path("/x/wsload"), check=True)
    assert chk[0] == "/x/wsload" and chk[-1] == "-check" and "-subs" in chk and chk[chk.index("-subs") + 1] == "3"
    assert "-d=0s" not in chk


def test_cli_ws_rounds_and_quick():
    a = cli.parse_args([])
    names = [s.name for s in a.scenario_list]
    assert "ws-echo" in names and "ws-broadcast" in names
    assert a.ws_runs == 1 and runner.runs_of(SC["ws-echo"], a) == 1 and runner.runs_of(SC["json"], a) == 3
    assert runner.reduced_rounds(SC["ws-broadcast"])
    q = cli.parse_args(["--quick"])
    assert not {"ws-echo", "ws-broadcast"} & {s.name for s in q.scenario_list}
    qn = cli.parse_args(["--quick", "--scenarios", "ws-echo,ws-broadcast"])
    assert [s.name for s in qn.scenario_list] == ["ws-echo", "ws-broadcast"] and qn.ws_runs == 1
    assert cli.parse_args(["--runs", "1", "--ws-runs", "2"]).ws_runs == 1  # at most --runs
    assert cli.parse_args(["--ws-runs", "3"]).ws_runs == 3
    bc = {s.name: s for s in cli.parse_args(["--ws-window", "1"]).scenario_list}["ws-broadcast"]
    assert bc.window == 1
    with pytest.raises(SystemExit):
        cli.parse_args(["--ws-window", "0"])


def test_estimate_counts_ws_rounds_and_starts():
    base = summary.estimate_seconds(13, 100, 3, 1, 3, 3)
    with_ws = summary.estimate_seconds(13, 110, 3, 1, 3, 3, ws_servers=5, ws_pairs=10, ws_runs=2)
    assert with_ws == pytest.approx(base + 2 * (5 * 1.0 + 10 * (4.3 + 0.3)))


# ---- exclusions -----------------------------------------------------------------------------------------

WS_PEERS = {"covet-native", "covet-async", "fastapi", "granian-asgi", "granian-rsgi"}


def test_servers_without_websocket_are_excluded_with_a_reason():
    specs = servers.all_specs()
    ws = [SC["ws-echo"], SC["ws-broadcast"]]
    for name, spec in specs.items():
        out = runner.unsupported_pairs(spec, ws, have_h2load=True, have_curl_h2=True, tls_error=None)
        if name in WS_PEERS:
            assert out == {}, name
        else:
            assert set(out) == {"ws-echo", "ws-broadcast"}, name
            assert all(len(r) > 20 for r in out.values())
    assert "websocket" in specs["nginx"].unsupported["ws-echo"].lower()
    assert "actix-ws" in specs["actix"].unsupported["ws-broadcast"]


def test_no_load_generator_excludes_only_the_ws_pairs():
    spec = servers.all_specs()["covet-native"]
    out = runner.unsupported_pairs(spec, [SC["plaintext"], SC["ws-echo"], SC["ws-broadcast"]], have_h2load=True,
                                   have_curl_h2=True, tls_error=None, wsload_error="Go is not installed")
    assert set(out) == {"ws-echo", "ws-broadcast"} and "Go is not installed" in out["ws-echo"]


def test_ws_instances_enable_websocket_where_it_is_a_flag():
    specs = servers.all_specs()
    ctx = servers.Ctx()
    for iface in ("asgi", "rsgi"):
        spec = specs[f"granian-{iface}"]
        plain = servers.Running(spec, ctx)._command(1)
        ws = servers.Running(spec, ctx, ws=True)._command(1)
        assert "--no-ws" in plain and "--no-ws" not in ws and ws[-1] == f"app_{iface}:app"
    fa = specs["fastapi"]
    plain, ws = servers.Running(fa, ctx)._command(1), servers.Running(fa, ctx, ws=True)._command(1)
    assert "--ws" not in plain and ws[ws.index("--ws") + 1] == "websockets"
    nat = specs["covet-native"]
    assert servers.Running(nat, ctx, ws=True)._command(1) == servers.Running(nat, ctx)._command(1)


def test_peer_requirements_pin_the_websocket_stack():
    peers = Path(servers.PEERS)
    assert "websockets==" in (peers / "fastapi" / "requirements.txt").read_text()
    assert "starlette==" in (peers / "granian" / "requirements.txt").read_text()
    for f in ("covet/app_async.py", "fastapi/app.py", "granian/app_asgi.py", "granian/app_rsgi.py"):
        text = (peers / f).read_text()
        assert "/ws/echo" in text and "/ws/room/" in text, f


# ---- measuring: CPU sampled at wsload's marks -------------------------------------------------------------

class FakeServer:
    port = 1

    def __init__(self):
        self.ticks = 0

    def cpu_ticks(self):
        self.ticks += 150  # 1.5 s at 100 Hz between the marks
        return {1: self.ticks}

    def alive(self):
        return True

    def rss_kib(self):
        return 2048

    def log_tail(self):
        return ""


def fake_tool(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "fake-wsload"
    p.write_text("#!" + sys.executable + "\n" + textwrap.dedent(body))
    p.chmod(0o755)
    return p


def _args():
    cpu = str(sorted(os.sched_getaffinity(0))[0])
    return SimpleNamespace(warmup=0, duration=0, client_cpus=cpu)


@pytest.mark.skipif(not shutil.which("taskset"), reason="taskset not installed")
def test_measure_ws_samples_cpu_between_the_marks(tmp_path):
    tool = fake_tool(tmp_path, f"""
        import time
        print({wsload.MARK_START!r}, flush=True)
        time.sleep(0.15)
        print({wsload.MARK_END!r}, flush=True)
        print({result_line()!r})
    """)
    r = measure.measure_ws(FakeServer(), SC["ws-echo"], _args(), 100, binary=tool)
    assert "error" not in r, r
    assert r["requests_per_sec"] == 100000.0 and r["cpu_s"] == pytest.approx(1.5)
    assert r["cpu_s_per_100k"] == pytest.approx(0.5) and r["peak_rss_kib"] == 2048
    assert r["command"].startswith("taskset -c ")


@pytest.mark.skipif(not shutil.which("taskset"), reason="taskset not installed")
def test_measure_ws_reports_a_failed_run(tmp_path):
    tool = fake_tool(tmp_path, f"""
        import sys
        print({result_line(ok=False, reason="subscriber 3 of 100: connection refused")!r})
        sys.exit(2)
    """)
    r = measure.measure_ws(FakeServer(), SC["ws-broadcast"], _args(), 100, binary=tool)
    assert r["error"] == "wsload exited 2: subscriber 3 of 100: connection refused"
    tool = fake_tool(tmp_path, f"print({result_line()!r})\n")
    r = measure.measure_ws(FakeServer(), SC["ws-echo"], _args(), 100, binary=tool)
    assert "no timed window" in r["error"]


# ---- report -----------------------------------------------------------------------------------------------

def test_report_ws_tables_name_the_tool():
    sc = [{"name": n, "title": n, "path": p, "method": "GET", "tool": "wsload", "connections": c, "pipeline": 1,
           "tls": False, "streams": 1, "ws": m, "size": 64, "inflight": 1, "subscribers": 100, "window": 1}
          for n, p, c, m in (("ws-echo", "/ws/echo", 64, "echo"), ("ws-broadcast", "/ws/room/bench", 101, "broadcast"))]
    rows = [{"server": "covet-native", "scenario": "ws-echo", "rps": {"median": 90000.0, "min": 85000.0,
             "max": 95000.0, "n": 2}, "p50_ms": 0.6, "p99_ms": 1.2, "p999_ms": 2.0, "peak_rss_kib": 8192,
             "cpu_s_per_100k": {"median": 0.4}, "errors": 0, "ratio_fastapi": 9.0},
            {"server": "covet-native", "scenario": "ws-broadcast", "rps": {"median": 500000.0, "n": 1},
             "p50_ms": 0.1, "p99_ms": 0.3, "errors": 0},
            {"server": "nginx", "scenario": "ws-echo", "excluded": "nginx proxies WebSocket but cannot echo"}]
    result = {"servers": {"covet-native": {"label": "CovetPy native (C++)"}, "nginx": {"label": "nginx"}},
              "per_server": {}, "summary": rows, "scenarios": sc}
    echo = report.scenario_table(result, "ws-echo")
    assert "echoes/s median" in echo and "CPU s / 100K msg" in echo and "| wsload |" in echo
    assert "90,000 (85,000–95,000)" in echo and "9.00×" in echo and "nginx" not in echo
    bc = report.scenario_table(result, "ws-broadcast")
    assert "delivered msg/s" in bc and "delivery p50 ms" in bc
    how = report.scenario_how(sc[1], {"rate": 2000})
    assert how.startswith("wsload, 100 subscribers + 1 publisher") and "every subscriber has message k" in how
    assert "at most 16 messages out" in report.scenario_how({**sc[1], "window": 16}, {})
    assert report.scenario_how(sc[0], {}).startswith("wsload, 64 connections, 64-byte text")


# ---- the Go tool itself (in-process servers: right ones pass, wrong ones are caught) ------------------------

@pytest.mark.skipif(not shutil.which("go"), reason="Go not installed")
def test_wsload_go_tests():
    env = {**os.environ, "GOFLAGS": "-mod=readonly"}
    p = subprocess.run(["go", "test", "-count=1", "./..."], cwd=wsload.WSLOAD_DIR, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
