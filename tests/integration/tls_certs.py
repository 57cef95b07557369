"""Certificates and client helpers for the TLS and HTTP/2 black-box tests.

Certificates are generated at test time with the `openssl` command line tool (nothing is
committed): a test CA, a server certificate for localhost/127.0.0.1, a second certificate for
SNI (`other.test`), a client certificate from the CA and one from a rogue CA.

The client side has two layers:
  * `tls_connect` / `tls_get`: Python `ssl` connections (ALPN, SNI, client certificates) that
    speak HTTP/1.1 through covet_wire's strict response reader;
  * `RawH2`: a hand-built HTTP/2 frame client (framing by hand, header blocks by `hpack`), so
    the attack tests can send what a well-behaved library refuses to send.
"""
from __future__ import annotations

import atexit
import functools
import json
import select
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from covet_wire import HOST, Reader, Response, build_request, read_response

OPENSSL = shutil.which("openssl")

# ---- certificates ----------------------------------------------------------------------------


def _openssl(*args, cwd: Path) -> None:
    p = subprocess.run([OPENSSL or "openssl", *map(str, args)], cwd=cwd, capture_output=True,
                       timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed rc={p.returncode}:\n"
                           f"{p.stderr.decode(errors='replace')}")


def make_ca(directory: Path, name: str, cn: str) -> tuple[Path, Path]:
    """A self-signed CA; returns (cert, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", f"/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    return cert, key


def make_leaf(directory: Path, name: str, cn: str, ca: tuple[Path, Path], *, serial: int,
              dns=(), ips=(), client: bool = False) -> tuple[Path, Path]:
    """A certificate signed by `ca` with the given serial number and SANs; returns (cert, key)."""
    cert, key, csr = (directory / f"{name}.pem", directory / f"{name}.key",
                      directory / f"{name}.csr")
    ext = directory / f"{name}.ext"
    sans = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
    lines = ["basicConstraints=critical,CA:FALSE",
             "keyUsage=critical,digitalSignature,keyEncipherment",
             f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}"]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", csr, "-subj", f"/CN={cn}", cwd=directory)
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-set_serial", str(serial),
             "-days", "30", "-extfile", ext, "-out", cert, cwd=directory)
    return cert, key


@dataclass
class CertSet:
    dir: Path
    ca: Path
    ca_key: Path
    server_cert: Path       # CN=localhost, SAN localhost + 127.0.0.1
    server_key: Path
    server_serial: int
    other_cert: Path        # CN=other.test, SAN other.test (picked by SNI)
    other_key: Path
    other_serial: int
    client_cert: Path       # CN=covet-test-client, from the CA
    client_key: Path
    rogue_ca: Path
    rogue_client_cert: Path  # CN=rogue-client, from a CA the server does not trust
    rogue_client_key: Path

    def server_leaf(self, directory: Path, name: str, serial: int) -> tuple[Path, Path]:
        """Another localhost certificate from the same CA (for reload tests)."""
        return make_leaf(directory, name, "localhost", (self.ca, self.ca_key), serial=serial,
                         dns=["localhost"], ips=["127.0.0.1"])


SERVER_SERIAL = 0x1001
OTHER_SERIAL = 0x2002


@functools.lru_cache(maxsize=None)
def cert_set() -> CertSet:
    """One set of certificates per test process, in a temporary directory."""
    d = Path(tempfile.mkdtemp(prefix="covet-tls-certs-"))
    atexit.register(shutil.rmtree, d, True)
    ca = make_ca(d, "ca", "Covet Test CA")
    rogue = make_ca(d, "rogue-ca", "Rogue Test CA")
    server = make_leaf(d, "server", "localhost", ca, serial=SERVER_SERIAL,
                       dns=["localhost"], ips=["127.0.0.1"])
    other = make_leaf(d, "other", "other.test", ca, serial=OTHER_SERIAL, dns=["other.test"])
    client = make_leaf(d, "client", "covet-test-client", ca, serial=0x3003, client=True)
    rogue_client = make_leaf(d, "rogue-client", "rogue-client", rogue, serial=0x4004, client=True)
    return CertSet(d, ca[0], ca[1], server[0], server[1], SERVER_SERIAL, other[0], other[1],
                   OTHER_SERIAL, client[0], client[1], rogue[0], rogue_client[0],
                   rogue_client[1])


class LazyArgs:
    """A module's SERVER_ARGS that generates the certificates only when the server starts
    (not at collection time). `build` maps the CertSet to the list of flags."""

    def __init__(self, build):
        self.build = build

    def __iter__(self):
        return iter(self.build(cert_set()))


def tls_args(c: CertSet) -> list[str]:
    return ["--tls-cert", str(c.server_cert), "--tls-key", str(c.server_key)]


# ---- TLS client (Python ssl) -----------------------------------------------------------------


def client_context(*, ca: Path | None = None, alpn=("http/1.1",), cert: tuple[Path, Path] | None = None,
                   max_version: ssl.TLSVersion | None = None,
                   min_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is not None:
        ctx.load_verify_locations(cafile=str(ca))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    if max_version is not None:
        ctx.maximum_version = max_version
    if min_version is not None:
        ctx.minimum_version = min_version
    return ctx


def tls_connect(port: int, ctx: ssl.SSLContext, server_hostname: str | None = "localhost",
                timeout: float = 5.0, session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
    raw = socket.create_connection((HOST, port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_hostname, session=session)
    except BaseException:
        raw.close()
        raise


def tls_request(sock: ssl.SSLSocket, method: str, target: str, headers=(), body: bytes | None = None,
                timeout: float = 5.0, reader: Reader | None = None) -> Response:
    sock.sendall(build_request(method, target, headers=headers, body=body))
    return read_response(reader or Reader(sock, timeout), method, timeout)


def tls_get(port: int, target: str = "/plaintext", ctx: ssl.SSLContext | None = None,
            server_hostname: str | None = "localhost", timeout: float = 5.0) -> tuple[Response, ssl.SSLSocket]:
    """One GET over a new TLS connection; returns the response and the (still open) socket."""
    ctx = ctx or client_context(ca=cert_set().ca)
    s = tls_connect(port, ctx, server_hostname, timeout)
    try:
        return tls_request(s, "GET", target, timeout=timeout), s
    except BaseException:
        s.close()
        raise


def tls_get_json(port: int, target: str = "/tls", **kw) -> dict:
    r, s = tls_get(port, target, **kw)
    s.close()
    assert r.status == 200, r
    return json.loads(r.body)


def peer_serial(sock: ssl.SSLSocket) -> int:
    """The serial number of the certificate the server presented (verified connections only)."""
    return int(sock.getpeercert()["serialNumber"], 16)


def client_hello_bytes(server_hostname: str = "localhost") -> bytes:
    """A real TLS ClientHello, produced by Python's ssl without any socket."""
    ctx = client_context(alpn=("h2", "http/1.1"))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


# ---- openssl s_client ------------------------------------------------------------------------


def s_client(port: int, *args, stdin: bytes = b"", timeout: float = 20) -> tuple[int, str]:
    """Run `openssl s_client` against 127.0.0.1:port; returns (rc, stdout + stderr)."""
    p = subprocess.run([OPENSSL or "openssl", "s_client", "-connect", f"{HOST}:{port}", *map(str, args)],
                       input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace") + "\n" + p.stderr.decode(errors="replace")


# ---- raw HTTP/2 frames -----------------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
FRAME_NAMES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS",
               5: "PUSH_PROMISE", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE", 9: "CONTINUATION"}
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

# Error codes (RFC 9113 section 7)
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT = 0, 1, 2, 3, 4
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 5, 6, 7, 8, 9
CONNECT_ERROR, ENHANCE_YOUR_CALM, INADEQUATE_SECURITY, HTTP_1_1_REQUIRED = 10, 11, 12, 13
ERROR_NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
               4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM",
               8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM",
               12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED"}

# SETTINGS identifiers
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_MAX_CONCURRENT_STREAMS = 1, 2, 3
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE = 4, 5, 6


def frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, stream_id & 0x7FFFFFFF) + payload


def settings_frame(settings: dict[int, int] | None = None, ack: bool = False) -> bytes:
    payload = b"".join(struct.pack(">HI", k, v) for k, v in (settings or {}).items())
    return frame(SETTINGS, ACK if ack else 0, 0, payload)


def rst_stream_frame(stream_id: int, code: int = CANCEL) -> bytes:
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def window_update_frame(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


@dataclass
class Frame:
    type: int
    flags: int
    stream_id: int
    payload: bytes
    headers: list[tuple[str, str]] | None = None  # decoded, for HEADERS (+CONTINUATION)

    @property
    def name(self) -> str:
        return FRAME_NAMES.get(self.type, f"type{self.type}")

    @property
    def error_code(self) -> int | None:
        if self.type == RST_STREAM and len(self.payload) >= 4:
            return struct.unpack(">I", self.payload[:4])[0]
        if self.type == GOAWAY and len(self.payload) >= 8:
            return struct.unpack(">I", self.payload[4:8])[0]
        return None

    @property
    def last_stream_id(self) -> int | None:
        if self.type == GOAWAY and len(self.payload) >= 4:
            return struct.unpack(">I", self.payload[:4])[0] & 0x7FFFFFFF
        return None

    def __repr__(self) -> str:
        extra = ""
        if self.error_code is not None:
            extra = f" error={ERROR_NAMES.get(self.error_code, self.error_code)}"
        if self.type == GOAWAY:
            extra += f" last_stream={self.last_stream_id} debug={self.payload[8:200]!r}"
        if self.headers is not None:
            extra += f" headers={self.headers}"
        elif self.type == DATA:
            extra += f" data={self.payload[:60]!r}{'...' if len(self.payload) > 60 else ''}"
        return f"<{self.name} flags=0x{self.flags:x} stream={self.stream_id} len={len(self.payload)}{extra}>"


class ConnectionEnded(AssertionError):
    pass


class RawH2:
    """An HTTP/2 client connection built from raw frames (h2c prior knowledge, or TLS + ALPN h2).

    Every frame the server sends is kept in `self.frames`; `closed` is set once the server
    closed (or reset) the connection. Reads always have deadlines."""

    def __init__(self, port: int, *, tls: bool = False, ca: Path | None = None,
                 server_hostname: str = "localhost", timeout: float = 5.0,
                 settings: dict[int, int] | None = None, handshake: bool = True):
        import hpack  # imported here so that test collection does not need it
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 1 << 16
        self.port = port
        self.timeout = timeout
        if tls:
            ctx = client_context(ca=ca, alpn=("h2",))
            self.sock = tls_connect(port, ctx, server_hostname, timeout)
            self.alpn = self.sock.selected_alpn_protocol()
        else:
            self.sock = socket.create_connection((HOST, port), timeout=timeout)
            self.alpn = None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.frames: list[Frame] = []
        self.closed = False
        self.reset = False
        self.send_failed = False
        self.server_settings: dict[int, int] = {}
        self.next_stream_id = 1
        self._pending_headers: Frame | None = None
        if handshake:
            self.send(PREFACE + settings_frame(settings or {}))

    # -- sending

    def send(self, data: bytes) -> bool:
        """Send bytes; returns False (and sets send_failed) if the server stopped reading or is
        gone. What the server sent before that can still be read."""
        if self.send_failed:
            return False
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.send_failed = True
            return False

    def encode(self, headers) -> bytes:
        return self.encoder.encode(list(headers))

    def request_headers(self, path: str, method: str = "GET", extra=()) -> list[tuple[str, str]]:
        return [(":method", method), (":scheme", "https" if isinstance(self.sock, ssl.SSLSocket) else "http"),
                (":authority", f"localhost:{self.port}"), (":path", path), *extra]

    def new_stream_id(self) -> int:
        sid = self.next_stream_id
        self.next_stream_id += 2
        return sid

    def get(self, path: str, extra=(), end_stream: bool = True, stream_id: int | None = None) -> int:
        sid = stream_id or self.new_stream_id()
        block = self.encode(self.request_headers(path, "GET", extra))
        self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), sid, block))
        return sid

    def post(self, path: str, body: bytes, extra=()) -> int:
        sid = self.new_stream_id()
        block = self.encode(self.request_headers(path, "POST", [("content-length", str(len(body))), *extra]))
        self.send(frame(HEADERS, END_HEADERS, sid, block))
        max_frame = 16384
        for i in range(0, len(body), max_frame):
            last = i + max_frame >= len(body)
            self.send(frame(DATA, END_STREAM if last else 0, sid, body[i:i + max_frame]))
        if not body:
            self.send(frame(DATA, END_STREAM, sid))
        return sid

    # -- receiving

    def _fill(self, deadline: float) -> bool:
        """Read more bytes; False on timeout; sets closed on EOF/reset."""
        if self.closed:
            return False
        while True:
            if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
                break
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([self.sock], [], [], left)
            if r:
                break
        try:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            data = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            self.closed = True
            self.reset = True
            return False
        if not data:
            self.closed = True
            return False
        self.buf += data
        return True

    def read_frame(self, timeout: float | None = None) -> Frame | None:
        """The next frame, or None on timeout / end of connection."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self.buf) >= 9:
                length = int.from_bytes(self.buf[0:3], "big")
                if len(self.buf) >= 9 + length:
                    ftype, flags = self.buf[3], self.buf[4]
                    sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
                    payload = bytes(self.buf[9:9 + length])
                    del self.buf[:9 + length]
                    f = Frame(ftype, flags, sid, payload)
                    self._on_frame(f)
                    self.frames.append(f)
                    return f
            if not self._fill(deadline):
                return None

    def _on_frame(self, f: Frame) -> None:
        if f.type == SETTINGS and not f.flags & ACK:
            for i in range(0, len(f.payload) - 5, 6):
                k, v = struct.unpack(">HI", f.payload[i:i + 6])
                self.server_settings[k] = v
        if f.type == PING and not f.flags & ACK:
            self.send(frame(PING, ACK, 0, f.payload))
        done = None
        if f.type in (HEADERS, PUSH_PROMISE):
            block = f.payload
            pad = 0
            if f.flags & PADDED:
                pad = block[0]
                block = block[1:]
            if f.type == HEADERS and f.flags & PRIORITY_FLAG:
                block = block[5:]
            if f.type == PUSH_PROMISE:
                block = block[4:]
            if pad:
                block = block[:-pad]
            f._block = bytearray(block)  # type: ignore[attr-defined]
            self._pending_headers = f
            if f.flags & END_HEADERS:
                done = f
        elif f.type == CONTINUATION and self._pending_headers is not None:
            self._pending_headers._block += f.payload  # type: ignore[attr-defined]
            if f.flags & END_HEADERS:
                done = self._pending_headers
        if done is not None:
            self._pending_headers = None
            try:
                done.headers = [(k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
                                for k, v in self.decoder.decode(bytes(done._block))]  # type: ignore[attr-defined]
            except Exception as e:  # a broken header block from the server is a test failure
                raise AssertionError(f"cannot decode the server's header block on stream {done.stream_id}: {e}")

    def handshake(self, timeout: float | None = None) -> None:
        """Wait for the server's SETTINGS, ACK it, and wait for the ACK of ours."""
        got_settings = got_ack = False
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not (got_settings and got_ack):
            f = self.read_frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                raise ConnectionEnded(f"HTTP/2 handshake incomplete (settings={got_settings} ack={got_ack} "
                                      f"closed={self.closed}); frames: {self.frames}")
            if f.type == SETTINGS and not f.flags & ACK:
                got_settings = True
                self.send(settings_frame(ack=True))
            elif f.type == SETTINGS:
                got_ack = True

    def read_until(self, pred, timeout: float | None = None) -> Frame | None:
        """Read frames until pred(frame) is true (returns that frame) or timeout/close (None)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            f = self.read_frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                return None
            if pred(f):
                return f

    def read_until_closed(self, timeout: float | None = None) -> bool:
        """Read (and keep) frames until the server closes the connection; True if it did."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.closed and time.monotonic() < deadline:
            self.read_frame(max(0.0, deadline - time.monotonic()))
        return self.closed

    def goaway(self) -> Frame | None:
        return next((f for f in self.frames if f.type == GOAWAY), None)

    def response(self, stream_id: int, timeout: float | None = None) -> "H2Response":
        """Collect the response on one stream (status, headers, body, or the RST_STREAM)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            resp = self.collect(stream_id)
            if resp.complete:
                return resp
            if self.goaway() is not None and stream_id > (self.goaway().last_stream_id or 0):
                return resp
            f = self.read_frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                return self.collect(stream_id)
            if f.type == DATA and f.payload:
                self.send(window_update_frame(0, len(f.payload)) + window_update_frame(f.stream_id, len(f.payload)))

    def collect(self, stream_id: int) -> "H2Response":
        r = H2Response(stream_id)
        for f in self.frames:
            if f.stream_id != stream_id:
                continue
            if f.headers is not None:
                r.header_blocks.append(f.headers)
            if f.type == DATA:
                r.body += f.payload
            if f.type == RST_STREAM:
                r.rst = f.error_code
                r.complete = True
            if f.type in (DATA, HEADERS) and f.flags & END_STREAM:
                r.complete = True
        return r

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "RawH2":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class H2Response:
    stream_id: int
    header_blocks: list[list[tuple[str, str]]] = field(default_factory=list)
    body: bytes = b""
    rst: int | None = None
    complete: bool = False

    @property
    def status(self) -> int | None:
        for block in self.header_blocks:
            for k, v in block:
                if k == ":status" and not v.startswith("1"):
                    return int(v)
        return None

    def header(self, name: str) -> str | None:
        for block in self.header_blocks:
            for k, v in block:
                if k == name:
                    return v
        return None

    def __repr__(self) -> str:
        rst = f" RST={ERROR_NAMES.get(self.rst, self.rst)}" if self.rst is not None else ""
        return (f"<H2Response stream={self.stream_id} status={self.status} complete={self.complete}{rst} "
                f"headers={self.header_blocks} body={self.body[:100]!r}>")


def h2_get(port: int, path: str = "/plaintext", *, tls: bool = False, timeout: float = 5.0) -> H2Response:
    """One GET on a fresh HTTP/2 connection (the 'another client is still served' check)."""
    with RawH2(port, tls=tls, ca=cert_set().ca if tls else None, timeout=timeout) as c:
        sid = c.get(path)
        return c.response(sid)


def assert_h2_served(port: int, *, tls: bool = False) -> None:
    r = h2_get(port, tls=tls)
    assert r.status == 200 and r.body == b"Hello, World!", f"a fresh HTTP/2 client was not served: {r}"
