"""The container's command against the installed covet: `covet run` as the image and the Deployment start it
(2 workers, the operations listener on its own port) answers the probes' paths, and its GET /_metrics has
every metric the dashboard, the alerts and the HPA's adapter rule query, with route templates as
http_route. Skipped while `covet run` has no --ops-port (the operations listener of issue 16)."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from deploy_support import DEPLOY, HISTOGRAMS, KUBERNETES, OPT_IN, REPO, load_docs, promql_names


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def queried_names() -> set[str]:
    """Every metric name the deploy files query (Grafana's variables substituted)."""
    exprs: list[str] = []
    dashboard = json.loads((DEPLOY / "grafana" / "covet.json").read_text())
    for p in dashboard["panels"]:
        exprs += [t["expr"] for t in p.get("targets", [])]
    (rule,) = load_docs(DEPLOY / "prometheus" / "alerts.yaml")
    exprs += [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    (cm,) = load_docs(KUBERNETES / "prometheus-adapter" / "adapter-config.yaml")
    exprs += [r["seriesQuery"] for r in yaml.safe_load(cm["data"]["config.yaml"])["rules"]]
    names: set[str] = set()
    for e in exprs:
        names |= promql_names(re.sub(r"\$\{?(\w+)\}?", lambda m: "1m" if m.group(1).startswith("__") else ".*", e))[0]
    # `up` is written by Prometheus, not by the target; OPT_IN series need something the example app lacks.
    return names - {"up"} - OPT_IN


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, int]]:
    try:
        import covet  # noqa: F401
    except ImportError as e:
        if os.environ.get("COVET_REQUIRE_NATIVE") == "1":
            pytest.fail(f"covet is not installed: {e}")
        pytest.skip(f"covet is not installed: {e}")
    help_text = subprocess.run([sys.executable, "-m", "covet", "run", "--help"], capture_output=True, text=True,
                               timeout=60, check=True).stdout
    if "--ops-port" not in help_text:
        pytest.skip("this covet has no --ops-port yet (the operations listener of issue 16)")
    port, ops = free_port(), free_port()
    # The Deployment's command, on loopback and free ports.
    (deployment,) = [d for d in load_docs(KUBERNETES / "deployment.yaml") if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = list(container["args"])
    # --host stays the Deployment's 0.0.0.0 (the test only connects over loopback): the operations
    # listener's bind address is checked below.
    args[args.index("--port") + 1] = str(port)
    args[args.index("--ops-port") + 1] = str(ops)
    args[args.index("--app-dir") + 1] = str(REPO / "examples" / "python")  # where the image copies it from
    env = {**os.environ, **{e["name"]: e["value"] for e in container["env"] if "value" in e}, "COVET_WORKERS": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "covet", "run", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                # Ready means the whole group: one worker answers /_ready while the other may still be starting
                # (covet_workers_ready 1 in a clean-clone run), and the tests below read the group's metrics.
                if get(f"http://127.0.0.1:{ops}/_ready")[0] == 200 and re.search(
                        r"^covet_workers_ready(?:\{[^}]*\})? 2(?:\.0)?$", get(f"http://127.0.0.1:{ops}/_metrics")[1],
                        re.M):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "covet run did not become ready in 60 s"
            time.sleep(0.2)
        yield port, ops
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_probe_paths_answer_on_the_ops_port(server: tuple[int, int]) -> None:
    port, ops = server
    assert get(f"http://127.0.0.1:{ops}/_health")[0] == 200
    assert get(f"http://127.0.0.1:{ops}/_ready")[0] == 200
    # The operations endpoints are not on the app's port (user traffic never reaches them there).
    assert get(f"http://127.0.0.1:{port}/_metrics")[0] == 404


def listening_addresses(port: int) -> set[str]:
    """The addresses this machine listens on at `port` (/proc/net/tcp and tcp6; state 0A: LISTEN)."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].rpartition(":")
            if int(hex_port, 16) == port and fields[3] == "0A":
                out.add("any" if set(address) == {"0"} else address)
    return out


def test_ops_listener_is_reachable_on_the_pod_address(server: tuple[int, int]) -> None:
    """The kubelet's probes and Prometheus connect to the pod's IP, not to loopback: with the Deployment's
    flags the operations listener must listen on every address, as the app's does."""
    port, ops = server
    assert listening_addresses(port) == {"any"}
    assert listening_addresses(ops) == {"any"}, (
        "the operations listener is bound to loopback only: probes and scrapes from outside the pod would fail; "
        "set its host in deploy/kubernetes/deployment.yaml and the Dockerfile's CMD")


def test_metrics_has_every_queried_name(server: tuple[int, int]) -> None:
    port, ops = server
    for path in ("/json", "/users/7", "/users/8", "/no-such-route"):
        for _ in range(3):
            get(f"http://127.0.0.1:{port}{path}")
    status, text = get(f"http://127.0.0.1:{ops}/_metrics")
    assert status == 200
    families = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    samples = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M))
    missing = []
    for name in sorted(queried_names()):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        family = base if base in HISTOGRAMS else name
        if family not in families and name not in samples:
            missing.append(name)
    assert missing == [], f"GET /_metrics lacks {missing}"
    # After traffic, the series the HPA and the latency panels need have samples, labelled by route template.
    assert "http_server_request_duration_seconds_count" in samples
    routes = set(re.findall(r'^http_server_request_duration_seconds_count\{[^}]*http_route="([^"]*)"', text, re.M))
    # The template as the router registered it ("/users/{user_id:int}": the handler's int annotation), never the
    # paths clients sent.
    assert any(r.startswith("/users/{user_id") for r in routes), routes
    assert not {"/users/7", "/users/8", "/no-such-route"} & routes, routes
    assert "covet_workers_ready" in samples
    ready = re.search(r"^covet_workers_ready(?:\{[^}]*\})? (\S+)$", text, re.M)
    assert ready and float(ready.group(1)) == 2, text  # COVET_WORKERS=2: the whole group in one scrape
