"""The observability overhead mode (bench/overhead.py, `python -m bench --overhead`): the servers and scenarios it
selects, the flags and environment that turn metrics and tracing on and off, the cost table it derives from a
run's results, and (when the native example is built) hello answering in every configuration."""

import argparse
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from bench import REPO, alternate, cli, overhead, report, runner, scenarios
from bench.servers import Ctx, all_specs, free_port, native_binary, wait_for_200


def test_overhead_selects_its_servers_and_scenarios_and_leaves_the_docs_alone():
    a = cli.parse_args(["--overhead", "--quick"])
    assert a.server_list == list(overhead.OVERHEAD_SERVERS) and len(a.server_list) == 8
    assert [s.name for s in a.scenario_list] == ["plaintext", "json"] and a.no_docs
    b = cli.parse_args(["--overhead", "--servers", "covet-native-obs-bare,covet-native-obs-trace1"])
    assert b.server_list == ["covet-native-obs-bare", "covet-native-obs-trace1"]
    # the default matrix does not grow; --overhead and --hosting do not mix
    assert not set(cli.parse_args([]).server_list) & set(overhead.OVERHEAD_SERVERS)
    with pytest.raises(SystemExit):
        cli.parse_args(["--overhead", "--hosting"])


def test_each_configuration_turns_metrics_and_tracing_on_or_off():
    specs, ctx = all_specs(), Ctx(covet_python=Path("/py/bin/python"), native_binary=Path("/bin/hello"))
    native = {c: specs[f"covet-native-obs-{c}"].command(ctx, 8001) for c in ("bare", "metrics", "trace1", "trace100")}
    assert native["bare"][0] == "/bin/hello" and "--no-metrics" in native["bare"] and "--trace" not in native["bare"]
    assert "--no-metrics" not in native["metrics"] and "--trace" not in native["metrics"]
    assert native["trace1"][-2:] == ["--trace", "parentbased_traceidratio:0.01"]
    assert "--no-metrics" not in native["trace1"]
    assert native["trace100"][-2:] == ["--trace", "always_on"]
    env = {c: specs[f"covet-async-obs-{c}"].env for c in ("bare", "metrics", "trace1", "trace100")}
    assert env["bare"] == {"COVET_RECORD_METRICS": "0", "COVET_BENCH_TRACE": "off"}
    assert "COVET_RECORD_METRICS" not in env["metrics"] and env["metrics"]["COVET_BENCH_TRACE"] == "off"
    assert env["trace1"]["COVET_BENCH_TRACE"] == "0.01" and env["trace100"]["COVET_BENCH_TRACE"] == "1"
    py = specs["covet-async-obs-trace1"].command(ctx, 8002)
    assert py[:5] == ["/py/bin/python", "-m", "covet", "run", "app_observed:app"] and "--workers" not in py
    assert (Path(py[py.index("--app-dir") + 1]) / "app_observed.py").exists()
    two = specs["covet-async-obs-bare"].command(Ctx(covet_python=Path("/py/bin/python"), workers=2), 8003)
    assert two[3:7] == ["run", "app_observed:app", "--workers", "2"]


def _row(server: str, scenario: str, cpu_s_per_100k: float) -> dict:
    return {"server": server, "scenario": scenario, "cpu_s_per_100k": {"median": cpu_s_per_100k}}


def test_the_cost_table_compares_metrics_with_bare_and_tracing_with_metrics():
    result = {"servers": {n: {} for n in overhead.OVERHEAD_SERVERS}, "summary": [
        _row("covet-native-obs-bare", "plaintext", 2.0), _row("covet-native-obs-metrics", "plaintext", 2.02),
        _row("covet-native-obs-trace1", "plaintext", 2.06), _row("covet-native-obs-trace100", "plaintext", 2.5),
        _row("covet-async-obs-bare", "json", 10.0), _row("covet-async-obs-metrics", "json", 10.0),
    ]}
    rows = {(r["family"], r["scenario"], r["cost"]): r for r in overhead.overhead_rows(result)}
    metrics = rows[("native", "plaintext", "metrics")]
    assert metrics["base_us"] == pytest.approx(20.0) and metrics["on_us"] == pytest.approx(20.2)
    assert metrics["percent"] == pytest.approx(1.0)
    assert rows[("native", "plaintext", "tracing 1 %")]["percent"] == pytest.approx(100 * 0.04 / 2.02)
    assert rows[("native", "plaintext", "tracing 100 %")]["base_us"] == pytest.approx(20.2)
    assert rows[("python", "json", "metrics")]["percent"] == pytest.approx(0.0)
    # a configuration that was not measured has no percentage; a scenario with neither side has no row
    assert rows[("python", "json", "tracing 1 %")]["percent"] is None
    assert ("python", "plaintext", "metrics") not in rows and ("native", "json", "metrics") not in rows
    section = overhead.overhead_section(result)
    assert section is not None and "| native | plaintext | metrics | 20.00 | 20.20 | +1.0 % |" in section
    assert overhead.overhead_section({"servers": {"covet-native": {}}, "summary": []}) is None
    assert report.overhead_section is overhead.overhead_section  # the Markdown report appends it


def _run(server: str, scenario: str, rnd: int, cpu_s_per_100k: float) -> dict:
    return {"server": server, "scenario": scenario, "round": rnd, "cpu_s_per_100k": cpu_s_per_100k}


def test_the_paired_cost_is_the_median_of_each_rounds_own_difference():
    # rounds whose level moves by ±20 % together: the medians of the rounds hide a steady +2 %, the pairs show it
    levels = [1.0, 1.2, 0.8, 1.1, 0.9, 1.15, 0.85, 1.05, 0.95]
    runs = [_run("covet-async-obs-metrics", "plaintext", i + 1, 10.0 * lv) for i, lv in enumerate(levels)]
    runs += [_run("covet-async-obs-trace1", "plaintext", i + 1, 10.2 * lv) for i, lv in enumerate(levels)]
    runs.append(_run("covet-async-obs-trace1", "plaintext", 10, 99.0))  # its baseline failed in round 10: no pair
    assert overhead.paired_costs({"runs": runs}, "covet-async-obs-trace1", "covet-async-obs-metrics",
                                 "plaintext") == pytest.approx([2.0] * 9)
    result = {"servers": {n: {} for n in overhead.OVERHEAD_SERVERS}, "runs": runs,
              "summary": [_row("covet-async-obs-metrics", "plaintext", 10.0),
                          _row("covet-async-obs-trace1", "plaintext", 10.2)]}
    row = next(r for r in overhead.overhead_rows(result) if r["cost"] == "tracing 1 %")
    assert row["pairs"] == 9 and row["paired"] == pytest.approx((2.0, 2.0, 2.0))
    assert "| +2.0 % (+2.0 to +2.0), 9 |" in (overhead.overhead_section(result) or "")


def test_the_median_interval_uses_the_binomial_order_statistics():
    assert overhead.median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None  # n=5: even the extremes cover only 93.8 %
    assert overhead.median_interval([3.0, 1.0, 2.0, 6.0, 5.0, 4.0]) == (3.5, 1.0, 6.0)  # n=6: the extremes, 96.9 %
    # n=21: P(Bin(21, 1/2) <= 5) = 1.3 % <= 2.5 % < P(<= 6) = 3.9 %, so the 6th and the 16th values
    values = [float(v) for v in range(21)]
    assert overhead.median_interval(values) == (10.0, 5.0, 15.0)


def test_every_server_of_an_overhead_round_runs_with_that_rounds_hash_seed():
    args = cli.parse_args(["--overhead", "--servers", "covet-async-obs-metrics"])
    assert runner.round_env(args, 3) == {"PYTHONHASHSEED": "3"}
    assert runner.round_env(cli.parse_args(["--servers", "covet-async"]), 3) == {}


def test_alternate_reads_its_configurations_and_a_processes_cpu():
    assert alternate._env("trace1=COVET_BENCH_TRACE=0.01,X=a=b") == ("trace1",
                                                                    {"COVET_BENCH_TRACE": "0.01", "X": "a=b"})
    assert alternate._env("bare=") == ("bare", {})
    before = alternate.cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # burn 0.2 s of CPU
        pass
    assert alternate.cpu_seconds(os.getpid()) - before >= 0.15


WRK_SUMMARY = """Running 2s test @ http://127.0.0.1:8001/plaintext
  1 threads and 64 connections
  160000 requests in 2.00s, 20.00MB read
Requests/sec:  80000.00
Transfer/sec:     10.00MB
"""


def test_alternate_counts_clean_wrk_runs_and_refuses_others():
    assert alternate.responses(WRK_SUMMARY, 8001) == 160000
    refused = WRK_SUMMARY.replace("Requests/sec", "  Non-2xx or 3xx responses: 3\nRequests/sec")
    with pytest.raises(RuntimeError, match="no clean run on port 8001"):
        alternate.responses(refused, 8001)
    with pytest.raises(RuntimeError):
        alternate.responses("unable to connect to 127.0.0.1:8001 Connection refused\n", 8001)
    assert alternate.wrk_command(8001, "/json", 2, "1", 64) == [
        "taskset", "-c", "1", "wrk", "-t1", "-c64", "-d2s", "http://127.0.0.1:8001/json"]


@pytest.mark.skipif(shutil.which("wrk") is None or shutil.which("taskset") is None, reason="wrk not installed")
def test_alternate_together_loads_both_servers_at_once_and_reads_each_ones_cpu():
    """One slice of ``together`` mode on two real servers of the same configuration (an A/A pair): both are
    loaded, and each one's CPU per response is its own (a few µs to a few hundred, within 2x of the other's)."""
    python = str(REPO / ".venv" / "bin" / "python")
    servers: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        servers.extend(alternate.start(python, {"COVET_BENCH_TRACE": "off"}, 1, "0-1") for _ in range(2))
        args = argparse.Namespace(path="/plaintext", duration=1, client_cpu="0-1", connections=8)
        us = alternate.together([(side, *servers[side]) for side in (1, 0)], args)
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(10)
    assert set(us) == {0, 1}
    assert all(1.0 < v < 2000.0 for v in us.values()), us
    assert max(us.values()) < 2 * min(us.values()), us


HELLO = native_binary(Ctx())


@pytest.mark.skipif(HELLO is None, reason="examples/native/hello not built (scripts/build.sh release)")
@pytest.mark.parametrize("config", ["bare", "metrics", "trace1", "trace100"])
def test_hello_passes_the_gate_in_every_configuration(config):
    port = free_port()
    cmd = all_specs()[f"covet-native-obs-{config}"].command(Ctx(), port)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_for_200(proc, port, time.monotonic() + 30) == ""
        sc = scenarios.build_scenarios()
        for name in overhead.OVERHEAD_SCENARIOS:
            ok, why = scenarios.gate(port, sc[name])
            assert ok, (config, name, why)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
