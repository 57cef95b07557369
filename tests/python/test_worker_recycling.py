"""`covet run --max-rss MB --max-lifetime S`: the master replaces a worker whose resident memory (read from /proc)
exceeds the limit, and each worker after its lifetime plus a random jitter; rolling (the replacement serves before
the old worker drains), one worker at a time, nothing dropped. Each replacement is counted by cause in
`covet_worker_restarts_total{cause="max_rss"|"lifetime"}`."""

from __future__ import annotations

import itertools
import json
import re
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from serverproc import ServerProcess, free_port, get, require_compiled_engine, sample

APP = textwrap.dedent("""
    import os
    from covet import CovetPy

    app = CovetPy()
    hoard = []

    @app.get("/")
    async def root():
        return {"pid": os.getpid()}

    @app.get("/hoard")
    async def grow(mb: int):
        block = bytearray(mb * 2**20)
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just reserved
        hoard.append(block)
        return {"pid": os.getpid()}
    """)


@pytest.fixture(scope="module", autouse=True)
def compiled_engine() -> None:
    require_compiled_engine("import covet._native as n\nassert hasattr(n, 'configure_ops')",
                            "compiled engine with metrics (rebuild it)")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_max_rss_and_max_lifetime_replace_workers_one_at_a_time(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    errors: list[str] = []
    served = 0
    stop = threading.Event()

    def load() -> None:  # a new connection per request: each replacement must not refuse or fail one
        nonlocal served
        while not stop.is_set():
            try:
                status, _ = get(port, "/")
                assert status == 200
                served += 1
            except Exception as e:
                errors.append(repr(e))

    with ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--port", str(port), "--workers", "2",
                        "--metrics", "--max-rss", "300", "--max-lifetime", "2.5", "--max-lifetime-jitter", "1"],
                       cwd=tmp_path, ready=r"2 worker\(s\) serving on") as server:
        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        # One worker hoards memory past 300 MB: the master sees it in /proc and replaces that worker.
        hoarder = json.loads(get(port, "/hoard?mb=320")[1])["pid"]
        assert rss_mb(hoarder) > 300
        found = server.wait_for(r"covet worker \d \(pid (\d+), generation 1\) uses \d+ MB, over --max-rss 300 MB",
                                timeout=20)
        assert int(found.group(1)) == hoarder
        # Lifetimes end too (2.5 s + up to 1 s each): wait for two of those replacements.
        server.wait_for(r"\(--max-lifetime 2.5 s", count=2, timeout=30)
        server.wait_for(r"old ones draining \(--max-lifetime\)", count=2, timeout=30)
        stop.set()
        loader.join(15)
        metrics = get(port, "/_metrics")[1]
        assert sample(metrics, "covet_worker_restarts_total", cause="max_rss") == 1
        assert sample(metrics, "covet_worker_restarts_total", cause="lifetime") >= 2
        assert sample(metrics, "covet_worker_restarts_total", cause="_OTHER") == 0
        server.stop(timeout=30)
    assert not errors, errors[:5]
    assert served > 20
    # One at a time: every "replacing it" is followed by its "new worker(s) serving" before the next one starts.
    events = re.findall(r"replacing it|new worker\(s\) serving", server.output())
    assert events[0] == "replacing it" and len(events) >= 6, events
    assert all(a != b for a, b in itertools.pairwise(events)), events


def test_recycling_flags_parse_and_refuse_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from covet.server.cli import _parser, _recycling
    from covet.server.options import UsageError
    from covet.server.supervisor import Recycling

    for var in ("COVET_MAX_RSS", "COVET_MAX_LIFETIME"):
        monkeypatch.delenv(var, raising=False)

    def recycling(*flags: str) -> Recycling:
        return _recycling(_parser().parse_args(["run", "app:app", *flags]))

    assert recycling().max_rss is None and recycling().max_lifetime is None
    assert recycling("--max-rss", "512").max_rss == 512 * 2**20
    assert recycling("--max-rss", "1G").max_rss == 2**30
    assert recycling("--max-lifetime", "12h").max_lifetime == 12 * 3600
    rec = recycling("--max-lifetime", "30m", "--max-lifetime-jitter", "90s")
    assert (rec.max_lifetime, rec.lifetime_jitter) == (1800, 90)
    assert all(1800 <= (rec.lifetime() or 0) <= 1890 for _ in range(50))
    default = recycling("--max-lifetime", "100")  # jitter: a tenth of the lifetime by default
    lifetimes = {default.lifetime() for _ in range(50)}
    assert all(100 <= (t or 0) <= 110 for t in lifetimes) and len(lifetimes) > 1
    # --max-requests (gunicorn's name) is --limit-max-requests (uvicorn's).
    assert _parser().parse_args(["run", "app:app", "--max-requests", "7"]).limit_max_requests == 7
    assert _parser().parse_args(["run", "app:app", "--limit-max-requests", "8"]).limit_max_requests == 8
    monkeypatch.setenv("COVET_MAX_RSS", "256")
    assert recycling().max_rss == 256 * 2**20
    for flags, message in ((("--max-rss", "lots"), "--max-rss: expected mebibytes"),
                           (("--max-rss", "0"), "--max-rss must be more than 0"),
                           (("--max-lifetime", "soon"), "--max-lifetime: expected seconds"),
                           (("--max-lifetime-jitter", "5"), "--max-lifetime-jitter needs --max-lifetime")):
        with pytest.raises(UsageError, match=message):
            recycling(*flags)
