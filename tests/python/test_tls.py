"""TLS and HTTP/2 from Python: the options (uvicorn's ssl_* names), the CLI and supervisor flags, and real
HTTPS / HTTP/2 requests through the compiled engine (request.scheme, request.tls, request.scope)."""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import fake_native
import pytest

import covet
from covet.tls import TransportOptions

# ---- options, without a server -------------------------------------------------------------------


def test_split_takes_the_tls_options_and_leaves_the_rest() -> None:
    opts, rest = TransportOptions.split({"ssl_certfile": "c.pem", "ssl_keyfile": "k.pem", "http2": False,
                                         "backend": "asio"})
    assert (opts.ssl_certfile, opts.ssl_keyfile, opts.http2, opts.tls) == ("c.pem", "k.pem", False, True)
    assert rest == {"backend": "asio"}


@pytest.mark.parametrize("ca, reqs, expected", [
    (None, None, "none"), ("ca.pem", None, "required"), ("ca.pem", 1, "optional"), ("ca.pem", "required", "required"),
    ("ca.pem", 0, "none"),
])
def test_client_auth_follows_ssl_cert_reqs_and_ca_certs(ca: Any, reqs: Any, expected: str) -> None:
    assert TransportOptions(ssl_certfile="c", ssl_keyfile="k", ssl_ca_certs=ca, ssl_cert_reqs=reqs).client_auth() == expected


@pytest.mark.parametrize("options, message", [
    ({"ssl_certfile": "c.pem"}, "both ssl_certfile and ssl_keyfile"),
    ({"ssl_ca_certs": "ca.pem"}, "needs ssl_certfile"),
    ({"ssl_certfile": "c", "ssl_keyfile": "k", "ssl_cert_reqs": 2}, "needs ssl_ca_certs"),
    ({"ssl_certfile": "c", "ssl_keyfile": "k", "ssl_cert_reqs": 7}, "ssl_cert_reqs must be"),
])
def test_inconsistent_options_are_refused_with_the_fix(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TransportOptions(**options).validate()


def test_worker_processes_get_the_tls_flags() -> None:
    from covet.server.supervisor import WorkerOptions, worker_command

    transport = TransportOptions(ssl_certfile="/c.pem", ssl_keyfile="/k.pem", ssl_ca_certs="/ca.pem", http2=False)
    command = worker_command(WorkerOptions(app="main:app", transport=transport))
    for flag, value in (("--ssl-certfile", "/c.pem"), ("--ssl-keyfile", "/k.pem"), ("--ssl-ca-certs", "/ca.pem")):
        assert command[command.index(flag) + 1] == value
    assert "--no-http2" in command and "--http2" not in command


def test_the_cli_parses_the_tls_flags_into_the_same_options() -> None:
    from covet.server import cli

    args = cli._parser().parse_args(["run", "main:app", "--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem",
                                     "--ssl-ca-certs", "ca.pem", "--ssl-cert-reqs", "1", "--no-http2"])
    opts = cli._transport(args)
    assert (opts.ssl_certfile, opts.ssl_keyfile, opts.ssl_ca_certs, opts.client_auth(), opts.http2) == \
        ("c.pem", "k.pem", "ca.pem", "optional", False)
    with pytest.raises(SystemExit, match="ssl_keyfile"):
        cli._transport(cli._parser().parse_args(["run", "main:app", "--ssl-certfile", "c.pem"]))


# ---- real HTTPS and HTTP/2 through the compiled engine ---------------------------------------------

def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate, all from the CA."""
    if not shutil.which("openssl"):
        pytest.skip("the openssl command is needed to make test certificates")
    d = tmp_path_factory.mktemp("certs")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-subj", "/CN=Covet Test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for name, ext in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}-cn",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    return d


def _app() -> covet.CovetPy:
    app = covet.CovetPy()

    @app.get("/who")
    async def who(request: covet.Request) -> dict[str, Any]:
        tls = request.tls
        return {"scheme": request.scheme, "url": str(request.url), "http_version": request.http_version,
                "scope_scheme": request.scope["scheme"], "alpn": tls and tls["alpn_protocol"],
                "version": tls and tls["tls_version"], "client": tls and tls["client_cert_common_name"],
                "has_tls_extension": "tls" in request.scope["extensions"]}

    return app


@pytest.fixture
def real_engine(native: Any) -> Any:
    if native is fake_native:  # the stand-in speaks no TLS
        pytest.skip("TLS needs the compiled engine")
    return native


def _serve(**options: Any) -> Any:
    from covet.serve import ThreadedWorker

    return ThreadedWorker(_app(), **options).start()


def _https_get(port: int, ctx: ssl.SSLContext, path: str = "/who") -> tuple[int, bytes, str]:
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        assert conn.sock is not None
        return resp.status, body, conn.sock.version() or ""  # type: ignore[union-attr]
    finally:
        conn.close()


def test_https_request_sees_its_tls_session(real_engine: Any, certs: Path) -> None:
    import json

    server = _serve(ssl_certfile=str(certs / "server.pem"), ssl_keyfile=str(certs / "server.key"))
    try:
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        status, body, version = _https_get(server.port, ctx)
        assert status == 200 and version == "TLSv1.3"
        data = json.loads(body)
        assert data["scheme"] == "https" and data["scope_scheme"] == "https"
        assert data["url"].startswith("https://localhost:")
        assert data["http_version"] == "1.1" and data["alpn"] in ("", "http/1.1")
        assert data["version"] == "TLSv1.3" and data["client"] is None and data["has_tls_extension"]
    finally:
        server.stop()


def test_mtls_required_rejects_a_client_without_certificate(real_engine: Any, certs: Path) -> None:
    import json

    server = _serve(ssl_certfile=str(certs / "server.pem"), ssl_keyfile=str(certs / "server.key"),
                    ssl_ca_certs=str(certs / "ca.pem"))
    try:
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            _https_get(server.port, ctx)
        ctx.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
        status, body, _ = _https_get(server.port, ctx)
        assert status == 200 and json.loads(body)["client"] == "client-cn"
    finally:
        server.stop()


def test_a_missing_certificate_file_fails_at_start_naming_it(real_engine: Any, certs: Path) -> None:
    from covet.serve import ThreadedWorker

    missing = str(certs / "nope.pem")
    with pytest.raises(ValueError, match="nope.pem"):
        ThreadedWorker(_app(), ssl_certfile=missing, ssl_keyfile=str(certs / "server.key")).start()


def test_reload_tls_keeps_serving(real_engine: Any, certs: Path) -> None:
    server = _serve(ssl_certfile=str(certs / "server.pem"), ssl_keyfile=str(certs / "server.key"))
    try:
        assert server.loop is not None
        server.loop.call_soon_threadsafe(server.worker.reload_tls)
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        assert _https_get(server.port, ctx)[0] == 200
    finally:
        server.stop()


def test_http2_over_tls_and_h2c(real_engine: Any, certs: Path) -> None:
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("h2")
    server = _serve(ssl_certfile=str(certs / "server.pem"), ssl_keyfile=str(certs / "server.key"))
    try:
        with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=str(certs / "ca.pem"))) as client:
            r = client.get(f"https://localhost:{server.port}/who")
            assert r.status_code == 200 and r.http_version == "HTTP/2"
            assert r.json()["http_version"] == "2" and r.json()["alpn"] == "h2"
    finally:
        server.stop()
    plain = _serve()
    try:
        with httpx.Client(http1=False, http2=True) as client:  # prior knowledge on a plain port
            r = client.get(f"http://127.0.0.1:{plain.port}/who")
            assert r.http_version == "HTTP/2" and r.json()["scheme"] == "http" and r.json()["alpn"] is None
    finally:
        plain.stop()


def test_http2_false_keeps_a_plain_port_http1_only(real_engine: Any) -> None:
    server = _serve(http2=False)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 4") or reply.startswith(b"HTTP/1.1 505"), reply
    finally:
        server.stop()


def _serial(port: int, ca: Path) -> int:
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as s:
        der = s.getpeercert(binary_form=True)
    assert der is not None
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                         capture_output=True, check=True).stdout.decode()
    return int(out.strip().split("=", 1)[1], 16)


def test_cli_worker_serves_https_and_reloads_on_sighup(real_engine: Any, engine_prelude: str, certs: Path,
                                                      tmp_path: Path) -> None:
    """`covet run`'s worker process with --ssl-certfile/--ssl-keyfile: HTTPS, and SIGHUP swaps in the new
    certificate files for new connections without a restart."""
    import os
    import signal
    import sys

    from serverproc import ServerProcess

    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    live_cert.write_bytes((certs / "server.pem").read_bytes())
    live_key.write_bytes((certs / "server.key").read_bytes())
    script = tmp_path / "app.py"
    script.write_text(engine_prelude + "\n".join([
        "from covet import CovetPy",
        "app = CovetPy()",
        "@app.get('/hello')",
        "async def hello():",
        "    return {'hello': 'tls'}",
        "if __name__ == '__main__':",
        "    from covet.cli import main",
        f"    sys.exit(main(['_worker', 'app:app', '--port', '0', '--app-dir', {str(tmp_path)!r},",
        f"                   '--ssl-certfile', {str(live_cert)!r}, '--ssl-keyfile', {str(live_key)!r}]))",
    ]) + "\n")
    with ServerProcess([sys.executable, str(script)], timeout=20) as server:
        port = server.port
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        assert _https_get(port, ctx, "/hello")[:2] == (200, b'{"hello":"tls"}')
        before = _serial(port, certs / "ca.pem")
        # A new certificate for the same names, from the same CA (another serial).
        subprocess.run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                        "-set_serial", "4242", "-days", "2", "-extfile", "server.ext", "-out", str(live_cert)],
                       cwd=certs, check=True, capture_output=True)
        os.kill(server.proc.pid, signal.SIGHUP)
        server.wait_for("TLS certificates reloaded", timeout=20)
        assert before != 4242 and _serial(port, certs / "ca.pem") == 4242
        assert _https_get(port, ctx, "/hello")[0] == 200
        # A broken file: the reload fails, is logged, and the old certificate stays.
        live_cert.write_text("not a certificate\n")
        os.kill(server.proc.pid, signal.SIGHUP)
        server.wait_for("TLS reload failed", timeout=20)
        assert _serial(port, certs / "ca.pem") == 4242
        server.stop()
