"""Tests for the gRPC scenarios of the matrix (grpc-unary, grpc-stream): ghz's report and command lines, the
scenarios, which servers sit them out (and which sit out the HTTP ones), the gRPC instances' commands, CPU per call
from a timed run, the report and the chart; and, against real grpcio servers started for a fraction of a second
(skipped without grpcio-tools), the instance's readiness check and the gate passing a right Greeter and failing wrong
ones. No load: ghz itself is replaced by a script in the timed-run test."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import cli, grpc_bench, loadgen, measure, report, runner, scenarios, servers, summary  # noqa: E402
from test_matrix_suite import _Good, _serve  # noqa: E402
from test_matrix_ws import FakeServer, fake_tool  # noqa: E402

SC = scenarios.build_scenarios()
UNARY, STREAM = SC["grpc-unary"], SC["grpc-stream"]
GRPC_PEERS = ("grpcio", "grpc-go", "grpc-cpp")


def ghz_report(status: dict[str, int], rps: float = 19950.5, errors: dict[str, int] | None = None) -> str:
    """A report as ghz v0.93.0 writes it with ``-O json`` (durations in nanoseconds; options and details cut)."""
    latencies = ((10, 500_000), (25, 900_000), (50, 1_590_000), (75, 2_500_000), (90, 4_000_000),
                 (95, 5_500_000), (99, 8_990_000))
    return json.dumps({
        "date": "2026-12-05T14:57:52Z", "endReason": "timeout", "options": {"call": "bench.Greeter.SayHello"},
        "count": sum(status.values()), "total": 1_000_123_456, "average": 2_100_000, "fastest": 120_000,
        "slowest": 30_000_000, "rps": rps, "errorDistribution": errors or {}, "statusCodeDistribution": status,
        "latencyDistribution": [{"percentage": p, "latency": v} for p, v in latencies],
        "histogram": [{"mark": 0.00012, "count": 1, "frequency": 0.001}],
        "details": [{"timestamp": "2026-12-05T14:57:52.1Z", "latency": 120_000, "error": "", "status": "OK"}],
    })


# ---- ghz: its report and its command line -----------------------------------------------------------------

def test_parse_ghz_reads_calls_rate_and_percentiles():
    out = loadgen.parse_ghz(ghz_report({"OK": 19904}))
    assert out["requests"] == 19904 and out["calls"] == 19904 and out["errors"] == 0
    assert out["requests_per_sec"] == 19950.5 and out["duration_s"] == pytest.approx(1.000123456)
    assert out["latency_ms"] == {"50": pytest.approx(1.59), "90": pytest.approx(4.0), "99": pytest.approx(8.99)}
    assert out["latency_avg_ms"] == pytest.approx(2.1)


def test_parse_ghz_counts_every_call_not_ok_as_an_error():
    cut = "rpc error: code = Canceled desc = grpc: the client connection is closing"
    out = loadgen.parse_ghz(ghz_report({"OK": 3116, "Canceled": 12, "Unavailable": 2}, errors={cut: 12}))
    assert out["requests"] == 3116 and out["calls"] == 3130 and out["errors"] == 14
    assert out["status"] == {"OK": 3116, "Canceled": 12, "Unavailable": 2} and out["error_counts"] == {cut: 12}
    refused = json.loads(ghz_report({"Unavailable": 3}))
    refused["latencyDistribution"] = None  # what ghz writes when no call succeeded
    out = loadgen.parse_ghz(json.dumps(refused))
    assert out["requests"] == 0 and out["errors"] == 3 and out["latency_ms"] == {}


@pytest.mark.parametrize("text", ["", "panic: runtime error", '{"tool": "wsload"}', "[1, 2]"])
def test_parse_ghz_rejects_what_is_not_a_report(text):
    with pytest.raises(ValueError):
        loadgen.parse_ghz(text)


def test_ghz_commands():
    cmd = loadgen.ghz_command(UNARY, 4242, 2, "1", Path("/t/run.json"), ghz=Path("/c/ghz"))
    assert cmd == ["taskset", "-c", "1", "/c/ghz", "--insecure", "--proto", str(loadgen.GREETER_PROTO),
                   "--call", "bench.Greeter.SayHello", "-d", '{"name":"world"}', "-c", "50", "--connections", "4",
                   "-z", "2s", "-O", "json", "-o", "/t/run.json", "127.0.0.1:4242"]
    stream = loadgen.load_command(STREAM, 4242, 1, 2000, "1-2", 2, False, Path("/t/warm.json"))
    assert stream[:4] == ["taskset", "-c", "1-2", str(loadgen.ghz_binary())]
    assert stream[stream.index("--call") + 1] == "bench.Greeter.SayHellos"
    assert json.loads(stream[stream.index("-d") + 1]) == {"name": "world", "count": 100}
    assert loadgen.ghz_binary().name == f"ghz-{loadgen.GHZ_VERSION}" and loadgen.GREETER_PROTO.exists()


# ---- scenarios, rounds, default servers ---------------------------------------------------------------------

def test_grpc_scenarios():
    assert (UNARY.tool, UNARY.method, UNARY.connections, UNARY.concurrency, UNARY.messages, UNARY.protocol) == (
        "ghz", "POST", 4, 50, 1, "grpc")
    assert (STREAM.path, STREAM.messages, STREAM.protocol) == ("/bench.Greeter/SayHellos", 100, "grpc")
    assert UNARY.is_grpc and STREAM.is_grpc and not SC["plaintext"].is_grpc and not SC["ws-echo"].is_grpc
    assert not UNARY.quick and not STREAM.quick and not UNARY.tls and not runner.reduced_rounds(UNARY)
    entry = runner.scenario_entry(STREAM, 3)
    assert (entry["protocol"], entry["concurrency"], entry["messages"], entry["runs"]) == ("grpc", 50, 100, 3)


def test_cli_grpc_scenarios_run_every_round_and_bring_the_grpc_peers():
    a = cli.parse_args([])
    assert {"grpc-unary", "grpc-stream"} <= {s.name for s in a.scenario_list}
    assert runner.runs_of(UNARY, a) == a.runs == 3
    assert set(GRPC_PEERS) <= set(a.server_list)
    q = cli.parse_args(["--quick"])
    assert not {"grpc-unary", "grpc-stream"} & {s.name for s in q.scenario_list}
    assert not set(GRPC_PEERS) & set(q.server_list)  # no gRPC scenario: no gRPC peer by default
    n = cli.parse_args(["--quick", "--scenarios", "grpc-unary,grpc-stream"])
    assert [s.name for s in n.scenario_list] == ["grpc-unary", "grpc-stream"]
    assert set(GRPC_PEERS) <= set(n.server_list) and "covet-native" in n.server_list


def test_grpc_bench_runs_the_matrix_with_its_scenarios_and_servers():
    a = cli.parse_args(grpc_bench.GRPC_MATRIX + ["--runs", "3", "--duration", "5"])
    assert [s.name for s in a.scenario_list] == ["grpc-unary", "grpc-stream"]
    assert a.server_list == ["covet-async", "covet-native", "grpcio", "grpc-go", "grpc-cpp"]
    assert a.no_docs and (a.runs, a.duration) == (3, 5)  # the docs' matrix section is not rewritten by it
    b = cli.parse_args(grpc_bench.GRPC_MATRIX + ["--servers", "covet-async,grpcio"])  # later options win
    assert b.server_list == ["covet-async", "grpcio"]


def test_estimate_counts_the_grpc_instances():
    base = summary.estimate_seconds(2, 4, 3, 1, 2, 3)
    assert summary.estimate_seconds(2, 4, 3, 1, 2, 3, grpc_servers=5) == pytest.approx(base + 3 * 5 * 2.0)


# ---- which servers sit out which scenarios --------------------------------------------------------------------

def _excluded(spec, scen, **kw):
    return runner.unsupported_pairs(spec, scen, have_h2load=True, have_curl_h2=True, tls_error=None, **kw)


def test_http_servers_sit_out_grpc_and_grpc_peers_sit_out_http_with_a_reason():
    specs = servers.all_specs()
    every = list(SC.values())
    http = [s for s in every if not s.is_grpc]
    for name, spec in specs.items():
        out = _excluded(spec, every)
        if name in ("covet-native", "covet-async"):
            assert not {"grpc-unary", "grpc-stream"} & set(out), name
        elif name in GRPC_PEERS:
            assert set(out) == {s.name for s in http}, name  # every HTTP scenario, not the gRPC ones
            assert out["plaintext"] == f"{name} is a gRPC peer: it serves the Greeter over gRPC only"
            assert not spec.serves_http and not spec.multi_worker and spec.command is spec.grpc_command
        else:
            assert {"grpc-unary", "grpc-stream"} <= set(out), name
            assert out["grpc-unary"] == f"no gRPC service in the suite's {name} peer (it serves the HTTP routes only)"
    # the reasons a peer states itself come first
    bare = servers.ServerSpec("bare", "Bare", "cfg", lambda c: None, lambda c, p: ["x"], lambda c: {},
                              unsupported={"grpc-unary": "left out to keep the run short"})
    assert _excluded(bare, [UNARY])["grpc-unary"] == "left out to keep the run short"


def test_no_ghz_excludes_only_the_grpc_pairs():
    spec = servers.all_specs()["covet-native"]
    out = _excluded(spec, [SC["plaintext"], UNARY, STREAM], grpc_error="no Go toolchain to build ghz v0.93.0")
    assert set(out) == {"grpc-unary", "grpc-stream"}
    assert out["grpc-unary"] == "no gRPC load generator or gate: no Go toolchain to build ghz v0.93.0"


def _matrix(tmp_path, *argv: str) -> runner.Matrix:
    args = cli.parse_args([*argv, "--quiet-file", str(tmp_path / "no-quiet-file")])
    return runner.Matrix(args, time.monotonic())


def test_no_install_run_without_ghz_or_the_gate_client_excludes_the_grpc_scenarios(tmp_path, monkeypatch):
    m = _matrix(tmp_path, "--no-install", "--scenarios", "grpc-unary", "--servers", "grpcio")
    monkeypatch.setattr(loadgen, "ghz_binary", lambda: tmp_path / "ghz")
    monkeypatch.setattr(runner, "GRPC_PYTHON", tmp_path / "python")
    assert m.build_grpc_tools() == f"{tmp_path / 'ghz'} not built (--no-install)"
    (tmp_path / "ghz").write_text("")
    assert m.build_grpc_tools() == f"{tmp_path / 'python'} not installed (--no-install)"
    (tmp_path / "python").write_text("")
    assert m.build_grpc_tools() is None and m.tool_versions["ghz"].startswith("ghz v0.93.0")
    assert _matrix(tmp_path, "--no-install", "--scenarios", "plaintext").build_grpc_tools() is None  # no gRPC


def test_a_missing_cpp_greeter_excludes_covet_native_from_grpc_only(tmp_path, monkeypatch):
    monkeypatch.setenv(servers.GREETER_ENV, str(tmp_path / "grpc_greeter"))
    m = _matrix(tmp_path, "--scenarios", "plaintext,grpc-unary,grpc-stream", "--servers", "covet-native")
    m.install_grpc_instances()
    reason = m.pair_excluded[("covet-native", "grpc-unary")]
    assert reason.startswith(f"gRPC instance: {tmp_path / 'grpc_greeter'} is not built")
    assert m.pair_excluded[("covet-native", "grpc-stream")] == reason
    assert ("covet-native", "plaintext") not in m.pair_excluded and "covet-native" not in m.excluded


# ---- the gRPC instances' commands ------------------------------------------------------------------------------

def test_grpc_instance_commands_and_environment(monkeypatch):
    monkeypatch.delenv(servers.GREETER_ENV, raising=False)
    specs = servers.all_specs()
    ctx = servers.Ctx(covet_python=Path("/py/bin/python"), native_binary=Path("/b/examples/native/hello/hello"))
    covet = servers.Running(specs["covet-async"], ctx, grpc=True)
    cmd = covet._command(9000)
    assert cmd[:5] == ["/py/bin/python", "-m", "covet", "run", "covet_app:app"]
    assert cmd[cmd.index("--app-dir") + 1] == str(servers.GRPC_PEER) and "--port" in cmd
    assert covet._env()["PYTHONPATH"].split(os.pathsep) == [str(servers.GRPC_GEN),
                                                             str(servers.venv_site_packages(servers.GRPC_VENV))]
    assert "PYTHONPATH" not in servers.Running(specs["covet-async"], ctx)._env()  # the HTTP instance is unchanged
    assert "app_async:app" in servers.Running(specs["covet-async"], ctx)._command(9000)
    native = servers.Running(specs["covet-native"], ctx, grpc=True)
    assert native._command(9000) == ["/b/examples/native/grpc_greeter/grpc_greeter", "9000", "--threads", "1"]
    assert native.what == " for gRPC" and servers.Running(specs["covet-native"], ctx).what == ""
    monkeypatch.setenv(servers.GREETER_ENV, "/elsewhere/grpc_greeter")
    assert servers.greeter_binary(ctx) == Path("/elsewhere/grpc_greeter")
    assert specs["grpcio"].grpc_command(ctx, 9000) == [str(servers.GRPC_PYTHON),
                                                       str(servers.GRPC_PEER / "grpcio_server.py"), "9000"]
    assert specs["grpc-go"].grpc_command(ctx, 9000) == [str(servers.GO_GREETER), "9000"]
    assert specs["grpc-cpp"].grpc_command(ctx, 9000) == [str(servers.CPP_GREETER), "9000"]
    r = servers.Running(specs["grpcio"], ctx, grpc=True)
    try:
        assert r.describe() == ("PYTHONPATH=bench/.grpc/py taskset -c 0 bench/.venvs/grpc/bin/python "
                                "bench/peers/grpc/grpcio_server.py N")
    finally:
        r.cleanup()
    with pytest.raises(ValueError):
        servers.Running(specs["fastapi"], ctx, grpc=True)


def test_grpc_peer_pins_and_sources():
    req = (servers.GRPC_PEER / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in req} == {"grpcio", "grpcio-tools", "protobuf"} and all("==" in r for r in req)
    assert "google.golang.org/grpc v" in (servers.GRPC_PEER / "go" / "go.mod").read_text()
    assert (servers.GRPC_PEER / "check.py").exists() and (servers.GRPC_PEER / "cpp" / "greeter_server.cc").exists()


def test_build_once_rebuilds_only_when_an_input_changes(tmp_path):
    src, target, built = tmp_path / "main.go", tmp_path / "out" / "bin", []
    src.write_text("v1")

    def build():
        built.append(src.read_text())
        target.write_text("binary")
    servers.build_once(target, (src,), build, extra=" go1")
    servers.build_once(target, (src,), build, extra=" go1")
    assert built == ["v1"]
    src.write_text("v2")
    servers.build_once(target, (src,), build, extra=" go1")
    servers.build_once(target, (src,), build, extra=" go2")  # a new toolchain
    assert built == ["v1", "v2", "v2"]
    target.unlink()
    servers.build_once(target, (src,), build, extra=" go2")
    assert len(built) == 4 and (tmp_path / "out" / "bin.inputs").exists()


# ---- a timed run: CPU per call as for HTTP requests --------------------------------------------------------------

def _args():
    cpu = str(sorted(os.sched_getaffinity(0))[0])
    return SimpleNamespace(warmup=1, duration=1, rate=2000, client_cpus=cpu, client_threads=1)


@pytest.mark.skipif(not shutil.which("taskset"), reason="taskset not installed")
def test_measure_divides_server_cpu_over_the_timed_run_by_the_calls_that_ended_ok(tmp_path, monkeypatch):
    report_text = ghz_report({"OK": 30000, "Canceled": 50}, rps=30050.0)
    tool = fake_tool(tmp_path, f"""
        import sys
        open(sys.argv[sys.argv.index("-o") + 1], "w").write({report_text!r})
    """)
    monkeypatch.setattr(loadgen, "ghz_binary", lambda: tool)
    r = measure.measure(FakeServer(), UNARY, _args(), tmp_path / "unused.json", 100)
    assert "error" not in r, r
    assert r["requests"] == 30000 and r["errors"] == 50 and r["requests_per_sec"] == 30050.0
    # FakeServer's tree gains 150 ticks between the two reads around the timed run: 1.5 s at 100 Hz
    assert r["cpu_s"] == pytest.approx(1.5) and r["cpu_s_per_100k"] == pytest.approx(5.0)
    assert r["cpu_us_per_call"] == pytest.approx(50.0) and r["peak_rss_kib"] == 2048
    assert "--call bench.Greeter.SayHello" in r["command"] and "-z 1s" in r["command"]


@pytest.mark.skipif(not shutil.which("taskset"), reason="taskset not installed")
def test_measure_reports_a_ghz_that_failed(tmp_path, monkeypatch):
    tool = fake_tool(tmp_path, """
        import sys
        print("open examples/native/grpc_greeter/greeter.proto: no such file or directory", file=sys.stderr)
        sys.exit(1)
    """)
    monkeypatch.setattr(loadgen, "ghz_binary", lambda: tool)
    r = measure.measure(FakeServer(), STREAM, _args(), tmp_path / "unused.json", 100)
    assert r["error"].startswith("fake-wsload exited 1: open examples/native/grpc_greeter/greeter.proto")
    assert "cpu_s" not in r


# ---- the gate's verdicts -----------------------------------------------------------------------------------------

def test_judge_grpc_check():
    assert scenarios.judge_grpc_check(0, "ok\n") == (True, "")
    assert scenarios.judge_grpc_check(1, "SayHellos call 1: 99 replies, want 100\n") == (
        False, "SayHellos call 1: 99 replies, want 100")
    ok, why = scenarios.judge_grpc_check(1, "")
    assert not ok and why.startswith("the gRPC check exited 1")
    ok, why = scenarios.judge_grpc_check(2, "Traceback (most recent call last):\nModuleNotFoundError: No module "
                                            "named 'greeter_pb2'\n")
    assert not ok and "exited 2" in why and "greeter_pb2" in why


def test_gate_without_the_check_client_says_so(tmp_path):
    ok, why = scenarios.gate_grpc(1, UNARY, client=[str(tmp_path / "no-python"), "check.py"])
    assert not ok and why.startswith("the gRPC check could not run")


# ---- against real gRPC servers: readiness and the gate ------------------------------------------------------------

WRONG_SERVER = '''
import asyncio
import sys

import greeter_pb2
import greeter_pb2_grpc
import grpc


class Wrong(greeter_pb2_grpc.GreeterServicer):
    async def SayHello(self, request, context):
        return greeter_pb2.HelloReply(message="Hello, world")  # the name hard-coded

    async def SayHellos(self, request, context):
        for _ in range(request.count - 1):  # one reply short
            yield greeter_pb2.HelloReply(message="Hello, " + request.name)


async def main(port):
    server = grpc.aio.server()
    greeter_pb2_grpc.add_GreeterServicer_to_server(Wrong(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


asyncio.run(main(int(sys.argv[1])))
'''


def _grpc_python() -> str | None:
    """An interpreter with grpcio and grpcio-tools: the suite's gRPC venv, else the one running the tests."""
    for python in (str(servers.GRPC_PYTHON), sys.executable):
        if Path(python).exists() and subprocess.run([python, "-c", "import grpc, grpc_tools.protoc"],
                                                    capture_output=True).returncode == 0:
            return python
    return None


@pytest.fixture(scope="module")
def grpc_kit(tmp_path_factory):
    python = _grpc_python()
    if python is None:
        pytest.skip("no interpreter with grpcio and grpcio-tools")
    gen = tmp_path_factory.mktemp("grpc-gen")
    subprocess.run([python, "-m", "grpc_tools.protoc", f"-I{loadgen.GREETER_PROTO.parent}", f"--python_out={gen}",
                    f"--grpc_python_out={gen}", str(loadgen.GREETER_PROTO)], check=True)
    (gen / "wrong_server.py").write_text(WRONG_SERVER)
    env = {"PYTHONPATH": str(gen)}
    return SimpleNamespace(python=python, env=env, client=[python, str(servers.GRPC_PEER / "check.py")],
                           right=[python, str(servers.GRPC_PEER / "grpcio_server.py")],
                           wrong=[python, str(gen / "wrong_server.py")])


@pytest.fixture()
def start():
    """start(command, env) -> (port, what the readiness check said); the servers are stopped after the test."""
    procs = []

    def run(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
        port = servers.free_port()
        procs.append(subprocess.Popen([*cmd, str(port)], env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True))
        return port, servers.wait_for_h2c(procs[-1], port, time.monotonic() + 30)
    yield run
    for proc in procs:
        servers.stop_process(proc, 15, 5)


def test_gate_passes_the_right_greeter(grpc_kit, start):
    port, failure = start(grpc_kit.right, grpc_kit.env)
    assert failure == "" and servers.answers_h2c(port)
    for sc in (UNARY, STREAM):
        assert scenarios.gate_grpc(port, sc, client=grpc_kit.client, env=grpc_kit.env) == (True, ""), sc.name


def test_gate_fails_a_greeter_with_wrong_replies(grpc_kit, start):
    port, failure = start(grpc_kit.wrong, grpc_kit.env)
    assert failure == ""
    ok, why = scenarios.gate_grpc(port, UNARY, client=grpc_kit.client, env=grpc_kit.env)
    assert not ok and why.startswith("SayHello call 1: reply 'Hello, world', want 'Hello, gate-")
    ok, why = scenarios.gate_grpc(port, STREAM, client=grpc_kit.client, env=grpc_kit.env)
    assert (ok, why) == (False, "SayHellos call 1: 99 replies, want 100")


def test_gate_and_readiness_fail_an_http1_server_and_a_closed_port(grpc_kit):
    srv = _serve(_Good)
    try:
        port = srv.server_address[1]
        assert not servers.answers_h2c(port)  # an HTTP/1.1 server answers the preface with an error, not SETTINGS
        ok, why = scenarios.gate_grpc(port, UNARY, client=grpc_kit.client, env=grpc_kit.env)
        assert not ok and why.startswith("SayHello call 1: status UNAVAILABLE"), why
    finally:
        srv.shutdown()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert not servers.answers_h2c(closed)
    ok, why = scenarios.gate_grpc(closed, STREAM, client=grpc_kit.client, env=grpc_kit.env)
    assert not ok and why.startswith("SayHellos call 1: status UNAVAILABLE"), why


def test_readiness_reports_a_server_that_exits(grpc_kit, start):
    assert start([grpc_kit.python, "-c", "import sys; sys.exit(3)"], {})[1] == "exited with status 3 before answering"


# ---- report and chart ----------------------------------------------------------------------------------------------

def _row(server: str, scenario: str, rps: float, cpu_100k: float, **kw) -> dict:
    return {"server": server, "scenario": scenario, "rps": {"median": rps, "min": rps * 0.9, "max": rps * 1.1, "n": 3},
            "p50_ms": 1.5, "p99_ms": 6.5, "p999_ms": None, "peak_rss_kib": 40960,
            "cpu_s_per_100k": {"median": cpu_100k, "min": cpu_100k, "max": cpu_100k, "n": 3}, "errors": 150,
            "run_errors": [], **kw}


def _grpc_result() -> dict:
    names = {"covet-async": "CovetPy Python async", "covet-native": "CovetPy native (C++)", "grpcio": "grpcio",
             "grpc-cpp": "C++ gRPC", "fastapi": "FastAPI"}
    srv = {n: {"label": label, "config": "cfg", "command": None, "grpc_command": f"{n}-grpc N", "versions": {},
               "excluded": None} for n, label in names.items()}
    srv["covet-async"]["command"] = "covet run app_async:app"
    srv["fastapi"].update(command="uvicorn app:app", grpc_command=None)
    reason = "no gRPC service in the suite's fastapi peer (it serves the HTTP routes only)"
    rows = [_row("covet-async", "grpc-unary", 29765, 2.85), _row("covet-native", "grpc-unary", 42979, 0.40),
            _row("grpcio", "grpc-unary", 5329, 18.80), _row("grpc-cpp", "grpc-unary", 45346, 1.00),
            _row("covet-native", "grpc-stream", 8253, 1.29),
            {"server": "grpcio", "scenario": "grpc-stream", "excluded": "correctness gate: SayHellos call 1: …"},
            {"server": "fastapi", "scenario": "grpc-unary", "excluded": reason},
            {"server": "fastapi", "scenario": "grpc-stream", "excluded": reason}]
    return {
        "date_utc": "2026-12-05T13:06:00Z", "git": "abc", "wall_seconds": 120, "argv": ["python", "-m", "bench"],
        "options": {"server_cpus": "0", "client_cpus": "1", "workers": 1, "warmup": 1, "duration": 5, "runs": 3,
                    "rate": 2000},
        "machine": {"nproc": 2, "cpu_model": "cpu", "mem_gib": 24, "kernel": "6", "python": "3.11"},
        "tools": {"wrk": "wrk 4", "h2load": "h2load 1", "matplotlib": "3", "ghz": "ghz v0.93.0 (go1.26.8)"},
        "covet_python": {"interpreter": "/x/.venv/bin/python", "choice": "reused"},
        "servers": srv,
        "scenarios": [runner.scenario_entry(UNARY, 3), runner.scenario_entry(STREAM, 3)],
        "summary": rows,
        "per_server": {"grpcio": {"idle_rss_kib": {"median": 36000}, "cold_start_ms": None}},
        "runs": [],
    }


def test_report_grpc_tables_cpu_per_call_and_ratios():
    md = report.render_markdown(_grpc_result(), json_path="x.json", chart=None, docs=None)
    heading = ("### grpc-unary: gRPC unary call — `POST /bench.Greeter/SayHello` (ghz, 50 calls in flight over 4 "
               "HTTP/2 connections (h2c))")
    assert heading in md and "(h2c), 100 replies per call)" in md and "ghz v0.93.0 (go1.26.8)" in md
    unary = report.scenario_table(_grpc_result(), "grpc-unary").splitlines()
    assert unary[0].startswith("| server | calls/s median (min–max) | p50 ms | p99 ms | peak RSS MB | CPU µs / call | "
                               "× less CPU than grpcio | × less CPU than C++ gRPC | errors | tool |")
    # the least CPU per call first; CPU µs per call = CPU s per 100K calls × 10
    assert [line.split(" | ")[0] for line in unary[2:]] == ["| CovetPy native (C++)", "| C++ gRPC",
                                                             "| CovetPy Python async", "| grpcio"]
    assert ("| CovetPy native (C++) | 42,979 (38,681–47,277) | 1.50 | 6.50 | 40.0 | 4.0 | 47.00× | 2.50× | 150 | ghz |"
            in unary)
    assert "| CovetPy Python async | 29,765 (26,788–32,742) | 1.50 | 6.50 | 40.0 | 28.5 | 6.60× | 0.35× |" in md
    stream = report.scenario_table(_grpc_result(), "grpc-stream")
    assert "| CovetPy native (C++) | 8,253 (7,428–9,078) | 1.50 | 6.50 | 40.0 | 12.9 | — | — | 150 | ghz |" in stream
    # exclusions: one row per server and reason
    assert ("| FastAPI | grpc-unary, grpc-stream | no gRPC service in the suite's fastapi peer (it serves the HTTP "
            "routes only) |") in md
    assert "| grpcio | grpc-stream | correctness gate: SayHellos call 1: … |" in md
    # commands: the gRPC instance after the plain one; a gRPC peer's only one
    assert "| `covet run app_async:app`; gRPC: `covet-async-grpc N` |" in md
    assert "| `grpcio-grpc N` |" in md and "| `uvicorn app:app` |" in md
    assert "| grpcio | — | 35.2 |" in md and "A gRPC peer has no route to time" in md
    assert "**gRPC:**" in md and "CPU µs / call" in md


def test_report_without_grpc_scenarios_says_nothing_of_grpc():
    result = _grpc_result()
    result["scenarios"] = [dict(result["scenarios"][0], tool="wrk", name="plaintext")]
    md = report.render_markdown(result, json_path="x.json", chart=None, docs=None)
    assert "**gRPC:**" not in md and "A gRPC peer has no route" not in md


TOOLS_PY = servers.VENVS / "tools" / "bin" / "python"


@pytest.mark.skipif(not TOOLS_PY.exists(), reason="bench/.venvs/tools (matplotlib) not installed")
def test_chart_draws_cpu_per_call_for_grpc(tmp_path):
    result = _grpc_result()
    src, png = tmp_path / "matrix.json", tmp_path / "chart.png"
    src.write_text(json.dumps(result))
    p = subprocess.run([str(TOOLS_PY), "-m", "bench.chart", str(src), str(png)], cwd=servers.REPO,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
