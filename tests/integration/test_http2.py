"""HTTP/2 on the hello example with real clients: curl (h2 over TLS, h2c prior knowledge, h2c
upgrade), nghttp, h2load, httpx, and the `h2` library for multiplexing and flow control.

The module's server has TLS on (h2 via ALPN); h2c tests use plain-port servers from make_server."""
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time

import pytest

import tls_certs
from covet_wire import HELLO, HELLO_JSON, HOST, STREAM_BODY
from tls_certs import RawH2, cert_set, client_context, s_client, tls_args

SERVER_ARGS = tls_certs.LazyArgs(tls_args)

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
needs_nghttp = pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp is not installed")
needs_h2load = pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load is not installed")


def curl(*args, timeout=30) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "20", *map(str, args)],
                          capture_output=True, timeout=timeout)


def curl_ok(*args) -> subprocess.CompletedProcess:
    p = curl(*args)
    assert p.returncode == 0, f"curl {args} rc={p.returncode}: {p.stderr.decode(errors='replace')}"
    return p


def tls_curl_args(srv):
    return ["--cacert", cert_set().ca, "--resolve", f"localhost:{srv.port}:127.0.0.1"]


def https(srv, path):
    return f"https://localhost:{srv.port}{path}"


def http(srv, path):
    return f"http://127.0.0.1:{srv.port}{path}"


@pytest.fixture
def h2c_server(make_server):
    return make_server()


# ---- curl ------------------------------------------------------------------------------------

@needs_curl
@pytest.mark.parametrize("path, body", [("/plaintext", HELLO), ("/json", HELLO_JSON),
                                        ("/users/7?q=x", b'{"id":7,"q":"x"}'), ("/stream", STREAM_BODY)])
def test_curl_h2_over_tls(server, path, body):
    p = curl_ok("--http2", *tls_curl_args(server), "-w", "\n%{http_version} %{response_code}", https(server, path))
    got, _, meta = p.stdout.rpartition(b"\n")
    assert meta.decode().split() == ["2", "200"], p.stdout
    assert got == body


@needs_curl
def test_curl_h2_response_headers(server):
    p = curl_ok("--http2", *tls_curl_args(server), "-i", https(server, "/json"))
    head, _, body = p.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/2 200"), lines
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers["content-type"].split(";")[0] == "application/json", headers
    assert headers.get("content-length") == str(len(HELLO_JSON)), headers
    assert "connection" not in headers and "transfer-encoding" not in headers, \
        f"connection-specific header in an HTTP/2 response: {headers}"
    assert body == HELLO_JSON


@needs_curl
def test_curl_h2c_prior_knowledge(h2c_server):
    p = curl_ok("--http2-prior-knowledge", "-w", "\n%{http_version}", http(h2c_server, "/json"))
    body, _, ver = p.stdout.rpartition(b"\n")
    assert (ver, body) == (b"2", HELLO_JSON), p.stdout


@needs_curl
def test_curl_h2c_upgrade(h2c_server):
    p = curl_ok("--http2", "-v", "-w", "\n%{http_version}", http(h2c_server, "/plaintext"))
    body, _, ver = p.stdout.rpartition(b"\n")
    err = p.stderr.decode(errors="replace")
    assert "HTTP/1.1 101" in err, err
    assert (ver, body) == (b"2", HELLO), (p.stdout, err)


@needs_curl
def test_curl_h2_several_urls_one_connection(server):
    # Over TLS: curl 7.88 cannot reuse an h2c prior-knowledge connection (curl bug #10634, fixed
    # after 7.88: "Error in the HTTP2 framing layer" against any server, Go's net/http2 included).
    urls = [https(server, p) for p in ("/plaintext", "/json", "/users/3")]
    p = curl_ok("--http2", "-v", *tls_curl_args(server), *urls)
    assert p.stdout == HELLO + HELLO_JSON + b'{"id":3}', p.stdout
    assert p.stderr.count(b"Re-using existing connection") == 2, p.stderr.decode(errors="replace")


@needs_curl
@pytest.mark.parametrize("size", [0, 1000, 1_000_000])
def test_curl_h2_post_echo(server, tmp_path, size):
    payload = os.urandom(size)
    src, out = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(payload)
    curl_ok("--http2", *tls_curl_args(server), "--data-binary", f"@{src}", "-H", "Content-Type: application/x-t",
            "-o", out, https(server, "/echo"))
    assert out.read_bytes() == payload


@needs_curl
def test_curl_h2c_post_echo_1mb(h2c_server, tmp_path):
    payload = os.urandom(1_000_000)
    src, out = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(payload)
    curl_ok("--http2-prior-knowledge", "--data-binary", f"@{src}", "-o", out, http(h2c_server, "/echo"))
    assert out.read_bytes() == payload


@needs_curl
def test_curl_h2_headers_and_search(server):
    p = curl_ok("--http2", *tls_curl_args(server), "-A", "covet-h2-test", "-H", "X-Test: abc",
                https(server, "/headers"))
    assert json.loads(p.stdout) == {"user-agent": "covet-h2-test", "x-test": "abc"}, p.stdout
    p = curl_ok("--http2", *tls_curl_args(server), "-G", "--data-urlencode", "q=a b&c=d/é",
                https(server, "/search"))
    assert p.stdout == "a b&c=d/é".encode(), p.stdout


@needs_curl
def test_curl_h2_not_found_and_method(server):
    p = curl("--http2", *tls_curl_args(server), "-w", "%{http_code}", "-o", "/dev/null", https(server, "/nope"))
    assert p.stdout == b"404", p.stdout
    p = curl("--http2", *tls_curl_args(server), "-w", "%{http_code}", "-o", "/dev/null", "-X", "DELETE",
             https(server, "/plaintext"))
    assert p.stdout == b"405", p.stdout


# ---- nghttp / h2load -------------------------------------------------------------------------

@needs_nghttp
def test_nghttp_tls(server):
    # nghttp does not verify the certificate; ALPN must pick h2
    p = subprocess.run(["nghttp", "-v", f"https://127.0.0.1:{server.port}/plaintext"], capture_output=True,
                       timeout=30)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out + p.stderr.decode(errors="replace")
    assert "negotiated protocol: h2" in out, out
    assert ":status: 200" in out, out
    assert "Hello, World!" in out, out


@needs_nghttp
def test_nghttp_h2c_verbose(h2c_server):
    p = subprocess.run(["nghttp", "-nv", http(h2c_server, "/json")], capture_output=True, timeout=30)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out + p.stderr.decode(errors="replace")
    assert ":status: 200" in out, out
    assert "recv SETTINGS frame" in out, out
    assert re.search(r"recv DATA frame <length=%d, flags=0x01" % len(HELLO_JSON), out) or \
        "END_STREAM" in out, out


@needs_nghttp
def test_nghttp_h2c_upgrade(h2c_server):
    p = subprocess.run(["nghttp", "-nvu", http(h2c_server, "/plaintext")], capture_output=True, timeout=30)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out + p.stderr.decode(errors="replace")
    assert "HTTP Upgrade response" in out and ":status: 200" in out, out


@needs_nghttp
@pytest.mark.covet_timeout(90)
def test_nghttp_multiplexed_50(h2c_server):
    p = subprocess.run(["nghttp", "-n", "-s", "-m", "50", http(h2c_server, "/json")], capture_output=True,
                       timeout=60)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out + p.stderr.decode(errors="replace")
    # -s prints one line per request: "... code size request path"; every one must be 200
    codes = re.findall(r"^\s*\d+\s+\+\S+\s+\+\S+\s+\S+\s+(\d{3})\s", out, re.M)
    assert len(codes) == 50 and set(codes) == {"200"}, out


def _h2load(args) -> str:
    p = subprocess.run(["h2load", *map(str, args)], capture_output=True, timeout=120)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out + p.stderr.decode(errors="replace")
    return out


def _assert_h2load_all_ok(out: str, n: int) -> None:
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    assert m, out
    assert int(m.group(4)) == n and int(m.group(5)) == 0 and int(m.group(6)) == 0, out
    s = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    assert s and int(s.group(1)) == n, out


@needs_h2load
@pytest.mark.covet_timeout(150)
def test_h2load_h2c_multiplexed(h2c_server):
    out = _h2load(["-n", 1000, "-c", 4, "-m", 100, http(h2c_server, "/plaintext")])
    _assert_h2load_all_ok(out, 1000)
    h2c_server.assert_alive()


@needs_h2load
@pytest.mark.covet_timeout(150)
def test_h2load_tls_multiplexed(server):
    out = _h2load(["-n", 1000, "-c", 4, "-m", 100, f"https://127.0.0.1:{server.port}/json"])
    assert "Application protocol: h2" in out, out
    _assert_h2load_all_ok(out, 1000)


@needs_h2load
@pytest.mark.covet_timeout(150)
def test_h2load_delayed_many_streams(h2c_server):
    out = _h2load(["-n", 400, "-c", 2, "-m", 100, http(h2c_server, "/delayed?ms=50")])
    _assert_h2load_all_ok(out, 400)


# ---- httpx -----------------------------------------------------------------------------------

def test_httpx_http2_over_tls(server):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("h2")
    ctx = ssl.create_default_context(cafile=str(cert_set().ca))
    with httpx.Client(http2=True, verify=ctx, timeout=10) as client:
        r = client.get(f"https://localhost:{server.port}/json")
        assert r.http_version == "HTTP/2", r.http_version
        assert r.status_code == 200 and r.content == HELLO_JSON
        r = client.get(f"https://localhost:{server.port}/tls")
        info = r.json()
        assert info["protocol"] == "HTTP/2" and info["alpn"] == "h2" and info["scheme"] == "https", info
        assert info["tls_version"] == "TLSv1.3", info
        payload = os.urandom(200_000)
        r = client.post(f"https://localhost:{server.port}/echo", content=payload,
                        headers={"content-type": "application/x-t"})
        assert r.status_code == 200 and r.content == payload
        assert r.headers["content-type"] == "application/x-t"
        r = client.get(f"https://localhost:{server.port}/stream")
        assert r.content == STREAM_BODY


def test_httpx_async_concurrent_streams(server):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("h2")
    import asyncio

    async def main():
        ctx = ssl.create_default_context(cafile=str(cert_set().ca))
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(http2=True, verify=ctx, timeout=20, limits=limits) as client:
            base = f"https://localhost:{server.port}"
            rs = await asyncio.gather(*(client.get(f"{base}/users/{i}?q=v{i}") for i in range(60)))
            return rs

    rs = asyncio.run(main())
    for i, r in enumerate(rs):
        assert r.http_version == "HTTP/2"
        assert r.status_code == 200 and r.json() == {"id": i, "q": f"v{i}"}, r.text


# ---- the h2 library / raw frames: multiplexing, ordering, flow control -----------------------

def test_delayed_responses_complete_out_of_order(h2c_server):
    with RawH2(h2c_server.port, timeout=10) as c:
        c.handshake()
        slow = c.get("/delayed?ms=1500")
        mid = c.get("/delayed?ms=300")
        fast = c.get("/plaintext")
        order = []
        deadline = time.monotonic() + 10
        while len(order) < 3 and time.monotonic() < deadline:
            f = c.read_frame(1.0)
            if f is None:
                assert not c.closed, f"connection closed; frames {c.frames}"
                continue
            if f.flags & tls_certs.END_STREAM and f.type in (tls_certs.DATA, tls_certs.HEADERS):
                order.append(f.stream_id)
        assert order == [fast, mid, slow], f"completion order {order}; frames {c.frames}"
        assert c.collect(slow).body == b"delayed 1500"
        assert c.collect(mid).body == b"delayed 300"
        assert c.collect(fast).body == HELLO


def test_h2_library_client_tls(server):
    h2 = pytest.importorskip("h2")
    import h2.config
    import h2.connection
    import h2.events

    ctx = client_context(ca=cert_set().ca, alpn=("h2",))
    sock = ctx.wrap_socket(socket.create_connection((HOST, server.port), timeout=10), server_hostname="localhost")
    try:
        assert sock.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        streams = {}
        for i in range(20):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"),
                                    (":path", f"/users/{i}")], end_stream=True)
            streams[sid] = i
        sock.sendall(conn.data_to_send())
        bodies, statuses, done = {}, {}, set()
        while len(done) < len(streams):
            data = sock.recv(65536)
            assert data, f"connection closed with {len(done)}/{len(streams)} streams done"
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    statuses[ev.stream_id] = dict(ev.headers)[b":status"]
                elif isinstance(ev, h2.events.DataReceived):
                    bodies[ev.stream_id] = bodies.get(ev.stream_id, b"") + ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    done.add(ev.stream_id)
                elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    pytest.fail(f"unexpected {ev}")
            sock.sendall(conn.data_to_send())
        for sid, i in streams.items():
            assert statuses[sid] == b"200" and bodies[sid] == b'{"id":%d}' % i
    finally:
        sock.close()


def test_large_response_respects_flow_control(h2c_server):
    """Echo 1 MB with a 64 KiB initial window: the server must stop at the window and resume
    after WINDOW_UPDATE; it must never send more than the window allows."""
    payload = os.urandom(1_000_000)
    with RawH2(h2c_server.port, timeout=10) as c:
        c.handshake()
        sid = c.new_stream_id()
        block = c.encode(c.request_headers("/echo", "POST", [("content-length", str(len(payload)))]))
        c.send(tls_certs.frame(tls_certs.HEADERS, tls_certs.END_HEADERS, sid, block))
        # the server's initial windows bound how much we may send before it sends WINDOW_UPDATEs
        window = c.server_settings.get(tls_certs.SETTINGS_INITIAL_WINDOW_SIZE, 65535)
        conn_window, stream_window, sent = 65535, window, 0
        max_frame = c.server_settings.get(tls_certs.SETTINGS_MAX_FRAME_SIZE, 16384)
        recv_window_conn, recv_window_stream = 65535, 65535
        deadline = time.monotonic() + 30
        body = bytearray()
        done = False
        while not done and time.monotonic() < deadline:
            while sent < len(payload) and min(conn_window, stream_window) > 0:
                n = min(max_frame, conn_window, stream_window, len(payload) - sent)
                last = sent + n == len(payload)
                c.send(tls_certs.frame(tls_certs.DATA, tls_certs.END_STREAM if last else 0, sid,
                                       payload[sent:sent + n]))
                sent += n
                conn_window -= n
                stream_window -= n
            f = c.read_frame(2.0)
            if f is None:
                assert not c.closed, f"server closed the connection: {c.frames[-5:]}"
                continue
            if f.type == tls_certs.WINDOW_UPDATE:
                inc = int.from_bytes(f.payload[:4], "big") & 0x7FFFFFFF
                if f.stream_id == 0:
                    conn_window += inc
                elif f.stream_id == sid:
                    stream_window += inc
            elif f.type == tls_certs.DATA and f.stream_id == sid:
                body += f.payload
                recv_window_conn -= len(f.payload)
                recv_window_stream -= len(f.payload)
                assert recv_window_conn >= 0 and recv_window_stream >= 0, \
                    "the server sent more DATA than the flow-control window allowed"
                # hand the window back in steps, after a pause, so the server has to wait for it
                if recv_window_stream < 16384:
                    time.sleep(0.05)
                    inc = 65535 - recv_window_stream
                    c.send(tls_certs.window_update_frame(0, 65535 - recv_window_conn)
                           + tls_certs.window_update_frame(sid, inc))
                    recv_window_conn = recv_window_stream = 65535
                done = bool(f.flags & tls_certs.END_STREAM)
            elif f.type in (tls_certs.RST_STREAM, tls_certs.GOAWAY):
                pytest.fail(f"unexpected {f}")
        assert done, f"echo incomplete: sent {sent}, received {len(body)}"
        assert bytes(body) == payload


def test_stream_route_chunks_h2(h2c_server):
    with RawH2(h2c_server.port) as c:
        c.handshake()
        r = c.response(c.get("/stream"))
        assert r.status == 200 and r.body == STREAM_BODY, r


def test_tls_route_reports_http2(server):
    with RawH2(server.port, tls=True, ca=cert_set().ca) as c:
        assert c.alpn == "h2"
        r = c.response(c.get("/tls"))
    assert r.status == 200, r
    info = json.loads(r.body)
    assert info["protocol"] == "HTTP/2" and info["alpn"] == "h2" and info["scheme"] == "https", info


def test_tls_route_h2c(h2c_server):
    with RawH2(h2c_server.port) as c:
        r = c.response(c.get("/tls"))
    info = json.loads(r.body)
    assert info["protocol"] == "HTTP/2" and info["scheme"] == "http" and info["tls_version"] is None, info


def test_http1_still_served_on_h2c_port(h2c_server):
    from covet_wire import RawConn
    with RawConn(h2c_server.port) as c:
        r = c.get("/plaintext")
        assert (r.status, r.body) == (200, HELLO), r


# ---- --no-http2 ------------------------------------------------------------------------------

def test_no_http2_alpn_picks_http11(make_server):
    c = cert_set()
    srv = make_server(*tls_args(c), "--no-http2")
    rc, out = s_client(srv.port, "-servername", "localhost", "-alpn", "h2,http/1.1", "-CAfile", c.ca)
    assert "ALPN protocol: http/1.1" in out, out
    rc, out = s_client(srv.port, "-servername", "localhost", "-alpn", "h2", "-CAfile", c.ca)
    assert "ALPN protocol: h2" not in out, out
    if shutil.which("curl"):
        p = curl_ok("--http2", "--cacert", c.ca, "--resolve", f"localhost:{srv.port}:127.0.0.1",
                    "-w", "\n%{http_version}", f"https://localhost:{srv.port}/plaintext")
        assert p.stdout == HELLO + b"\n1.1", p.stdout


@needs_curl
def test_no_http2_refuses_h2c(make_server):
    srv = make_server("--no-http2")
    p = curl("--http2-prior-knowledge", "-w", "\n%{http_version}", http(srv, "/plaintext"))
    assert p.returncode != 0 or not p.stdout.endswith(b"\n2"), p.stdout
    assert HELLO not in p.stdout, p.stdout
    # Upgrade: h2c is ignored, the request is answered over HTTP/1.1
    p = curl_ok("--http2", "-v", "-w", "\n%{http_version}", http(srv, "/plaintext"))
    assert p.stdout == HELLO + b"\n1.1", p.stdout
    assert b"< HTTP/1.1 101" not in p.stderr, p.stderr.decode(errors="replace")
    srv.assert_alive()
