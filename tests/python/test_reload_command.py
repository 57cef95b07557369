"""`covet reload`: a rolling restart of a running `covet run` master, found by its --pid-file (or pid), followed
until the new generation serves (exit 0) or fails (exit 1, the old generation keeps serving). The outcome is in the
master's log and in the metrics: `covet_generation`, `covet_reloads_total{result}`,
`covet_worker_restarts_total{cause="reload"}`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from serverproc import ServerProcess, free_port, get, require_compiled_engine, sample

APP = textwrap.dedent("""
    import os
    from covet import CovetPy

    VERSION = {version!r}
    app = CovetPy()

    @app.get("/")
    async def root():
        return {{"pid": os.getpid(), "version": VERSION}}
    """)


@pytest.fixture(scope="module", autouse=True)
def compiled_engine() -> None:
    require_compiled_engine("import covet._native as n\nassert hasattr(n, 'configure_ops')",
                            "compiled engine with metrics (rebuild it)")


def covet(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "covet", *args], capture_output=True, text=True, timeout=timeout)


def test_reload_reports_the_new_generation_and_a_failed_one(tmp_path: Path) -> None:
    app_file = tmp_path / "app.py"
    app_file.write_text(APP.format(version="v1"))
    pid_file = tmp_path / "covet.pid"
    port = free_port()
    with ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port), "--workers", "2",
                        "--metrics", "--pid-file", str(pid_file)], cwd=tmp_path,
                       ready=r"2 worker\(s\) serving on") as server:
        assert pid_file.read_text() == f"{server.proc.pid}\n"
        metrics = get(port, "/_metrics")[1]
        assert sample(metrics, "covet_generation") == 1

        # New code, then `covet reload`: it returns once generation 2 serves, and says so.
        app_file.write_text(APP.format(version="v2"))
        done = covet("reload", "--pid-file", str(pid_file))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "generation 2 ready" in done.stdout, done.stdout
        assert json.loads(get(port, "/")[1])["version"] == "v2"  # served by the new generation, nothing else
        server.wait_for(r"generation 2 ready: new worker\(s\) serving")
        metrics = get(port, "/_metrics")[1]
        assert sample(metrics, "covet_generation") == 2
        assert sample(metrics, "covet_reloads_total", result="ready") == 1
        assert sample(metrics, "covet_worker_restarts_total", cause="reload") == 2

        # Broken code: the new generation fails, `covet reload` says why and exits 1, v2 keeps serving.
        app_file.write_text(APP.format(version="v3") + "\ndef broken(:\n")
        failed = covet("reload", str(server.proc.pid))  # by pid this time
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "failed" in failed.stdout and "generation 2 keeps serving" in failed.stdout, failed.stdout
        server.wait_for(r"generation 3 \(SIGUSR2\) did not start")
        assert json.loads(get(port, "/")[1])["version"] == "v2"
        metrics = get(port, "/_metrics")[1]
        assert sample(metrics, "covet_generation") == 2
        assert sample(metrics, "covet_reloads_total", result="failed") == 1

        server.stop(timeout=30)
        assert not pid_file.exists(), "the master left its pid file behind"


def test_reload_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from covet.server.cli import main  # in this process: the same parser and checks, without a start-up each

    monkeypatch.delenv("COVET_PID_FILE", raising=False)

    def run(*args: str) -> tuple[int, str]:
        code = main(["reload", *args])
        return code, capsys.readouterr().err

    code, err = run("--pid-file", str(tmp_path / "missing.pid"))
    assert code == 2 and "missing.pid" in err, err
    code, err = run()
    assert code == 2 and "--pid-file" in err, err
    (tmp_path / "junk.pid").write_text("not a pid\n")
    code, err = run("--pid-file", str(tmp_path / "junk.pid"))
    assert code == 2 and "does not hold a process id" in err, err
    code, err = run("4194304")  # above the kernel's pid_max limit: never a process
    assert code == 1 and "no process 4194304" in err, err
    code, err = run("123", "--pid-file", str(tmp_path / "junk.pid"))
    assert code == 2 and "not both" in err, err
    # A process that is not a covet master is not signalled (SIGUSR2 would end it): another program, or a
    # covet command other than `run` (a worker is `covet _worker`).
    for argv in (["sleep", "30"], [sys.executable, "-c", "import time; time.sleep(30)", "-m", "covet", "_worker"]):
        bystander = subprocess.Popen(argv)
        try:
            time.sleep(0.1)
            code, err = run(str(bystander.pid))
            assert code == 1 and "not a `covet run` master" in err, (argv, err)
            time.sleep(0.2)
            assert bystander.poll() is None
        finally:
            bystander.kill()
            bystander.wait()
