"""HTTP/3 client side of the black-box tests, on aioquic: a QUIC + HTTP/3 stack written
independently of the server's ngtcp2/nghttp3, so a bug shared by both ends cannot hide.

  * `H3Session`: one QUIC connection driven by a private asyncio loop in a background thread, so
    the tests stay synchronous. Requests run concurrently on the connection (`send` returns a
    future, `gather` runs many at once); it records the negotiated ALPN, the GOAWAY frames of the
    server's control stream (aioquic itself ignores them), and how the connection ended.
    `abandon()` makes the client vanish: the socket is closed without a CONNECTION_CLOSE.
  * `h3_request` / `h3_requests`: one request, or many concurrent ones, on a fresh connection.
  * Raw datagram helpers for the garbage tests: a real client Initial, long headers with any
    version, and a Version Negotiation parser (RFC 9000 section 17.2.1).

The server certificate is verified (chain, dates and host name, by aioquic) against the CA given
with `ca=`; `verify=False` turns that off. A connection whose ALPN is not h3 is refused.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, StreamDataReceived, StreamReset

HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 10.0

QUIC_V1 = 0x00000001
H3_NO_ERROR = 0x100
H3_REQUEST_REJECTED = 0x10B
H3_FRAME_SETTINGS, H3_FRAME_GOAWAY = 0x4, 0x7
H3_STREAM_CONTROL = 0x00


class H3Error(AssertionError):
    """The connection or a request did not go as a correct HTTP/3 exchange would."""


class H3HandshakeError(H3Error):
    pass


# ---- responses -------------------------------------------------------------------------------


@dataclass
class H3Response:
    stream_id: int
    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)   # without pseudo-headers
    pseudo: list[tuple[str, str]] = field(default_factory=list)    # :status (and anything else sent)
    body: bytes = b""
    chunks: list[bytes] = field(default_factory=list)              # DATA payloads as aioquic delivered them
    trailers: list[tuple[str, str]] = field(default_factory=list)
    interim: list[int] = field(default_factory=list)               # 1xx statuses before the final one
    ended: bool = False           # the server finished the stream (FIN)
    reset_code: int | None = None  # the server reset the stream (RESET_STREAM) with this code
    error: str | None = None       # the connection ended before the response did
    started_at: float = 0.0
    finished_at: float | None = None

    @property
    def complete(self) -> bool:
        return self.ended and self.status is not None

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def headers_named(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    @property
    def media_type(self) -> str | None:
        ct = self.header("content-type")
        return ct.split(";", 1)[0].strip().lower() if ct is not None else None

    def __iter__(self):
        """`status, headers, body = response`"""
        return iter((self.status, self.headers, self.body))

    def __repr__(self) -> str:
        body = repr(self.body[:200]) + (f"... (+{len(self.body) - 200} bytes)" if len(self.body) > 200 else "")
        extra = ""
        if self.reset_code is not None:
            extra += f" RESET=0x{self.reset_code:x}"
        if self.error:
            extra += f" error={self.error!r}"
        return (f"<H3Response stream={self.stream_id} status={self.status} ended={self.ended}{extra} "
                f"headers={self.headers} body={body}>")


# ---- varints and the server's control stream -------------------------------------------------


def read_varint(data: bytes, pos: int) -> tuple[int, int] | None:
    """(value, next position) of the QUIC variable-length integer at `pos`, or None if cut off."""
    if pos >= len(data):
        return None
    n = 1 << (data[pos] >> 6)
    if pos + n > len(data):
        return None
    value = data[pos] & 0x3F
    for b in data[pos + 1:pos + n]:
        value = (value << 8) | b
    return value, pos + n


def encode_varint(value: int) -> bytes:
    if value < 1 << 6:
        return bytes([value])
    if value < 1 << 14:
        return struct.pack(">H", value | 0x4000)
    if value < 1 << 30:
        return struct.pack(">I", value | 0x80000000)
    return struct.pack(">Q", value | 0xC000000000000000)


def parse_control_stream(data: bytes) -> tuple[int | None, list[tuple[int, bytes]]]:
    """(stream type, complete frames) of a unidirectional stream's bytes so far."""
    got = read_varint(data, 0)
    if got is None:
        return None, []
    stream_type, pos = got
    frames: list[tuple[int, bytes]] = []
    if stream_type != H3_STREAM_CONTROL:
        return stream_type, frames
    while True:
        t = read_varint(data, pos)
        if t is None:
            break
        n = read_varint(data, t[1])
        if n is None or n[1] + n[0] > len(data):
            break
        frames.append((t[0], data[n[1]:n[1] + n[0]]))
        pos = n[1] + n[0]
    return stream_type, frames


# ---- the QUIC connection (runs on the session's loop) ----------------------------------------


class _Client(QuicConnectionProtocol):
    def __init__(self, quic: QuicConnection, session: "H3Session"):
        super().__init__(quic)
        self.session = session
        self.h3 = H3Connection(quic)
        self.responses: dict[int, H3Response] = {}
        self.waiters: dict[int, asyncio.Future] = {}
        self.uni: dict[int, bytearray] = {}

    # events

    def quic_event_received(self, event) -> None:
        s = self.session
        if isinstance(event, HandshakeCompleted):
            s.alpn = event.alpn_protocol
            s.session_resumed = event.session_resumed
        elif isinstance(event, ConnectionTerminated):
            s.terminated = event
            s.terminated_at = time.monotonic()
            s._terminated_event.set()
            for sid in list(self.waiters):
                r = self.responses[sid]
                r.error = (f"connection closed (error 0x{event.error_code:x}, "
                           f"frame {event.frame_type}, reason {event.reason_phrase!r})")
                self._finish(sid)
        elif isinstance(event, StreamReset) and event.stream_id in self.responses:
            self.responses[event.stream_id].reset_code = event.error_code
            self._finish(event.stream_id)
        elif isinstance(event, StreamDataReceived) and event.stream_id % 4 == 3:
            self._server_uni_data(event.stream_id, event.data)
        for h3_event in self.h3.handle_event(event):
            self._h3_event(h3_event)

    def _server_uni_data(self, stream_id: int, data: bytes) -> None:
        buf = self.uni.setdefault(stream_id, bytearray())
        buf += data
        stream_type, frames = parse_control_stream(bytes(buf))
        if stream_type != H3_STREAM_CONTROL:
            return
        s = self.session
        for i, (ftype, payload) in enumerate(frames):
            if i < len(s.control_frames):
                continue
            s.control_frames.append((ftype, payload))
            if ftype == H3_FRAME_GOAWAY:
                got = read_varint(payload, 0)
                s.goaways.append(got[0] if got else -1)
                s.goaway_at = s.goaway_at or time.monotonic()
                s._goaway_event.set()

    def _h3_event(self, event) -> None:
        r = self.responses.get(getattr(event, "stream_id", -1))
        if r is None:
            return
        if isinstance(event, HeadersReceived):
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
            status = next((v for k, v in headers if k == ":status"), None)
            if r.status is None and status is not None and status.startswith("1") and len(status) == 3:
                r.interim.append(int(status))
            elif r.status is None:
                r.status = int(status) if status is not None and status.isdigit() else -1
                r.pseudo = [(k, v) for k, v in headers if k.startswith(":")]
                r.headers = [(k, v) for k, v in headers if not k.startswith(":")]
            else:
                r.trailers += headers
        elif isinstance(event, DataReceived):
            if event.data:
                r.body += event.data
                r.chunks.append(event.data)
        if getattr(event, "stream_ended", False):
            r.ended = True
            self._finish(r.stream_id)

    def _finish(self, stream_id: int) -> None:
        r = self.responses[stream_id]
        if r.finished_at is None:
            r.finished_at = time.monotonic()
        w = self.waiters.pop(stream_id, None)
        if w is not None and not w.done():
            w.set_result(r)

    # requests

    def start(self, method: str, path: str, headers, body: bytes, end_stream: bool, authority: str) -> int:
        sid = self._quic.get_next_available_stream_id()
        head = [(b":method", method.encode()), (b":scheme", b"https"), (b":authority", authority.encode()),
                (b":path", path.encode())]
        head += [(_b(k).lower(), _b(v)) for k, v in headers]
        self.responses[sid] = H3Response(sid, started_at=time.monotonic())
        self.waiters[sid] = self._loop.create_future()
        self.h3.send_headers(sid, head, end_stream=end_stream and not body)
        if body:
            self.h3.send_data(sid, body, end_stream=end_stream)
        self.transmit()
        if self.session.terminated is not None:   # too late: answer at once
            self.responses[sid].error = "connection already closed"
            self._finish(sid)
        return sid

    async def response(self, sid: int, timeout: float) -> H3Response:
        w = self.waiters.get(sid)
        if w is not None:
            try:
                await asyncio.wait_for(asyncio.shield(w), timeout)
            except TimeoutError:
                r = self.responses[sid]
                raise H3Error(f"no complete response within {timeout} s on stream {sid}; so far: {r!r}; "
                              f"connection: {self.session.describe()}") from None
        return self.responses[sid]


def _b(v) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode("latin-1")


# ---- the synchronous session -----------------------------------------------------------------


class H3Session:
    """One HTTP/3 connection to 127.0.0.1:port. Usable as a context manager (closes on exit)."""

    def __init__(self, port: int, *, host: str = HOST, server_name: str | None = "localhost",
                 ca: Path | str | None = None, verify: bool = True, alpn=("h3",), require_h3: bool = True,
                 timeout: float = DEFAULT_TIMEOUT, idle_timeout: float = 60.0,
                 max_data: int | None = None, max_stream_data: int | None = None, connect: bool = True,
                 session_ticket=None, client_cert: tuple[Path | str, Path | str] | None = None):
        if verify and ca is None:
            raise ValueError("pass ca= (the test CA) or verify=False")
        self.host, self.port = host, port
        self.server_name = server_name
        self.ca, self.verify = ca, verify
        self.alpn_offered = list(alpn)
        self.require_h3 = require_h3
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.max_data, self.max_stream_data = max_data, max_stream_data
        self.session_ticket = session_ticket  # resume with it (aioquic's SessionTicket)
        self.client_cert = client_cert  # (certificate, key) files sent when the server asks (mTLS)
        self.tickets: list = []  # the session tickets the server sent
        self.alpn: str | None = None
        self.session_resumed = False
        self.terminated: ConnectionTerminated | None = None
        self.terminated_at: float | None = None
        self.control_frames: list[tuple[int, bytes]] = []
        self.goaways: list[int] = []
        self.goaway_at: float | None = None
        self.local_port: int | None = None
        self._terminated_event = threading.Event()
        self._goaway_event = threading.Event()
        self._client: _Client | None = None
        self._transport = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"h3-client-{port}", daemon=True)
        self._thread.start()
        self._closed = False
        if connect:
            try:
                self.connect()
            except BaseException:
                self._shutdown_loop()
                raise

    # -- plumbing

    def _run(self, coro, timeout: float | None = None):
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result((timeout or self.timeout) + 5)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise H3Error(f"HTTP/3 client operation did not finish; connection: {self.describe()}") from None

    def _call(self, fn, *args):
        async def call():
            return fn(*args)
        return self._run(call())

    def describe(self) -> str:
        t = self.terminated
        end = (f"closed error=0x{t.error_code:x} frame={t.frame_type} reason={t.reason_phrase!r}" if t else "open")
        return (f"127.0.0.1:{self.port} alpn={self.alpn} {end} goaways={self.goaways} "
                f"local_port={self.local_port}")

    # -- connection

    def connect(self) -> "H3Session":
        self._run(self._connect(), self.timeout)
        if self.require_h3 and self.alpn != "h3":
            self.close()
            raise H3HandshakeError(f"the server negotiated ALPN {self.alpn!r}, not 'h3'")
        return self

    async def _connect(self) -> None:
        config = QuicConfiguration(is_client=True, alpn_protocols=self.alpn_offered,
                                   server_name=self.server_name, idle_timeout=self.idle_timeout)
        if self.max_data is not None:
            config.max_data = self.max_data
        if self.max_stream_data is not None:
            config.max_stream_data = self.max_stream_data
        if self.verify:
            config.load_verify_locations(cafile=str(self.ca))
        else:
            config.verify_mode = ssl.CERT_NONE
        if self.session_ticket is not None:
            config.session_ticket = self.session_ticket
        if self.client_cert is not None:
            config.load_cert_chain(str(self.client_cert[0]), str(self.client_cert[1]))
        quic = QuicConnection(configuration=config, session_ticket_handler=self.tickets.append)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((HOST, 0))
        self.local_port = sock.getsockname()[1]
        loop = asyncio.get_running_loop()
        transport, client = await loop.create_datagram_endpoint(lambda: _Client(quic, self), sock=sock)
        self._transport, self._client = transport, client
        client.connect((self.host, self.port))
        try:
            await asyncio.wait_for(client.wait_connected(), self.timeout)
        except TimeoutError:
            raise H3HandshakeError(f"no QUIC handshake with 127.0.0.1:{self.port} within {self.timeout} s") from None
        except ConnectionError:
            raise H3HandshakeError(f"QUIC handshake with 127.0.0.1:{self.port} failed: {self.describe()}") from None

    # -- requests

    def send(self, method: str, path: str, headers=(), body: bytes = b"", *, end_stream: bool = True,
             authority: str | None = None, timeout: float | None = None) -> concurrent.futures.Future:
        """Start a request; the returned future gives its H3Response (raises H3Error on timeout)."""
        authority = authority or f"{self.server_name or self.host}:{self.port}"
        timeout = timeout or self.timeout

        async def go():
            sid = self._client.start(method, path, list(headers), body, end_stream, authority)
            return await self._client.response(sid, timeout)
        return asyncio.run_coroutine_threadsafe(go(), self._loop)

    def start(self, method: str, path: str, headers=(), body: bytes = b"", *, end_stream: bool = True,
              authority: str | None = None) -> int:
        """Start a request without waiting for anything; returns its stream id (see `response`)."""
        authority = authority or f"{self.server_name or self.host}:{self.port}"
        return self._call(self._client.start, method, path, list(headers), body, end_stream, authority)

    def response(self, stream_id: int, timeout: float | None = None) -> H3Response:
        timeout = timeout or self.timeout
        return self._run(self._client.response(stream_id, timeout), timeout)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        def go():
            self._client.h3.send_data(stream_id, data, end_stream=end_stream)
            self._client.transmit()
        self._call(go)

    def request(self, method: str, path: str, headers=(), body: bytes = b"", *, timeout: float | None = None,
                authority: str | None = None) -> H3Response:
        timeout = timeout or self.timeout
        fut = self.send(method, path, headers, body, authority=authority, timeout=timeout)
        try:
            return fut.result(timeout + 5)
        except concurrent.futures.TimeoutError:
            raise H3Error(f"{method} {path}: no answer; connection: {self.describe()}") from None

    def get(self, path: str, headers=(), **kw) -> H3Response:
        return self.request("GET", path, headers, **kw)

    def gather(self, requests, timeout: float | None = None) -> list[H3Response]:
        """Run (method, path[, headers[, body]]) requests concurrently on this connection, all
        started before any answer is awaited; the responses in the same order."""
        timeout = timeout or self.timeout
        specs = [tuple(r) + ((), b"")[len(r) - 2:] for r in requests]
        authority = f"{self.server_name or self.host}:{self.port}"

        async def go():
            sids = [self._client.start(m, p, list(h), b, True, authority) for m, p, h, b in specs]
            return [await self._client.response(sid, timeout) for sid in sids]
        return self._run(go(), timeout)

    # -- what the server said about the connection

    def wait_goaway(self, timeout: float = 5.0) -> list[int]:
        """The stream ids of the server's GOAWAY frames once at least one came (else [])."""
        self._goaway_event.wait(timeout)
        return list(self.goaways)

    def wait_terminated(self, timeout: float = 5.0) -> ConnectionTerminated | None:
        self._terminated_event.wait(timeout)
        return self.terminated

    def ping(self, timeout: float = 5.0) -> None:
        async def go():
            await asyncio.wait_for(self._client.ping(), timeout)
        self._run(go(), timeout)

    @property
    def server_cid(self) -> bytes:
        """The connection ID this client puts in its packets now (one the server issued)."""
        return self._call(lambda: self._client._quic._peer_cid.cid)

    @property
    def server_settings(self) -> dict[int, int]:
        for ftype, payload in self.control_frames:
            if ftype == H3_FRAME_SETTINGS:
                out, pos = {}, 0
                while True:
                    k = read_varint(payload, pos)
                    v = read_varint(payload, k[1]) if k else None
                    if v is None:
                        return out
                    out[k[0]] = v[0]
                    pos = v[1]
        return {}

    # -- ending

    def close(self, error_code: int = H3_NO_ERROR, wait: float = 1.0) -> None:
        """CONNECTION_CLOSE, then stop the loop."""
        if self._closed:
            return
        if self._client is not None and self.terminated is None:
            async def go():
                self._client.close(error_code=error_code)
                try:
                    await asyncio.wait_for(self._client.wait_closed(), wait)
                except TimeoutError:
                    pass
            try:
                self._run(go(), wait)
            except Exception:
                pass
        self._shutdown_loop()

    def abandon(self) -> None:
        """Vanish: close the socket without telling the server (no CONNECTION_CLOSE), as a client
        whose network went away. The server only learns of it from its idle timeout."""
        if self._closed:
            return

        def go():
            c = self._client
            if c is not None and c._timer is not None:
                c._timer.cancel()
                c._timer = None
            if self._transport is not None:
                self._transport.abort()
        try:
            self._call(go)
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def cancel_rest():
            if self._transport is not None and not self._transport.is_closing():
                self._transport.abort()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
        try:
            asyncio.run_coroutine_threadsafe(cancel_rest(), self._loop).result(2)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> "H3Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- one-shot helpers ------------------------------------------------------------------------


def h3_request(host: str, port: int, method: str = "GET", path: str = "/plaintext", headers=(),
               body: bytes = b"", *, server_name: str | None = "localhost", ca: Path | str | None = None,
               verify: bool = True, timeout: float = DEFAULT_TIMEOUT) -> H3Response:
    """One request on a new connection: `status, headers, body = h3_request(...)`."""
    with H3Session(port, host=host, server_name=server_name, ca=ca, verify=verify, timeout=timeout) as s:
        return s.request(method, path, headers, body)


def h3_requests(host: str, port: int, requests, *, server_name: str | None = "localhost",
                ca: Path | str | None = None, verify: bool = True,
                timeout: float = DEFAULT_TIMEOUT) -> list[H3Response]:
    """Many concurrent requests, (method, path[, headers[, body]]) each, on ONE new connection."""
    with H3Session(port, host=host, server_name=server_name, ca=ca, verify=verify, timeout=timeout) as s:
        return s.gather(requests, timeout)


# ---- raw datagrams ---------------------------------------------------------------------------


def client_initial(server_name: str = "localhost", alpn=("h3",)) -> bytes:
    """The first datagram of a real aioquic client (a padded, encrypted Initial), made offline."""
    config = QuicConfiguration(is_client=True, alpn_protocols=list(alpn), server_name=server_name)
    config.verify_mode = ssl.CERT_NONE
    quic = QuicConnection(configuration=config)
    quic.connect((HOST, 443), now=time.monotonic())
    datagrams = quic.datagrams_to_send(now=time.monotonic())
    assert datagrams, "aioquic produced no Initial"
    return datagrams[0][0]


def long_header(version: int, dcid: bytes, scid: bytes, *, first_byte: int = 0xC0, size: int = 1200,
                payload: bytes | None = None, v1_layout: bool = True) -> bytes:
    """A long-header packet (RFC 9000 section 17.2) with the given version and connection IDs,
    `size` bytes long. With `v1_layout` the rest is laid out as a v1 Initial (token length 0, a
    Length field that matches, random bytes), so that even a receiver that wrongly parses an
    unknown version's fields the v1 way finds a well-formed packet; else it is all random."""
    head = bytes([first_byte]) + struct.pack(">I", version) + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
    if payload is not None:
        return head + payload
    if v1_layout and first_byte & 0xB0 == 0x80 and size >= len(head) + 3:   # Initial type bits
        rest = size - len(head) - 3
        return head + b"\x00" + struct.pack(">H", 0x4000 | rest) + os.urandom(rest)
    return head + os.urandom(max(0, size - len(head)))


@dataclass
class VersionNegotiation:
    first_byte: int
    version: int
    dcid: bytes
    scid: bytes
    versions: list[int]


def parse_version_negotiation(data: bytes) -> VersionNegotiation:
    """Parse a Version Negotiation packet strictly; AssertionError when it is not one."""
    assert len(data) >= 7, f"{len(data)} bytes is too short for Version Negotiation: {data!r}"
    first, version = data[0], struct.unpack(">I", data[1:5])[0]
    pos = 5
    dlen = data[pos]
    dcid = data[pos + 1:pos + 1 + dlen]
    pos += 1 + dlen
    assert pos < len(data), f"cut off after the DCID: {data!r}"
    slen = data[pos]
    scid = data[pos + 1:pos + 1 + slen]
    pos += 1 + slen
    assert pos <= len(data) and len(dcid) == dlen and len(scid) == slen, f"connection IDs cut off: {data!r}"
    rest = data[pos:]
    assert len(rest) % 4 == 0, f"supported-versions list of {len(rest)} bytes is not whole 32-bit versions"
    versions = [struct.unpack(">I", rest[i:i + 4])[0] for i in range(0, len(rest), 4)]
    return VersionNegotiation(first, version, dcid, scid, versions)


class UdpProbe:
    """A plain UDP socket 'connected' to the server port: send raw datagrams, collect replies."""

    def __init__(self, port: int, host: str = HOST):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.connect((host, port))
        self.replies: list[bytes] = []

    def send(self, data: bytes) -> None:
        try:
            self.sock.send(data)
        except ConnectionRefusedError:   # an ICMP error for an earlier datagram: nobody is listening
            raise H3Error("the server's UDP port refused a datagram (ICMP port unreachable): is it gone?") from None

    def recv(self, timeout: float) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return None
        except ConnectionRefusedError:
            raise H3Error("ICMP port unreachable from the server's UDP port: is it gone?") from None
        self.replies.append(data)
        return data

    def drain(self, timeout: float) -> list[bytes]:
        """Every datagram that arrives within `timeout`."""
        deadline = time.monotonic() + timeout
        got = []
        while (left := deadline - time.monotonic()) > 0:
            d = self.recv(left)
            if d is None:
                break
            got.append(d)
        return got

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "UdpProbe":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
