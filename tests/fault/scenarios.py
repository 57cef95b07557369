"""The fault-injection scenarios. Each takes a `TargetSpec` and scale parameters, starts its own server,
breaks something on purpose under load, stops the server (SIGTERM: it must still exit 0) and returns a
report dict: ``ok``, the ``checks`` (name, ok, detail), request counts (``sent``/``completed``/``failed``,
``failed_by_kind``), the server's resident memory (``rss``) and what is particular to the scenario.
`format_line(report)` is its one-line summary.
"""
from __future__ import annotations

import asyncio
import collections
import os
import random
import re
import signal
import socket
import statistics
import struct
import time
from typing import Any, Awaitable, Callable, Optional

from .harness import (BASIC_MIX, INFLIGHT_MIX, PLAINTEXT, HOST, BadResponse, LoadGen, RssSampler, Stats, Target,
                      TargetSpec, drift_mix, parse_response, percentile, raise_nofile)

P99_LIMIT_S = 0.100        # latency of ordinary clients while the server is under attack
P99_LIMIT_ASAN_S = 0.400   # the ASan build is several times slower; the report says which limit applied
DRIFT_LIMIT_PCT = 5.0


class Report:
    def __init__(self, scenario: str, spec: TargetSpec, params: dict[str, Any]) -> None:
        self.data: dict[str, Any] = {"scenario": scenario, "target": spec.label(), "asan": spec.asan,
                                     "params": params, "checks": []}
        self.started = time.monotonic()

    def check(self, name: str, ok: bool, detail: Any = "") -> bool:
        self.data["checks"].append({"name": name, "ok": bool(ok), "detail": str(detail)})
        return bool(ok)

    def counts(self, stats: Stats) -> None:
        self.data.update(stats.as_dict())

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def finish(self, target: Optional[Target] = None, stop: bool = True) -> dict[str, Any]:
        if target is not None and stop:
            was_alive = target.alive()
            rc = target.stop(timeout=30)
            self.check("server alive at the end", was_alive, f"exit status {target.returncode}")
            self.check("clean exit on SIGTERM", rc == 0,
                       f"exit code {rc}" + (f" after {target.exit_seconds:.2f} s" if target.exit_seconds else "")
                       + ("" if rc == 0 else f"; stderr: {target.stderr_tail(15)}"))
        elif target is not None:
            target.kill()
        if target is not None and target.exit_seconds is not None:
            self.data["exit_s"] = round(target.exit_seconds, 2)
        self.data.setdefault("sent", 0)
        self.data["duration_s"] = round(time.monotonic() - self.started, 2)
        self.data["ok"] = all(c["ok"] for c in self.data["checks"])
        return self.data


def format_line(r: dict[str, Any]) -> str:
    rss = r.get("rss") or {}
    mem = ""
    if rss:
        mem = f" rss={rss.get('first_kb', 0) / 1024:.1f}->{rss.get('last_kb', 0) / 1024:.1f}MiB" \
              f"(peak {rss.get('peak_kb', 0) / 1024:.1f})"
    kinds = ",".join(f"{k}:{v}" for k, v in sorted((r.get("failed_by_kind") or {}).items()))
    extra = " ".join(f"{k}={r[k]}" for k in r.get("headline", ()))
    bad = [c["name"] + (f" ({c['detail']})" if c["detail"] else "") for c in r["checks"] if not c["ok"]]
    return (f"{'PASS' if r['ok'] else 'FAIL'} {r['scenario']:<17} {r['target']:<20} sent={r.get('sent', 0)} "
            f"completed={r.get('completed', 0)} failed={r.get('failed', 0)}{'[' + kinds + ']' if kinds else ''}"
            f"{mem} {extra} {r['duration_s']}s{'' if not bad else ' FAILED: ' + '; '.join(bad)}").rstrip()


def _p99_limit(spec: TargetSpec) -> float:
    return P99_LIMIT_ASAN_S if spec.asan else P99_LIMIT_S


def _run_with_target(spec: TargetSpec, rep: Report, body: Callable[[Target], Awaitable[None]],
                     stop: bool = True) -> dict[str, Any]:
    target = Target(spec).start()
    try:
        asyncio.run(body(target))
    except BaseException:
        target.kill()
        raise
    return rep.finish(target, stop=stop)


def _kinds(failures, **match) -> collections.Counter:
    return collections.Counter(f.kind for f in failures if all(getattr(f, k) == v for k, v in match.items()))


# ---- graceful stop --------------------------------------------------------------------------------------

def graceful_stop(spec: TargetSpec, *, keepalive: int = 16, fresh: int = 4, before_s: float = 2.0,
                  exit_timeout_s: float = 30.0) -> dict[str, Any]:
    """SIGTERM under load (with requests of 30 ms in flight). Every request written before the signal
    must be answered correctly; after it, new connections may be refused (counted apart) and the process
    must exit with code 0."""
    rep = Report("graceful_stop", spec, dict(keepalive=keepalive, fresh=fresh, before_s=before_s))
    target = Target(spec).start()

    async def body() -> None:
        sampler = RssSampler(target).start()
        gen = LoadGen(target.port, INFLIGHT_MIX, keepalive=keepalive, fresh=fresh, timeout=exit_timeout_s).start()
        gen.phase = "before"
        await asyncio.sleep(before_s)
        inflight = len(gen.inflight())
        gen.phase = "after"  # everything written from here on was sent after the signal
        target.signal(signal.SIGTERM)
        t_signal = time.monotonic()
        while target.alive() and time.monotonic() - t_signal < exit_timeout_s:
            await asyncio.sleep(0.01)
        exited_in = time.monotonic() - t_signal
        await asyncio.sleep(0.2)  # clients now meet a closed port
        await gen.stop()
        sampler.stop()
        before, after = gen.stats["before"], gen.stats["after"]
        rep.counts(gen.total())
        rep["rss"] = sampler.summary()
        rep["inflight_at_signal"] = inflight
        rep["before_signal"] = before.as_dict()
        rep["after_signal"] = after.as_dict()
        rep["exit_s"] = round(exited_in, 3)
        rep["headline"] = ["inflight_at_signal", "lost", "after_refused", "exit_s"]
        rep["lost"] = before.failed_total
        rep["after_refused"] = after.failed["refused"]
        rep.check("0 lost: every request sent before SIGTERM completed", before.failed_total == 0,
                  f"{before.failed_total} failed: {dict(before.failed)}")
        rep.check("requests were in flight at the signal", inflight > 0, f"{inflight} in flight")
        wrong = gen.total().failed["bad_response"]
        rep.check("no wrong answers", wrong == 0, f"{wrong} bad responses")
        rc = target.wait(1) if not target.alive() else None
        rep.check("exit code 0 after SIGTERM", rc == 0, f"exit code {rc} after {exited_in:.2f} s; "
                  f"stderr: {target.stderr_tail(10) if rc != 0 else ''}")

    try:
        asyncio.run(body())
    finally:
        target.kill()
    return rep.finish()


# ---- SIGKILL of a worker --------------------------------------------------------------------------------

def sigkill_worker(spec: TargetSpec, *, keepalive: int = 16, fresh: int = 4, before_s: float = 2.0,
                   after_s: float = 3.0, respawn_timeout_s: float = 20.0) -> dict[str, Any]:
    """`covet run --workers 2`: SIGKILL one worker under load. Only the requests in flight on that worker
    may fail (plus, once each, its idle keep-alive connections used after the kill); the supervisor
    starts a new worker and service goes on."""
    assert spec.kind == "python" and spec.python_launcher == "run" and spec.workers >= 2, spec
    rep = Report("sigkill_worker", spec, dict(keepalive=keepalive, fresh=fresh, before_s=before_s, after_s=after_s))

    async def body(target: Target) -> None:
        loop = asyncio.get_running_loop()
        sampler = RssSampler(target).start()
        gen = LoadGen(target.port, INFLIGHT_MIX, keepalive=keepalive, fresh=fresh, timeout=10).start()
        gen.phase = "before"
        await asyncio.sleep(before_s)
        workers = target.worker_pids()
        by_pid = collections.Counter(c.pid for c in gen.connections())
        victim = max(workers, key=lambda p: by_pid.get(p, 0))
        victim_conns = sum(1 for c in gen.connections() if c.pid == victim)
        inflight = gen.inflight()
        inflight_victim = sum(1 for c in inflight if c.pid == victim)
        inflight_unknown = sum(1 for c in inflight if c.pid == 0)
        connecting = keepalive + fresh - len(gen.connections())
        gen.phase = "after"
        os.kill(victim, signal.SIGKILL)
        t_kill = time.monotonic()
        while time.monotonic() - t_kill < respawn_timeout_s and \
                not [p for p in target.worker_pids() if p not in workers]:
            await asyncio.sleep(0.01)
        respawn_s = time.monotonic() - t_kill  # until the supervisor has started the new process
        respawned = await loop.run_in_executor(
            None, lambda: target.wait_workers(spec.workers, timeout=respawn_timeout_s, exclude=[victim]))
        gen.phase = "respawned"
        await asyncio.sleep(after_s)
        await gen.stop()
        sampler.stop()
        new_workers = [p for p in target.worker_pids() if p not in workers]
        rep.counts(gen.total())
        rep["rss"] = sampler.summary()
        others = [p for p in workers if p != victim]
        before = [f for f in gen.failures if f.phase == "before"]
        after = [f for f in gen.failures if f.phase == "after"]
        rep["victim"] = {"pid": victim, "keepalive_connections": victim_conns, "inflight": inflight_victim}
        rep["inflight_unknown_worker"] = inflight_unknown
        rep["failed_before_kill"] = {"victim": len([f for f in before if f.pid == victim]),
                                     "unknown_worker": len([f for f in before if f.pid == 0]),
                                     "other_workers": len([f for f in before if f.pid in others]),
                                     "kinds": dict(_kinds(before))}
        rep["failed_after_kill"] = {"victim": len([f for f in after if f.pid == victim]),
                                    "unknown_worker": len([f for f in after if f.pid == 0]),
                                    "other_workers": len([f for f in after if f.pid in others]),
                                    "kinds": dict(_kinds(after))}
        rep["respawn_s"] = round(respawn_s, 2)
        rep["headline"] = ["respawn_s"]
        rep["after_respawn"] = gen.stats["respawned"].as_dict()
        on_others = rep["failed_before_kill"]["other_workers"] + rep["failed_after_kill"]["other_workers"]
        rep.check("no failures on the surviving worker's connections", on_others == 0, f"{on_others} failed")
        fb = rep["failed_before_kill"]
        rep.check("requests sent before the kill failed only if in flight on the killed worker",
                  fb["victim"] <= inflight_victim and fb["unknown_worker"] <= inflight_unknown + connecting,
                  f"failed: {fb}; in flight at the kill on it: {inflight_victim}, on not-yet-answered "
                  f"connections: {inflight_unknown}, connecting: {connecting}")
        fa = rep["failed_after_kill"]
        # A request in flight at the kill may still have been answered (the response was on its way), and
        # the next one on that connection fails instead: so the bound is one lost request per connection.
        rep.check("each connection to the killed worker lost at most one request",
                  fb["victim"] + fa["victim"] <= victim_conns and fa["unknown_worker"] <= keepalive + fresh,
                  f"failed after the kill: {fa}; its keep-alive connections: {victim_conns}")
        rep.check("the supervisor started a new worker that serves", respawned and bool(new_workers),
                  f"new workers {new_workers} after {respawn_s:.1f} s")
        ar = gen.stats["respawned"]
        rep.check("0 failed once the new worker serves", ar.failed_total == 0 and ar.completed > 0,
                  f"{ar.as_dict()}")

    return _run_with_target(spec, rep, body)


# ---- rolling restart ------------------------------------------------------------------------------------

def rolling_restart(spec: TargetSpec, *, restarts: int = 3, keepalive: int = 8, fresh: int = 4,
                    settle_s: float = 1.0, restart_timeout_s: float = 40.0) -> dict[str, Any]:
    """SIGHUP to the `covet run` master under load, `restarts` times: every worker is replaced and not a
    single request fails."""
    assert spec.kind == "python" and spec.python_launcher == "run", spec
    rep = Report("rolling_restart", spec, dict(restarts=restarts, keepalive=keepalive, fresh=fresh))

    async def body(target: Target) -> None:
        loop = asyncio.get_running_loop()
        sampler = RssSampler(target).start()
        gen = LoadGen(target.port, INFLIGHT_MIX, keepalive=keepalive, fresh=fresh, timeout=15).start()
        await asyncio.sleep(settle_s)
        times, replaced = [], []
        for i in range(restarts):
            gen.phase = f"restart{i + 1}"
            old = set(target.worker_pids())
            t0 = time.monotonic()
            target.signal(signal.SIGHUP)

            def replaced_all() -> bool:
                deadline = time.monotonic() + restart_timeout_s
                while time.monotonic() < deadline:
                    now = set(target.worker_pids())
                    if not (now & old) and len(now) == spec.workers:
                        return target.wait_workers(spec.workers, timeout=max(0.1, deadline - time.monotonic()),
                                                   exclude=old, spread_s=0.5)
                    time.sleep(0.05)
                return False

            ok = await loop.run_in_executor(None, replaced_all)
            times.append(round(time.monotonic() - t0, 2))
            replaced.append(ok)
            await asyncio.sleep(settle_s)
        await gen.stop()
        sampler.stop()
        total = gen.total()
        rep.counts(total)
        rep["rss"] = sampler.summary()
        rep["restart_s"] = times
        rep["per_restart"] = {p: s.as_dict() for p, s in gen.stats.items()}
        # A request on a reused keep-alive connection that the server closed before any byte of the answer
        # is what clients may retry (RFC 9110 9.2.2); it still counts as failed here.
        rep["failed_where"] = dict(collections.Counter(
            f"{f.kind}:{'new-connection' if f.new_connection else 'reused-connection'}" for f in gen.failures))
        rep["headline"] = ["restart_s"]
        rep.check("every worker replaced on each SIGHUP", all(replaced), f"replaced: {replaced} in {times} s")
        rep.check("0 failed across the restarts", total.failed_total == 0 and total.completed > 0,
                  f"{total.failed_total} failed: {dict(total.failed)}")

    return _run_with_target(spec, rep, body)


# ---- slowloris ------------------------------------------------------------------------------------------

async def _slow_client(port: int, head: bytes, drip: bytes, interval: float, give_up_s: float) -> dict[str, Any]:
    """Sends `head`, then one byte of `drip` every `interval` s, until the server closes the connection."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError as e:
        return {"outcome": f"connect:{type(e).__name__}", "after_s": 0.0}
    t0 = time.monotonic()
    received = bytearray()
    outcome = "open"

    async def drip_bytes() -> None:
        writer.write(head)
        i = 0
        while True:
            await asyncio.sleep(interval)
            writer.write(drip[i % len(drip):i % len(drip) + 1])
            i += 1
            await writer.drain()

    dripper = asyncio.get_running_loop().create_task(drip_bytes())
    try:
        async with asyncio.timeout(give_up_s):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    outcome = "closed"
                    break
                received += chunk
    except TimeoutError:
        outcome = "open"
    except (ConnectionResetError, BrokenPipeError):
        outcome = "reset"
    finally:
        dripper.cancel()
        try:
            await dripper
        except (asyncio.CancelledError, OSError):
            pass
        writer.close()
    after = time.monotonic() - t0
    status = received[9:12].decode(errors="replace") if received.startswith(b"HTTP/1.") else ""
    return {"outcome": outcome, "status": status, "after_s": after}


def _slowloris(name: str, spec: TargetSpec, *, slow: int, head: bytes, drip: bytes, interval: float,
               deadline_s: float, keepalive: int, params: dict[str, Any],
               notes: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    rep = Report(name, spec, params)
    if notes:
        rep.data.update(notes)
    slack = 6.0 if spec.asan else 3.0

    async def body(target: Target) -> None:
        sampler = RssSampler(target).start()
        gen = LoadGen(target.port, BASIC_MIX, keepalive=keepalive, record_latency=True, timeout=10).start()
        await asyncio.sleep(0.3)
        gen.latencies.clear()
        results = await asyncio.gather(*(_slow_client(target.port, head, drip, interval, deadline_s + slack)
                                         for _ in range(slow)))
        await gen.stop()
        sampler.stop()
        rep.counts(gen.total())
        rep["rss"] = sampler.summary()
        outcomes = collections.Counter(r["outcome"] + (f":{r['status']}" if r.get("status") else "") for r in results)
        closed_after = sorted(r["after_s"] for r in results if r["outcome"] in ("closed", "reset"))
        still_open = sum(1 for r in results if r["outcome"] == "open")
        rep["slow_outcomes"] = dict(outcomes)
        if closed_after:
            rep["closed_after_s"] = {"min": round(closed_after[0], 2), "median": round(statistics.median(closed_after), 2),
                                     "max": round(closed_after[-1], 2)}
        p99 = percentile(gen.latencies, 99)
        rep["normal_latency_ms"] = {"p50": round(percentile(gen.latencies, 50) * 1000, 2),
                                    "p99": round(p99 * 1000, 2), "max": round(max(gen.latencies, default=0) * 1000, 2)}
        rep["p99_ms"] = rep["normal_latency_ms"]["p99"]
        rep["headline"] = ["slow_outcomes", "p99_ms"]
        rep.check(f"every slow connection closed by the server within {deadline_s:.1f} s (+{slack:.0f} s slack)",
                  still_open == 0 and closed_after and closed_after[-1] <= deadline_s + slack,
                  f"{still_open} of {slow} still open; closed after {rep.data.get('closed_after_s')}")
        rep.check("normal clients served meanwhile, 0 failed", gen.total().failed_total == 0 and gen.total().completed > 0,
                  gen.total().as_dict())
        limit = _p99_limit(spec)
        rep.check(f"normal clients' p99 latency < {limit * 1000:.0f} ms", p99 < limit, f"p99 {p99 * 1000:.1f} ms")

    return _run_with_target(spec, rep, body)


def slowloris_heads(spec: TargetSpec, *, slow: int = 200, header_timeout_ms: int = 2000,
                    keepalive: int = 2) -> dict[str, Any]:
    """`slow` connections send a request head one byte every 0.5 s; the server must answer 408 or close
    each at its header timeout while serving ordinary clients quickly."""
    spec = spec.with_options(header_timeout_ms=header_timeout_ms)
    return _slowloris("slowloris_heads", spec, slow=slow, keepalive=keepalive, interval=0.5,
                      head=b"GET /plaintext HTTP/1.1\r\nHost: fault\r\n", drip=b"X-Slow-Header-" + b"a" * 50,
                      deadline_s=header_timeout_ms / 1000,
                      params=dict(slow=slow, header_timeout_ms=header_timeout_ms, keepalive=keepalive))


def slowloris_bodies(spec: TargetSpec, *, slow: int = 200, min_body_rate: int = 240, grace_ms: int = 2000,
                     keepalive: int = 2) -> dict[str, Any]:
    """`slow` uploads (Content-Length 100000) at 1 byte/s, under the engine's minimum body rate; the server
    must answer 408 or close each once the grace period is over. Where the target's build does not take
    --min-body-rate yet, its defaults apply (5 s grace)."""
    present = spec.supports("min_body_rate")
    if present:
        spec = spec.with_options(min_body_rate=min_body_rate, min_body_rate_grace_ms=grace_ms)
    deadline = (grace_ms if present else 5000) / 1000 + 1.0  # the floor is checked about once a second
    return _slowloris("slowloris_bodies", spec, slow=slow, keepalive=keepalive, interval=1.0,
                      head=b"POST /echo HTTP/1.1\r\nHost: fault\r\nContent-Type: text/plain\r\n"
                           b"Content-Length: 100000\r\n\r\n", drip=b"x",
                      deadline_s=deadline, notes={"min_body_rate_option": present},
                      params=dict(slow=slow, min_body_rate=min_body_rate, grace_ms=grace_ms, keepalive=keepalive))


# ---- idle connections -----------------------------------------------------------------------------------

def idle_connections(spec: TargetSpec, *, idle: int = 2000, keepalive: int = 2, probe_s: float = 3.0,
                     batch: int = 200, per_conn_limit_kb: float = 64.0) -> dict[str, Any]:
    """Opens `idle` keep-alive connections (one request each, then silence), checks ordinary requests
    are still served quickly and that the idle connections still answer; reports RSS per connection."""
    limit = raise_nofile(idle * 2 + 1000)
    spec = spec.with_options(max_connections=idle + 500)
    rep = Report("idle_connections", spec, dict(idle=idle, keepalive=keepalive, probe_s=probe_s, nofile=limit))

    async def body(target: Target) -> None:
        warm = LoadGen(target.port, BASIC_MIX, keepalive=4).start(total=4000)
        await warm.wait()
        await asyncio.sleep(0.5)
        rss0 = target.rss_kb()
        holder = LoadGen(target.port, [PLAINTEXT], keepalive=0, timeout=30).start()
        conns, failures = [], collections.Counter()

        async def open_one() -> None:
            try:
                c = await asyncio.wait_for(holder._connect(), 30)
            except (OSError, asyncio.TimeoutError) as e:
                failures[f"connect:{type(e).__name__}"] += 1
                return
            conns.append(c)
            try:
                r = await c.request(PLAINTEXT.raw(), 30)
                if not PLAINTEXT.check(r):
                    failures["bad_response"] += 1
            except Exception as e:
                failures[f"request:{getattr(e, 'kind', type(e).__name__)}"] += 1

        t0 = time.monotonic()
        for start in range(0, idle, batch):
            await asyncio.gather(*(open_one() for _ in range(min(batch, idle - start))))
        open_s = time.monotonic() - t0
        await asyncio.sleep(1.0)
        rss1 = target.rss_kb()
        gen = LoadGen(target.port, BASIC_MIX, keepalive=keepalive, record_latency=True, timeout=10).start()
        await asyncio.sleep(probe_s)
        await gen.stop()
        alive_conns = [c for c in conns if not c.lost]
        sample = random.Random(1).sample(alive_conns, min(100, len(alive_conns)))
        answered = 0
        for i in range(0, len(sample), 50):
            outcomes = await asyncio.gather(*(c.request(PLAINTEXT.raw(), 10) for c in sample[i:i + 50]),
                                            return_exceptions=True)
            answered += sum(1 for o in outcomes if not isinstance(o, BaseException) and PLAINTEXT.check(o))
        rss2 = target.rss_kb()
        for c in conns:
            c.close()
        await holder.stop()
        await asyncio.sleep(1.0)
        rss3 = target.rss_kb()
        rep.counts(gen.total())
        per_conn = (rss1 - rss0) / max(1, len(conns))
        p99 = percentile(gen.latencies, 99)
        rep["rss"] = {"first_kb": rss0, "last_kb": rss3, "peak_kb": max(rss1, rss2), "with_idle_kb": rss1,
                      "after_close_kb": rss3}
        rep["idle_open"] = len(conns) - sum(failures.values())
        rep["open_failures"] = dict(failures)
        rep["open_s"] = round(open_s, 2)
        rep["rss_per_idle_kb"] = round(per_conn, 2)
        rep["normal_latency_ms"] = {"p50": round(percentile(gen.latencies, 50) * 1000, 2), "p99": round(p99 * 1000, 2)}
        rep["idle_sample_answered"] = f"{answered}/{len(sample)}"
        rep["headline"] = ["idle_open", "rss_per_idle_kb", "idle_sample_answered"]
        rep.check(f"{idle} idle keep-alive connections opened and answered", not failures and len(conns) == idle,
                  f"{len(conns)} opened; failures {dict(failures)}")
        rep.check("normal clients served meanwhile, 0 failed", gen.total().failed_total == 0 and gen.total().completed > 0,
                  gen.total().as_dict())
        lim = _p99_limit(spec)
        rep.check(f"normal clients' p99 latency < {lim * 1000:.0f} ms", p99 < lim, f"p99 {p99 * 1000:.1f} ms")
        rep.check("idle connections still answer afterwards", answered == len(sample) and sample,
                  f"{answered}/{len(sample)} sampled")
        if not spec.asan:
            rep.check(f"RSS per idle connection < {per_conn_limit_kb:.0f} KiB", per_conn < per_conn_limit_kb,
                      f"{per_conn:.1f} KiB")

    return _run_with_target(spec, rep, body)


# ---- memory drift ---------------------------------------------------------------------------------------

def memory_drift(spec: TargetSpec, *, requests: int = 50_000, warmup: float = 0.2, keepalive: int = 8,
                 fresh: int = 1, limit_pct: float = DRIFT_LIMIT_PCT) -> dict[str, Any]:
    """`requests` requests (routes, 404s, echo bodies up to 16 KB, some on new connections); RSS once
    `warmup` of them are done and at the end: the drift must stay under `limit_pct` (not asserted on an
    ASan build, whose RSS is mostly its own quarantine and shadow memory)."""
    rep = Report("memory_drift", spec, dict(requests=requests, warmup=warmup, keepalive=keepalive, fresh=fresh))

    async def body(target: Target) -> None:
        sampler = RssSampler(target, interval=1.0).start()
        gen = LoadGen(target.port, drift_mix(), keepalive=keepalive, fresh=fresh, timeout=10).start(total=requests)
        t0 = time.monotonic()
        warm_at = int(requests * warmup)
        while gen.sent_total() < warm_at:
            await asyncio.sleep(0.02)
        rss_warm, workers_warm = sampler.sample()
        t_warm = time.monotonic()
        await gen.wait()
        elapsed = time.monotonic() - t0
        await asyncio.sleep(0.5)
        rss_end, workers_end = sampler.sample()
        sampler.stop()
        after_warm = [kb for t, _, kb in sampler.samples if t >= t_warm and kb]
        drift = (rss_end - rss_warm) / rss_warm * 100 if rss_warm else float("nan")
        wdrift = (workers_end - workers_warm) / workers_warm * 100 if workers_warm else float("nan")
        total = gen.total()
        rep.counts(total)
        rep["rss"] = sampler.summary()
        rep["rss_warm_kb"], rep["rss_end_kb"] = rss_warm, rss_end
        rep["workers_rss_warm_kb"], rep["workers_rss_end_kb"] = workers_warm, workers_end
        rep["workers_rss_max_after_warm_kb"] = max(after_warm, default=0)
        rep["drift_pct"] = round(drift, 2)            # whole process tree (a `covet run` master included)
        rep["workers_drift_pct"] = round(wdrift, 2)   # the serving processes alone: what is asserted
        rep["req_per_s"] = round(total.sent / elapsed)
        rep["headline"] = ["workers_drift_pct", "drift_pct", "req_per_s"]
        rep.check("0 failed", total.failed_total == 0, f"{dict(total.failed)}")
        if spec.asan:
            rep["drift_note"] = "ASan build: drift reported, not asserted"
        else:
            rep.check(f"RSS drift of the serving processes < {limit_pct:g}% after warm-up", wdrift < limit_pct,
                      f"{workers_warm} KiB -> {workers_end} KiB ({wdrift:+.2f}%)")

    return _run_with_target(spec, rep, body)


# ---- mutation fuzzing -----------------------------------------------------------------------------------

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _h2_frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def _hpack_get(path: bytes) -> bytes:
    # :method GET (2), :scheme http (6), :path literal (name 4), :authority literal (name 1)
    return b"\x82\x86\x04" + bytes([len(path)]) + path + b"\x01\x05fault"


def fuzz_seeds() -> list[bytes]:
    settings = _h2_frame(4, 0, 0, struct.pack(">HI", 3, 100))
    return [
        b"GET /plaintext HTTP/1.1\r\nHost: fault\r\n\r\n",
        b"GET /users/42?q=abc HTTP/1.1\r\nHost: fault\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n",
        b"GET /json HTTP/1.0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: fault\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
        b"POST /echo HTTP/1.1\r\nHost: fault\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: fault\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
        b"GET /plaintext HTTP/1.1\r\nHost: fault\r\n\r\nGET /json HTTP/1.1\r\nHost: fault\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: fault\r\nContent-Length: 3\r\n\r\nabc",
        b"GET http://fault/plaintext HTTP/1.1\r\nHost: fault\r\nConnection: close\r\n\r\n",
        b"GET /users/7?q=5 HTTP/1.1\r\nHost: fault\r\nCookie: a=b; c=d\r\nX-Test: \xff\xfe\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: fault\r\n\r\n",
        b"GET /plaintext HTTP/1.1\r\nHost: fault\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        H2_PREFACE + settings + _h2_frame(1, 5, 1, _hpack_get(b"/plaintext")),
        H2_PREFACE + settings + _h2_frame(1, 4, 1, _hpack_get(b"/echo")) + _h2_frame(0, 1, 1, b"data")
        + _h2_frame(6, 0, 0, b"12345678") + _h2_frame(8, 0, 0, b"\x00\x00\x10\x00"),
    ]


_INTERESTING = [b"\r\n", b"\n", b"\r", b"\x00", b":", b" ", b"\t", b"chunked", b"0\r\n\r\n", b"-1",
                b"99999999999999999999", b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n",
                b"\r\n\r\n", b"%", b"%00", b"../", b"\xff", b"HTTP/1.1", b"Host: x\r\n", b"ffffffff\r\n"]


def mutate(data: bytes, rng: random.Random, seeds: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        pos = rng.randrange(len(b) + 1) if b else 0
        if op == 0 and b:                               # flip bits of a byte
            b[min(pos, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:                                   # random bytes in
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2:                                   # an interesting token in
            b[pos:pos] = rng.choice(_INTERESTING)
        elif op == 3 and b:                             # a range out
            b[pos:pos + rng.randint(1, 16)] = b""
        elif op == 4 and b:                             # truncate
            del b[pos:]
        elif op == 5 and b:                             # duplicate a range
            end = min(len(b), pos + rng.randint(1, 64))
            b[end:end] = b[pos:end] * rng.randint(1, 4)
        elif op == 6:                                   # pipeline another request after it
            b += rng.choice(seeds)
        elif op == 7:                                   # a number replaced
            digits = [i for i, c in enumerate(b) if 48 <= c <= 57]
            if digits:
                i = rng.choice(digits)
                b[i:i + 1] = str(rng.choice([0, 1, 7, 65535, 2 ** 31, 2 ** 64, 10 ** 30])).encode()
        elif op == 8 and b:                             # case flipped
            i = min(pos, len(b) - 1)
            b[i:i + 1] = bytes(b[i:i + 1]).swapcase()
    return bytes(b)


def _validate_h2(data: bytes) -> Optional[str]:
    pos = 0
    first = True
    while pos < len(data):
        if len(data) - pos < 9:
            return f"h2 frame header cut short ({len(data) - pos} bytes)"
        length = int.from_bytes(data[pos:pos + 3], "big")
        ftype = data[pos + 3]
        if first and ftype != 4:
            return f"server's h2 preface is frame type {ftype}, not SETTINGS"
        if ftype > 9:
            return f"unknown h2 frame type {ftype}"
        if length > 16384:
            return f"h2 frame of {length} bytes over the default max frame size"
        if len(data) - pos - 9 < length:
            return "h2 frame payload cut short"
        pos += 9 + length
        first = False
    return None


def validate_response_bytes(data: bytes, sent: bytes, complete: bool) -> Optional[str]:
    """None if `data` is a valid answer to `sent` (HTTP/1.x responses, possibly a 101 then h2 frames, or h2
    frames after an h2 preface); else what is wrong. `complete`: the server closed cleanly, so nothing may
    be cut short (after a reset, only what arrived is checked)."""
    if not data:
        return None
    if not data.startswith(b"HTTP/"):
        if sent.startswith(b"PRI * HTTP/2.0"):
            return _validate_h2(data) if complete else None
        return f"neither an HTTP/1.x status line nor h2 frames: {data[:60]!r}"
    buf = bytearray(data)
    head_only = b"HEAD" in sent.upper()
    while buf:
        try:
            parsed = parse_response(buf, eof=True, head_only=head_only)
        except BadResponse as e:
            return None if not complete and str(e).find("cut short") >= 0 else f"{e}"
        if parsed is None:
            return None
        response, used = parsed
        del buf[:used]
        if response.status == 101:
            return _validate_h2(bytes(buf)) if complete and b"h2c" in sent.lower() and buf else None
        if head_only:
            return None  # a response to HEAD has no body: later ones can't be framed without pairing them
    return None


async def _fuzz_case(port: int, data: bytes, mode: int, rng: random.Random, timeout: float) -> tuple[str, bytes]:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    except ConnectionRefusedError:
        return "refused", b""
    except (OSError, asyncio.TimeoutError) as e:
        return f"connect:{type(e).__name__}", b""
    received = bytearray()
    try:
        if mode == 2:  # in fragments
            pos = 0
            while pos < len(data):
                n = rng.randint(1, 32)
                writer.write(data[pos:pos + n])
                pos += n
                await writer.drain()
                await asyncio.sleep(0.001 * rng.randrange(3))
        else:
            writer.write(data)
            await writer.drain()
        if mode != 1:
            writer.write_eof()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    idle = 0.3 if mode == 1 else timeout
                    try:
                        chunk = await asyncio.wait_for(reader.read(65536), idle)
                    except asyncio.TimeoutError:
                        if mode == 1:
                            return "idle", bytes(received)
                        raise
                    if not chunk:
                        return "closed", bytes(received)
                    received += chunk
        except TimeoutError:
            return "timeout", bytes(received)
    except (ConnectionResetError, BrokenPipeError):
        return "reset", bytes(received)
    finally:
        writer.close()


async def _probe(port: int, timeout: float = 10.0) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        writer.write(PLAINTEXT.raw(close=True))
        data = await asyncio.wait_for(reader.read(-1), timeout)
        parsed = parse_response(bytearray(data), eof=True)
        return parsed is not None and PLAINTEXT.check(parsed[0])
    except (OSError, asyncio.TimeoutError, BadResponse):
        return False
    finally:
        writer.close()


def mutation_fuzz(spec: TargetSpec, *, duration_s: float = 10.0, cases: Optional[int] = None, concurrency: int = 8,
                  seed: int = 1, header_timeout_ms: int = 1000, probe_every_s: float = 1.0) -> dict[str, Any]:
    """Random mutations (bit flips, inserted tokens, cut ranges, truncations, duplications, pipelined
    extras, odd numbers) of valid requests, HTTP/1.1 pipelines, h2c upgrades and h2 prefaces, sent whole,
    fragmented, with or without a half-close. The server must never crash, every answer must be a valid
    HTTP/1.x response (or h2 frames), and a normal request must be served throughout and afterwards."""
    spec = spec.with_options(header_timeout_ms=header_timeout_ms)
    rep = Report("mutation_fuzz", spec, dict(duration_s=duration_s, cases=cases, concurrency=concurrency, seed=seed,
                                            header_timeout_ms=header_timeout_ms))
    case_timeout = header_timeout_ms / 1000 + (8.0 if spec.asan else 4.0)

    async def body(target: Target) -> None:
        sampler = RssSampler(target, interval=1.0).start()
        seeds = fuzz_seeds()
        outcomes: collections.Counter = collections.Counter()
        statuses: collections.Counter = collections.Counter()
        invalid: list[dict[str, str]] = []
        stuck: list[dict[str, str]] = []   # the server neither answered nor closed within the case timeout
        probes = {"ok": 0, "failed": 0}
        done = 0
        stop_at = time.monotonic() + duration_s
        remaining = [cases if cases is not None else 10 ** 12]

        async def fuzzer(i: int) -> None:
            nonlocal done
            rng = random.Random(seed * 7919 + i)
            while remaining[0] > 0 and time.monotonic() < stop_at and target.alive():
                remaining[0] -= 1
                data = mutate(rng.choice(seeds), rng, seeds)
                mode = rng.randrange(3)
                outcome, got = await _fuzz_case(target.port, data, mode, rng, case_timeout)
                done += 1
                outcomes[outcome] += 1
                for m in _STATUS_LINE.finditer(got):
                    statuses[m.group(1).decode()] += 1
                if outcome == "timeout" and len(stuck) < 10:
                    stuck.append({"mode": str(mode), "sent": repr(data[:400]), "got_bytes": str(len(got)),
                                  "got_tail": repr(got[-200:])})
                problem = validate_response_bytes(got, data, complete=outcome == "closed")
                if problem and len(invalid) < 20:
                    invalid.append({"problem": problem, "sent": repr(data[:300]), "got": repr(got[:300])})
                if problem:
                    outcomes["invalid"] += 1

        async def prober() -> None:
            while time.monotonic() < stop_at and remaining[0] > 0:
                await asyncio.sleep(probe_every_s)
                probes["ok" if await _probe(target.port) else "failed"] += 1

        await asyncio.gather(prober(), *(fuzzer(i) for i in range(concurrency)))
        alive = target.alive()
        final_ok = alive and await _probe(target.port)
        sampler.stop()
        rep["rss"] = sampler.summary()
        rep["cases"] = done
        rep["outcomes"] = dict(outcomes)
        rep["statuses"] = dict(statuses.most_common())
        rep["invalid_examples"] = invalid
        rep["timeout_examples"] = stuck
        rep["probes"] = probes
        valid = done - outcomes["invalid"]
        rep.data.update({"sent": done, "completed": valid, "failed": outcomes["invalid"],
                         "failed_by_kind": {"invalid": outcomes["invalid"]} if outcomes["invalid"] else {}})
        # Known engine defect (reported, not asserted: it depends on timing): a request followed by empty
        # lines and the client's EOF while the response is pending leaves the connection open, and a
        # graceful stop then waits its whole shutdown timeout.
        rep["hung_after_eof"] = outcomes["timeout"]
        rep["headline"] = ["cases", "outcomes", "probes", "hung_after_eof"]
        rep.check("server never crashed", alive, f"exit status {target.proc.poll() if target.proc else None}; "
                  f"stderr: {'' if alive else target.stderr_tail(20)}")
        rep.check("every answer is valid HTTP", outcomes["invalid"] == 0,
                  f"{outcomes['invalid']} invalid, e.g. {invalid[:2]}")
        rep.check("normal requests served throughout", probes["failed"] == 0, probes)
        rep.check("a normal request is served afterwards", final_ok)

    return _run_with_target(spec, rep, body)


_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})")

# ---- empty lines around requests ------------------------------------------------------------------------

def _read_until_close(sock: socket.socket, limit_s: float) -> tuple[str, bytes, float]:
    sock.settimeout(0.2)
    t0 = time.monotonic()
    got = bytearray()
    while time.monotonic() - t0 < limit_s:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return "reset", bytes(got), time.monotonic() - t0
        if not chunk:
            return "closed", bytes(got), time.monotonic() - t0
        got += chunk
    return "open", bytes(got), time.monotonic() - t0


def stray_empty_lines(spec: TargetSpec, *, header_timeout_ms: int = 1000, stop_limit_s: float = 3.0) -> dict[str, Any]:
    """Empty lines (CRLF) around requests, which RFC 9112 lets a server skip. (1) A request, two empty lines,
    then the client's EOF while the response is pending: the server must answer and close. (2) A connection
    that sent only empty lines holds no request: a graceful stop must not wait for it."""
    spec = spec.with_options(header_timeout_ms=header_timeout_ms, shutdown_timeout_ms=int(stop_limit_s * 1000) + 1500)
    rep = Report("stray_empty_lines", spec, dict(header_timeout_ms=header_timeout_ms, stop_limit_s=stop_limit_s))
    target = Target(spec).start()
    try:
        with socket.create_connection((HOST, target.port)) as a:
            a.sendall(b"GET /delayed?ms=100 HTTP/1.1\r\nHost: fault\r\n\r\n\r\n\r\n")
            a.shutdown(socket.SHUT_WR)
            how, got, after = _read_until_close(a, header_timeout_ms / 1000 + 1.5)
        rep["request_crlf_eof"] = {"outcome": how, "after_s": round(after, 2), "answered": got.startswith(b"HTTP/1.1 200")}
        rep.check("request + empty lines + EOF: answered, then closed", how == "closed" and got.startswith(b"HTTP/1.1 200"),
                  f"{how} after {after:.1f} s, {len(got)} bytes received")
        idle = socket.create_connection((HOST, target.port))
        idle.sendall(b"\r\n\r\n")
        time.sleep(0.2)
        t0 = time.monotonic()
        rc = target.stop(timeout=30)
        took = time.monotonic() - t0
        idle.close()
        rep["stop_s"] = round(took, 2)
        rep["headline"] = ["request_crlf_eof", "stop_s"]
        rep.check(f"a connection that sent only empty lines does not hold a graceful stop (< {stop_limit_s:g} s)",
                  took < stop_limit_s and rc == 0, f"exit code {rc} after {took:.2f} s")
    finally:
        target.kill()
    return rep.finish()


SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {
    "graceful_stop": graceful_stop,
    "sigkill_worker": sigkill_worker,
    "rolling_restart": rolling_restart,
    "slowloris_heads": slowloris_heads,
    "slowloris_bodies": slowloris_bodies,
    "idle_connections": idle_connections,
    "memory_drift": memory_drift,
    "mutation_fuzz": mutation_fuzz,
    "stray_empty_lines": stray_empty_lines,
}
