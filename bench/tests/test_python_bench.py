"""Tests for the pure functions of bench/python/run.py (no servers, no wrk)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

RUN_PY = Path(__file__).resolve().parents[1] / "python" / "run.py"
_spec = importlib.util.spec_from_file_location("python_bench_run", RUN_PY)
pb = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = pb  # dataclasses need the module registered
_spec.loader.exec_module(pb)


def test_body_matches_plaintext_exact():
    assert pb.body_matches("plaintext", b"Hello, World!")
    assert not pb.body_matches("plaintext", b"Hello, World!\n")
    assert not pb.body_matches("plaintext", b"")


def test_body_matches_json_and_users():
    assert pb.body_matches("json", b'{"message":"Hello, World!"}')
    assert pb.body_matches("json", b'{"message": "Hello, World!"}')
    assert not pb.body_matches("json", b'{"message":"Hello"}')
    assert not pb.body_matches("json", b"not json")
    assert pb.body_matches("users", b'{"id":123,"q":"x"}')
    assert not pb.body_matches("users", b'{"id":"123","q":"x"}')  # id must be an int
    assert not pb.body_matches("users", b'{"id":123,"q":null}')


def test_duration_for_requests():
    assert pb.duration_for_requests(1_000_000, 50_000) == 20
    assert pb.duration_for_requests(1_000_000, 30_000) == 34  # rounds up
    assert pb.duration_for_requests(10, 50_000) == 1  # at least lo
    assert pb.duration_for_requests(1_000_000, 1_000, hi=60) == 60  # capped
    assert pb.duration_for_requests(1_000_000, None, hi=60) == 60
    assert pb.duration_for_requests(1_000_000, 0.0, hi=60) == 60


def test_server_command_pins_cpu0_and_port():
    c = pb.server_command("covet", 1234)
    assert c[:3] == ["taskset", "-c", "0"]
    assert c[4:7] == ["-m", "covet", "_worker"]
    assert "1234" in c and "--threads" in c and str(pb.APPS) in c
    f = pb.server_command("fastapi", 99)
    assert f[:3] == ["taskset", "-c", "0"]
    assert "uvicorn" in f and "uvloop" in f and "httptools" in f and "--no-access-log" in f
    try:
        pb.server_command("nginx", 1)
    except ValueError:
        pass
    else:
        raise AssertionError("unknown server accepted")


def test_scenarios():
    names = [s.name for s in pb.SCENARIOS]
    assert len(names) == len(set(names))
    for mode in ("async", "sync", "inline"):
        for kind in ("plaintext", "json", "users"):
            assert f"{mode}-{kind}-c64" in names
    inline = [s for s in pb.SCENARIOS if s.name.startswith("inline-")]
    assert all(s.servers == ("covet",) for s in inline)
    pipe = [s for s in pb.SCENARIOS if s.pipeline]
    assert len(pipe) == 1 and pipe[0].connections == 256 and not pipe[0].latency
    users = next(s for s in pb.SCENARIOS if s.name == "async-users-c64")
    assert users.path == "/users/123?q=x" and users.latency


def _row(scenario, server, rps, cpu, p99=None):
    def s(v):
        return None if v is None else {"median": v, "min": v, "max": v, "n": 1}

    return {"scenario": scenario, "server": server, "rps": s(rps), "cpu_us_per_req": s(cpu),
            "p99_ms": s(p99), "rps_vs_fastapi": None}


def test_target_verdicts():
    rows = [
        _row("async-plaintext-c64", "covet", 70_000, 12.0, 0.9),
        _row("async-json-c64", "covet", 60_000, 14.0, 0.95),
        _row("sync-json-c64", "covet", 15_000, 60.0, 12.0),  # thread pool: listed, not judged
        _row("pipelined16-c256", "covet", 80_000, 11.0),
    ]
    rows[-1]["rps_vs_fastapi"] = 8.0
    extras = {"idle_rss_mib": {"covet": 20.0}, "cold_start_ms": {"covet": 120.0}}
    v = {x["target"].split(" ")[0]: x for x in pb.target_verdicts(rows, extras, 9.0)}
    assert v["CPU"]["met"] is True and v["CPU"]["limit"] == 13.5
    assert v["≥"]["met"] is False
    assert v["p99"]["met"] is True and v["p99"]["value"] == 0.95
    assert v["idle"]["met"] is True  # 20 MiB = 20.97 MB
    assert v["cold"]["met"] is False


def test_target_verdicts_missing_figures_are_unknown():
    v = pb.target_verdicts([], {}, 9.0)
    assert len(v) == 5
    assert all(x["met"] is None for x in v)
    assert pb.verdict_word(None) == "unknown"


def test_mib_to_mb():
    assert abs(pb.mib_to_mb(25.0) - 26.2144) < 1e-9
    assert pb.mib_to_mb(23.8) < 25.0 < pb.mib_to_mb(23.9)


def test_summarize_python_ratios_against_fastapi():
    runs = []
    for srv, rps, cpu in (("covet", 60_000.0, 15.0), ("fastapi", 10_000.0, 100.0)):
        runs.append({
            "scenario": "async-json-c64", "server": srv, "ok": True, "requests_per_sec": rps,
            "cpu_us_per_req": cpu, "server_core_pct": 99.0, "wrk_core_pct": 50.0,
            "socket_errors": {"total": 0}, "non_2xx": 0, "latency_ms": {"50": 1.0, "99": 2.0},
        })
    sc = next(s for s in pb.SCENARIOS if s.name == "async-json-c64")
    rows = pb.summarize_python(runs, [sc], ["covet", "fastapi"])
    covet = pb.find_row(rows, "async-json-c64", "covet")
    assert covet["rps_vs_fastapi"] == 6.0 and covet["cpu_vs_fastapi"] == 0.15
    assert "rps_vs_nginx" not in covet
    table = pb.render_table(rows)
    assert "| async-json-c64 | covet | 60.0K | 6.00× |" in table


def test_docs_section_markers_are_independent_of_native():
    doc = "# B\n\n<!-- native-bench:start -->\nN\n<!-- native-bench:end -->\n"
    out = pb.native_run.replace_section(doc, "P", pb.SECTION_START, pb.SECTION_END)
    assert out.startswith(doc)
    assert out.endswith("<!-- python-bench:start -->\nP\n<!-- python-bench:end -->\n")
    again = pb.native_run.replace_section(out, "Q", pb.SECTION_START, pb.SECTION_END)
    assert "<!-- native-bench:start -->\nN\n" in again and "\nQ\n" in again and "\nP\n" not in again
