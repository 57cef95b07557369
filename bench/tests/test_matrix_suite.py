"""Tests for the benchmark (bench/): parsing, the correctness gate, ratios, CLI. No long loads."""

from __future__ import annotations

import http.server
import json
import socketserver
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, so `bench` imports as a package

from bench import cli, loadgen, report, runner, scenarios, servers, summary  # noqa: E402

WRK_MATRIX = """\
Running 3s test @ http://127.0.0.1:40000/plaintext
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   449.93us  180.18us   3.97ms   80.45%
    Req/Sec    83.89k     2.53k   87.11k    80.00%
  Latency Distribution
     50%  377.00us
     75%  557.00us
     90%  694.00us
     99%    1.86ms
  250000 requests in 3.00s, 38.47MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  83333.33
Transfer/sec:     12.82MB
BENCH_LATENCY_US 50 377
BENCH_LATENCY_US 90 694
BENCH_LATENCY_US 99 1862
BENCH_LATENCY_US 99.9 3120
BENCH_LATENCY_US 99.99 3900
BENCH_LATENCY_US max 3970
"""

H2LOAD = """\
starting benchmark...
finished in 3.00s, 1999.67 req/s, 310.12KB/s
requests: 6000 total, 6000 started, 5999 done, 5990 succeeded, 9 failed, 4 errored, 1 timeout
status codes: 5990 2xx, 0 3xx, 5 4xx, 0 5xx
traffic: 930.35KB (952680) total, 738.09KB (755800) headers (space savings 0.00%), 76.16KB (77987) data
"""


def test_parse_wrk_matrix_reads_lua_percentiles_and_errors():
    out = loadgen.parse_wrk(WRK_MATRIX)
    assert out["requests_per_sec"] == pytest.approx(83333.33)
    assert out["requests"] == 250000
    assert out["latency_ms"]["99.9"] == pytest.approx(3.12)
    assert out["latency_ms"]["99"] == pytest.approx(1.862)  # Lua's µs figure overrides wrk's "1.86ms"
    assert out["latency_ms"]["max"] == pytest.approx(3.97)
    assert out["non_2xx"] == 7
    assert out["errors"] == 3 + 2 + 7


def test_parse_wrk_matrix_without_lua_lines_keeps_wrk_percentiles():
    text = "\n".join(l for l in WRK_MATRIX.splitlines() if not l.startswith("BENCH_"))
    out = loadgen.parse_wrk(text)
    assert out["latency_ms"]["99"] == pytest.approx(1.86)
    assert "99.9" not in out["latency_ms"]


def test_parse_wrk_matrix_rejects_failed_wrk():
    with pytest.raises(ValueError):
        loadgen.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_parse_h2load_output():
    out = loadgen.parse_h2load_output(H2LOAD)
    assert out["requests_per_sec"] == pytest.approx(1999.67)
    assert out["requests"] == 5990
    assert out["non_2xx"] == 5
    assert out["errors"] == 9 + 1  # failed (includes errored and 4xx) + timeout
    with pytest.raises(ValueError):
        loadgen.parse_h2load_output("connect error\n")


def test_parse_h2load_log_percentiles_and_warmup_cut():
    lines = [f"{1000 + i}\t200\t{(i + 1) * 1000}" for i in range(1000)]  # 1..1000 ms
    lines += ["1500\t-1\t0", "1501\t503\t10", "garbage"]
    out = loadgen.parse_h2load_log("\n".join(lines))
    assert out["requests"] == 1000
    assert out["errors"] == 2
    assert out["latency_ms"]["50"] == pytest.approx(500.0)
    assert out["latency_ms"]["99"] == pytest.approx(990.0)
    assert out["latency_ms"]["99.9"] == pytest.approx(999.0)
    assert out["latency_ms"]["max"] == pytest.approx(1000.0)
    cut = loadgen.parse_h2load_log("\n".join(lines), since_us=1900)
    assert cut["requests"] == 100 and cut["errors"] == 0


def test_percentile_nearest_rank():
    assert loadgen.percentile([], 99) is None
    assert loadgen.percentile([5.0], 99.9) == 5.0
    assert loadgen.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert loadgen.percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0


def test_item_payload_is_1kb_and_valid_json():
    body = scenarios.item_payload()
    assert len(body) == 1024
    d = json.loads(body)
    assert d["tags"] == ["red", "green", "blue"] and d["name"] == "widget"
    assert "tags" not in json.loads(scenarios.invalid_item_payload())


@pytest.mark.parametrize("expect,body,ok", [
    ("plaintext", b"Hello, World!", True),
    ("plaintext", b"Hello, World!\n", False),
    ("json", b'{"message": "Hello, World!"}', True),
    ("json", b'{"message":"Hello"}', False),
    ("users", b'{"id":123,"q":"x"}', True),
    ("users", b'{"id":"123","q":"x"}', False),
    ("users", b'{"id":123}', False),
    ("item", b'{"tag_count":3,"name":"widget"}', True),
    ("item", b"not json", False),
])
def test_body_ok(expect, body, ok):
    assert scenarios.body_ok(expect, body) is ok


def test_content_type_ok():
    assert scenarios.content_type_ok("plaintext", "text/plain; charset=utf-8")
    assert scenarios.content_type_ok("json", "application/json")
    assert not scenarios.content_type_ok("json", "text/plain")
    assert not scenarios.content_type_ok("plaintext", None)


def test_cpu_per_100k_and_ratios():
    assert summary.cpu_s_per_100k(2.0, 200_000) == pytest.approx(1.0)
    assert summary.cpu_s_per_100k(1.0, 0) is None
    rows = [
        {"server": "covet-async", "scenario": "plaintext", "rps": {"median": 30000.0}},
        {"server": "fastapi", "scenario": "plaintext", "rps": {"median": 10000.0}},
        {"server": "nginx", "scenario": "plaintext", "rps": {"median": 60000.0}},
        {"server": "covet-async", "scenario": "params", "rps": {"median": 20000.0}},
        {"server": "nginx", "scenario": "params", "excluded": "static routes only"},
    ]
    summary.add_ratios(rows, ("fastapi", "nginx"))
    assert rows[0]["ratio_fastapi"] == pytest.approx(3.0)
    assert rows[0]["ratio_nginx"] == pytest.approx(0.5)
    assert rows[1]["ratio_fastapi"] == pytest.approx(1.0)
    assert rows[3]["ratio_fastapi"] is None  # fastapi not in that scenario
    assert rows[3]["ratio_nginx"] is None  # nginx excluded there


def test_summarize_pair_median_spread_errors():
    runs = [
        {"requests_per_sec": 100.0, "latency_ms": {"50": 1.0, "99": 5.0, "99.9": 9.0}, "errors": 1,
         "peak_rss_kib": 1000, "cpu_s_per_100k": 2.0},
        {"requests_per_sec": 300.0, "latency_ms": {"50": 3.0, "99": 7.0, "99.9": 11.0}, "errors": 2,
         "peak_rss_kib": 3000, "cpu_s_per_100k": 4.0},
        {"requests_per_sec": 200.0, "latency_ms": {"50": 2.0, "99": 6.0, "99.9": 10.0}, "errors": 0,
         "peak_rss_kib": 2000, "cpu_s_per_100k": 3.0},
        {"error": "server died"},
    ]
    s = summary.summarize_pair(runs)
    assert s["rps"] == {"median": 200.0, "min": 100.0, "max": 300.0, "n": 3}
    assert (s["p50_ms"], s["p99_ms"], s["p999_ms"]) == (2.0, 6.0, 10.0)
    assert s["peak_rss_kib"] == 3000
    assert s["cpu_s_per_100k"]["median"] == 3.0
    assert s["errors"] == 3
    assert s["runs"] == 4 and s["runs_ok"] == 3 and s["run_errors"] == ["server died"]


def test_parse_cpu_list():
    assert cli.parse_cpu_list("0") == [0]
    assert cli.parse_cpu_list("0-3,8") == [0, 1, 2, 3, 8]
    with pytest.raises(ValueError):
        cli.parse_cpu_list("3-1")
    with pytest.raises(ValueError):
        cli.parse_cpu_list("")


def test_progress_line_and_estimate():
    line = summary.progress_line(10, 40, 100.0, "round 1 fastapi json")
    assert line.startswith("[10/40  25%] 1m40s elapsed, ETA 5m00s | round 1 fastapi json")
    assert "ETA ?" in summary.progress_line(0, 40, 0.0, "start")
    # defaults: 13 servers, ~110 pairs, 3 rounds of 1 + 3 s must fit 30 minutes
    assert summary.estimate_seconds(13, 110, 3, 1, 3, 3) < 30 * 60
    assert summary.estimate_seconds(13, 98, 1, 1, 1, 1) < 5 * 60


def test_cli_defaults_quick_and_selection():
    a = cli.parse_args([])
    assert (a.duration, a.warmup, a.runs) == (2, 1, 3)
    assert [s.name for s in a.scenario_list][:3] == ["plaintext", "json", "params"]
    assert "keepalive-10k" in [s.name for s in a.scenario_list]
    q = cli.parse_args(["--quick"])
    assert (q.duration, q.runs) == (1, 1)
    assert "keepalive-10k" not in [s.name for s in q.scenario_list]
    c = cli.parse_args(["--servers", "nginx,fastapi", "--scenarios", "json", "--client-cpus", "8-15"])
    assert c.server_list == ["nginx", "fastapi"] and [s.name for s in c.scenario_list] == ["json"]
    assert c.client_threads == 8
    with pytest.raises(SystemExit):
        cli.parse_args(["--servers", "nope"])


def test_wrk_commands():
    sc = scenarios.build_scenarios()
    cmd = loadgen.wrk_command(sc["plaintext"], 4000, 3, "1", 1, timed=True)
    assert cmd[:4] == ["taskset", "-c", "1", "wrk"] and "--latency" in cmd and str(loadgen.MATRIX_LUA) in cmd
    pipe = loadgen.wrk_command(sc["pipelined16"], 4000, 3, "1", 1, timed=True)
    assert str(loadgen.PIPELINE_LUA) in pipe and pipe[-2:] == ["--", "16"] and "--latency" not in pipe
    assert not sc["pipelined16"].latency_valid
    rate = loadgen.h2load_rate_command(sc["open-loop"], 4000, 3, 2000, "1", 1, Path("/tmp/x.log"))
    assert "--h1" in rate and "--rps=40" in rate and "-c50" in rate and "-D3" in rate
    spread = loadgen.h2load_rate_command(sc["open-loop-spread"], 4000, 3, 2000, "1", 1, Path("/tmp/x.log"))
    # 25 clients at 80 req/s started 1 ms apart: one request every 0.5 ms; a request count, since -r excludes -D.
    assert "--rps=80" in spread and "-c25" in spread and "-r1" in spread and "--rate-period=1ms" in spread
    assert "-n6000" in spread and not any(a.startswith("-D") for a in spread)
    env = loadgen.wrk_env(sc["post-json"], Path("/tmp/body.json"))
    assert env["BENCH_METHOD"] == "POST" and env["BENCH_BODY_FILE"] == "/tmp/body.json"


# ---- the correctness gate against tiny in-process servers ------------------------------------------

def _serve(handler_cls):
    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
    srv = Server(("127.0.0.1", 0), handler_cls)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class _Good(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/plaintext":
            self._send(200, "text/plain", b"Hello, World!")
        elif self.path == "/json":
            self._send(200, "application/json", b'{"message":"Hello, World!"}')
        elif self.path == "/users/123?q=x":
            self._send(200, "application/json", b'{"id":123,"q":"x"}')
        else:
            self._send(404, "text/plain", b"nope")

    def do_POST(self):
        data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not isinstance(data.get("tags"), list):
            self._send(422, "application/json", b'{"detail":"bad"}')
        else:
            self._send(200, "application/json", json.dumps({"name": data["name"], "tag_count": 3}).encode())


class _Wrong(_Good):
    def do_GET(self):
        if self.path == "/json":
            self._send(200, "application/json", b'{"message":"Hello"}')
        elif self.path == "/plaintext":
            self._send(200, "application/json", b"Hello, World!")
        else:
            self._send(500, "text/plain", b"boom")

    def do_POST(self):  # accepts anything: no validation
        self.rfile.read(int(self.headers["Content-Length"]))
        self._send(200, "application/json", b'{"name":"widget","tag_count":3}')


@pytest.fixture()
def good():
    srv = _serve(_Good)
    yield srv.server_address[1]
    srv.shutdown()


@pytest.fixture()
def wrong():
    srv = _serve(_Wrong)
    yield srv.server_address[1]
    srv.shutdown()


def test_gate_accepts_correct_server(good):
    sc = scenarios.build_scenarios()
    for name in ("plaintext", "json", "params", "post-json", "pipelined16"):
        ok, why = scenarios.gate(good, sc[name])
        assert ok, (name, why)


def test_gate_rejects_wrong_body_status_ctype_and_missing_validation(wrong):
    sc = scenarios.build_scenarios()
    ok, why = scenarios.gate(wrong, sc["json"])
    assert not ok and "wrong body" in why
    ok, why = scenarios.gate(wrong, sc["params"])
    assert not ok and "500" in why
    ok, why = scenarios.gate(wrong, sc["plaintext"])
    assert not ok and "Content-Type" in why
    ok, why = scenarios.gate(wrong, sc["post-json"])
    assert not ok and "model must reject" in why


def test_gate_reports_refused_connection():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ok, why = scenarios.gate(port, scenarios.build_scenarios()["plaintext"])
    assert not ok and "failed" in why


# ---- report -----------------------------------------------------------------------------------

def _result():
    servers = {n: {"label": n.upper(), "config": "cfg", "command": "cmd", "versions": {"x": "1"}, "excluded": None}
               for n in ("covet-async", "fastapi", "nginx", "express")}
    servers["express"]["excluded"] = "install failed: no node"
    rows = [
        {"server": "covet-async", "scenario": "plaintext", "rps": {"median": 30000, "min": 29000, "max": 31000, "n": 3},
         "p50_ms": 1.0, "p99_ms": 2.0, "p999_ms": 3.0, "peak_rss_kib": 40960, "cpu_s_per_100k": {"median": 3.0},
         "errors": 0, "run_errors": []},
        {"server": "fastapi", "scenario": "plaintext", "rps": {"median": 10000, "min": 9000, "max": 11000, "n": 3},
         "p50_ms": 5.0, "p99_ms": 9.0, "p999_ms": 12.0, "peak_rss_kib": 51200, "cpu_s_per_100k": {"median": 10.0},
         "errors": 4, "run_errors": []},
        {"server": "nginx", "scenario": "plaintext", "rps": {"median": 60000, "min": 59000, "max": 61000, "n": 3},
         "p50_ms": 0.5, "p99_ms": 1.0, "p999_ms": 2.0, "peak_rss_kib": 18000, "cpu_s_per_100k": {"median": 1.5},
         "errors": 0, "run_errors": []},
        {"server": "express", "scenario": "plaintext", "excluded": "install failed: no node"},
    ]
    summary.add_ratios(rows, ("fastapi", "nginx"))
    return {
        "date_utc": "2026-11-25T00:00:00Z", "git": "abc", "wall_seconds": 600, "argv": ["python", "-m", "bench"],
        "options": {"server_cpus": "0", "client_cpus": "1", "workers": 1, "warmup": 1, "duration": 3, "runs": 3,
                    "rate": 2000},
        "machine": {"nproc": 2, "cpu_model": "cpu", "mem_gib": 24, "kernel": "6", "python": "3.11"},
        "tools": {"wrk": "wrk 4", "h2load": "h2load 1", "matplotlib": "3"},
        "covet_python": {"interpreter": "/x/.venv/bin/python", "choice": "reused"},
        "servers": servers,
        "scenarios": [{"name": "plaintext", "title": "plaintext", "path": "/plaintext", "method": "GET",
                       "tool": "wrk", "connections": 64, "pipeline": 1}],
        "summary": rows,
        "per_server": {"covet-async": {"idle_rss_kib": {"median": 38000}, "cold_start_ms": {"median": 200, "min": 190,
                                                                                           "max": 210, "n": 3}}},
    }


def test_render_markdown_table_ratios_exclusions_and_design_table():
    md = report.render_markdown(_result(), json_path="bench/results/x.json", chart=None, docs=None)
    assert "| COVET-ASYNC | 30,000 (29,000–31,000) | 3.00× | 0.50× | 1.00 | 2.00 | 3.00 | 40.0 | 37.1 | 3.00 | 0 |" in md
    assert "| FASTAPI | 10,000 (9,000–11,000) | 1.00× | 0.17× |" in md
    assert "| EXPRESS | all | install failed: no node |" in md
    assert "| CovetPy (Python async handlers) | 30,000 |" in md
    assert "50%" in md  # CPU efficiency of covet-async: nginx 1.5 / 3.0
    assert "| COVET-ASYNC | 200 (190–210) | 37.1 |" in md


def test_cpu_efficiency():
    assert report.cpu_efficiency({"cpu_s_per_100k": {"median": 4.0}}, {"cpu_s_per_100k": {"median": 1.0}}) == 25.0
    assert report.cpu_efficiency(None, {"cpu_s_per_100k": {"median": 1.0}}) is None


def test_docs_section_is_replaced_between_markers():
    doc = "# B\n\n<!-- native-bench:start -->\nN\n<!-- native-bench:end -->\n"
    once = report.replace_section(doc, "M1", report.SECTION_START, report.SECTION_END)
    assert "N" in once and "M1" in once and once.count(report.SECTION_START) == 1
    twice = report.replace_section(once, "M2", report.SECTION_START, report.SECTION_END)
    assert "M1" not in twice and "M2" in twice and "<!-- native-bench:start -->\nN" in twice


def test_repo_venv_probe_on_a_fresh_clone_without_dot_venv(tmp_path):
    # A fresh clone has no .venv: the probe must say "no" (and the run go on to bench/.venv-covet), not raise.
    missing = tmp_path / ".venv" / "bin" / "python"
    assert servers.covet_import_error(missing) == f"{missing} does not exist"


@pytest.mark.parametrize("status, expected", [(0, True), (1, False)])
def test_repo_venv_probe_follows_the_import_check(tmp_path, status, expected):
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\nexit {status}\n")
    fake.chmod(0o755)
    assert (servers.covet_import_error(fake) is None) is expected


def _git(repo: Path, *args: str) -> str:
    import subprocess
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def test_source_commit_is_head_only_while_wheel_sources_are_unchanged(tmp_path):
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "a.cpp").write_text("int a;\n")
    (repo / "docs").mkdir()
    (repo / "docs" / "benchmarks.md").write_text("old\n")
    _git(repo.parent, "init", "-q", str(repo))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one")
    head = _git(repo, "rev-parse", "HEAD")
    assert servers.source_commit_if_clean(repo) == head
    # A run's own outputs (results, rewritten docs) don't make the checkout "changed".
    (repo / "docs" / "benchmarks.md").write_text("new table\n")
    (repo / "bench" / "results").mkdir(parents=True)
    (repo / "bench" / "results" / "matrix-x.json").write_text("{}\n")
    assert servers.source_commit_if_clean(repo) == head
    # An edited or a new source file does: the wheel would differ from the commit.
    (repo / "src" / "a.cpp").write_text("int b;\n")
    assert servers.source_commit_if_clean(repo) is None
    _git(repo, "checkout", "-q", "src/a.cpp")
    (repo / "src" / "new.cpp").write_text("int c;\n")
    assert servers.source_commit_if_clean(repo) is None
    assert servers.source_commit_if_clean(tmp_path / "not-a-repo") is None


@pytest.mark.parametrize("stamp, imports, expected", [
    ("abc123", True, True),      # same commit, covet imports: reuse
    ("abc123", False, False),    # same commit but broken venv: reinstall
    ("def456", True, False),     # installed from another commit: reinstall
    (None, True, False),         # no stamp (older install or interrupted pip): reinstall
])
def test_covet_venv_is_current(tmp_path, stamp, imports, expected):
    (tmp_path / "bin").mkdir()
    py = tmp_path / "bin" / "python"
    py.write_text(f"#!/bin/sh\nexit {0 if imports else 1}\n")
    py.chmod(0o755)
    if stamp is not None:
        (tmp_path / servers.COVET_VENV_STAMP).write_text(stamp + "\n")
    assert servers.covet_venv_is_current(tmp_path, "abc123") is expected
    assert servers.covet_venv_is_current(tmp_path, None) is False  # a changed checkout always reinstalls


def test_sigterm_ends_the_run_like_ctrl_c():
    # The run's `except KeyboardInterrupt` / `finally` blocks stop the servers under test; SIGTERM must reach them.
    with pytest.raises(KeyboardInterrupt):
        runner._interrupt_on_sigterm(15, None)


@pytest.mark.parametrize("recorded, expected", [
    ({}, ""),  # results from before setup time was recorded
    ({"setup_seconds": 294.0}, " (of which installs and checks 4.9 min)"),
    ({"setup_seconds": 1.2, "quiet_wait_seconds": 40.4},
     " (of which installs and checks 0.0 min; 40 s waiting for a quiet machine)"),
    ({"quiet_wait_seconds": 0.0}, ""),
])
def test_wall_time_parts(recorded, expected):
    assert report.wall_time_parts(recorded) == expected
