"""Differential cases of the middleware order (issue 14): the native-in-CovetPy middleware (CORS, GZip, TrustedHost,
HTTPSRedirect) added before a Python middleware, so inside it as in FastAPI — apps mworder (CORS + early 401),
mworder_gzip (GZip seen by the middleware), mworder_host / mworder_www (TrustedHost), mworder_https, mworder_mixed
(CORS inside, GZip outside), mworder_sandwich (GZip between two)."""

from __future__ import annotations

from cases import case

_A = "https://a.example"
_AUTH = {"Authorization": "Bearer ok"}

CASES = [
    # CORS inside an auth middleware: its early 401 has no CORS headers; what passes gets them
    case("mworder/preflight-public", "OPTIONS", "/public/items",
         headers={"Origin": _A, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-token"}),
    case("mworder/preflight-public-bad", "OPTIONS", "/public/items",
         headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT",
                  "Access-Control-Request-Headers": "X-Secret"}),
    case("mworder/preflight-public-regex", "OPTIONS", "/public/items",
         headers={"Origin": "https://x.b.example", "Access-Control-Request-Method": "GET"}),
    case("mworder/preflight-private-401", "OPTIONS", "/private",
         headers={"Origin": _A, "Access-Control-Request-Method": "GET"}),
    case("mworder/simple-401", "GET", "/private", headers={"Origin": _A}),
    case("mworder/simple-authorized", "GET", "/private", headers={**_AUTH, "Origin": _A}),
    case("mworder/simple-authorized-regex", "GET", "/private", headers={**_AUTH, "Origin": "https://y.b.example"}),
    case("mworder/simple-authorized-not-allowed", "GET", "/private", headers={**_AUTH, "Origin": "https://evil"}),
    case("mworder/simple-no-origin", "GET", "/private", headers=_AUTH),
    case("mworder/simple-public-post", "POST", "/public/items", headers={"Origin": _A}),
    case("mworder/simple-404", "GET", "/public/missing", headers={"Origin": _A}),
    # GZip inside a Python middleware: the middleware sees the compressed body
    case("mworder_gzip/large", "GET", "/large", headers={"Accept-Encoding": "gzip"}),
    case("mworder_gzip/large-identity", "GET", "/large"),
    case("mworder_gzip/read-body", "GET", "/read", headers={"Accept-Encoding": "gzip, br"}),
    case("mworder_gzip/read-body-identity", "GET", "/read", headers={"Accept-Encoding": "br"}),
    case("mworder_gzip/small", "GET", "/small", headers={"Accept-Encoding": "gzip"}),
    case("mworder_gzip/stream", "GET", "/stream", headers={"Accept-Encoding": "gzip"}),
    case("mworder_gzip/stream-identity", "GET", "/stream"),
    case("mworder_gzip/image", "GET", "/image", headers={"Accept-Encoding": "gzip"}),
    case("mworder_gzip/404", "GET", "/missing", headers={"Accept-Encoding": "gzip"}),
    # TrustedHost inside a logging middleware: it runs for the refused host
    case("mworder_host/refused", "GET", "/hello"),
    case("mworder_host/refused-404", "GET", "/nowhere"),
    case("mworder_www/redirected", "GET", "/hello?x=1"),
    # HTTPSRedirect inside a middleware: the 307 passes through it
    case("mworder_https/redirect", "POST", "/submit?a=1", json_body={"a": 1}),
    case("mworder_https/redirect-404", "GET", "/missing"),
    # CORS inside (Python), GZip outside (native)
    case("mworder_mixed/rows", "GET", "/rows", headers={"Accept-Encoding": "gzip", "Origin": _A}),
    case("mworder_mixed/rows-no-origin", "GET", "/rows", headers={"Accept-Encoding": "gzip"}),
    case("mworder_mixed/small-compressed", "GET", "/small", headers={"Accept-Encoding": "gzip"}),
    case("mworder_mixed/small-identity", "GET", "/small"),
    case("mworder_mixed/preflight", "OPTIONS", "/rows",
         headers={"Origin": _A, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "X-A"}),
    # GZip between two Python middleware: the inner one streams, so even a small body is compressed
    case("mworder_sandwich/small", "GET", "/small", headers={"Accept-Encoding": "gzip"}),
    case("mworder_sandwich/small-identity", "GET", "/small"),
    case("mworder_sandwich/empty", "GET", "/empty", headers={"Accept-Encoding": "gzip"}),
    case("mworder_sandwich/404", "GET", "/missing", headers={"Accept-Encoding": "gzip"}),
]
