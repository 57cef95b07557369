"""`covet run --workers 1` serves in its own process (as uvicorn does), not as a master plus one worker: half the
memory and start-up. What a master would do is refused with a reason, or still works: the pid file, `covet
log-level`, SIGTERM's graceful stop; SIGHUP and SIGUSR2 are answered with a warning instead of killing it, `covet
reload` says why it cannot restart it. --supervise (or a feature that replaces workers) keeps the master."""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from serverproc import ServerProcess, children, free_port, get, require_compiled_engine

APP = textwrap.dedent("""
    import logging, os
    from covet import CovetPy

    app = CovetPy()
    log = logging.getLogger("myapp")

    @app.get("/pid")
    async def pid():
        log.debug("debug from %d", os.getpid())
        return {"pid": os.getpid()}
    """)


@pytest.fixture(scope="module", autouse=True)
def compiled_engine() -> None:
    require_compiled_engine()


def covet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "covet", *args], capture_output=True, text=True, timeout=60)


def served_by(port: int) -> int:
    status, body = get(port, "/pid")
    assert status == 200, body
    return int(body.split(":")[1].rstrip("}"))


def debug_logged_after(server: ServerProcess, port: int, pid: int) -> bool:
    """Requests /pid (whose handler logs at debug) until the line shows, up to 10 s: `covet log-level` applies
    within a second."""
    deadline = time.monotonic() + 10
    while f"debug from {pid}" not in server.output() and time.monotonic() < deadline:
        served_by(port)
        time.sleep(0.1)
    return f"debug from {pid}" in server.output()


def metrics_dirs(pid: int) -> list[Path]:
    return sorted(Path("/dev/shm").glob(f"covet-metrics-{pid}-*"))


def test_one_worker_serves_in_the_covet_run_process(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    port, pid_file = free_port(), tmp_path / "covet.pid"
    with ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port), "--pid-file",
                        str(pid_file), "--log-level", "info"], cwd=tmp_path) as server:
        pid = server.proc.pid
        assert served_by(port) == pid and children(pid) == []
        assert pid_file.read_text() == f"{pid}\n"

        # The restart signals a master acts on: a warning naming the way to get restarts, and it keeps serving.
        for sig, name in ((signal.SIGHUP, "SIGHUP"), (signal.SIGUSR2, "SIGUSR2")):
            os.kill(pid, sig)
            server.wait_for(f"{name}: this process serves alone .* --supervise", timeout=10)
            assert served_by(port) == pid
        done = covet("reload", "--pid-file", str(pid_file))
        assert done.returncode == 1, done
        assert f"process {pid} serves alone" in done.stderr and "--supervise" in done.stderr, done.stderr
        assert served_by(port) == pid

        # `covet log-level` finds it by its pid file, as it finds a master.
        served_by(port)
        assert f"debug from {pid}" not in server.output()
        done = covet("log-level", "debug", "myapp", "--pid-file", str(pid_file))
        assert done.returncode == 0, done
        assert debug_logged_after(server, port, pid)

        dirs = metrics_dirs(pid)
        assert len(dirs) == 1 and (dirs[0] / f"master-{pid}.json").exists()
        server.stop()
    assert not pid_file.exists() and metrics_dirs(pid) == []


@pytest.mark.parametrize("flags", [["--supervise"], ["--max-requests", "100000"], ["--max-lifetime", "1h"]],
                         ids=["supervise", "max-requests", "max-lifetime"])
def test_a_master_when_asked_or_when_the_worker_is_replaced(tmp_path: Path, flags: list[str]) -> None:
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    with ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port), *flags],
                       cwd=tmp_path, ready=r"1 worker\(s\) serving on") as server:
        worker = served_by(port)
        assert children(server.proc.pid) == [worker]
        server.stop()


def test_covet_supervise_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    with ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port)], cwd=tmp_path,
                       env={"COVET_SUPERVISE": "1"}, ready=r"1 worker\(s\) serving on") as server:
        assert children(server.proc.pid) == [served_by(port)]
        server.stop()


def test_a_bad_app_path_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    done = subprocess.run([sys.executable, "-m", "covet", "run", "app:nope", "--port", str(free_port())],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "nope" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_metrics_directory_of_its_own_and_signals_before_it_serves(tmp_path: Path) -> None:
    """With COVET_METRICS_DIR given (a Kubernetes emptyDir), `covet log-level` finds the process from its own
    environment (no worker to read it from), and the files it left there are gone after it stops. SIGHUP while
    the app is still importing warns; SIGTERM then stops it through the same cleanup, not the default exit."""
    (tmp_path / "app.py").write_text(APP)
    metrics, port, pid_file = tmp_path / "metrics", free_port(), tmp_path / "covet.pid"
    metrics.mkdir()
    with ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port), "--pid-file",
                        str(pid_file)], cwd=tmp_path, env={"COVET_METRICS_DIR": str(metrics)}) as server:
        pid = server.proc.pid
        env = {k: v for k, v in os.environ.items() if k != "COVET_METRICS_DIR"}
        done = subprocess.run([sys.executable, "-m", "covet", "log-level", "debug", "myapp", "--pid", str(pid)],
                              capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 0, done
        assert debug_logged_after(server, port, pid)
        assert sorted(p.name for p in metrics.iterdir() if not p.name.endswith(".metrics")) == \
            [f"log-levels-{pid}.json", f"log-levels-{pid}.json.lock", f"master-{pid}.json"]
        server.stop()
    assert [p.name for p in metrics.iterdir() if not p.name.endswith(".metrics")] == [] and not pid_file.exists()

    (tmp_path / "slow.py").write_text("import time\ntime.sleep(30)\n" + APP)
    proc = subprocess.Popen([sys.executable, "-m", "covet", "run", "slow:app", "--port", str(free_port()),
                             "--pid-file", str(pid_file)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pid_file.exists()
        own = metrics_dirs(proc.pid)
        assert len(own) == 1
        os.kill(proc.pid, signal.SIGHUP)
        time.sleep(0.3)
        assert proc.poll() is None  # SIGHUP's default action would have ended it
        os.kill(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "SIGHUP: this process serves alone" in out and "SIGTERM before serving: stopping" in out, out
    assert not pid_file.exists() and not own[0].exists()


LIFESPAN_APP = textwrap.dedent("""
    import asyncio, contextlib
    from covet import CovetPy

    @contextlib.asynccontextmanager
    async def lifespan(app):
        print("startup begins", flush=True)
        await asyncio.sleep(2)
        print("startup done", flush=True)
        yield
        print("lifespan shutdown ran", flush=True)

    app = CovetPy(lifespan=lifespan)

    @app.get("/")
    async def root():
        return {}
    """)


def test_sigterm_during_the_lifespan_startup_stops_gracefully_once_it_is_done(tmp_path: Path) -> None:
    """A stop asked while the app's lifespan startup runs lets the startup finish, then shuts down through the
    lifespan shutdown and the cleanup, exit 0 (not an abandoned startup, not the default exit)."""
    (tmp_path / "life.py").write_text(LIFESPAN_APP)
    pid_file = tmp_path / "covet.pid"
    proc = subprocess.Popen([sys.executable, "-m", "covet", "run", "life:app", "--port", str(free_port()),
                             "--pid-file", str(pid_file)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "startup begins" in line:
                break
        os.kill(proc.pid, signal.SIGTERM)
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGTERM)  # a second one changes nothing
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "SIGTERM during start-up: stopping once it is done" in out, out
    assert out.index("startup done") < out.index("lifespan shutdown ran"), out
    assert not pid_file.exists()


def test_a_new_group_removes_metrics_dirs_no_group_holds(tmp_path: Path) -> None:
    """A master killed with SIGKILL cannot remove its metrics directory from /dev/shm (memory): the next group
    removes directories whose lock no process holds, and older lock-less ones whose pid is gone and that are a
    minute old. A held lock keeps a directory whatever its pid says (another pid namespace may own it)."""
    if not os.access("/dev/shm", os.W_OK):
        pytest.skip("no writable /dev/shm here")
    gone = subprocess.Popen(["true"])
    gone.wait()
    tag = os.getpid()
    dirs = {name: Path(f"/dev/shm/covet-metrics-{gone.pid}-{name}{tag}")
            for name in ("unlocked", "held", "oldnolock", "newnolock")}
    for d in dirs.values():
        d.mkdir()
        (d / "1-2.metrics").write_bytes(b"\0" * 4096)
    for name in ("unlocked", "held"):
        (dirs[name] / ".covet-group.lock").touch()
    old = time.time() - 3600
    os.utime(dirs["oldnolock"], (old, old))
    holder = os.open(dirs["held"] / ".covet-group.lock", os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        (tmp_path / "app.py").write_text(APP)
        with ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(free_port())],
                           cwd=tmp_path) as server:
            assert {name: d.exists() for name, d in dirs.items()} == \
                {"unlocked": False, "held": True, "oldnolock": False, "newnolock": True}
            # Its own directory holds the lock while it runs.
            [own] = metrics_dirs(server.proc.pid)
            probe = os.open(own / ".covet-group.lock", os.O_RDWR)
            with pytest.raises(BlockingIOError):
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.close(probe)
            server.stop()
    finally:
        os.close(holder)
        for d in dirs.values():
            subprocess.run(["rm", "-rf", str(d)], check=True)
