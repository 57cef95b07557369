"""`covet run --workers 1` serves in its own process (as uvicorn does), not as a master plus one worker: half the
memory and start-up. What a master would do is refused with a reason, or still works: the pid file, `covet
log-level`, SIGTERM's graceful stop; SIGHUP and SIGUSR2 are answered with a warning instead of killing it, `covet
reload` says why it cannot restart it. --supervise (or a feature that replaces workers) keeps the master."""
from __future__ import annotations

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
        assert "myapp debug" not in server.output()
        done = covet("log-level", "debug", "myapp", "--pid-file", str(pid_file))
        assert done.returncode == 0, done
        deadline = time.monotonic() + 10
        while f"debug from {pid}" not in server.output() and time.monotonic() < deadline:
            served_by(port)
            time.sleep(0.1)
        assert f"debug from {pid}" in server.output()

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


def test_a_new_group_removes_metrics_dirs_of_killed_groups(tmp_path: Path) -> None:
    """A master killed with SIGKILL cannot remove its metrics directory from /dev/shm (memory); the next group
    removes those whose process is gone, and leaves the others alone."""
    if not os.access("/dev/shm", os.W_OK):
        pytest.skip("no writable /dev/shm here")
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = Path(f"/dev/shm/covet-metrics-{gone.pid}-stale{os.getpid()}")
    alive = Path(f"/dev/shm/covet-metrics-{os.getpid()}-alive")
    for d in (stale, alive):
        d.mkdir()
        (d / "1-2.metrics").write_bytes(b"\0" * 4096)
    try:
        (tmp_path / "app.py").write_text(APP)
        port = free_port()
        with ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port)],
                           cwd=tmp_path) as server:
            assert not stale.exists() and alive.exists()
            server.stop()
    finally:
        for d in (stale, alive):
            subprocess.run(["rm", "-rf", str(d)], check=True)
