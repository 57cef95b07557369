"""Proxy headers, as uvicorn's ``--proxy-headers`` / ``--forwarded-allow-ips``: from a trusted peer (127.0.0.1 by
default) X-Forwarded-Proto sets the scheme and X-Forwarded-For the client that ``request.url``, ``url_for``,
``request.client``, the scope, WebSockets and HTTPSRedirectMiddleware see; other peers' headers change nothing.
Real servers (the compiled engine) asked over real sockets, from 127.0.0.1 and from ::1."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from serverproc import ServerProcess, free_port, require_compiled_engine

from covet import CovetPy, Request, WebSocket
from covet._ws_client import WebSocketTestSession
from covet.middleware.httpsredirect import HTTPSRedirectMiddleware
from covet.server.serve import ThreadedWorker
from covet.testing import TestClient


@pytest.fixture(scope="module", autouse=True)
def compiled_engine() -> None:
    require_compiled_engine()


def describe(request: Request) -> dict[str, Any]:
    return {"url": str(request.url), "base_url": str(request.base_url), "scheme": request.scope["scheme"],
            "client": list(request.client), "scope_client": list(request.scope["client"]),
            "url_for": str(request.url_for("where"))}


def make_app(redirect: bool = False) -> CovetPy:
    app = CovetPy()
    if redirect:
        app.add_middleware(HTTPSRedirectMiddleware)

    @app.get("/where", name="where")
    async def where(request: Request) -> dict[str, Any]:
        return describe(request)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"url": str(websocket.url), "client": list(websocket.client)})
        await websocket.close()

    return app


@pytest.fixture
def served() -> Iterator[Any]:
    workers: list[ThreadedWorker] = []

    def start(app: CovetPy, host: str = "127.0.0.1", **server_options: Any) -> int:
        worker = ThreadedWorker(app, host, 0, **server_options).start()
        workers.append(worker)
        return worker.port

    yield start
    for worker in workers:
        worker.stop()


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.1, 203.0.113.7:5678"}


def get(port: int, target: str = "/where", headers: Optional[dict[str, str]] = None,
        host: str = "127.0.0.1") -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", target, headers={"Host": "example.com", **(headers or {})})
        response = conn.getresponse()
        body = response.read()
        out = {k.lower(): v for k, v in response.getheaders()}
        return response.status, out, json.loads(body) if body.startswith(b"{") else body
    finally:
        conn.close()


def assert_forwarded(body: dict[str, Any]) -> None:
    assert body["url"] == "https://example.com/where" and body["base_url"] == "https://example.com/"
    assert body["url_for"] == "https://example.com/where" and body["scheme"] == "https"
    assert body["client"] == body["scope_client"] == ["203.0.113.7", 5678]


def assert_ignored(body: dict[str, Any], peer: str = "127.0.0.1") -> None:
    assert body["url"] == "http://example.com/where" and body["scheme"] == "http"
    assert body["client"][0] == peer and body["client"][1] > 0


def test_a_trusted_peer_sets_scheme_and_client(served: Any) -> None:
    port = served(make_app())
    status, _, body = get(port, headers=FORWARDED)
    assert status == 200
    assert_forwarded(body)
    # the next request on another connection without the headers: the peer again
    assert_ignored(get(port)[2])


def test_the_next_request_on_the_same_connection_starts_from_the_peer(served: Any) -> None:
    port = served(make_app())
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/where", headers={"Host": "example.com", **FORWARDED})
        assert_forwarded(json.loads(conn.getresponse().read()))
        conn.request("GET", "/where", headers={"Host": "example.com"})
        assert_ignored(json.loads(conn.getresponse().read()))
    finally:
        conn.close()


def test_proxy_headers_off(served: Any) -> None:
    port = served(make_app(), proxy_headers=False)
    assert_ignored(get(port, headers=FORWARDED)[2])


def test_an_untrusted_peer_is_ignored(served: Any) -> None:
    port = served(make_app(), forwarded_allow_ips="10.0.0.0/8, 192.168.0.1")
    assert_ignored(get(port, headers=FORWARDED)[2])


def test_the_environment_names_the_trusted_proxies(served: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8")
    assert_ignored(get(served(make_app()), headers=FORWARDED)[2])
    assert_forwarded(get(served(make_app(), forwarded_allow_ips="127.0.0.0/8"), headers=FORWARDED)[2])  # wins


def test_ipv6_peer(served: Any) -> None:
    app = make_app()
    port = served(app, host="::1")  # 127.0.0.1 trusted by default, ::1 not
    assert_ignored(get(port, headers=FORWARDED, host="::1")[2], peer="::1")
    port = served(app, host="::1", forwarded_allow_ips="::1")
    assert_forwarded(get(port, headers=FORWARDED, host="::1")[2])
    port = served(app, host="::1", forwarded_allow_ips="::/0")
    status, _, body = get(port, headers={"X-Forwarded-For": "[2001:db8::5]:443"}, host="::1")
    assert status == 200 and body["client"] == ["2001:db8::5", 443]


def test_https_redirect_behind_a_tls_proxy(served: Any) -> None:
    port = served(make_app(redirect=True))
    status, _, body = get(port, headers=FORWARDED)
    assert status == 200 and body["url"] == "https://example.com/where"
    status, headers, _ = get(port, headers={"X-Forwarded-Proto": "http"})
    assert status == 307 and headers["location"] == "https://example.com/where"
    status, headers, _ = get(port, headers={"X-Forwarded-Proto": "ws"})  # Starlette's: ws goes to wss
    assert status == 307 and headers["location"] == "wss://example.com/where"
    # an untrusted peer cannot skip the redirect
    port = served(make_app(redirect=True), forwarded_allow_ips="10.0.0.1")
    status, headers, _ = get(port, headers=FORWARDED)
    assert status == 307 and headers["location"] == "https://example.com/where"


def test_websocket_scheme_and_client(served: Any) -> None:
    port = served(make_app())
    with WebSocketTestSession(port, "/ws", headers=[("x-forwarded-proto", "https"),
                                                    ("x-forwarded-for", "203.0.113.7")]) as session:
        message = session.receive_json()
    assert message["url"].startswith("wss://") and message["client"] == ["203.0.113.7", 0]


def test_a_bad_list_is_refused_naming_the_entry(served: Any) -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.1/8' has host bits set: did you mean 10\.0\.0\.0/8\?"):
        served(make_app(), forwarded_allow_ips="127.0.0.1, 10.0.0.1/8")


def test_the_test_client_ignores_proxy_headers_as_starlettes() -> None:
    with TestClient(make_app()) as client:
        body = client.get("/where", headers=FORWARDED).json()
    assert body["url"] == "http://testserver/where" and body["client"] == ["testclient", 50000]


# ---- RFC 7239 Forwarded (uvicorn ignores it: no differential case; the rules are covet's, docs/security.md) ----

RFC7239 = {"Forwarded": 'for=198.51.100.1, for="203.0.113.7:5678";proto=https;by=10.0.0.1'}


def test_forwarded_from_a_trusted_peer(served: Any) -> None:
    port = served(make_app())
    assert_forwarded(get(port, headers=RFC7239)[2])  # the right-most untrusted hop, its proto
    status, _, body = get(port, headers={"Forwarded": 'for="[2001:db8:cafe::17]:4711";proto=wss'})
    assert status == 200 and body["client"] == ["2001:db8:cafe::17", 4711] and body["scheme"] == "wss"
    # the proxies' own hops (10.0.0.0/8 trusted too) are skipped
    port = served(make_app(), forwarded_allow_ips="127.0.0.1, 10.0.0.0/8")
    status, _, body = get(port, headers={"Forwarded": "for=198.51.100.1, for=203.0.113.7:5678;proto=https, "
                                                      "for=10.1.2.3"})
    # an unquoted host:port is malformed (RFC 7239 needs quotes around ':'): that hop is unknown, and nothing to
    # the left of an unknown hop is believed
    assert status == 200 and body["client"][0] == "127.0.0.1"
    status, _, body = get(port, headers={"Forwarded": 'for=198.51.100.1, for="203.0.113.7:5678";proto=https, '
                                                      "for=10.1.2.3"})
    assert_forwarded(body)


@pytest.mark.parametrize("value", ["for=unknown", 'for="_x:_y"', "for=example.com", 'for="2001:db8::1"', "for",
                                   'for="unterminated', "for=1.2.3.4;for=5.6.7.8", "for=1.2.3.4 garbage",
                                   "for=1.2.3.4;proto=https;proto=http", "for=198.51.100.1, for=unknown"])
def test_forwarded_without_an_address_keeps_the_peer(served: Any, value: str) -> None:
    port = served(make_app())
    status, _, body = get(port, headers={"Forwarded": value})
    assert status == 200
    assert_ignored(body)


def test_an_obfuscated_client_keeps_the_peer_but_its_proto_counts(served: Any) -> None:
    status, _, body = get(served(make_app()), headers={"Forwarded": "for=_hidden;proto=https"})
    assert status == 200 and body["client"][0] == "127.0.0.1" and body["scheme"] == "https"


def test_x_forwarded_headers_take_precedence_over_forwarded(served: Any) -> None:
    port = served(make_app())
    body = get(port, headers={"Forwarded": "for=198.51.100.1;proto=http", **FORWARDED})[2]
    assert_forwarded(body)
    body = get(port, headers={"Forwarded": "for=198.51.100.1", "X-Forwarded-Proto": "https"})[2]
    assert body["client"] == ["198.51.100.1", 0] and body["scheme"] == "https"


def test_forwarded_from_an_untrusted_peer_is_ignored(served: Any) -> None:
    port = served(make_app(), forwarded_allow_ips="10.0.0.0/8")
    assert_ignored(get(port, headers=RFC7239)[2])


# ---- the command line -----------------------------------------------------------------------------------------

APP = textwrap.dedent("""
    from covet import CovetPy, Request

    app = CovetPy()

    @app.get("/where", name="where")
    async def where(request: Request):
        return {"url": str(request.url), "base_url": str(request.base_url), "scheme": request.scope["scheme"],
                "client": list(request.client), "scope_client": list(request.scope["client"]),
                "url_for": str(request.url_for("where"))}
    """)


def run_covet(tmp_path: Path, *args: str, env: Optional[dict[str, str]] = None) -> ServerProcess:
    (tmp_path / "app.py").write_text(APP)
    return ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--host", "127.0.0.1",
                          "--port", str(free_port()), *args], cwd=tmp_path, env=env)


@pytest.mark.parametrize(("args", "env", "forwarded"), [
    ([], None, True),
    (["--proxy-headers"], None, True),
    (["--no-proxy-headers"], None, False),
    (["--forwarded-allow-ips", "10.0.0.0/8"], None, False),
    (["--forwarded-allow-ips", "*"], None, True),
    ([], {"FORWARDED_ALLOW_IPS": "10.0.0.0/8"}, False),
    (["--forwarded-allow-ips", "127.0.0.1", "--workers", "2"], {"FORWARDED_ALLOW_IPS": "10.0.0.0/8"}, True),
])
def test_covet_run(tmp_path: Path, args: list[str], env: Optional[dict[str, str]], forwarded: bool) -> None:
    server = run_covet(tmp_path, *args, env=env)
    try:
        status, _, body = get(server.port, headers=FORWARDED)
        assert status == 200, server.lines
        if forwarded:
            if "*" in args:  # every entry trusted: the left-most
                assert body["client"] == ["198.51.100.1", 0]
            else:
                assert_forwarded(body)
        else:
            assert_ignored(body)
    finally:
        server.stop()


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--forwarded-allow-ips", "proxy.internal"], None,
     "covet: --forwarded-allow-ips: 'proxy.internal' is not an IP address"),
    ([], {"FORWARDED_ALLOW_IPS": "10.0.0.0/40"},
     "covet: FORWARDED_ALLOW_IPS (environment): '10.0.0.0/40' has no valid prefix length (0 to 32)"),
])
def test_covet_run_refuses_a_bad_list_in_one_line(tmp_path: Path, args: list[str], env: Optional[dict[str, str]],
                                                  message: str) -> None:
    (tmp_path / "app.py").write_text(APP)
    result = subprocess.run([sys.executable, "-m", "covet", "run", "app:app", "--port", "0", *args], cwd=tmp_path,
                            env={**os.environ, **(env or {})}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
