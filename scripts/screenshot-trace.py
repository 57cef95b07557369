#!/usr/bin/env python3
"""Takes docs/img/jaeger-trace.png: one CovetPy trace in the Jaeger UI, shot by headless Chromium.

Starts, each on free loopback ports, and stops again whatever happens (timeouts, Ctrl-C, SIGTERM):
  - Jaeger (scripts/build-jaeger.sh's binary) with an OTLP/HTTP receiver, in-memory storage and the UI that
    scripts/jaeger-ui.sh built, served from its directory (jaeger_query's `ui.assets_path`);
  - two CovetPy apps under `covet run`, traced with `setup_observability` (sampler always_on): `shop`, whose
    `GET /orders/{order_id}` opens a user span and calls `inventory` with httpx (instrumented by
    opentelemetry-instrumentation-httpx), and `inventory`, whose `GET /stock/{sku}` opens one too. The handlers
    sleep a few milliseconds to stand in for work, so the bars have a visible length;
  - headless Chromium (tests/python/cdp.py), which opens the trace of one request with the server span's
    details unfolded and saves the viewport as a PNG (made smaller with pngquant when it is on PATH).

A docs tool, not part of the test command. Run it with the venv that has covet and the `otel` extra:
    scripts/jaeger-ui.sh && .venv/bin/python scripts/screenshot-trace.py [--out PATH] [--size 1400x900]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, Optional, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
from cdp import Chromium, Page, chromium_path  # noqa: E402
from jaegerproc import JAEGER_VERSION, http_get, jaeger_binary, running_jaeger  # noqa: E402
from serverproc import ServerProcess  # noqa: E402

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "covetpy"

SHOP = """
    import asyncio

    import httpx
    from covet import CovetPy
    from covet.observability import setup_observability
    from opentelemetry import trace
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    app = CovetPy()
    setup_observability(app, service_name="shop", otlp_endpoint="http://127.0.0.1:{otlp}", sampler="always_on",
                        json_logs=False, metrics=False)
    HTTPXClientInstrumentor().instrument()
    tracer = trace.get_tracer("shop")
    inventory = httpx.AsyncClient(base_url="http://127.0.0.1:{inventory}")  # one pool, kept-alive connections

    @app.get("/orders/{{order_id}}")
    async def order(order_id: int):
        with tracer.start_as_current_span("load order") as span:
            span.set_attribute("order.id", order_id)
            await asyncio.sleep(0.004)  # stands in for a database query
            stock = (await inventory.get(f"/stock/sku-{{order_id}}")).json()
        return {{"order": order_id, "in_stock": stock["in_stock"]}}
"""

INVENTORY = """
    import asyncio

    from covet import CovetPy
    from covet.observability import setup_observability
    from opentelemetry import trace

    app = CovetPy()
    setup_observability(app, service_name="inventory", otlp_endpoint="http://127.0.0.1:{otlp}",
                        sampler="always_on", json_logs=False, metrics=False)
    tracer = trace.get_tracer("inventory")

    @app.get("/stock/{{sku}}")
    async def stock(sku: str):
        with tracer.start_as_current_span("check stock") as span:
            span.set_attribute("inventory.sku", sku)
            await asyncio.sleep(0.002)  # stands in for a cache lookup
        return {{"sku": sku, "in_stock": 7}}
"""

SPANS_PER_TRACE = 5  # shop: server, "load order", httpx client; inventory: server, "check stock"


class Interrupted(Exception):
    """SIGTERM, SIGINT or the overall deadline: unwinds so that every process started is stopped."""


def log(message: str) -> None:
    print(f"screenshot-trace: {message}", file=sys.stderr, flush=True)


def wait_until(what: str, probe: Any, timeout: float, alive: Any = None) -> Any:
    """Polls `probe()` (exceptions count as not yet) until it is truthy; its value. Fails after `timeout`
    seconds, or at once when `alive()` turns false."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
            value = probe()
            if value:
                return value
        if alive is not None and not alive():
            raise RuntimeError(f"{what}: the process exited")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout} s")
        time.sleep(0.2)


T = TypeVar("T")


def started(stack: contextlib.ExitStack, stop: Callable[[T], None], cls: type[T], *args: Any, **kwargs: Any) -> T:
    """`cls(*args, **kwargs)`, which starts a process, with `stop` on `stack`'s exit even when the constructor is
    interrupted while it waits for the process to be ready (it would not clean up after an Interrupted)."""
    obj = cls.__new__(cls)

    def clean_up() -> None:
        if hasattr(obj, "proc"):  # the constructor started the process
            stop(obj)

    stack.callback(clean_up)
    obj.__init__(*args, **kwargs)  # type: ignore[misc]
    return obj


def stop_server(server: ServerProcess) -> None:
    with contextlib.suppress(AssertionError):
        server.stop(expect=None)
    server.kill()


def covet_app(stack: contextlib.ExitStack, module: str, source: str, workdir: Path) -> ServerProcess:
    (workdir / f"{module}.py").write_text(textwrap.dedent(source))
    command = [sys.executable, "-m", "covet", "run", f"{module}:app", "--app-dir", str(workdir), "--host", "127.0.0.1",
               "--port", "0"]
    return started(stack, stop_server, ServerProcess, command, timeout=60)


def traces_of(query_port: int, service: str) -> list[dict[str, Any]]:
    status, body = http_get(query_port, f"/api/traces?service={service}&lookback=1h&limit=20")
    if status != 200:
        return []
    return list(json.loads(body).get("data") or [])


def shoot(page: Page, query_port: int, trace_id: str, out: Path, workdir: Path, width: int, height: int) -> None:
    page.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                    "mobile": False})
    page.goto(f"http://127.0.0.1:{query_port}/trace/{trace_id}")
    rows = "document.querySelectorAll('.span-row').length"
    page.wait_for(f"{rows} >= {SPANS_PER_TRACE}", timeout=60, what=f"the trace page's {SPANS_PER_TRACE} span rows")
    # Unfold the root span's details (its tags: route template, status, protocol, client address, request id).
    page.click(".span-name", "GET /orders/{order_id}")
    page.wait_for("document.querySelector('.detail-info-wrapper') !== null", timeout=15, what="the span's details")
    if not page.evaluate("document.querySelector('.detail-info-wrapper .KeyValueTable') !== null"):
        page.click(".detail-info-wrapper .AccordianKeyValues--header")  # the first section: the span's tags
        page.wait_for("document.querySelector('.detail-info-wrapper .KeyValueTable') !== null", timeout=15,
                      what="the span's tags")
    page.evaluate("window.scrollTo(0, 0)")
    page.evaluate("document.activeElement && document.activeElement.blur()")
    time.sleep(1.0)  # let the detail row's layout and the fonts settle
    if page.failed or page.console:
        log(f"page problems (shot anyway): failed requests {page.failed}, console errors {page.console}")
    raw = workdir / "raw.png"
    page.screenshot(raw)
    compress(raw, out)


def compress(raw: Path, out: Path) -> None:
    """pngquant (a 256-colour palette: UI screenshots lose nothing visible), else Chromium's PNG as it is."""
    pngquant = shutil.which("pngquant")
    if pngquant:
        result = subprocess.run([pngquant, "--quality", "80-98", "--speed", "1", "--strip", "--force",
                                 "--output", str(out), str(raw)], capture_output=True, text=True, timeout=120)
        if result.returncode == 0:
            return
        log(f"pngquant failed ({result.returncode}: {result.stderr.strip()}); keeping the uncompressed PNG")
    else:
        log("no pngquant on PATH (apt-get install pngquant): keeping Chromium's PNG")
    shutil.move(raw, out)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "jaeger-trace.png")
    parser.add_argument("--size", default="1400x900", help="viewport WIDTHxHEIGHT in CSS pixels")
    parser.add_argument("--jaeger", type=Path, default=jaeger_binary())
    parser.add_argument("--ui", type=Path, default=CACHE / "jaeger-ui" / JAEGER_VERSION,
                        help="the built Jaeger UI (scripts/jaeger-ui.sh)")
    parser.add_argument("--requests", type=int, default=3, help="orders requested; the last one's trace is shot")
    parser.add_argument("--timeout", type=int, default=240, help="overall deadline in seconds")
    args = parser.parse_args(argv)
    width, height = (int(n) for n in args.size.lower().split("x"))
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    if not args.jaeger.is_file():
        parser.error(f"no Jaeger binary at {args.jaeger}: run scripts/build-jaeger.sh")
    if not (args.ui / "index.html").is_file():
        parser.error(f"no built Jaeger UI in {args.ui}: run scripts/jaeger-ui.sh")
    browser_path = chromium_path()
    if browser_path is None:
        parser.error("no Chromium found (apt-get install chromium, or set COVET_CHROMIUM)")

    def interrupt(signum: int, frame: Optional[FrameType]) -> None:
        quiet()
        raise Interrupted("deadline passed" if signum == signal.SIGALRM else f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
        signal.signal(sig, interrupt)
    signal.alarm(args.timeout)
    try:
        with contextlib.ExitStack() as stack:
            try:
                run(stack, args, browser_path, width, height)
            finally:
                quiet()
    except (Interrupted, RuntimeError, AssertionError) as e:
        log(f"failed: {e}")
        return 1
    return 0


def quiet() -> None:
    """No deadline and no SIGINT/SIGTERM from here on: the clean-up (each process's stop is bounded) must not be
    cut short, or it would leave processes running."""
    signal.alarm(0)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
        signal.signal(sig, signal.SIG_IGN)


def run(stack: contextlib.ExitStack, args: argparse.Namespace, browser_path: str, width: int, height: int) -> None:
    """Starts the processes (each stopped by `stack`), makes the requests, waits for their trace, shoots it."""
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="covet-screenshot-")))
    log(f"starting Jaeger {args.jaeger.name} with the UI in {args.ui}")
    ports = stack.enter_context(running_jaeger(args.jaeger, workdir, ui=args.ui.resolve()))
    inventory = covet_app(stack, "inventory", INVENTORY.format(otlp=ports["otlp_http"]), workdir)
    shop = covet_app(stack, "shop", SHOP.format(otlp=ports["otlp_http"], inventory=inventory.port), workdir)
    orders = [1041 + n for n in range(args.requests)]
    for order in orders:
        status, body = http_get(shop.port, f"/orders/{order}")
        if status != 200:
            raise RuntimeError(f"GET /orders/{order} answered {status}: {body[:300]!r}")

    def complete_trace() -> Optional[str]:
        for t in traces_of(ports["query_http"], "shop"):
            paths = [tag["value"] for s in t["spans"] for tag in s["tags"] if tag["key"] == "url.path"]
            if f"/orders/{orders[-1]}" in paths and len(t["spans"]) >= SPANS_PER_TRACE:
                return str(t["traceID"])
        return None

    trace_id = wait_until(f"a trace of GET /orders/{orders[-1]} with {SPANS_PER_TRACE} spans in Jaeger",
                          complete_trace, 30)
    log(f"trace {trace_id}: opening it in Chromium")
    browser = started(stack, Chromium.close, Chromium, browser_path, width=width, height=height)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shoot(browser.page(), ports["query_http"], trace_id, args.out, workdir, width, height)
    log(f"saved {args.out} ({args.out.stat().st_size // 1024} KiB, {width}x{height})")


if __name__ == "__main__":
    sys.exit(main())
