"""Differential cases of the middleware classes (issue 14): CORS, GZip, TrustedHost, HTTPSRedirect and
BaseHTTPMiddleware — apps middleware_classes, trustedhost, wwwredirect, httpsredirect."""

from __future__ import annotations

from cases import case

_A = "https://a.example"
_PREFLIGHT = {"Origin": _A, "Access-Control-Request-Method": "POST"}

CASES = [
    # CORS preflights: allowed, disallowed origin / method / header, with allowed headers, regex origin
    case("middleware_classes/preflight-ok", "OPTIONS", "/echo", headers=_PREFLIGHT),
    case("middleware_classes/preflight-headers", "OPTIONS", "/echo",
         headers={**_PREFLIGHT, "Access-Control-Request-Headers": "X-Token, Content-Type"}),
    case("middleware_classes/preflight-bad-origin", "OPTIONS", "/echo",
         headers={**_PREFLIGHT, "Origin": "https://evil.example"}),
    case("middleware_classes/preflight-bad-method", "OPTIONS", "/echo",
         headers={"Origin": _A, "Access-Control-Request-Method": "DELETE"}),
    case("middleware_classes/preflight-bad-header", "OPTIONS", "/echo",
         headers={**_PREFLIGHT, "Access-Control-Request-Headers": "X-Secret"}),
    case("middleware_classes/preflight-all-bad", "OPTIONS", "/nowhere",
         headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT",
                  "Access-Control-Request-Headers": "X-Secret"}),
    case("middleware_classes/preflight-regex", "OPTIONS", "/echo",
         headers={**_PREFLIGHT, "Origin": "https://x.b.example"}),
    case("middleware_classes/options-no-request-method", "OPTIONS", "/echo", headers={"Origin": _A}),
    # CORS simple requests: allowed (credentials: the origin mirrored), regex, not allowed, none
    case("middleware_classes/simple-allowed", "GET", "/small", headers={"Origin": _A}),
    case("middleware_classes/simple-regex", "GET", "/small", headers={"Origin": "https://x.b.example"}),
    case("middleware_classes/simple-not-allowed", "GET", "/small", headers={"Origin": "https://evil.example"}),
    case("middleware_classes/simple-no-origin", "GET", "/small"),
    case("middleware_classes/simple-post", "POST", "/echo", headers={"Origin": _A}, body=b"payload",
         content_type="text/plain"),
    case("middleware_classes/simple-404", "GET", "/missing", headers={"Origin": _A}),
    # GZip: large/small bodies, Accept-Encoding variants, already encoded, excluded types, streamed
    case("middleware_classes/gzip-large", "GET", "/large", headers={"Accept-Encoding": "gzip"}),
    case("middleware_classes/gzip-large-variants", "GET", "/large",
         headers={"Accept-Encoding": "deflate, gzip;q=0.8, br"}),
    case("middleware_classes/gzip-json", "GET", "/rows", headers={"Accept-Encoding": "gzip, deflate"}),
    case("middleware_classes/gzip-small", "GET", "/small", headers={"Accept-Encoding": "gzip"}),
    case("middleware_classes/gzip-not-accepted", "GET", "/large", headers={"Accept-Encoding": "br"}),
    case("middleware_classes/gzip-no-accept", "GET", "/large"),
    case("middleware_classes/gzip-already-encoded", "GET", "/encoded", headers={"Accept-Encoding": "gzip"}),
    case("middleware_classes/gzip-image", "GET", "/image", headers={"Accept-Encoding": "gzip"}),
    case("middleware_classes/gzip-stream", "GET", "/stream", headers={"Accept-Encoding": "gzip"}),
    case("middleware_classes/gzip-stream-identity", "GET", "/stream"),
    case("middleware_classes/gzip-and-cors", "GET", "/rows", headers={"Accept-Encoding": "gzip", "Origin": _A}),
    # BaseHTTPMiddleware: its header, its own answer
    case("middleware_classes/base-refuses", "GET", "/small", headers={"X-Refuse": "1"}),
    # TrustedHost: refused, www redirect; HTTPSRedirect
    case("trustedhost/refused", "GET", "/hello"),
    case("trustedhost/refused-404", "GET", "/missing"),
    case("wwwredirect/redirected", "GET", "/hello?x=1"),
    case("httpsredirect/get", "GET", "/anything?q=1"),
    case("httpsredirect/post", "POST", "/submit", json_body={"a": 1}),
]
