"""Differential cases for issue 14's streaming back-pressure and disconnect detection (apps/streaming_app.py):
streams larger than the engine's send buffer arrive whole and identical, and `is_disconnected()` is False
while the client is there."""

from __future__ import annotations

from cases import Case, case

_A = "streaming"

CASES: list[Case] = [
    case(f"{_A}/big", "GET", "/big"),
    case(f"{_A}/big-async", "GET", "/big-async"),
    case(f"{_A}/ticks", "GET", "/ticks"),
    case(f"{_A}/disconnected", "GET", "/disconnected"),
    case(f"{_A}/json-lines", "GET", "/lines"),
]
