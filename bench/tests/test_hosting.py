"""The hosting comparison's registrations (bench/hosting.py, `python -m bench --hosting`): which servers and
scenarios it selects, the commands it would run, why a CovetPy mode a checkout lacks is excluded, and (when its
venv has been installed by a run) the Flask peer under gunicorn passing the matrix's correctness gate."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import cli, hosting, scenarios, servers
from bench.servers import Ctx, InstallError, all_specs, free_port, wait_for_200


def test_hosting_selects_its_servers_and_scenarios_and_leaves_the_docs_alone():
    a = cli.parse_args(["--hosting", "--quick"])
    assert a.server_list == list(hosting.HOSTING_SERVERS)
    assert [s.name for s in a.scenario_list] == ["plaintext", "json", "params", "post-json"]
    assert a.no_docs and (a.duration, a.runs) == (1, 1)
    b = cli.parse_args(["--hosting", "--servers", "fastapi,covet-host-fastapi", "--scenarios", "json"])
    assert b.server_list == ["fastapi", "covet-host-fastapi"] and [s.name for s in b.scenario_list] == ["json"]
    # the default matrix keeps its 14 servers (and the 3 gRPC peers of its gRPC scenarios, the 2 HTTP/3 peers of its
    # HTTP/3 ones); the hosting ones can still be named
    default = cli.parse_args([])
    assert len(default.server_list) == 19 and not set(default.server_list) & set(hosting.HOSTING_SERVERS[1:])
    assert len(cli.parse_args(["--quick"]).server_list) == 14
    assert cli.parse_args(["--servers", "flask-granian"]).server_list == ["flask-granian"]


def test_commands_serve_the_same_apps():
    specs = all_specs()
    ctx = Ctx(covet_python=Path("/py/bin/python"))
    fastapi_dir, flask_dir = str(servers.PEERS / "fastapi"), str(servers.PEERS / "hosting")
    hyper = specs["fastapi-hypercorn"].command(ctx, 8001)
    assert hyper[0].endswith(".venvs/hosting/bin/hypercorn") and "127.0.0.1:8001" in hyper and hyper[-1] == "app:app"
    assert specs["fastapi-hypercorn"].cwd == servers.PEERS / "fastapi"
    gran = specs["fastapi-granian"].command(ctx, 8002)
    assert gran[gran.index("--interface") + 1] == "asgi" and gran[gran.index("--working-dir") + 1] == fastapi_dir
    wsgi = specs["flask-granian"].command(ctx, 8003)
    assert wsgi[wsgi.index("--interface") + 1] == "wsgi" and "--loop" not in wsgi and wsgi[-1] == "app_flask:app"
    guni = specs["flask-gunicorn"].command(ctx, 8004)
    assert "gthread" in guni and guni[guni.index("--chdir") + 1] == flask_dir
    hosted = specs["covet-host-fastapi"].command(ctx, 8005)
    assert hosted[:4] == ["/py/bin/python", "-m", "covet", "run"] and hosted[-2:] == ["--interface", "asgi3"]
    assert hosted[hosted.index("--app-dir") + 1] == fastapi_dir
    assert specs["covet-compat-fastapi"].command(ctx, 8006)[-2:] == ["--compat", "fastapi"]
    flask = specs["covet-host-flask"].command(Ctx(covet_python=Path("/py/bin/python"), workers=2), 8007)
    assert flask[3:7] == ["run", "app_flask:app", "--workers", "2"] and flask[-2:] == ["--interface", "wsgi"]
    for name in ("covet-host-fastapi", "covet-compat-fastapi", "covet-host-flask"):
        assert specs[name].env["PYTHONPATH"] == str(hosting.site_packages())
        assert name.startswith("covet-")  # the runner picks CovetPy's interpreter for covet-* servers
    for name in hosting.HOSTING_SERVERS[1:]:
        assert "ws-echo" in specs[name].unsupported and specs[name].tls_command is None


def test_a_covet_mode_this_checkout_lacks_is_excluded_with_the_reason(monkeypatch):
    monkeypatch.setattr(hosting, "install_covet_python", lambda ctx: None)
    install = hosting.install_covet_mode("covet.no_such_module", "a feature (`covet run --feature`)")
    with pytest.raises(InstallError, match=r"has no a feature \(`covet run --feature`\) yet \(covet.no_such_module"):
        install(Ctx(covet_python=Path(sys.executable), log=lambda line: None))


GUNICORN = hosting.VENVS / hosting.VENV / "bin" / "gunicorn"


@pytest.mark.skipif(not GUNICORN.exists(), reason="bench/.venvs/hosting not installed (python -m bench --hosting does)")
def test_flask_peer_under_gunicorn_passes_the_gate():
    port = free_port()
    spec = all_specs()["flask-gunicorn"]
    proc = subprocess.Popen(spec.command(Ctx(), port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        assert wait_for_200(proc, port, time.monotonic() + 30) == ""
        sc = scenarios.build_scenarios()
        for name in hosting.HOSTING_SCENARIOS + ("io-sleep",):
            ok, why = scenarios.gate(port, sc[name])
            assert ok, (name, why)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
