"""Client side of the black-box HTTP/1.1 tests: raw sockets and a strict response reader.

Nothing here trusts the server. Every read has a deadline (a hung server fails the test instead
of hanging it), a response head must use CRLF line endings, and body framing follows
RFC 9112 section 6.3, so a mis-framed response shows up as a parse error or as garbage in front
of the next response instead of passing silently.
"""
from __future__ import annotations

import datetime
import email.utils
import re
import select
import socket
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 5.0

TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
STATUS_LINE_RE = re.compile(r"^HTTP/(\d)\.(\d) (\d{3}) ?(.*)$")
IMF_FIXDATE_RE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d{2}:\d{2}:\d{2} GMT$")

HELLO = b"Hello, World!"
HELLO_JSON = b'{"message":"Hello, World!"}'
STREAM_BODY = b"chunk-0\nchunk-1\nchunk-2\n"


def preview(data: bytes, limit: int = 700) -> str:
    data = bytes(data)
    text = repr(data[:limit])
    if len(data) > limit:
        text += f"... (+{len(data) - limit} more bytes)"
    return text


class WireError(AssertionError):
    """The server's bytes could not be read as the expected HTTP response(s)."""

    def __init__(self, msg: str, received: bytes = b""):
        self.received = bytes(received)
        super().__init__(f"{msg}; bytes received on this connection so far "
                         f"({len(self.received)}): {preview(self.received)}")


class WireTimeout(WireError):
    pass


class WireClosed(WireError):
    def __init__(self, msg: str, received: bytes = b"", reset: bool = False):
        self.reset = reset
        if reset:
            msg += " (connection RESET by the server, not an orderly close)"
        super().__init__(msg, received)


# ---- responses -------------------------------------------------------------------------------

@dataclass
class Response:
    version: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    chunks: list[bytes] | None = None      # the data chunks, when the body was chunked
    chunk_lines: list[bytes] | None = None  # raw chunk-size lines (extensions included)
    trailers: list[tuple[str, str]] = field(default_factory=list)
    head: bytes = b""
    interim: list["Response"] = field(default_factory=list)  # 1xx responses that came first
    received_at: float = 0.0

    @property
    def status_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def headers_named(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def tokens(self, name: str) -> set[str]:
        """Comma-separated tokens of every `name` field, lower-cased (for Connection, Allow, ...)."""
        out = set()
        for v in self.headers_named(name):
            out.update(t.strip().lower() for t in v.split(",") if t.strip())
        return out

    @property
    def media_type(self) -> str | None:
        ct = self.header("Content-Type")
        return ct.split(";", 1)[0].strip().lower() if ct is not None else None

    @property
    def is_chunked(self) -> bool:
        te = self.tokens("Transfer-Encoding")
        return bool(te) and self.header("Transfer-Encoding").split(",")[-1].strip().lower() == "chunked"

    def __repr__(self) -> str:
        return (f"<Response {self.status_line!r} headers={self.headers} "
                f"body={preview(self.body, 300)}>")


# ---- buffered reader with deadlines -----------------------------------------------------------

class Reader:
    def __init__(self, sock: socket.socket, timeout: float = DEFAULT_TIMEOUT):
        self.sock = sock
        self.timeout = timeout
        self.buf = bytearray()
        self.transcript = bytearray()   # every byte received, for error messages
        self.eof = False
        self.reset = False

    def deadline(self, timeout: float | None = None) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def fill(self, deadline: float, what: str = "data") -> bool:
        """Receive more bytes into buf. False on EOF/reset; raises WireTimeout at the deadline."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WireTimeout(f"timed out waiting for {what}", self.transcript)
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(256 * 1024)
        except (socket.timeout, TimeoutError):
            raise WireTimeout(f"timed out waiting for {what}", self.transcript) from None
        except ConnectionResetError:
            self.eof = self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        self.transcript += data
        return True

    def read_until(self, delim: bytes, deadline: float, what: str, max_bytes: int = 1 << 20) -> bytes:
        start = 0
        while True:
            i = self.buf.find(delim, start)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > max_bytes:
                raise WireError(f"no {delim!r} within {max_bytes} bytes while reading {what}",
                                self.transcript)
            start = max(0, len(self.buf) - len(delim) + 1)
            if not self.fill(deadline, what):
                raise WireClosed(f"connection closed while reading {what}", self.transcript, self.reset)

    def read_exact(self, n: int, deadline: float, what: str) -> bytes:
        while len(self.buf) < n:
            if not self.fill(deadline, what):
                raise WireClosed(f"connection closed after {len(self.buf)} of {n} bytes of {what}",
                                 self.transcript, self.reset)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_to_eof(self, deadline: float, what: str) -> bytes:
        while self.fill(deadline, what):
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def wait_eof(self, timeout: float) -> tuple[bool, bytes]:
        """(closed, extra): whether the peer closed (FIN or RST) within `timeout`, and any bytes
        that arrived before that."""
        deadline = time.monotonic() + timeout
        extra = bytearray(self.buf)
        self.buf.clear()
        while not self.eof:
            try:
                if self.fill(deadline, "EOF"):
                    extra += self.buf
                    self.buf.clear()
            except WireTimeout:
                return False, bytes(extra)
        return True, bytes(extra)


def _parse_header_line(line: bytes, received: bytes, what: str) -> tuple[str, str]:
    text = line.decode("latin-1")
    name, sep, value = text.partition(":")
    if not sep or not TOKEN_RE.match(name):
        raise WireError(f"malformed {what} line {line!r}", received)
    return name, value.strip(" \t")


def read_response(reader: Reader, method: str = "GET", timeout: float | None = None,
                  return_interim: bool = False) -> Response:
    """Read one response. 1xx responses are collected in .interim (or returned as they are with
    return_interim=True). Body framing: RFC 9112 section 6.3."""
    deadline = reader.deadline(timeout)
    interim: list[Response] = []
    while True:
        head = reader.read_until(b"\r\n\r\n", deadline, "a response head")
        resp = _parse_head(head, reader.transcript)
        resp.received_at = time.monotonic()
        if 100 <= resp.status < 200 and resp.status != 101:
            if return_interim:
                return resp
            interim.append(resp)
            continue
        break
    resp.interim = interim
    what = f"the body of {resp.status_line!r}"
    if method.upper() == "HEAD" or resp.status in (204, 304):
        return resp
    if resp.header("Transfer-Encoding") is not None:
        if resp.is_chunked:
            _read_chunked(reader, resp, deadline, what)
        else:
            resp.body = reader.read_to_eof(deadline, what)
        return resp
    lengths = resp.headers_named("Content-Length")
    if lengths:
        if len(set(lengths)) != 1 or not lengths[0].isdigit():
            raise WireError(f"invalid Content-Length {lengths} in response", reader.transcript)
        resp.body = reader.read_exact(int(lengths[0]), deadline, what)
        return resp
    resp.body = reader.read_to_eof(deadline, what)  # close-delimited
    return resp


def _parse_head(head: bytes, received: bytes) -> Response:
    lines = head[:-4].split(b"\r\n")
    for line in lines:
        if b"\r" in line or b"\n" in line:
            raise WireError(f"bare CR or LF in response head line {line!r}", received)
    m = STATUS_LINE_RE.match(lines[0].decode("latin-1"))
    if not m:
        raise WireError(f"malformed status line {lines[0]!r}", received)
    resp = Response(version=f"HTTP/{m.group(1)}.{m.group(2)}", status=int(m.group(3)),
                    reason=m.group(4), head=head)
    for line in lines[1:]:
        resp.headers.append(_parse_header_line(line, received, "response header"))
    return resp


def _read_chunked(reader: Reader, resp: Response, deadline: float, what: str) -> None:
    resp.chunks, resp.chunk_lines = [], []
    while True:
        line = reader.read_until(b"\r\n", deadline, f"a chunk-size line of {what}")[:-2]
        size_text = line.split(b";", 1)[0].strip(b" \t")
        if not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size_text):
            raise WireError(f"invalid chunk-size line {line!r}", reader.transcript)
        resp.chunk_lines.append(line)
        size = int(size_text, 16)
        if size == 0:
            break
        resp.chunks.append(reader.read_exact(size, deadline, f"chunk data of {what}"))
        if reader.read_exact(2, deadline, f"chunk CRLF of {what}") != b"\r\n":
            raise WireError("chunk data not followed by CRLF", reader.transcript)
    while True:
        line = reader.read_until(b"\r\n", deadline, f"the trailer section of {what}")[:-2]
        if not line:
            break
        resp.trailers.append(_parse_header_line(line, reader.transcript, "trailer"))
    resp.body = b"".join(resp.chunks)


# ---- requests ---------------------------------------------------------------------------------

def build_request(method: str, target: str, headers=(), body: bytes | None = None,
                  version: str = "HTTP/1.1", host: bool = True) -> bytes:
    """Serialize a request. Adds `Host: 127.0.0.1` for HTTP/1.1 (unless host=False or one is
    given) and Content-Length when a body is given without Content-Length/Transfer-Encoding."""
    hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    names = {n.lower() for n, _ in hdrs}
    if host and version == "HTTP/1.1" and "host" not in names:
        hdrs.insert(0, ("Host", HOST))
    if body is not None and not names & {"content-length", "transfer-encoding"}:
        hdrs.append(("Content-Length", str(len(body))))
    head = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n"
    return head.encode("latin-1") + (body or b"")


def chunked(parts, trailers=(), ext: str = "") -> bytes:
    """Chunked encoding of `parts` (empty parts are skipped), optional chunk extension text
    appended to every size (e.g. ';name=value') and trailer fields."""
    out = bytearray()
    for p in parts:
        if p:
            out += f"{len(p):x}{ext}\r\n".encode() + p + b"\r\n"
    out += b"0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in trailers) + b"\r\n"
    return bytes(out)


def connect(port: int, timeout: float = DEFAULT_TIMEOUT) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class RawConn:
    """One client connection with a strict response reader."""

    def __init__(self, port: int, timeout: float = DEFAULT_TIMEOUT):
        self.port = port
        self.sock = connect(port, timeout)
        self.reader = Reader(self.sock, timeout)

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self.reader.timeout)
        self.sock.sendall(data)

    def read_response(self, method: str = "GET", timeout: float | None = None,
                      return_interim: bool = False) -> Response:
        return read_response(self.reader, method, timeout, return_interim)

    def request(self, method: str, target: str, headers=(), body: bytes | None = None,
                version: str = "HTTP/1.1", timeout: float | None = None) -> Response:
        self.send(build_request(method, target, headers, body, version))
        return self.read_response(method, timeout)

    def get(self, target: str, headers=(), **kw) -> Response:
        return self.request("GET", target, headers, **kw)

    def wait_closed(self, timeout: float = 2.0) -> tuple[bool, bytes]:
        return self.reader.wait_eof(timeout)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "RawConn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Exchange:
    request: bytes
    responses: list[Response]
    closed: bool | None     # None: not checked
    reset: bool
    extra: bytes            # bytes after the last parsed response
    transcript: bytes
    error: str | None       # why reading stopped early, if it did

    @property
    def status_lines(self) -> list[str]:
        return [r.status_line for r in self.responses]

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.responses]

    def describe(self) -> str:
        return (f"\n  request: {preview(self.request)}\n  statuses: {self.statuses}"
                f"\n  closed: {self.closed} reset: {self.reset} error: {self.error}"
                f"\n  received: {preview(self.transcript)}")


def raw_exchange(port: int, data: bytes, *, methods=None, expect: int = 1,
                 timeout: float = DEFAULT_TIMEOUT, close_timeout: float | None = 2.0) -> Exchange:
    """Send `data` in one sendall, read `expect` responses (or one per entry of `methods`), then
    wait up to close_timeout for the server to close. Never raises on a short read: the
    Exchange says what happened."""
    methods = list(methods) if methods is not None else ["GET"] * expect
    with RawConn(port, timeout) as conn:
        conn.send(data)
        responses, error = [], None
        try:
            for m in methods:
                responses.append(conn.read_response(m))
        except WireError as e:
            error = str(e)
        closed, extra = (None, bytes(conn.reader.buf))
        if close_timeout is not None and error is None:
            closed, extra = conn.wait_closed(close_timeout)
        elif error is not None:
            closed = conn.reader.eof
        return Exchange(data, responses, closed, conn.reader.reset, extra,
                        bytes(conn.reader.transcript), error)


# ---- assertions shared by the test modules -------------------------------------------------------

def assert_standard_headers(resp: Response, *, method: str = "GET", routed: bool = True) -> None:
    """Date (IMF-fixdate, close to now), Server: covet, explicit framing (Content-Length that matches,
    or chunked) on every final response, and a non-empty X-Request-ID on every `routed` one. Refusals the
    protocol sends before a request exists (400/408/413/414/431/501/505) never reach the middleware
    chain, which is what adds X-Request-ID, so they carry none."""
    ctx = repr(resp)
    date = resp.header("Date")
    assert date is not None, f"no Date header: {ctx}"
    assert IMF_FIXDATE_RE.match(date), f"Date {date!r} is not IMF-fixdate: {ctx}"
    when = email.utils.parsedate_to_datetime(date)
    skew = abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds())
    assert skew < 5, f"Date {date!r} is {skew:.1f} s away from now"
    assert resp.header("Server") == "covet", f"Server header should be 'covet': {ctx}"
    if routed:
        assert (resp.header("X-Request-ID") or "").strip(), f"missing/empty X-Request-ID: {ctx}"
    assert len(resp.headers_named("Date")) == 1 and len(resp.headers_named("Server")) == 1, ctx
    if resp.is_chunked:
        assert resp.header("Content-Length") is None, f"both chunked and Content-Length: {ctx}"
    else:
        cl = resp.headers_named("Content-Length")
        assert len(cl) == 1, f"expected exactly one Content-Length (or chunked): {ctx}"
        if method != "HEAD":
            assert int(cl[0]) == len(resp.body), ctx


def check_healthy(port: int) -> None:
    """A NEW connection is served correctly."""
    with RawConn(port) as c:
        r = c.get("/plaintext")
        assert (r.status, r.body) == (200, HELLO), f"health check on a new connection failed: {r!r}"


def assert_server_healthy(server) -> None:
    server.assert_alive()
    check_healthy(server.port)
    server.assert_alive()


def assert_rejected(server, data: bytes, statuses, *, close_timeout: float = 3.0,
                    timeout: float = DEFAULT_TIMEOUT) -> Response:
    """`data` must get exactly one response with a status in `statuses`, then the server must
    close the connection; afterwards the process is alive and a new connection is served."""
    if isinstance(statuses, int):
        statuses = {statuses}
    ex = raw_exchange(server.port, data, timeout=timeout, close_timeout=close_timeout)
    assert ex.responses, f"no response at all; expected {sorted(statuses)}:{ex.describe()}"
    r = ex.responses[0]
    assert r.status in statuses, f"expected status {sorted(statuses)}, got {r.status}:{ex.describe()}"
    assert ex.closed, (f"server did not close the connection within {close_timeout} s after "
                       f"{r.status}:{ex.describe()}")
    assert not ex.extra, f"unexpected bytes after the {r.status} response:{ex.describe()}"
    assert_server_healthy(server)
    return r


def send_until_answered(conn: RawConn, pieces) -> None:
    """Send pieces until the server answers (or stops reading), like a real client would."""
    for piece in pieces:
        readable, _, _ = select.select([conn.sock], [], [], 0)
        if readable:
            return
        try:
            conn.send(piece)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            return  # the server stopped reading: its answer should be waiting


def expect_413_then_close(server, conn: RawConn) -> None:
    try:
        r = conn.read_response("POST")
    except WireError as e:
        raise AssertionError(f"no complete 413 response: {e}") from None
    assert r.status == 413, r
    closed, _ = conn.wait_closed(3)
    assert closed, "server did not close the connection after 413"
    conn.close()
    assert_server_healthy(server)
