"""Differential cases of ``request.stream()`` (issue 14: "request.stream() ... missing"): request_stream_app.py."""

from __future__ import annotations

from cases import Case, case

_SMALL = b"hello stream"
_LARGE = bytes(range(256)) * 800  # 200 KiB: several chunks under both servers (covet streams it: > 64 KiB)

CASES: list[Case] = [
    case("request_stream/small", "POST", "/chunks", body=_SMALL, content_type="application/octet-stream"),
    case("request_stream/empty", "POST", "/chunks"),
    case("request_stream/large", "POST", "/chunks", body=_LARGE, content_type="application/octet-stream"),
    case("request_stream/body-then-stream", "POST", "/body-then-stream", body=_SMALL,
         content_type="application/octet-stream"),
    case("request_stream/body-then-stream-empty", "POST", "/body-then-stream"),
    case("request_stream/stream-twice", "POST", "/stream-then-stream", body=_SMALL),
    case("request_stream/stream-then-body", "POST", "/stream-then-body", body=_SMALL),
    case("request_stream/stream-then-body-large", "POST", "/stream-then-body", body=_LARGE),
    case("request_stream/stream-then-json", "POST", "/stream-then-json", json_body={"a": 1}),
    case("request_stream/stream-then-body-500", "POST", "/stream-then-body-unhandled", body=_SMALL),
    case("request_stream/first-chunk-then-body", "POST", "/first-chunk-then-body", body=_SMALL),
    case("request_stream/first-chunk-then-body-large", "POST", "/first-chunk-then-body", body=_LARGE),
]
