"""Bursts of refused requests (issue 12, defect 1) against the native server, on both backends.

Each burst opens 100, 500 or 2,000 connections whose request is refused (400, 408, 413, 414, 431, 501 or 505)
and keeps them open unread. Every connection must get its refusal, a normal request must be answered within
100 ms during and after the burst, and the server must exit with code 0 within 5 s of SIGTERM.
"""
from __future__ import annotations

import pytest

from refusal_burst import HEADER_TIMEOUT_MS, SIZES, STATUSES, run_burst_checks

SHUTDOWN_LIMIT = 5.0


@pytest.mark.covet_timeout(60)
@pytest.mark.parametrize("count", SIZES)
@pytest.mark.parametrize("status", STATUSES)
def test_refusal_burst_then_served_and_clean_exit(make_server, status, count):
    srv = make_server("--header-timeout-ms", HEADER_TIMEOUT_MS, "--max-connections", 10000, threads=2)
    run_burst_checks(srv.port, status, count, path="/plaintext")
    took = srv.stop()
    assert took < SHUTDOWN_LIMIT, f"SIGTERM took {took:.1f} s to end the server"
