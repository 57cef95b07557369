"""Framework protections (issue 17) attacked through real sockets against the compiled engine: security headers,
CSRF (cross-origin posts, missing and wrong tokens), a disallowed CORS origin, forged X-Forwarded-For from an
untrusted peer, PROXY protocol v1/v2 on the listener (both reactor backends), and header injection through each
API that sets response headers. Every refusal is followed by a request that must still be served."""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
from collections.abc import Iterator
from typing import Any, Optional

import pytest
from serverproc import require_compiled_engine

from covet import CovetPy, Request
from covet.middleware.cors import CORSMiddleware
from covet.middleware.security import CSRFMiddleware, SecurityHeadersMiddleware, csp_nonce, csrf_input, csrf_token
from covet.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from covet.server.serve import ThreadedWorker

SECRET = "s3cret-s3cret-s3cret-s3cret-0123"


@pytest.fixture(scope="module", autouse=True)
def compiled_engine() -> None:
    require_compiled_engine()


@pytest.fixture
def served() -> Iterator[Any]:
    workers: list[ThreadedWorker] = []

    def start(app: Any, **server_options: Any) -> int:
        worker = ThreadedWorker(app, "127.0.0.1", 0, **server_options).start()
        workers.append(worker)
        return worker.port

    yield start
    for worker in workers:
        worker.stop()


def exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Sends `data` on a new connection and reads until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


class Reply:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
        self.headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.append((name.lower(), value.strip()))

    def header(self, name: str) -> Optional[str]:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name.lower()]

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def request(port: int, method: str = "GET", path: str = "/", headers: Optional[dict[str, str]] = None,
            body: bytes = b"", prefix: bytes = b"") -> Reply:
    lines = [f"{method} {path} HTTP/1.1", "Host: app.example", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return Reply(exchange(port, prefix + ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body))


def still_serves(port: int) -> None:
    assert request(port, path="/ping").status == 200


# ------------------------------------------------------------------------------------------ security headers


def headers_app(**options: Any) -> CovetPy:
    app = CovetPy()
    app.add_middleware(SecurityHeadersMiddleware, **options)

    @app.get("/ping")
    async def ping() -> PlainTextResponse:
        return PlainTextResponse("pong")

    @app.get("/framed")
    async def framed() -> PlainTextResponse:
        return PlainTextResponse("mine", headers={"X-Frame-Options": "SAMEORIGIN"})

    @app.get("/page")
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(f'<script nonce="{csp_nonce(request)}">1</script>')

    return app


def test_security_headers_defaults_on_plain_http(served: Any) -> None:
    port = served(headers_app())
    r = request(port, path="/ping")
    assert r.status == 200
    assert r.header("x-content-type-options") == "nosniff"
    assert r.header("referrer-policy") == "strict-origin-when-cross-origin"
    assert r.header("x-frame-options") == "DENY"
    assert r.header("cross-origin-opener-policy") == "same-origin"
    assert r.header("strict-transport-security") is None  # never on plain HTTP
    assert r.header("content-security-policy") is None  # no policy configured


def test_hsts_on_https_responses(served: Any) -> None:
    # 127.0.0.1 is a trusted proxy by default: its X-Forwarded-Proto: https makes the request an HTTPS one.
    port = served(headers_app(hsts_max_age=600, hsts_include_subdomains=True))
    r = request(port, path="/ping", headers={"X-Forwarded-Proto": "https"})
    assert r.header("strict-transport-security") == "max-age=600; includeSubDomains"
    # an untrusted peer's X-Forwarded-Proto does not count
    port = served(headers_app(), forwarded_allow_ips="10.0.0.1")
    assert request(port, path="/ping", headers={"X-Forwarded-Proto": "https"}).header(
        "strict-transport-security") is None


def test_the_handlers_own_header_wins(served: Any) -> None:
    port = served(headers_app())
    r = request(port, path="/framed")
    assert r.all("x-frame-options") == ["SAMEORIGIN"]
    assert r.header("x-content-type-options") == "nosniff"


def test_csp_nonce_is_fresh_per_request_and_given_to_the_handler(served: Any) -> None:
    port = served(headers_app(content_security_policy="script-src 'self' 'nonce-{nonce}'; object-src 'none'"))
    nonces = []
    for _ in range(2):
        r = request(port, path="/page")
        policy = r.header("content-security-policy")
        assert policy is not None
        match = re.fullmatch(r"script-src 'self' 'nonce-([A-Za-z0-9_-]{22})'; object-src 'none'", policy)
        assert match, policy
        assert f'nonce="{match[1]}"'.encode() in r.body
        nonces.append(match[1])
    assert nonces[0] != nonces[1]


def test_security_headers_over_http2(served: Any) -> None:
    import h2.config
    import h2.connection
    import h2.events

    port = served(headers_app())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "GET"), (":path", "/ping"), (":scheme", "http"), (":authority", "x")],
                          end_stream=True)
        sock.sendall(conn.data_to_send())
        headers: dict[str, str] = {}
        ended = False
        while not ended:
            data = sock.recv(65536)
            assert data
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    headers = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            sock.sendall(conn.data_to_send())
    assert headers[":status"] == "200"
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"


def test_static_csp_and_bad_options(served: Any) -> None:
    port = served(headers_app(content_security_policy="default-src 'self'", frame_options=""))
    r = request(port, path="/ping")
    assert r.header("content-security-policy") == "default-src 'self'"
    assert r.header("x-frame-options") is None
    for options, message in (({"frame_options": "ALLOW-FROM x"}, "frame_options"),
                             ({"content_security_policy": "a\r\nb"}, "CR, LF"),
                             ({"hsts_preload": True}, "hsts_preload")):
        with pytest.raises(ValueError, match=message):
            served(headers_app(**options))


# ------------------------------------------------------------------------------------------------ CSRF


def csrf_app(**options: Any) -> CovetPy:
    app = CovetPy()
    app.add_middleware(CSRFMiddleware, secret=SECRET, **options)

    @app.get("/ping")
    async def ping() -> PlainTextResponse:
        return PlainTextResponse("pong")

    @app.get("/form")
    async def form(request: Request) -> HTMLResponse:
        return HTMLResponse(f'<form method="post">{csrf_input(request)}</form>')

    @app.post("/transfer")
    async def transfer(request: Request) -> JSONResponse:
        return JSONResponse({"done": True, "token": csrf_token(request)})

    @app.post("/hooks/stripe")
    async def hook() -> PlainTextResponse:
        return PlainTextResponse("hooked")

    return app


def get_token(port: int) -> tuple[str, str]:
    """(the cookie header value to send back, the token in the form)."""
    r = request(port, path="/form")
    assert r.status == 200
    cookie = r.header("set-cookie")
    assert cookie is not None and cookie.startswith("csrftoken=") and "SameSite=Lax" in cookie
    pair = cookie.split(";")[0]
    match = re.search(r'name="csrf_token" value="([^"]+)"', r.text())
    assert match is not None
    assert pair == f"csrftoken={match[1]}"
    return pair, match[1]


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_csrf_form_post_with_the_token_passes(served: Any) -> None:
    port = served(csrf_app())
    cookie, token = get_token(port)
    r = request(port, "POST", "/transfer", {**FORM, "Cookie": cookie, "Origin": "http://app.example",
                                            "Sec-Fetch-Site": "same-origin"},
                f"amount=10&csrf_token={token}".encode())
    assert r.status == 200, r.text()
    assert json.loads(r.body) == {"done": True, "token": token}
    assert r.header("set-cookie") is None  # the cookie stands
    # a multipart form and the header carry it too
    boundary = "XyZ"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"amount\"\r\n\r\n10\r\n--{boundary}--\r\n").encode()
    assert request(port, "POST", "/transfer", {"Content-Type": f"multipart/form-data; boundary={boundary}",
                                               "Cookie": cookie}, body).status == 200
    assert request(port, "POST", "/transfer", {"X-CSRF-Token": token, "Cookie": cookie,
                                               "Content-Type": "application/json"}, b"{}").status == 200


def test_csrf_post_without_a_token_is_refused(served: Any) -> None:
    port = served(csrf_app())
    r = request(port, "POST", "/transfer", FORM, b"amount=10")
    assert r.status == 403
    assert "csrftoken cookie is missing" in r.text()
    cookie, _ = get_token(port)
    r = request(port, "POST", "/transfer", {**FORM, "Cookie": cookie}, b"amount=10")
    assert r.status == 403 and "the token is missing" in r.text()
    still_serves(port)


def test_csrf_post_with_a_wrong_token_is_refused(served: Any) -> None:
    port = served(csrf_app())
    cookie, _token = get_token(port)
    _, other_token = get_token(port)
    r = request(port, "POST", "/transfer", {**FORM, "Cookie": cookie}, f"csrf_token={other_token}".encode())
    assert r.status == 403 and "does not match" in r.text()
    # a cookie the attacker made up (same value in cookie and form, but not signed with the secret)
    forged = "AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    r = request(port, "POST", "/transfer", {**FORM, "Cookie": f"csrftoken={forged}"}, f"csrf_token={forged}".encode())
    assert r.status == 403 and "not one this server signed" in r.text()
    still_serves(port)


def test_csrf_cross_origin_posts_are_refused(served: Any) -> None:
    port = served(csrf_app(trusted_origins=["https://partner.example"]))
    cookie, token = get_token(port)
    good = {**FORM, "Cookie": cookie}
    body = f"csrf_token={token}".encode()
    r = request(port, "POST", "/transfer", {**good, "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
                body)
    assert r.status == 403 and "Sec-Fetch-Site: cross-site" in r.text() and "https://evil.example" in r.text()
    r = request(port, "POST", "/transfer", {**good, "Origin": "https://evil.example"}, body)
    assert r.status == 403 and "Origin https://evil.example does not match the Host app.example" in r.text()
    r = request(port, "POST", "/transfer", {**good, "Origin": "null"}, body)
    assert r.status == 403
    # a trusted origin passes, so does a request from no browser at all (no Origin, no Sec-Fetch-Site)
    assert request(port, "POST", "/transfer", {**good, "Sec-Fetch-Site": "cross-site",
                                               "Origin": "https://partner.example"}, body).status == 200
    assert request(port, "POST", "/transfer", good, body).status == 200
    # safe methods are never refused
    cross = {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
    assert request(port, "GET", "/ping", cross).status == 200


def test_csrf_exemptions(served: Any) -> None:
    port = served(csrf_app(exempt_paths=["/hooks/*"]))
    assert request(port, "POST", "/hooks/stripe", FORM, b"x=1").status == 200
    # a bearer-token API call (no cookie) is exempt; with a cookie it is a browser session again
    assert request(port, "POST", "/transfer", {**FORM, "Authorization": "Bearer abc"}, b"x=1").status == 200
    assert request(port, "POST", "/transfer", {**FORM, "Authorization": "Bearer abc", "Cookie": "a=b"},
                   b"x=1").status == 403
    port = served(csrf_app(exempt_bearer=False))
    assert request(port, "POST", "/transfer", {**FORM, "Authorization": "Bearer abc"}, b"x=1").status == 403


def test_csrf_bad_configuration() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        CSRFMiddleware(None, secret="short")


# ----------------------------------------------------------------------------------------------- CORS


def test_cors_disallowed_origin_gets_no_allow_headers(served: Any) -> None:
    app = CovetPy()
    app.add_middleware(CORSMiddleware, allow_origins=["https://good.example"], allow_methods=["GET", "POST"])

    @app.get("/ping")
    async def ping() -> PlainTextResponse:
        return PlainTextResponse("pong")

    port = served(app)
    r = request(port, "GET", "/ping", {"Origin": "https://evil.example"})
    assert r.status == 200
    assert not [n for n, _ in r.headers if n.startswith("access-control-allow-")]
    pre = request(port, "OPTIONS", "/ping", {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert pre.status == 400 and b"Disallowed CORS origin" in pre.body
    # as Starlette, the refusal lists the allowed methods, but never allows the origin (nor credentials)
    assert pre.header("access-control-allow-origin") is None
    assert pre.header("access-control-allow-credentials") is None
    good = request(port, "GET", "/ping", {"Origin": "https://good.example"})
    assert good.header("access-control-allow-origin") == "https://good.example"


# ------------------------------------------------------------------------------------- X-Forwarded-For


def client_app() -> CovetPy:
    app = CovetPy()

    @app.get("/ping")
    async def ping() -> PlainTextResponse:
        return PlainTextResponse("pong")

    @app.get("/client")
    async def client(request: Request) -> JSONResponse:
        assert request.client is not None
        return JSONResponse({"client": request.client.host, "scope": request.scope["client"][0],
                             "scheme": request.url.scheme})

    return app


def test_forged_x_forwarded_for_from_an_untrusted_peer_is_ignored(served: Any) -> None:
    port = served(client_app(), forwarded_allow_ips="10.0.0.0/8")
    r = request(port, path="/client", headers={"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"})
    assert json.loads(r.body) == {"client": "127.0.0.1", "scope": "127.0.0.1", "scheme": "http"}
    trusted = served(client_app(), forwarded_allow_ips="127.0.0.1")
    r = request(trusted, path="/client", headers={"X-Forwarded-For": "1.2.3.4"})
    assert json.loads(r.body)["client"] == "1.2.3.4"


# ------------------------------------------------------------------------------------------- PROXY protocol

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(client: str, port: int, command: int = 1) -> bytes:
    block = socket.inet_aton(client) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", port, 8000)
    return V2_SIGNATURE + bytes([0x20 | command, 0x11]) + struct.pack("!H", len(block)) + block


@pytest.fixture(params=["uring", "asio"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_proxy_protocol_v1_and_v2_set_the_client(served: Any, backend: str) -> None:
    port = served(client_app(), backend=backend, proxy_protocol="127.0.0.1", forwarded_allow_ips="10.0.0.1")
    r = request(port, path="/client", prefix=b"PROXY TCP4 203.0.113.9 127.0.0.1 40001 8000\r\n")
    assert r.status == 200, r.raw
    assert json.loads(r.body)["client"] == "203.0.113.9"
    r = request(port, path="/client", prefix=v2_header("198.51.100.7", 5555))
    assert json.loads(r.body)["scope"] == "198.51.100.7"
    r = request(port, path="/client", prefix=b"PROXY TCP6 2001:db8::5 ::1 1 2\r\n")
    assert json.loads(r.body)["client"] == "2001:db8::5"
    # LOCAL (a health check from the balancer itself): the connection's own address
    r = request(port, path="/client", prefix=v2_header("198.51.100.7", 5555, command=0))
    assert json.loads(r.body)["client"] == "127.0.0.1"


def test_proxy_protocol_header_split_across_reads(served: Any, backend: str) -> None:
    import time
    port = served(client_app(), backend=backend, proxy_protocol="127.0.0.0/8")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        header = b"PROXY TCP4 203.0.113.10 127.0.0.1 40001 8000\r\n"
        sock.sendall(header[:9])
        time.sleep(0.05)
        sock.sendall(header[9:] + b"GET /client HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert json.loads(Reply(data).body)["client"] == "203.0.113.10"


def test_a_trusted_peer_without_a_proxy_header_is_refused(served: Any, backend: str, caplog: Any) -> None:
    port = served(client_app(), backend=backend, proxy_protocol="127.0.0.1")
    assert exchange(port, b"GET /client HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") == b""
    assert exchange(port, b"PROXY TCP4 not-an-ip 127.0.0.1 1 2\r\nGET / HTTP/1.1\r\n\r\n") == b""
    assert exchange(port, b"PROXY TCP4 1.2.3.4 127.0.0.1 1 2" + b" " * 200) == b""  # no CRLF within 107 bytes
    assert exchange(port, V2_SIGNATURE + b"\x21\x11\xff\xff") == b""  # a length over the bound
    r = request(port, path="/client", prefix=b"PROXY TCP4 203.0.113.9 127.0.0.1 40001 8000\r\n")
    assert r.status == 200


def test_an_untrusted_peers_proxy_header_is_garbage(served: Any, backend: str) -> None:
    port = served(client_app(), backend=backend, proxy_protocol="10.0.0.0/8")
    r = request(port, path="/client", prefix=b"PROXY TCP4 203.0.113.9 127.0.0.1 40001 8000\r\n")
    assert r.status == 400 and b"PROXY protocol header" in r.body, r.raw
    r = request(port, path="/client", prefix=v2_header("198.51.100.7", 5555))
    assert r.status == 400
    # its plain requests are served, with its own address
    assert json.loads(request(port, path="/client").body)["client"] == "127.0.0.1"


def test_covet_run_proxy_protocol(tmp_path: Any) -> None:
    import sys

    from serverproc import ServerProcess

    (tmp_path / "app.py").write_text(
        "from covet import CovetPy, Request\n"
        "app = CovetPy()\n"
        "@app.get('/client')\n"
        "async def client(request: Request):\n"
        "    return {'client': request.client.host}\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--host", "127.0.0.1", "--port", str(port),
                            "--proxy-protocol", "127.0.0.1"], cwd=tmp_path)
    try:
        r = request(server.port, path="/client", prefix=v2_header("192.0.2.77", 4242))
        assert r.status == 200, server.lines
        assert json.loads(r.body) == {"client": "192.0.2.77"}
        assert exchange(server.port, b"GET /client HTTP/1.1\r\nHost: x\r\n\r\n") == b""  # no header: refused
    finally:
        server.stop()


def test_proxy_protocol_bad_list_is_refused() -> None:
    with pytest.raises(ValueError, match="proxy_protocol"):
        ThreadedWorker(client_app(), "127.0.0.1", 0, proxy_protocol="not-an-ip").start()


# ------------------------------------------------------------------------------------------ header injection


def injection_app() -> CovetPy:
    app = CovetPy()

    @app.get("/ping")
    async def ping() -> PlainTextResponse:
        return PlainTextResponse("pong")

    @app.get("/value")
    async def value() -> Response:
        return PlainTextResponse("x", headers={"X-Evil": "a\r\nSet-Cookie: session=attacker"})

    @app.get("/lf")
    async def lf() -> Response:
        return PlainTextResponse("x", headers={"X-Evil": "a\nInjected: 1"})

    @app.get("/nul")
    async def nul() -> Response:
        return PlainTextResponse("x", headers={"X-Evil": "a\x00b"})

    @app.get("/name")
    async def name() -> Response:
        return PlainTextResponse("x", headers={"X-Evil\r\nInjected": "1"})

    @app.get("/content-type")
    async def content_type() -> Response:
        return Response("x", media_type="text/html\r\nSet-Cookie: session=attacker")

    @app.get("/stream")
    async def stream() -> Response:
        async def chunks() -> Any:
            yield b"x"
        return StreamingResponse(chunks(), headers={"X-Evil": "a\r\nInjected: 1"})

    return app


def assert_refused(r: Reply) -> None:
    assert r.status == 500, r.raw
    assert b"Injected" not in r.raw and b"attacker" not in r.raw
    assert not [n for n, _ in r.headers if n in ("set-cookie", "injected")]


@pytest.mark.parametrize("path", ["/value", "/lf", "/nul", "/name", "/content-type", "/stream"])
def test_header_injection_from_python_handlers(served: Any, path: str, caplog: Any) -> None:
    port = served(injection_app())
    with caplog.at_level(logging.ERROR):
        assert_refused(request(port, path=path))
    logged = "\n".join(record.getMessage() + str(record.exc_info and record.exc_info[1]) for record in caplog.records)
    assert "X-Evil" in logged or "Content-Type" in logged or "header" in logged, logged
    still_serves(port)


def hosted_asgi_app(scope: Any, receive: Any, send: Any) -> Any:
    async def run() -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/ping":
            headers = [(b"content-type", b"text/plain")]
        elif scope["path"] == "/nul":
            headers = [(b"x-evil", b"a\x00b")]
        else:
            headers = [(b"x-evil", b"a\r\nSet-Cookie: session=attacker")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"pong"})
    return run()


@pytest.mark.parametrize("path", ["/crlf", "/nul"])
def test_header_injection_from_a_hosted_asgi_app(served: Any, path: str) -> None:
    port = served(hosted_asgi_app, lifespan=False)
    assert_refused(request(port, path=path))
    still_serves(port)
