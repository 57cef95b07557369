"""Tests for the pure functions of bench/native/run.py (no servers, no wrk)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

RUN_PY = Path(__file__).resolve().parents[1] / "native" / "run.py"
_spec = importlib.util.spec_from_file_location("native_bench_run", RUN_PY)
nb = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = nb  # dataclasses need the module registered
_spec.loader.exec_module(nb)


WRK_LATENCY = """\
Running 10s test @ http://127.0.0.1:18080/plaintext
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   449.93us  180.18us   3.97ms   80.45%
    Req/Sec    83.89k     2.53k   87.11k    80.00%
  Latency Distribution
     50%  377.00us
     75%  557.00us
     90%  694.00us
     99%    1.86ms
  834033 requests in 10.00s, 128.25MB read
Requests/sec:  83336.20
Transfer/sec:     12.80MB
"""

WRK_ERRORS = """\
Running 10s test @ http://127.0.0.1:8080/json
  1 threads and 256 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    28.32ms   16.34ms    1.21s    60.24%
    Req/Sec    85.74k     7.33k   97.38k    90.00%
  170636 requests in 2.03s, 26.20MB read
  Socket errors: connect 3, read 17, write 2, timeout 41
  Non-2xx or 3xx responses: 12
Requests/sec:  83873.53
Transfer/sec:     12.88MB
"""


def test_parse_wrk_with_latency_distribution():
    r = nb.parse_wrk_output(WRK_LATENCY)
    assert r["requests_per_sec"] == pytest.approx(83336.20)
    assert r["requests"] == 834033
    assert r["duration_s"] == pytest.approx(10.0)
    assert r["bytes_read"] == pytest.approx(128.25 * 1024**2)
    assert r["latency_ms"] == {
        "50": pytest.approx(0.377),
        "75": pytest.approx(0.557),
        "90": pytest.approx(0.694),
        "99": pytest.approx(1.86),
    }
    assert r["latency_avg_ms"] == pytest.approx(0.44993)
    assert r["latency_max_ms"] == pytest.approx(3.97)
    assert r["socket_errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 0, "total": 0}
    assert r["non_2xx"] == 0


def test_parse_wrk_errors_and_non2xx_without_latency():
    r = nb.parse_wrk_output(WRK_ERRORS)
    assert r["requests"] == 170636
    assert r["duration_s"] == pytest.approx(2.03)
    assert r["latency_ms"] == {}  # no --latency: no percentiles
    assert r["latency_max_ms"] == pytest.approx(1210.0)
    assert r["socket_errors"] == {"connect": 3, "read": 17, "write": 2, "timeout": 41, "total": 63}
    assert r["non_2xx"] == 12


def test_parse_wrk_percentile_units():
    text = WRK_LATENCY.replace("377.00us", "1.50s").replace("1.86ms", "2.00m")
    r = nb.parse_wrk_output(text)
    assert r["latency_ms"]["50"] == pytest.approx(1500.0)
    assert r["latency_ms"]["99"] == pytest.approx(120000.0)


def test_parse_wrk_ignores_stdev_percent_column():
    # "80.45%" in the Thread Stats block must not be read as a percentile.
    r = nb.parse_wrk_output(WRK_LATENCY)
    assert set(r["latency_ms"]) == {"50", "75", "90", "99"}


def test_parse_wrk_failure_raises():
    with pytest.raises(ValueError):
        nb.parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_size_and_time_units():
    assert nb.size_to_bytes("512.00", "B") == 512
    assert nb.size_to_bytes("1.00", "KB") == 1024
    assert nb.size_to_bytes("2.00", "GB") == 2 * 1024**3
    assert nb.time_to_ms("250.00", "us") == pytest.approx(0.25)
    with pytest.raises(ValueError):
        nb.time_to_ms("1", "ns")


PROC_STAT = (
    "4242 (nginx) S 4241 4241 4241 0 -1 4194624 300 0 0 0 1234 567 8 9 20 0 1 0 "
    "1000 12345678 900 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0"
)


def test_parse_proc_stat_fields():
    st = nb.parse_proc_stat(PROC_STAT)
    assert st["pid"] == 4242
    assert st["comm"] == "nginx"
    assert st["state"] == "S"
    assert st["ppid"] == 4241
    assert st["utime"] == 1234  # field 14
    assert st["stime"] == 567  # field 15


def test_parse_proc_stat_comm_with_spaces_and_parens():
    text = PROC_STAT.replace("(nginx)", "(nginx: worker) (x)")
    st = nb.parse_proc_stat(text)
    assert st["comm"] == "nginx: worker) (x"
    assert (st["ppid"], st["utime"], st["stime"]) == (4241, 1234, 567)


def test_parse_proc_stat_of_self_is_consistent():
    with open("/proc/self/stat") as f:
        st = nb.parse_proc_stat(f.read())
    import os

    assert st["pid"] == os.getpid()
    assert st["ppid"] == os.getppid()
    assert st["utime"] >= 0 and st["stime"] >= 0


def test_process_tree_from_ppid_map():
    ppid_of = {1: 0, 10: 1, 11: 10, 12: 10, 13: 11, 20: 1, 21: 20}
    assert nb.process_tree(10, ppid_of) == {10, 11, 12, 13}
    assert nb.process_tree(13, ppid_of) == {13}
    assert nb.process_tree(99, ppid_of) == {99}


def test_tree_cpu_delta_counts_new_processes_in_full():
    before = {100: 50, 101: 400}
    after = {100: 60, 101: 900, 102: 7}
    assert nb.tree_cpu_delta_ticks(before, after) == 10 + 500 + 7


def test_cpu_us_per_request():
    assert nb.cpu_us_per_request(1.5, 150_000) == pytest.approx(10.0)
    assert nb.cpu_us_per_request(1.0, 0) is None


def test_summarize_median_min_max():
    s = nb.summarize([3.0, 1.0, 2.0])
    assert s == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert nb.summarize([4.0, 1.0])["median"] == pytest.approx(2.5)
    assert nb.summarize([None, 5.0])["n"] == 1
    assert nb.summarize([]) is None
    assert nb.summarize([None]) is None


def test_ratio():
    assert nb.ratio(150.0, 100.0) == pytest.approx(1.5)
    assert nb.ratio(None, 100.0) is None
    assert nb.ratio(1.0, None) is None
    assert nb.ratio(1.0, 0.0) is None


def _run(server, scenario, rps, cpu, p50=0.5, p99=1.0, ok=True):
    return {
        "scenario": scenario,
        "server": server,
        "ok": ok,
        "requests_per_sec": rps,
        "cpu_us_per_req": cpu,
        "server_core_pct": 90.0,
        "wrk_core_pct": 95.0,
        "bytes_per_response": 150.0,
        "socket_errors": {"total": 1},
        "non_2xx": 0,
        "latency_ms": {"50": p50, "99": p99},
    }


def test_summarize_results_medians_and_ratios_to_nginx():
    sc = [nb.Scenario("plaintext-c64", "/plaintext", 64), nb.Scenario("pipelined16-c256", "/plaintext", 256, True)]
    runs = [
        _run("covet-uring", "plaintext-c64", 80_000, 4.0),
        _run("nginx", "plaintext-c64", 70_000, 12.0),
        _run("covet-uring", "plaintext-c64", 60_000, 6.0),
        _run("nginx", "plaintext-c64", 80_000, 10.0),
        _run("covet-uring", "plaintext-c64", 100_000, 5.0),
        _run("nginx", "plaintext-c64", 75_000, 11.0),
        _run("covet-uring", "pipelined16-c256", 500_000, 1.0),
        _run("nginx", "pipelined16-c256", 0, 0, ok=False),
    ]
    rows = nb.summarize_results(runs, sc, ["covet-uring", "nginx"])
    by = {(r["scenario"], r["server"]): r for r in rows}
    ours = by[("plaintext-c64", "covet-uring")]
    ref = by[("plaintext-c64", "nginx")]
    assert ours["rps"] == {"median": 80_000, "min": 60_000, "max": 100_000, "n": 3}
    assert ref["rps"]["median"] == 75_000
    assert ours["rps_vs_nginx"] == pytest.approx(80_000 / 75_000)
    assert ours["cpu_vs_nginx"] == pytest.approx(5.0 / 11.0)
    assert ref["rps_vs_nginx"] == pytest.approx(1.0)
    assert ours["p99_ms"]["median"] == pytest.approx(1.0)
    assert ours["socket_errors"] == 3
    # pipelined: no latency; nginx had no successful run -> no ratio, failure counted
    pipe = by[("pipelined16-c256", "covet-uring")]
    assert pipe["p50_ms"] is None and pipe["p99_ms"] is None
    assert pipe["rps_vs_nginx"] is None
    assert by[("pipelined16-c256", "nginx")]["runs_failed"] == 1
    table = nb.render_table(rows)
    assert "n/a¹" in table
    assert "80.0K (60.0–100.0)" in table
    assert "0.45×" in table


def test_replace_section_between_markers_keeps_the_rest():
    doc = (
        "# Title\n\nintro\n\n<!-- native-bench:start -->\nold table\n<!-- native-bench:end -->\n\n"
        "## Other section\ntext\n"
    )
    new = nb.replace_section(doc, "new table\n")
    assert new == (
        "# Title\n\nintro\n\n<!-- native-bench:start -->\nnew table\n<!-- native-bench:end -->\n\n"
        "## Other section\ntext\n"
    )
    # idempotent
    assert nb.replace_section(new, "new table") == new


def test_replace_section_appends_when_markers_missing():
    new = nb.replace_section("# Title\n\nintro\n", "body")
    assert new == "# Title\n\nintro\n\n<!-- native-bench:start -->\nbody\n<!-- native-bench:end -->\n"


def test_replace_section_creates_file_with_header():
    new = nb.replace_section(None, "body", header="# Benchmarks\n\nabout")
    assert new.startswith("# Benchmarks\n\nabout\n\n<!-- native-bench:start -->\nbody\n")
    assert new.endswith("<!-- native-bench:end -->\n")


def test_replace_section_rejects_a_lone_marker():
    with pytest.raises(ValueError):
        nb.replace_section("x\n<!-- native-bench:start -->\nno end\n", "body")


def test_render_nginx_conf_from_template():
    template = nb.NGINX_TEMPLATE.read_text()
    conf = nb.render_nginx_conf(template, 12345, "/tmp/xyz", "root")
    assert "listen 127.0.0.1:12345" in conf
    assert "pid /tmp/xyz/nginx.pid;" in conf
    assert "user root;" in conf
    assert "worker_processes 1;" in conf
    assert "access_log off;" in conf
    assert "location = /plaintext" in conf and 'return 200 "Hello, World!";' in conf
    assert "application/json" in conf and '{"message":"Hello, World!"}' in conf
    assert "daemon" not in conf  # given on the command line with -g
    assert "@" not in conf
    assert "user " not in nb.render_nginx_conf(template, 1, "/t", None)


def test_count_pipelined_responses():
    one = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
    assert nb.count_pipelined_responses(one * 16, b"Hello, World!") == 16
    assert nb.count_pipelined_responses(one * 3 + one[:-2], b"Hello, World!") == 3
    bad = one.replace(b"200 OK", b"404 Not Found")
    assert nb.count_pipelined_responses(one + bad + one, b"Hello, World!") == 1
    assert nb.count_pipelined_responses(b"", b"x") == 0


def test_wrk_command_shapes():
    sc = nb.Scenario("plaintext-c64", "/plaintext", 64)
    cmd = nb.wrk_command(sc, 8080, 10, timed=True)
    assert cmd[:4] == ["taskset", "-c", "1", "wrk"]
    assert "-t1" in cmd and "-c64" in cmd and "-d10s" in cmd and "--latency" in cmd
    assert cmd[-1] == "http://127.0.0.1:8080/plaintext"
    assert "--latency" not in nb.wrk_command(sc, 8080, 3, timed=False)
    pipe = nb.Scenario("pipelined16-c256", "/plaintext", 256, pipeline=True)
    cmd = nb.wrk_command(pipe, 8080, 10, timed=True)
    assert "--latency" not in cmd
    assert cmd[-3:] == ["http://127.0.0.1:8080/plaintext", "--", "16"]
    assert cmd[cmd.index("-s") + 1].endswith("pipeline.lua")


def test_parse_args_quick_and_defaults():
    a = nb.parse_args([])
    assert (a.duration, a.runs, a.warmup) == (10.0, 3, 3.0)
    assert a.servers == ["covet-uring", "covet-asio", "nginx"]
    q = nb.parse_args(["--quick", "--servers", "nginx,uring"])
    assert (q.duration, q.runs) == (2.0, 1)
    assert q.servers == ["nginx", "covet-uring"]
    assert nb.parse_args(["--quick", "--duration", "5"]).duration == 5.0


PROC_STAT_CPU = """\
cpu  33075 0 10163 170288 1043 0 2160 195 0 0
cpu0 15602 0 4298 86915 409 0 1224 77 0 0
cpu1 17473 1 5864 83373 633 2 936 118 0 0
intr 123 0 0
"""


def test_parse_cpu_stat_and_delta():
    st = nb.parse_cpu_stat(PROC_STAT_CPU)
    assert set(st) == {"cpu", "cpu0", "cpu1"}
    assert st["cpu0"] == {"busy": 15602 + 4298 + 1224, "idle": 86915 + 409, "steal": 77}
    assert st["cpu1"]["busy"] == 17473 + 1 + 5864 + 2 + 936
    later = nb.parse_cpu_stat(
        PROC_STAT_CPU.replace("cpu0 15602", "cpu0 15702").replace("633 2 936 118", "633 2 936 128")
    )
    d = nb.cpu_stat_delta(st, later, ["cpu0", "cpu1"])
    assert d == {"busy": 100, "idle": 0, "steal": 10}


def _result(runs):
    sc = [nb.Scenario("plaintext-c64", "/plaintext", 64)]
    return {
        "timestamp_utc": "2026-01-01 00:00:00Z",
        "command": "python3 bench/native/run.py --quick",
        "machine": {"nproc": 2, "cpu_model": "AMD EPYC", "kernel": "6.1", "mem_gib": 24.0,
                    "wrk_version": "wrk 4.1", "nginx_version": "nginx/1.22.1", "python": "3.11.7",
                    "loadavg": "0.10 0.1 0.1 1/2 3"},
        "loadavg_start": "0.05 0.1 0.1 1/2 3",
        "settings": {"duration_s": 2, "warmup_s": 1, "runs": 1, "quick": True,
                     "servers": ["covet-uring", "nginx"], "scenarios": ["plaintext-c64"]},
        "servers": [{"name": "nginx", "command": "taskset -c 0 nginx"}],
        "exclusions": [{"server": "covet-asio", "scenario": "all", "reason": "does not start"}],
        "runs": runs,
        "summary": nb.summarize_results(runs, sc, ["covet-uring", "nginx"]),
        "json_path": "bench/results/native-x.json",
    }


def test_render_markdown_and_docs_update(tmp_path):
    runs = [_run("covet-uring", "plaintext-c64", 80_000, 5.0), _run("nginx", "plaintext-c64", 80_000, 10.0)]
    for r in runs:
        r["run"] = 1
        r["other_core_pct"] = 3.0
    result = _result(runs)
    md = nb.render_markdown(result)
    assert "python3 bench/native/run.py --quick" in md
    assert "AMD EPYC" in md and "nginx/1.22.1" in md and "wrk 4.1" in md
    assert "| plaintext-c64 | covet-uring | 80.0K | 1.00× |" in md
    assert "0.50×" in md
    assert "does not start" in md
    assert "Quick run" in md
    docs = tmp_path / "benchmarks.md"
    nb.write_reports(result, tmp_path / "x.md", docs)
    text = docs.read_text()
    assert text.startswith("# CovetPy benchmarks")
    assert text.count(nb.SECTION_START) == 1 and text.count(nb.SECTION_END) == 1
    docs.write_text(text + "\n## Later section\nkeep me\n")
    nb.write_reports(result, tmp_path / "x.md", docs)
    again = docs.read_text()
    assert again.count(nb.SECTION_START) == 1 and "keep me" in again
