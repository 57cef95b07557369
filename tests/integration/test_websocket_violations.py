"""WebSocket protocol violations against the hello example, over raw sockets (RFC 6455 / RFC 7692).

Every test performs a valid opening handshake on /ws/echo by hand, then sends frames that a
well-behaved client library refuses to build: unmasked frames, reserved bits and opcodes, broken
control frames, invalid UTF-8, bad close payloads, broken fragmentation, oversized messages and a
deflate bomb. The server must answer with the close code the RFC names, close the connection, stay
up, and keep serving a new client (checked after every violation). The handshake refusals (400,
426, 404, no 101 for POST) and the server's memory under a client that never reads (backpressure)
are here too, since they need the same raw client.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading
import time
import zlib

import pytest

from covet_wire import RawConn, Reader, Response, WireError, _parse_head, build_request, read_response

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

NORMAL, GOING_AWAY, PROTOCOL_ERROR, INVALID_PAYLOAD, MESSAGE_TOO_BIG = 1000, 1001, 1002, 1007, 1009

MAX_MESSAGE = 1024 * 1024      # covet::ws::Options::max_message_bytes default
CLOSE_TIMEOUT = 5.0            # covet::ws::Options::close_timeout default


# ---- a raw WebSocket client -------------------------------------------------------------------

def ws_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def upgrade_request(path: str = "/ws/echo", *, key: str | None = "auto", version: str | None = "13",
                    method: str = "GET", extensions: str | None = None, extra=()) -> tuple[bytes, str | None]:
    key = ws_key() if key == "auto" else key
    headers = [("Host", "127.0.0.1"), ("Upgrade", "websocket"), ("Connection", "Upgrade")]
    if key is not None:
        headers.append(("Sec-WebSocket-Key", key))
    if version is not None:
        headers.append(("Sec-WebSocket-Version", version))
    if extensions is not None:
        headers.append(("Sec-WebSocket-Extensions", extensions))
    headers += list(extra)
    return build_request(method, path, headers, b"" if method == "POST" else None), key


def read_upgrade_response(reader: Reader, timeout: float | None = None) -> Response:
    """The answer to an upgrade request: a 101 head (no body: whatever follows is WebSocket
    frames) or a refusal read in full."""
    deadline = reader.deadline(timeout)
    head = reader.read_until(b"\r\n\r\n", deadline, "the upgrade response head")
    resp = _parse_head(head, reader.transcript)
    if resp.status == 101:
        return resp
    reader.buf[:0] = head   # read it again, body and all, with the strict reader
    return read_response(reader, "GET", max(0.05, deadline - time.monotonic()))


def mask_bytes(payload: bytes, key: bytes) -> bytes:
    if not payload or key == b"\0\0\0\0":
        return payload
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, masked: bool = True,
          mask_key: bytes | None = None, length: int | None = None, len_form: int | None = None) -> bytes:
    """One frame as a client would send it. `rsv` is the 3-bit RSV1..3 field (4 = RSV1); `length`
    overrides the declared payload length; `len_form` forces 7-bit (0), 16-bit (126) or 64-bit (127)
    length encoding."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    if len_form is None:
        len_form = 0 if n < 126 else 126 if n < 65536 else 127
    m = 0x80 if masked else 0
    if len_form == 0:
        head = struct.pack(">BB", b0, m | n)
    elif len_form == 126:
        head = struct.pack(">BBH", b0, m | 126, n)
    else:
        head = struct.pack(">BBQ", b0, m | 127, n)
    if not masked:
        return head + payload
    key = os.urandom(4) if mask_key is None else mask_key
    return head + key + mask_bytes(payload, key)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack(">H", code) + reason


class Frame:
    def __init__(self, fin: bool, rsv: int, opcode: int, masked: bool, payload: bytes):
        self.fin, self.rsv, self.opcode, self.masked, self.payload = fin, rsv, opcode, masked, payload

    @property
    def close_code(self) -> int | None:
        return struct.unpack(">H", self.payload[:2])[0] if self.opcode == CLOSE and len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> bytes:
        return self.payload[2:] if self.opcode == CLOSE else b""

    def __repr__(self) -> str:
        extra = f" code={self.close_code} reason={self.close_reason!r}" if self.opcode == CLOSE else ""
        return (f"<Frame op=0x{self.opcode:x} fin={self.fin} rsv={self.rsv} masked={self.masked} "
                f"len={len(self.payload)} {self.payload[:40]!r}{extra}>")


class ServerClosed(AssertionError):
    pass


class RawWS:
    """A WebSocket client connection built from raw frames. Reads always have deadlines; every
    frame the server sent is kept in `frames`."""

    def __init__(self, port: int, path: str = "/ws/echo", *, extensions: str | None = None,
                 timeout: float = 5.0):
        self.conn = RawConn(port, timeout)
        self.sock = self.conn.sock
        self.reader: Reader = self.conn.reader
        self.timeout = timeout
        self.frames: list[Frame] = []
        self.send_failed = False
        req, key = upgrade_request(path, extensions=extensions)
        self.conn.send(req)
        self.response = read_upgrade_response(self.reader)
        assert self.response.status == 101, f"handshake on {path} not accepted: {self.response!r}"
        assert self.response.header("Sec-WebSocket-Accept") == accept_for(key), self.response
        assert "websocket" in (self.response.header("Upgrade") or "").lower(), self.response
        self.extensions = self.response.header("Sec-WebSocket-Extensions")

    # -- sending

    def send_raw(self, data: bytes) -> bool:
        """False (and send_failed) once the server stopped reading or closed the socket."""
        if self.send_failed:
            return False
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, socket.timeout, TimeoutError, OSError):
            self.send_failed = True
            return False

    def send(self, opcode: int, payload: bytes = b"", **kw) -> bool:
        return self.send_raw(frame(opcode, payload, **kw))

    # -- receiving

    def read_frame(self, timeout: float | None = None) -> Frame | None:
        """The next frame, or None once the server closed the connection. Raises WireTimeout."""
        deadline = self.reader.deadline(timeout)
        try:
            b0, b1 = self.reader.read_exact(2, deadline, "frame header")
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.reader.read_exact(2, deadline, "16-bit length"))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.reader.read_exact(8, deadline, "64-bit length"))[0]
            key = self.reader.read_exact(4, deadline, "mask key") if b1 & 0x80 else None
            payload = self.reader.read_exact(n, deadline, "frame payload")
        except WireError as e:
            if self.reader.eof:
                return None
            raise e
        if key is not None:
            payload = mask_bytes(payload, key)
        f = Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, key is not None, payload)
        self.frames.append(f)
        return f

    def read_message(self, timeout: float | None = None) -> tuple[int, bytes]:
        """The next data message (reassembled), answering nothing; pings/pongs are skipped.
        Raises ServerClosed on a close frame or end of connection."""
        opcode, parts = None, []
        while True:
            f = self.read_frame(timeout)
            if f is None:
                raise ServerClosed(f"connection ended while waiting for a message; frames: {self.frames[-5:]}")
            assert not f.masked, f"the server sent a masked frame (RFC 6455 §5.1 forbids it): {f}"
            if f.opcode == CLOSE:
                raise ServerClosed(f"server sent close instead of a message: {f}")
            if f.opcode in (PING, PONG):
                continue
            if opcode is None:
                opcode = f.opcode
            parts.append(f.payload)
            if f.fin:
                return opcode, b"".join(parts)

    def expect_close(self, code: int | set[int], *, what: str, reply: bool = True,
                     timeout: float = 5.0) -> Frame:
        """Read until the server's close frame; it must carry `code` (one of them, for a set).
        Then (reply=True) answer with a close frame, and in any case require the server to close
        the TCP connection: right after our reply, or within its close timeout without one."""
        codes = {code} if isinstance(code, int) else set(code)
        deadline = time.monotonic() + timeout
        while True:
            f = self.read_frame(max(0.05, deadline - time.monotonic()))
            if f is None:
                raise AssertionError(
                    f"{what}: the server closed the connection without a close frame (expected "
                    f"close {sorted(codes)}); frames received: {self.frames[-5:]}")
            if f.opcode == CLOSE:
                break
        assert not f.masked, f"{what}: the server's close frame is masked: {f}"
        assert f.close_code in codes, (
            f"{what}: expected close code {sorted(codes)}, got {f.close_code} "
            f"(reason {f.close_reason!r}); frame {f}")
        try:
            f.close_reason.decode("utf-8")
        except UnicodeDecodeError:
            raise AssertionError(f"{what}: the server's close reason is not UTF-8: {f}")
        limit = 2.0
        if reply:
            self.send(CLOSE, close_payload(f.close_code))
        else:
            limit = CLOSE_TIMEOUT + 3.0
        closed, extra = self.reader.wait_eof(limit)
        assert closed, (f"{what}: the server sent close {f.close_code} but did not close the TCP "
                        f"connection within {limit:.0f} s (reply={reply})")
        assert not extra, f"{what}: bytes after the server's close frame: {extra[:100]!r}"
        return f

    def echo(self, opcode: int, payload: bytes, timeout: float | None = None) -> bytes:
        self.send(opcode, payload)
        got_op, got = self.read_message(timeout)
        assert got_op == opcode, (got_op, opcode)
        return got

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "RawWS":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def assert_ws_served(server) -> None:
    """The process is alive and a NEW WebSocket client gets its echo, and a clean close."""
    server.assert_alive()
    with RawWS(server.port) as ws:
        msg = os.urandom(8).hex().encode()
        assert ws.echo(TEXT, msg) == msg
        ws.send(CLOSE, close_payload(NORMAL, b"bye"))
        ws.expect_close(NORMAL, what="clean close after the health check", reply=False)
    server.assert_alive()


def violation(server, frames: list[bytes] | bytes, code: int | set[int], what: str, *,
              extensions: str | None = None, reply: bool = True) -> Frame:
    """Handshake, send `frames` (one sendall each, stopping once the server stops reading),
    expect close `code`, then check a new client is served."""
    with RawWS(server.port, extensions=extensions) as ws:
        if extensions is not None:
            assert ws.extensions and "permessage-deflate" in ws.extensions, ws.response
        for data in [frames] if isinstance(frames, bytes) else frames:
            if not ws.send_raw(data):
                break
        f = ws.expect_close(code, what=what, reply=reply)
    assert_ws_served(server)
    return f


@pytest.fixture
def lean_server(make_server, monkeypatch):
    """A server whose RSS means what it says under AddressSanitizer: by default ASan holds up to
    256 MB of freed blocks in quarantine, which reads as growth (a client streaming 200 MB through
    the echo route shows +300 MB with it, +17 MB without). The option is ignored by builds without
    ASan."""
    return lean_make_server(make_server, monkeypatch)()


def lean_make_server(make_server, monkeypatch):
    opts = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (opts + ":" if opts else "") + "quarantine_size_mb=0")
    return make_server


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


# ---- sanity: the raw client itself works -----------------------------------------------------

def test_raw_echo_text_binary_and_fragments(server):
    with RawWS(server.port) as ws:
        assert ws.extensions is None, f"no extension offered, none may be answered: {ws.response!r}"
        assert ws.echo(TEXT, "héllo ✓".encode()) == "héllo ✓".encode()
        data = os.urandom(70000)   # 64-bit length form
        assert ws.echo(BINARY, data) == data
        assert ws.echo(TEXT, b"") == b""
        # a text message in three fragments with a ping between them; "€" split across two of them
        ws.send(TEXT, b"a\xe2", fin=False)
        ws.send(PING, b"mid")
        ws.send(CONT, b"\x82", fin=False)
        ws.send(CONT, b"\xacz", fin=True)
        pong = ws.read_frame()
        assert pong is not None and pong.opcode == PONG and pong.payload == b"mid", pong
        assert ws.read_message() == (TEXT, "a€z".encode())
        # all three length forms, declared non-minimally (RFC 6455 §5.2 asks for the minimal form, but
        # servers accept it) is not tested: minimal encodings only
        for n in (0, 125, 126, 65535, 65536):
            p = bytes([n % 251]) * n
            assert ws.echo(BINARY, p) == p, n
        # a zero masking key is a legal masking key
        ws.send(TEXT, b"zero mask", mask_key=b"\0\0\0\0")
        assert ws.read_message() == (TEXT, b"zero mask")
        ws.send(CLOSE, close_payload(NORMAL, "fine ✓".encode()))
        f = ws.expect_close(NORMAL, what="clean close", reply=False)
        assert f.fin and f.rsv == 0


def test_empty_close_is_answered_with_empty_close(server):
    """RFC 6455 §5.5.1: a close without payload is legal; the answer carries no code either
    (1005 must never be sent on the wire)."""
    with RawWS(server.port) as ws:
        ws.send(CLOSE, b"")
        f = ws.read_frame()
        assert f is not None and f.opcode == CLOSE, ws.frames
        assert f.close_code != 1005 and len(f.payload) in (0, 2), f
        closed, _ = ws.reader.wait_eof(2.0)
        assert closed
    assert_ws_served(server)


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 3000, 4000, 4999])
def test_valid_close_codes_are_accepted(server, code):
    with RawWS(server.port) as ws:
        ws.send(CLOSE, close_payload(code, b"r"))
        f = ws.read_frame()
        assert f is not None and f.opcode == CLOSE, ws.frames
        # the answer echoes the code (RFC 6455 §5.5.1 "typically") or says 1000; not an error
        assert f.close_code in (code, NORMAL), (
            f"close code {code} is valid (RFC 6455 §7.4) but the server answered {f}")
        closed, _ = ws.reader.wait_eof(2.0)
        assert closed
    assert_ws_served(server)


# ---- framing violations → 1002 -----------------------------------------------------------------

def test_unmasked_client_frame(server):
    violation(server, frame(TEXT, b"not masked", masked=False), PROTOCOL_ERROR, "unmasked text frame")


def test_unmasked_client_close_frame(server):
    violation(server, frame(CLOSE, close_payload(NORMAL), masked=False), PROTOCOL_ERROR,
              "unmasked close frame")


@pytest.mark.parametrize("rsv", [4, 2, 1, 7])
def test_reserved_bits_without_extension(server, rsv):
    violation(server, frame(TEXT, b"rsv", rsv=rsv), PROTOCOL_ERROR, f"RSV bits {rsv:03b} on a text frame")


def test_reserved_bit_on_ping(server):
    violation(server, frame(PING, b"x", rsv=4), PROTOCOL_ERROR, "RSV1 on a ping")


@pytest.mark.parametrize("rsv", [2, 1])
def test_rsv2_rsv3_with_deflate_negotiated(server, rsv):
    violation(server, frame(TEXT, b"rsv", rsv=rsv), PROTOCOL_ERROR, f"RSV {rsv:03b} with deflate",
              extensions="permessage-deflate")


def test_rsv1_on_continuation_with_deflate(server):
    """RFC 7692 §6.1: RSV1 is set on the first frame of a message only."""
    c = zlib.compressobj(wbits=-15)
    data = c.compress(b"hello hello hello") + c.flush(zlib.Z_SYNC_FLUSH)
    data = data[:-4]
    violation(server, [frame(TEXT, data[:3], fin=False, rsv=4), frame(CONT, data[3:], rsv=4)],
              PROTOCOL_ERROR, "RSV1 on a continuation frame", extensions="permessage-deflate")


def test_rsv1_on_control_frame_with_deflate(server):
    violation(server, frame(PING, b"x", rsv=4), PROTOCOL_ERROR, "RSV1 on a ping with deflate",
              extensions="permessage-deflate")


@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcode(server, opcode):
    violation(server, frame(opcode, b"x"), PROTOCOL_ERROR, f"reserved opcode 0x{opcode:x}")


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_fragmented_control_frame(server, opcode):
    payload = close_payload(NORMAL) if opcode == CLOSE else b"frag"
    violation(server, frame(opcode, payload, fin=False), PROTOCOL_ERROR,
              f"control frame 0x{opcode:x} with FIN=0")


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_control_frame_payload_over_125(server, opcode):
    payload = close_payload(NORMAL, b"r" * 124) if opcode == CLOSE else b"p" * 126
    violation(server, frame(opcode, payload), PROTOCOL_ERROR,
              f"control frame 0x{opcode:x} with {len(payload)} bytes of payload")


def test_64bit_length_with_most_significant_bit_set(server):
    """RFC 6455 §5.2: the most significant bit of the 64-bit length MUST be 0 (a protocol error;
    the length is also far above the message limit, so 1009 is accepted too)."""
    violation(server, frame(BINARY, b"", length=1 << 63, len_form=127), {PROTOCOL_ERROR, MESSAGE_TOO_BIG},
              "64-bit length with the MSB set")


def test_continuation_without_start(server):
    violation(server, frame(CONT, b"orphan"), PROTOCOL_ERROR, "continuation frame without a message")


def test_final_continuation_without_start(server):
    violation(server, [frame(TEXT, b"complete"), frame(CONT, b"orphan", fin=False)], PROTOCOL_ERROR,
              "continuation after a complete message")


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_new_data_frame_inside_fragmented_message(server, opcode):
    violation(server, [frame(TEXT, b"part 1", fin=False), frame(opcode, b"new message")], PROTOCOL_ERROR,
              f"data frame 0x{opcode:x} while a fragmented message is open")


# ---- UTF-8 → 1007 --------------------------------------------------------------------------------

INVALID_UTF8 = {
    "lone_ff": b"\xff",
    "lone_continuation": b"abc\x80",
    "overlong_slash": b"\xc0\xaf",
    "overlong_nul": b"\xe0\x80\x80",
    "surrogate": b"\xed\xa0\x80",
    "above_max": b"\xf4\x90\x80\x80",
    "truncated_at_end": b"ok \xe2\x82",
}


@pytest.mark.parametrize("name", list(INVALID_UTF8))
def test_invalid_utf8_text(server, name):
    violation(server, frame(TEXT, INVALID_UTF8[name]), INVALID_PAYLOAD, f"invalid UTF-8 text ({name})")


@pytest.mark.parametrize("split", [
    pytest.param([b"caf\xc3", b"\x28"], id="bad_continuation_byte_in_next_fragment"),
    pytest.param([b"ok", b"\xe2\x82", b""], id="truncated_sequence_at_message_end"),
    pytest.param([b"\xf0\x9f", b"\x98", b"\xc0"], id="four_byte_sequence_broken_in_third"),
])
def test_invalid_utf8_split_across_fragments(server, split):
    frames = [frame(TEXT if i == 0 else CONT, part, fin=i == len(split) - 1) for i, part in enumerate(split)]
    violation(server, frames, INVALID_PAYLOAD, f"invalid UTF-8 across fragments {split}")


def test_invalid_utf8_in_compressed_text(server):
    c = zlib.compressobj(wbits=-15)
    data = (c.compress(b"abc\xff\xfe") + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    violation(server, frame(TEXT, data, rsv=4), INVALID_PAYLOAD, "invalid UTF-8 in a compressed text message",
              extensions="permessage-deflate")


def test_invalid_utf8_close_reason(server):
    """RFC 6455 §5.5.1: the close reason is UTF-8; §8.1: an endpoint that finds invalid UTF-8 where
    it must interpret UTF-8 fails the connection, and §7.4.1 names 1007 for that."""
    violation(server, frame(CLOSE, close_payload(NORMAL, b"bad \xff reason")), INVALID_PAYLOAD,
              "invalid UTF-8 in the close reason")


# ---- close payload violations → 1002 ------------------------------------------------------------

def test_close_with_one_byte_payload(server):
    violation(server, frame(CLOSE, b"\x03"), PROTOCOL_ERROR, "close frame with a 1-byte payload")


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
def test_invalid_close_code(server, code):
    violation(server, frame(CLOSE, close_payload(code)), PROTOCOL_ERROR, f"close code {code}")


# ---- size limits → 1009 -------------------------------------------------------------------------

def test_single_frame_declaring_more_than_the_limit(server):
    """A frame header that declares 1 MiB + 1: the server may refuse it from the header alone; we
    keep sending its payload while it reads, and expect 1009 either way."""
    payload = b"x" * (MAX_MESSAGE + 1)
    with RawWS(server.port) as ws:
        data = frame(BINARY, payload)
        for i in range(0, len(data), 65536):
            if not ws.send_raw(data[i:i + 65536]):
                break
        ws.expect_close(MESSAGE_TOO_BIG, what="one frame of 1 MiB + 1")
    assert_ws_served(server)


def test_huge_declared_length_is_refused_from_the_header(server):
    """A frame that declares 2^62 bytes: the server must not wait for (or allocate) that."""
    head = frame(BINARY, b"", length=1 << 62, len_form=127)
    violation(server, head + b"some of the payload", MESSAGE_TOO_BIG, "frame declaring 2^62 bytes")


def test_fragments_adding_up_to_more_than_the_limit(server):
    piece = b"f" * 65536
    n = MAX_MESSAGE // len(piece) + 1        # 17 × 64 KiB = 1 MiB + 64 KiB
    frames = [frame(BINARY if i == 0 else CONT, piece, fin=False) for i in range(n)]
    frames.append(frame(CONT, b"end"))
    violation(server, frames, MESSAGE_TOO_BIG, f"{n} fragments of 64 KiB")


def test_message_of_exactly_the_limit_is_echoed(server):
    data = os.urandom(MAX_MESSAGE)
    with RawWS(server.port, timeout=20) as ws:
        pieces = [data[i:i + 300_000] for i in range(0, len(data), 300_000)]
        for i, p in enumerate(pieces):
            ws.send(BINARY if i == 0 else CONT, p, fin=i == len(pieces) - 1)
        assert ws.read_message(20) == (BINARY, data)


def deflate_raw(data: bytes) -> bytes:
    """permessage-deflate payload for one message (RFC 7692 §7.2.1: sync flush, tail removed)."""
    c = zlib.compressobj(level=9, wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def test_compressed_echo_by_hand(server):
    """Control for the bomb test: a hand-compressed message is understood and echoed (compressed)."""
    text = "compress me " * 1000
    with RawWS(server.port, extensions="permessage-deflate") as ws:
        assert ws.extensions and ws.extensions.split(";")[0].strip() == "permessage-deflate", ws.response
        ws.send(TEXT, deflate_raw(text.encode()), rsv=4)
        f = ws.read_frame()
        assert f is not None and f.opcode == TEXT and f.fin, ws.frames
        assert f.rsv == 4, f"a 12 kB repetitive echo should come back compressed: {f}"
        d = zlib.decompressobj(wbits=-15)
        assert d.decompress(f.payload + b"\x00\x00\xff\xff") == text.encode()


@pytest.mark.parametrize("offer, answer", [
    ("permessage-deflate", "permessage-deflate"),
    ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
    ("permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=10"),
    ("permessage-deflate; server_no_context_takeover; client_no_context_takeover",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    # RFC 7692 §5: an offer with an unknown or invalid parameter, or a duplicate one, is declined
    ("permessage-deflate; foo=1", None),
    ("permessage-deflate; server_max_window_bits=7", None),
    ("permessage-deflate; server_max_window_bits", None),
    ("permessage-deflate; client_max_window_bits=16", None),
    ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
    # the next offer is taken when the first is declined
    ("permessage-deflate; foo=1, permessage-deflate", "permessage-deflate"),
    ("x-webkit-deflate-frame", None),
])
def test_deflate_negotiation(server, offer, answer):
    with RawWS(server.port, extensions=offer) as ws:
        got = ws.extensions
        norm = None if got is None else "; ".join(p.strip() for p in got.split(";"))
        assert norm == answer, f"offer {offer!r}: expected {answer!r}, the server answered {got!r}"
        # and the connection works as negotiated
        if answer is None:
            assert ws.echo(TEXT, b"plain") == b"plain"
        else:
            ws.send(TEXT, deflate_raw(b"negotiated"), rsv=4)
            f = ws.read_frame()
            assert f is not None and f.opcode == TEXT, ws.frames
            data = zlib.decompressobj(wbits=-15).decompress(f.payload + b"\x00\x00\xff\xff") if f.rsv == 4 else f.payload
            assert data == b"negotiated", f


def test_deflate_server_window_bits_is_honoured(server):
    """server_max_window_bits=10: every echo must inflate with a 1 KiB window (zlib refuses a
    distance that reaches further back)."""
    import random
    rnd = random.Random(7)
    words = [bytes(rnd.choice(b"abcdefghij") for _ in range(6)) for _ in range(300)]
    text = b" ".join(rnd.choice(words) for _ in range(20000))   # repeats at distances well over 1 KiB
    with RawWS(server.port, extensions="permessage-deflate; server_max_window_bits=10") as ws:
        assert "server_max_window_bits=10" in (ws.extensions or ""), ws.response
        d = zlib.decompressobj(wbits=-10)
        for _ in range(3):
            ws.send(TEXT, deflate_raw(text), rsv=4)
            f = ws.read_frame(10)
            assert f is not None and f.opcode == TEXT and f.rsv == 4, ws.frames
            try:
                assert d.decompress(f.payload + b"\x00\x00\xff\xff") == text
            except zlib.error as e:
                raise AssertionError(f"echo does not inflate with a 2^10 window: {e}")


def test_deflate_no_context_takeover_both_ways(server):
    text = b"the same sentence, again and again. " * 50
    with RawWS(server.port, extensions="permessage-deflate; server_no_context_takeover; client_no_context_takeover") as ws:
        assert "server_no_context_takeover" in (ws.extensions or ""), ws.response
        for _ in range(3):
            ws.send(TEXT, deflate_raw(text), rsv=4)
            f = ws.read_frame()
            assert f is not None and f.rsv == 4, ws.frames
            # server_no_context_takeover: each echo inflates on its own
            assert zlib.decompressobj(wbits=-15).decompress(f.payload + b"\x00\x00\xff\xff") == text


def test_deflate_client_context_takeover(server):
    """Without client_no_context_takeover the client may refer back to its earlier messages: the
    second and third messages below are mostly back-references into the first."""
    text = os.urandom(3000).hex().encode()
    c = zlib.compressobj(level=9, wbits=-15)
    d = zlib.decompressobj(wbits=-15)
    with RawWS(server.port, extensions="permessage-deflate") as ws:
        for i in range(3):
            payload = c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH)
            if i:
                assert len(payload) < len(text) // 10, "test setup: no back-reference"
            ws.send(TEXT, payload[:-4], rsv=4)
            f = ws.read_frame()
            assert f is not None and f.opcode == TEXT, ws.frames
            got = d.decompress(f.payload + b"\x00\x00\xff\xff") if f.rsv == 4 else f.payload
            assert got == text, f"message {i} not understood with context takeover"


def test_deflate_bomb(lean_server):
    """~50 KB of deflate that inflates to 50 MB: close 1009, and the server never holds the
    inflated data (its RSS stays within a few MB of where it was)."""
    server = lean_server
    bomb = deflate_raw(b"\0" * (50 * 1024 * 1024))
    assert len(bomb) < 100_000, len(bomb)
    before = rss_kb(server.pid)
    with RawWS(server.port, extensions="permessage-deflate") as ws:
        assert ws.extensions and "permessage-deflate" in ws.extensions, ws.response
        ws.send_raw(frame(BINARY, bomb, rsv=4))
        ws.expect_close(MESSAGE_TOO_BIG, what="deflate bomb (50 MB inflated from %d bytes)" % len(bomb))
    after = rss_kb(server.pid)
    assert after - before < 16 * 1024, f"server RSS grew from {before} kB to {after} kB on a deflate bomb"
    assert_ws_served(server)


def test_deflate_bomb_in_fragments(server):
    bomb = deflate_raw(b"\0" * (20 * 1024 * 1024))
    parts = [bomb[i:i + 2048] for i in range(0, len(bomb), 2048)]
    frames = [frame(TEXT if i == 0 else CONT, p, fin=i == len(parts) - 1, rsv=4 if i == 0 else 0)
              for i, p in enumerate(parts)]
    violation(server, frames, MESSAGE_TOO_BIG, "fragmented deflate bomb", extensions="permessage-deflate")


def test_corrupt_deflate_data(server):
    violation(server, frame(BINARY, b"\xff\xff\xff\xff garbage", rsv=4), {INVALID_PAYLOAD, PROTOCOL_ERROR},
              "corrupt deflate data", extensions="permessage-deflate")


def test_server_closes_without_our_close_reply(server):
    """After a violation the server sends close and, if the client never answers, still closes the
    TCP connection within its close timeout (5 s)."""
    violation(server, frame(TEXT, b"unmasked", masked=False), PROTOCOL_ERROR,
              "unmasked frame, no close reply", reply=False)


@pytest.mark.parametrize("cut", ["header", "length", "mask", "payload", "fragmented", "compressed"])
@pytest.mark.parametrize("how", ["fin", "rst"])
def test_client_vanishes_mid_frame(server, cut, how):
    """The client goes away in the middle of a frame (FIN or RST): nothing to answer, but the
    server must clean up and go on serving."""
    data = frame(BINARY, os.urandom(70000))
    piece = {"header": data[:1], "length": data[:3], "mask": data[:12], "payload": data[:30000],
             "fragmented": frame(TEXT, b"part", fin=False) + frame(CONT, b"more", fin=False),
             "compressed": frame(TEXT, deflate_raw(b"x" * 100000)[:40], rsv=4)}[cut]
    ext = "permessage-deflate" if cut == "compressed" else None
    ws = RawWS(server.port, extensions=ext)
    ws.send_raw(piece)
    if how == "rst":
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.close()
    time.sleep(0.05)
    assert_ws_served(server)


# ---- handshake refusals ---------------------------------------------------------------------------

def handshake(server, data: bytes):
    with RawConn(server.port) as c:
        c.send(data)
        return read_upgrade_response(c.reader)


def test_handshake_missing_key(server):
    req, _ = upgrade_request(key=None)
    r = handshake(server, req)
    assert r.status == 400, r
    assert_ws_served(server)


@pytest.mark.parametrize("key", ["", "short", base64.b64encode(b"x" * 15).decode(), base64.b64encode(b"x" * 17).decode()])
def test_handshake_invalid_key(server, key):
    req, _ = upgrade_request(key=key)
    r = handshake(server, req)
    assert r.status == 400, r
    assert_ws_served(server)


@pytest.mark.parametrize("version", ["8", "12", "14", "banana"])
def test_handshake_wrong_version(server, version):
    req, _ = upgrade_request(version=version)
    r = handshake(server, req)
    assert r.status == 426, r
    assert r.header("Sec-WebSocket-Version") == "13", r
    assert_ws_served(server)


def test_handshake_missing_version(server):
    req, _ = upgrade_request(version=None)
    r = handshake(server, req)
    assert r.status in (400, 426), r
    assert_ws_served(server)


def test_handshake_post_is_not_upgraded(server):
    req, _ = upgrade_request(method="POST")
    r = handshake(server, req)
    assert r.status != 101 and r.status >= 400, r
    assert_ws_served(server)


def test_handshake_unknown_path(server):
    req, _ = upgrade_request("/ws/no-such-route")
    r = handshake(server, req)
    assert r.status == 404, r
    assert_ws_served(server)


def test_handshake_http10(server):
    req, _ = upgrade_request()
    req = req.replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    r = handshake(server, req)
    assert r.status != 101, r
    assert_ws_served(server)


def test_plain_get_on_ws_route_is_not_upgraded(server):
    with RawConn(server.port) as c:
        r = c.get("/ws/echo")
    assert r.status != 101 and r.status >= 400, r
    assert_ws_served(server)


def test_frames_pipelined_after_the_handshake(server):
    """Frames sent in the same packet as the upgrade request belong to the WebSocket."""
    req, key = upgrade_request()
    with RawConn(server.port) as c:
        c.send(req + frame(TEXT, b"early bird") + frame(BINARY, b"\x01\x02"))
        r = read_upgrade_response(c.reader)
        assert r.status == 101, r
        ws = RawWS.__new__(RawWS)
        ws.conn, ws.sock, ws.reader, ws.timeout, ws.frames, ws.send_failed = c, c.sock, c.reader, 5.0, [], False
        assert ws.read_message() == (TEXT, b"early bird")
        assert ws.read_message() == (BINARY, b"\x01\x02")


# ---- backpressure --------------------------------------------------------------------------------

@pytest.mark.covet_timeout(120)
def test_client_that_never_reads_does_not_grow_the_server(lean_server):
    """A client sends up to 200 MB of 1 MiB messages to /ws/echo and never reads the echoes. The
    server may stop reading from it (its send buffer is capped at 4 MiB) or drop what it cannot
    send, but its RSS must stay within 64 MB of where it started, and other clients are served
    meanwhile."""
    server = lean_server
    msg = os.urandom(MAX_MESSAGE - 16)
    zero = b"\0\0\0\0"
    before = rss_kb(server.pid)
    peak = before
    sent = 0
    stalled = False
    with RawWS(server.port, timeout=5) as ws:
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        deadline = time.monotonic() + 40
        while sent < 200 * 1024 * 1024 and time.monotonic() < deadline:
            # zero masking key: legal, and spares masking 200 MB in Python
            if not ws.send_raw(frame(BINARY, struct.pack(">Q", sent) + msg[8:], mask_key=zero)):
                stalled = True      # the server stopped reading from us for 5 s: backpressure
                break
            sent += len(msg)
            if (sent // len(msg)) % 8 == 0:
                peak = max(peak, rss_kb(server.pid))
        peak = max(peak, rss_kb(server.pid))
        assert peak - before < 64 * 1024, (
            f"server RSS grew from {before} kB to {peak} kB while a client sent {sent >> 20} MiB "
            f"without reading")
        # another client is served while this one is stuck
        assert_ws_served(server)
        with RawConn(server.port) as c:
            assert c.get("/plaintext").status == 200
        peak = max(peak, rss_kb(server.pid))
        assert peak - before < 64 * 1024, (before, peak)
        # the stuck client reads now: whatever was echoed is intact and in order
        ws.sock.settimeout(5)
        got, last = 0, -1
        try:
            while got < sent // len(msg):
                op, data = ws.read_message(5)
                assert op == BINARY and len(data) == len(msg), (op, len(data))
                seq = struct.unpack(">Q", data[:8])[0]
                assert seq > last and data[8:] == msg[8:], f"echo {got} damaged or out of order (seq {seq})"
                last = seq
                got += 1
        except (WireError, ServerClosed):
            pass
    print(f"sent {sent >> 20} MiB (stalled={stalled}), echoes read back: {got}, RSS {before} -> {peak} kB")
    assert got > 0, "no echo at all came back once the client read"
    server.assert_alive()


@pytest.mark.covet_timeout(90)
def test_ping_flood_without_reading_pongs(lean_server):
    """A client floods pings (125-byte payloads) and never reads the pongs: the server must pause
    reading rather than buffer the pongs without bound."""
    server = lean_server
    before = rss_kb(server.pid)
    ping = frame(PING, b"p" * 125, mask_key=b"\0\0\0\0")
    batch = ping * 2000                     # ~262 KB
    sent = 0
    with RawWS(server.port, timeout=3) as ws:
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        deadline = time.monotonic() + 20
        while sent < 100 * 1024 * 1024 and time.monotonic() < deadline:
            if not ws.send_raw(batch):
                break
            sent += len(batch)
        after = rss_kb(server.pid)
        assert after - before < 64 * 1024, f"RSS {before} -> {after} kB after {sent >> 20} MiB of pings"
        assert_ws_served(server)
    print(f"ping flood: sent {sent >> 20} MiB, RSS {before} -> {after} kB")


@pytest.mark.covet_timeout(90)
def test_slow_reader_loses_no_echo(server):
    """/ws/echo "echoes every message". A client that sends 32 messages of 1 MiB before reading any
    echo (more than the 4 MiB send buffer plus the socket buffers) must get all 32 back, in order:
    the server may stop reading until the client catches up (backpressure), or give up with a close
    frame that says so, but not drop messages silently."""
    n = 32
    msg = os.urandom(MAX_MESSAGE - 16)
    with RawWS(server.port, timeout=10) as ws:
        sender_done = threading.Event()
        sent = [0]

        def sender():
            for i in range(n):
                if not ws.send_raw(frame(BINARY, struct.pack(">Q", i) + msg[8:], mask_key=b"\0\0\0\0")):
                    break
                sent[0] += 1
            sender_done.set()

        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        t = threading.Thread(target=sender, daemon=True)
        t.start()
        sender_done.wait(5)           # with backpressure it is still blocked: fine, we read now
        seqs: list[int] = []
        closed_with = None
        try:
            while len(seqs) < n:
                op, data = ws.read_message(10)
                assert op == BINARY and data[8:] == msg[8:], f"echo {len(seqs)} damaged"
                seqs.append(struct.unpack(">Q", data[:8])[0])
        except ServerClosed:
            closed_with = ws.frames[-1] if ws.frames else None
        except WireError as e:
            closed_with = f"nothing more within 10 s, connection still open ({str(e).split(';')[0]})"
        t.join(15)
        assert seqs == list(range(n)), (
            f"sent {sent[0]} messages of 1 MiB to /ws/echo before reading; got {len(seqs)} echoes back "
            f"(sequence numbers {seqs[:12]}{'...' if len(seqs) > 12 else ''}), then: {closed_with}")
    assert_ws_served(server)


@pytest.mark.covet_timeout(90)
def test_room_member_that_never_reads_does_not_block_the_room(make_server, monkeypatch):
    """Room fan-out with one member that never reads: the other members keep getting every
    message promptly, and the server does not buffer the stuck member's copies without bound."""
    server = lean_make_server(make_server, monkeypatch)(threads=1)
    msg = os.urandom(256 * 1024)
    with RawWS(server.port, "/ws/room/stuck", timeout=10) as stuck, \
            RawWS(server.port, "/ws/room/stuck", timeout=10) as live:
        stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        time.sleep(0.2)
        before = rss_kb(server.pid)
        peak = before
        t0 = time.monotonic()
        for i in range(200):                     # 50 MB of fan-out to the stuck member
            live.send(BINARY, struct.pack(">Q", i) + msg[8:])
            op, data = live.read_message(10)
            assert (op, struct.unpack(">Q", data[:8])[0]) == (BINARY, i), f"live member lost message {i}"
            if i % 10 == 0:
                peak = max(peak, rss_kb(server.pid))
        took = time.monotonic() - t0
        peak = max(peak, rss_kb(server.pid))
        assert peak - before < 64 * 1024, f"server RSS {before} -> {peak} kB with a stuck room member"
        assert took < 30, f"200 fan-outs took {took:.1f} s with a stuck member"
        assert_ws_served(server)
