"""Differential cases of proxy headers (issue 14/15, uvicorn's --proxy-headers and --forwarded-allow-ips): both
servers listen on 127.0.0.1, the address uvicorn (and CovetPy) trust by default, so the test plays the proxy.
Apps: proxy_app (default trust), proxy_untrusted_app (only 10.0.0.0/8: headers ignored), proxy_chain_app
(127.0.0.1, 10.0.0.0/8, ::1), proxy_any_app ("*"), proxy_off_app (--no-proxy-headers), proxy_redirect_app
(HTTPSRedirectMiddleware behind a TLS-terminating proxy)."""

from __future__ import annotations

from cases import Case, case

_W = "/where/a?q=1"
_HTTPS = {"X-Forwarded-Proto": "https"}
_CLIENT = {"X-Forwarded-For": "203.0.113.7"}
_BOTH = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
_CHAIN = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7, 10.1.2.3, ::1"}


def _each(app: str, what: str, headers: dict[str, str]) -> Case:
    return case(f"{app}/{what}", "GET", _W, headers=headers)


CASES: list[Case] = [
    # trusted by default (127.0.0.1): the scheme and client come from the headers
    _each("proxy", "no-headers", {}),
    _each("proxy", "proto-https", _HTTPS),
    _each("proxy", "proto-http", {"X-Forwarded-Proto": "http"}),
    _each("proxy", "proto-wss-on-http", {"X-Forwarded-Proto": "wss"}),
    _each("proxy", "proto-unknown-ignored", {"X-Forwarded-Proto": "ftp"}),
    _each("proxy", "proto-list-ignored", {"X-Forwarded-Proto": "https, http"}),
    _each("proxy", "proto-padded", {"X-Forwarded-Proto": " https "}),
    _each("proxy", "for", _CLIENT),
    _each("proxy", "for-with-port", {"X-Forwarded-For": "203.0.113.7:5678"}),
    _each("proxy", "for-ipv6-bracketed-port", {"X-Forwarded-For": "[2001:db8::5]:443"}),
    _each("proxy", "for-ipv6", {"X-Forwarded-For": "2001:db8::5"}),
    _each("proxy", "for-list-right-most", {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}),
    _each("proxy", "for-right-most-is-trusted", {"X-Forwarded-For": "203.0.113.7, 127.0.0.1"}),
    _each("proxy", "for-all-trusted-left-most", {"X-Forwarded-For": "127.0.0.1, 127.0.0.1"}),
    _each("proxy", "for-empty", {"X-Forwarded-For": ""}),
    _each("proxy", "for-trailing-empty-entry", {"X-Forwarded-For": "203.0.113.7, "}),
    _each("proxy", "for-not-an-address", {"X-Forwarded-For": "unknown"}),
    _each("proxy", "both", _BOTH),
    # only 10.0.0.0/8 trusted: the test's 127.0.0.1 is not, its headers change nothing
    _each("proxy_untrusted", "proto-https", _HTTPS),
    _each("proxy_untrusted", "both", _BOTH),
    # a chain of trusted proxies
    _each("proxy_chain", "chain", _CHAIN),
    _each("proxy_chain", "chain-all-trusted", {"X-Forwarded-For": "10.9.9.9, 10.1.2.3"}),
    _each("proxy_chain", "both", _BOTH),
    # "*": every entry trusted, the left-most is the client
    _each("proxy_any", "chain", _CHAIN),
    _each("proxy_any", "both", _BOTH),
    # --no-proxy-headers
    _each("proxy_off", "both", _BOTH),
    # HTTPSRedirectMiddleware: https at the proxy is not redirected; plain http (said or not) is
    case("proxy_redirect/proto-https-served", "GET", "/page/a?q=1", headers=_HTTPS),
    case("proxy_redirect/proto-http-redirected", "GET", "/page/a?q=1", headers={"X-Forwarded-Proto": "http"}),
    case("proxy_redirect/no-proto-redirected", "GET", "/page/a?q=1"),
    case("proxy_redirect/proto-ws-redirected-to-wss", "GET", "/page/a?q=1", headers={"X-Forwarded-Proto": "ws"}),
    case("proxy_redirect/proto-wss-served", "GET", "/page/a", headers={"X-Forwarded-Proto": "wss"}),
]
