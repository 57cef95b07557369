"""Tests for /proc accounting of a server's process tree, the launcher's process handling, wrk's report and the
small helpers the report is built from (bench/system.py, servers.py, loadgen.py, summary.py, report.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, so `bench` imports as a package

from bench import loadgen, report, runner, scenarios, servers, summary, system  # noqa: E402

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
    r = loadgen.parse_wrk(WRK_LATENCY)
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
    r = loadgen.parse_wrk(WRK_ERRORS)
    assert r["requests"] == 170636
    assert r["duration_s"] == pytest.approx(2.03)
    assert r["latency_ms"] == {}  # no --latency: no percentiles
    assert r["latency_max_ms"] == pytest.approx(1210.0)
    assert r["socket_errors"] == {"connect": 3, "read": 17, "write": 2, "timeout": 41, "total": 63}
    assert r["non_2xx"] == 12


def test_parse_wrk_percentile_units():
    text = WRK_LATENCY.replace("377.00us", "1.50s").replace("1.86ms", "2.00m")
    r = loadgen.parse_wrk(text)
    assert r["latency_ms"]["50"] == pytest.approx(1500.0)
    assert r["latency_ms"]["99"] == pytest.approx(120000.0)


def test_parse_wrk_ignores_stdev_percent_column():
    # "80.45%" in the Thread Stats block must not be read as a percentile.
    r = loadgen.parse_wrk(WRK_LATENCY)
    assert set(r["latency_ms"]) == {"50", "75", "90", "99"}


def test_parse_wrk_failure_raises():
    with pytest.raises(ValueError):
        loadgen.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_size_and_time_units():
    assert loadgen.size_to_bytes("512.00", "B") == 512
    assert loadgen.size_to_bytes("1.00", "KB") == 1024
    assert loadgen.size_to_bytes("2.00", "GB") == 2 * 1024**3
    assert loadgen.time_to_ms("250.00", "us") == pytest.approx(0.25)
    with pytest.raises(ValueError):
        loadgen.time_to_ms("1", "ns")


PROC_STAT = (
    "4242 (nginx) S 4241 4241 4241 0 -1 4194624 300 0 0 0 1234 567 8 9 20 0 1 0 "
    "1000 12345678 900 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0"
)


def test_parse_proc_stat_fields():
    st = system.parse_proc_stat(PROC_STAT)
    assert st["pid"] == 4242
    assert st["comm"] == "nginx"
    assert st["state"] == "S"
    assert st["ppid"] == 4241
    assert st["utime"] == 1234  # field 14
    assert st["stime"] == 567  # field 15


def test_parse_proc_stat_comm_with_spaces_and_parens():
    text = PROC_STAT.replace("(nginx)", "(nginx: worker) (x)")
    st = system.parse_proc_stat(text)
    assert st["comm"] == "nginx: worker) (x"
    assert (st["ppid"], st["utime"], st["stime"]) == (4241, 1234, 567)


def test_parse_proc_stat_of_self_is_consistent():
    with open("/proc/self/stat") as f:
        st = system.parse_proc_stat(f.read())
    import os

    assert st["pid"] == os.getpid()
    assert st["ppid"] == os.getppid()
    assert st["utime"] >= 0 and st["stime"] >= 0


def test_process_tree_from_ppid_map():
    ppid_of = {1: 0, 10: 1, 11: 10, 12: 10, 13: 11, 20: 1, 21: 20}
    assert system.process_tree(10, ppid_of) == {10, 11, 12, 13}
    assert system.process_tree(13, ppid_of) == {13}
    assert system.process_tree(99, ppid_of) == {99}


def test_tree_cpu_delta_counts_new_processes_in_full():
    before = {100: 50, 101: 400}
    after = {100: 60, 101: 900, 102: 7}
    assert system.tree_cpu_delta_ticks(before, after) == 10 + 500 + 7


def test_summarize_median_min_max():
    s = summary.summarize([3.0, 1.0, 2.0])
    assert s == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert summary.summarize([4.0, 1.0])["median"] == pytest.approx(2.5)
    assert summary.summarize([None, 5.0])["n"] == 1
    assert summary.summarize([]) is None
    assert summary.summarize([None]) is None


def test_ratio():
    assert summary.ratio(150.0, 100.0) == pytest.approx(1.5)
    assert summary.ratio(None, 100.0) is None
    assert summary.ratio(1.0, None) is None
    assert summary.ratio(1.0, 0.0) is None


def test_replace_section_between_markers_keeps_the_rest():
    doc = (
        "# Title\n\nintro\n\n<!-- matrix-bench:start -->\nold table\n<!-- matrix-bench:end -->\n\n"
        "## Other section\ntext\n"
    )
    new = report.replace_section(doc, "new table\n")
    assert new == (
        "# Title\n\nintro\n\n<!-- matrix-bench:start -->\nnew table\n<!-- matrix-bench:end -->\n\n"
        "## Other section\ntext\n"
    )
    # idempotent
    assert report.replace_section(new, "new table") == new


def test_replace_section_appends_when_markers_missing():
    new = report.replace_section("# Title\n\nintro\n", "body")
    assert new == "# Title\n\nintro\n\n<!-- matrix-bench:start -->\nbody\n<!-- matrix-bench:end -->\n"


def test_replace_section_creates_file_with_header():
    new = report.replace_section(None, "body", header="# Benchmarks\n\nabout")
    assert new.startswith("# Benchmarks\n\nabout\n\n<!-- matrix-bench:start -->\nbody\n")
    assert new.endswith("<!-- matrix-bench:end -->\n")


def test_replace_section_rejects_a_lone_marker():
    with pytest.raises(ValueError):
        report.replace_section("x\n<!-- matrix-bench:start -->\nno end\n", "body")


def test_render_nginx_conf_from_template():
    template = servers.NGINX_TEMPLATE.read_text()
    conf = servers.render_nginx_conf(template, 12345, "/tmp/xyz", "root")
    assert "listen 127.0.0.1:12345" in conf
    assert "pid /tmp/xyz/nginx.pid;" in conf
    assert "user root;" in conf
    assert "worker_processes 1;" in conf
    assert "access_log off;" in conf
    assert "location = /plaintext" in conf and 'return 200 "Hello, World!";' in conf
    assert "application/json" in conf and '{"message":"Hello, World!"}' in conf
    assert "daemon" not in conf  # given on the command line with -g
    assert "@" not in conf
    assert "user " not in servers.render_nginx_conf(template, 1, "/t", None)


def test_count_pipelined_responses():
    one = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
    assert scenarios.count_pipelined_responses(one * 16, b"Hello, World!") == 16
    assert scenarios.count_pipelined_responses(one * 3 + one[:-2], b"Hello, World!") == 3
    bad = one.replace(b"200 OK", b"404 Not Found")
    assert scenarios.count_pipelined_responses(one + bad + one, b"Hello, World!") == 1
    assert scenarios.count_pipelined_responses(b"", b"x") == 0




# ---- a real process tree: what the runner charges to a server ------------------------------------------------

@pytest.fixture()
def tree():
    """A shell in its own session with a busy child and a sleeping one (like a master and its workers)."""
    proc = subprocess.Popen(["sh", "-c", "(while :; do :; done) & sleep 30 & wait"], start_new_session=True)
    deadline = time.monotonic() + 5
    while len(system.tree_pids(proc.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    yield proc
    servers.stop_process(proc, signal.SIGTERM, grace=2)


def test_tree_cpu_and_rss_cover_the_children(tree):
    pids = system.tree_pids(tree.pid)
    assert tree.pid in pids and len(pids) >= 3
    assert system.process_tree(tree.pid, system._ppid_map()) == pids  # both ways of finding children agree
    before = system.tree_cpu_snapshot(tree.pid)
    time.sleep(0.5)
    after = system.tree_cpu_snapshot(tree.pid)
    busy_s = system.tree_cpu_delta_ticks(before, after) / os.sysconf("SC_CLK_TCK")
    assert busy_s > 0.05  # the busy child's time is the tree's (a loaded, shared CPU still gives it a part of 0.5 s)
    assert system.tree_rss_kib(tree.pid) > sum(1 for _ in pids)  # every process has some resident memory


def test_stop_process_ends_the_whole_session(tree):
    children = system.tree_pids(tree.pid) - {tree.pid}
    servers.stop_process(tree, signal.SIGTERM, grace=2)
    assert tree.poll() is not None
    time.sleep(0.1)
    for pid in children:  # the children are gone (killed by process group), or zombies of init at worst
        state = (system.read_text(f"/proc/{pid}/stat") or "0 (x) Z").split(") ")[1][0]
        assert state == "Z" or not Path(f"/proc/{pid}").exists()


def test_machine_info_describes_this_machine():
    m = system.machine_info("/nonexistent/nginx")
    assert m["nproc"] == os.cpu_count() and m["clk_tck"] == os.sysconf("SC_CLK_TCK")
    assert m["nginx_version"] == "unavailable"
    assert m["kernel"] and m["python"].count(".") == 2


# ---- --render of the committed results ------------------------------------------------------------------------

RESULTS = Path(__file__).resolve().parents[1] / "results"


@pytest.mark.parametrize("saved", sorted(RESULTS.glob("matrix-*.json")), ids=lambda p: p.name)
def test_every_recorded_matrix_renders(saved, tmp_path):
    """`python -m bench --render` of each committed run, into a copy (the .md is written next to the JSON) and a
    scratch docs file; the Markdown is the committed one but for the paths that name the copy and the chart."""
    copy = tmp_path / saved.name
    copy.write_bytes(saved.read_bytes())
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# CovetPy benchmarks\n\nintro kept\n")
    p = subprocess.run([sys.executable, "-m", "bench", "--render", str(copy), "--docs", str(docs), "--no-docs"],
                       cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    md = copy.with_suffix(".md").read_text()
    assert md.startswith("## Matrix: CovetPy vs peers") and "### Servers: versions and configuration" in md
    committed = saved.with_suffix(".md").read_text()
    norm = [line for line in committed.splitlines() if not line.startswith("![")]
    assert md.replace(str(copy), f"bench/results/{saved.name}").splitlines()[:3] == norm[:3]
    assert docs.read_text() == "# CovetPy benchmarks\n\nintro kept\n"  # --no-docs: untouched


def test_render_writes_the_docs_section(tmp_path):
    saved = sorted(RESULTS.glob("matrix-*.json"))[-1]
    copy = tmp_path / saved.name
    copy.write_bytes(saved.read_bytes())
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# CovetPy benchmarks\n\nintro kept\n")
    args = SimpleNamespace(chart=str(tmp_path / "chart.png"), docs=str(docs), no_docs=False)
    runner.write_outputs(json.loads(copy.read_text()), copy, args, chart=False)
    text = docs.read_text()
    assert text.startswith("# CovetPy benchmarks\n\nintro kept\n")
    assert text.count(report.SECTION_START) == 1 and text.count(report.SECTION_END) == 1
    assert "## Matrix: CovetPy vs peers" in text


def test_render_refuses_an_older_harness_result_with_the_reason(tmp_path):
    old = next(RESULTS.glob("native-*.json"), None) or next(RESULTS.glob("python-*.json"))
    copy = tmp_path / old.name
    copy.write_bytes(old.read_bytes())
    p = subprocess.run([sys.executable, "-m", "bench", "--render", str(copy), "--no-docs"],
                       cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "not a `python -m bench` result" in p.stderr and "matrix-<UTC>.json" in p.stderr
    assert not copy.with_suffix(".md").exists()
