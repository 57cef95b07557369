#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): a handful of valid and
edge-case inputs each, in the input layout each target's header comment describes. The seeds are in the
repository; run this again only after changing a layout (it rewrites the files it names, leaves others,
such as regression inputs from crashes, alone)."""

import base64
import hashlib
import hmac
import json
import pathlib
import struct
import zlib

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"


def write(target: str, name: str, data: bytes) -> None:
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


# ---------------------------------------------------------------- HTTP/1.1
H1 = {
    "get": b"GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n",
    "post_length": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    "chunked_trailer": b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;e=1\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
    "http10_keepalive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "head_expect": b"HEAD /h HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz",
    "pipelined": b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "h2c_upgrade": b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    "prior_knowledge": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    "cl_and_te": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "absolute_form": b"OPTIONS http://x:80/p?q HTTP/1.1\r\nHost: x:80\r\nCookie: a=1; b=2\r\n\r\n",
    "large_body_streamed": b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n" + b"u" * 2000,
    "websocket_upgrade": b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
}
for name, req in H1.items():
    for target in ("http1_request", "http1_reader"):
        write(target, name, b"\x00" + req)  # read whole (http1_reader: compared with a split it chooses)
        write(target, name + "_split", b"\x07" + req)  # in pieces


# ---------------------------------------------------------------- HTTP/2 and HPACK
def frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def lit(name: bytes, value: bytes, index_byte: int = 0x00) -> bytes:
    """A literal field with a literal name (0x00: without indexing, 0x40: with incremental indexing)."""
    return bytes([index_byte, len(name)]) + name + bytes([len(value)]) + value


def lit_idx(index: int, value: bytes, incremental: bool = False) -> bytes:
    """A literal value with an indexed name (index < 15 without indexing, < 63 with)."""
    return bytes([(0x40 | index) if incremental else index, len(value)]) + value


GET = b"\x82\x86\x84" + lit_idx(1, b"x", incremental=True)  # GET http / :authority x (into the table)
POST = b"\x83\x86" + lit_idx(4, b"/echo") + lit_idx(1, b"x")
SETTINGS = frame(0x4, 0, 0, b"")
SETTINGS_ACK = frame(0x4, 0x1, 0, b"")
H2 = {
    "get": SETTINGS + frame(0x1, 0x5, 1, GET),
    "post_data": SETTINGS + frame(0x1, 0x4, 1, POST + lit(b"content-length", b"5")) + frame(0x0, 0x1, 1, b"hello"),
    "continuation": SETTINGS + frame(0x1, 0x1, 1, GET[:3]) + frame(0x9, 0x4, 1, GET[3:]),
    "ping_window_priority": SETTINGS + SETTINGS_ACK + frame(0x6, 0, 0, b"12345678")
    + frame(0x8, 0, 0, struct.pack(">I", 1000)) + frame(0x2, 0, 1, struct.pack(">IB", 0, 16))
    + frame(0x1, 0x5, 1, GET),
    "rst_after_headers": SETTINGS + frame(0x1, 0x4, 1, POST) + frame(0x3, 0, 1, struct.pack(">I", 8)),
    "cookie_crumbs_trailers": SETTINGS + frame(0x1, 0x4, 3, POST
                                               + lit(b"cookie", b"a=1") + lit(b"cookie", b"b=2"))
    + frame(0x0, 0, 3, b"ab") + frame(0x1, 0x5, 3, lit(b"x-trailer", b"t")),
    "padded_and_goaway": SETTINGS + frame(0x1, 0x5 | 0x8, 1, b"\x03" + GET + b"\x00\x00\x00")
    + frame(0x7, 0, 0, struct.pack(">II", 1, 0)),
    "settings_values": frame(0x4, 0, 0, struct.pack(">HIHIHI", 1, 0, 4, 1 << 20, 5, 1 << 14)) + frame(0x1, 0x5, 1, GET),
    "many_streams": SETTINGS + b"".join(frame(0x1, 0x5, s, b"\x82\x86\x84\xbe") for s in range(1, 20, 2)),
}
for knobs, (name, frames) in enumerate(H2.items()):
    write("http2_frames", name, b"\x00" + bytes([knobs % 16]) + frames)
    write("http2_frames", name + "_split", b"\x05\x00" + frames)

HPACK = {
    "static_get": [b"\x82\x86\x84\x41\x0fwww.example.com"],
    # RFC 7541 C.3: three requests sharing the dynamic table.
    "rfc7541_c3": [
        bytes.fromhex("828684410f7777772e6578616d706c652e636f6d"),
        bytes.fromhex("828684be58086e6f2d6361636865"),
        bytes.fromhex("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"),
    ],
    # RFC 7541 C.4: the same with Huffman coding.
    "rfc7541_c4_huffman": [
        bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff"),
        bytes.fromhex("828684be5886a8eb10649cbf"),
        bytes.fromhex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"),
    ],
    "table_size_update": [b"\x3f\xe1\x1f\x82\x86\x84\xbe", b"\x20\x82\x86\x84" + lit_idx(1, b"y")],
    "cookies_and_uppercase": [GET + lit(b"cookie", b"a=1") + lit(b"cookie", b"b=2") + lit(b"X-Upper", b"v")],
    "connection_header": [GET + lit(b"connection", b"keep-alive") + lit(b"te", b"trailers")],
    "missing_pseudo": [b"\x82" + lit_idx(1, b"x")],
    "big_value": [GET + b"\x00\x01v\x7f\x81\x01" + b"v" * 256],
}
for name, blocks in HPACK.items():
    write("hpack", name, b"".join(struct.pack(">H", len(b)) + b for b in blocks))


# ---------------------------------------------------------------- WebSocket
def ws_frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False,
             mask: bytes = b"\x11\x22\x33\x44") -> bytes:
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, 0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def deflate_message(message: bytes, wbits: int = 15) -> bytes:
    z = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = z.compress(message) + z.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


WS = {
    "text_binary": (0x00, ws_frame(1, b"hello") + ws_frame(2, b"\x00\x01\x02")),
    "fragmented_ping": (0x00, ws_frame(1, b"Hel", fin=False) + ws_frame(9, b"p")
                        + ws_frame(0, b"lo \xe2\x82", fin=False)
                        + ws_frame(0, b"\xac!")),
    "close_with_reason": (0x00, ws_frame(8, struct.pack(">H", 1000) + b"bye")),
    "len16_len64": (0x00, ws_frame(2, b"B" * 300) + ws_frame(2, b"C" * 65536)),
    "deflated": (0x02 | 0x60, ws_frame(1, deflate_message(b"compressed hello " * 8), rsv1=True)
                 + ws_frame(1, deflate_message(b"second message, same window"), rsv1=True)),
    "deflated_fragmented": (0x02 | 0x04, ws_frame(1, deflate_message(b"abcabcabc" * 20)[:10], rsv1=True, fin=False)
                            + ws_frame(0, deflate_message(b"abcabcabc" * 20)[10:])),
    "too_big": (0x01, ws_frame(2, b"x" * 200)),
    "bad_utf8": (0x00, ws_frame(1, b"\xff\xfe")),
    "unmasked": (0x00, bytes([0x81, 0x02]) + b"hi"),
}
for name, (knobs, data) in WS.items():
    write("ws_frames", name, b"\x00" + bytes([knobs]) + data)
    write("ws_frames", name + "_split", b"\x03" + bytes([knobs]) + data)


def deflate_msgs(parts: list[tuple[bytes, bool]]) -> bytes:
    return b"".join(struct.pack(">H", len(p)) + bytes([1 if last else 0]) + p for p, last in parts)


text = b"the quick brown fox jumps over the lazy dog " * 4
DEFL = {
    "one_message": (0x60, 255, deflate_msgs([(deflate_message(text), True)])),
    "split_message": (0x60, 255, deflate_msgs([(deflate_message(text)[:7], False), (deflate_message(text)[7:], True)])),
    "window_9_no_takeover": (0x01, 255, deflate_msgs([(deflate_message(text, 9), True),
                                                      (deflate_message(b"zzz", 9), True)])),
    "bomb_over_limit": (0x60, 0, deflate_msgs([(deflate_message(b"\x00" * 60000), True)])),
    "stored_block": (0x60, 10, deflate_msgs([(b"\x00\x05\x00\xfa\xffhello", True)])),
    "garbage": (0x60, 10, deflate_msgs([(b"\xff\xff\xff\xff", True)])),
}
for name, (knobs, limit, data) in DEFL.items():
    write("ws_deflate", name, bytes([knobs, limit]) + data)
for i, ext in enumerate([b"permessage-deflate", b"permessage-deflate; client_max_window_bits",
                         b"permessage-deflate; server_max_window_bits=10; client_no_context_takeover, x-webkit",
                         b"permessage-deflate; server_max_window_bits=\"8\"; server_no_context_takeover"]):
    write("ws_deflate", f"extensions_{i}", b"\x60\x10" + ext)


# ---------------------------------------------------------------- router, URLs, traceparent
for i, (method, path) in enumerate([(0, b"/"), (0, b"/users/ann"), (0, b"/users/ann/posts/7"), (0, b"/n/-42"),
                                    (0, b"/f/1.5e3"), (0, b"/o/123e4567-e89b-12d3-a456-426614174000"),
                                    (0, b"/v/a/b/c"), (1, b"/users/x"), (0, b"/static/css/../x.css"),
                                    (5, b"/deep/1/2/3/4/5/6/7/8"), (0, b"//a//b/"), (0, b"/a/%20/b")]):
    write("router", f"match_{i}", bytes([method]) + path)
for i, (method, pattern, path) in enumerate([(0x80, b"/p/{id:int}/{rest:path}", b"/p/3/a/b"),
                                             (0x80, b"/q/{u:uuid}", b"/q/00000000-0000-0000-0000-000000000000"),
                                             (0x82, b"/{a}/{b:float}", b"/x/-.5"),
                                             (0x80, b"/bad/{", b"/bad/"), (0x80, b"/dup/{a}/{a}", b"/dup/1/2")]):
    write("router", f"pattern_{i}", bytes([method]) + pattern + b"\n" + path)

for i, (mode, s) in enumerate([(1, b"a=1&b=2&a=3"), (1, b"q=hello+world&x=%41%42%4"), (0, b"/p%2Fq%zz%"),
                               (1, b"&&=&a&=b&c=d=e"), (0, b"http://h:1/p?q=1"), (0, b"/only?"),
                               (1, b"k%00=v%FF&%e2%82%ac=%E2%82%AC"), (0, b"*")]):
    write("url", f"seed_{i}", bytes([mode]) + s)

for i, s in enumerate([b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                       b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                       b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                       b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                       b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                       b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
                       b"tenant@system=v, a=b ,, c=d",
                       b"a=1,a=2"]):
    write("traceparent", f"seed_{i}", s)


# ---------------------------------------------------------------- JWT/JWS
SECRET = b"fuzzing-secret-of-at-least-32-bytes!!"  # jwt_fuzz.cpp's fixed key


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def token(header: dict[str, object], claims: dict[str, object]) -> bytes:
    signing = b64(json.dumps(header).encode()) + b"." + b64(json.dumps(claims).encode())
    return signing + b"." + b64(hmac.new(SECRET, signing, hashlib.sha256).digest())


good = {"iss": "https://issuer.example", "aud": "api", "exp": 1_800_000_100, "iat": 1_799_999_000, "sub": "u"}
JWT = {
    "json_nested": (0, b'{"a":[1,2.5e-3,true,null,{"b":"\\u00e9\\ud83d\\ude00"}],"c":-0}'),
    "json_duplicate": (0, b'{"a":1,"a":2}'),
    "json_bad": (0, b'[01, "\x01"]'),
    "b64_canonical": (1, b"aGVsbG8"),
    "b64_noncanonical": (1, b"aGVsbG9"),
    "jwk_oct": (2, b'{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA","kid":"a"}'),
    "jwk_ec": (2, (b'{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",'
                  b'"y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"ec"}')),
    "jwk_okp": (2, b'{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}'),
    "jwk_rsa": (2, (b'{"kty":"RSA","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQR'
                   b'V3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ'
                   b'4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHp'
                   b'M2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB","kid":"r"}')),
    "token_valid": (3, token({"alg": "HS256", "kid": "k1", "typ": "JWT"}, good)),
    "token_alg_none": (3, b64(b'{"alg":"none"}') + b"." + b64(json.dumps(good).encode()) + b"."),
    "token_expired": (3, token({"alg": "HS256"}, {**good, "exp": 1_700_000_000})),
    "claims_signed_here": (4, b'{"alg":"HS256","kid":"k1"}\n' + json.dumps(good).encode()),
    "claims_aud_list_nbf": (4, (b'{"alg":"HS256","crit":["exp"]}\n'
                                b'{"aud":["x","api"],"nbf":1800000040,"exp":1800000100}')),
    "signed_input_here": (5, b64(b'{"alg":"HS256"}') + b"." + b64(json.dumps(good).encode())),
}
for name, (mode, text) in JWT.items():
    write("jwt", name, bytes([mode]) + text)


# ---------------------------------------------------------------- forms and cookies (Python, forms_fuzz.py)
MP = b"multipart/form-data; boundary=XyZ\n"
FORMS = {
    "multipart": MP + b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ\r\n"
    b"Content-Disposition: form-data; name=\"f\"; filename=\"C:\\\\x\\\\b.txt\"\r\nContent-Type: text/plain\r\n\r\n"
    b"file\r\ncontent\r\n--XyZ--\r\n",
    "multipart_rfc2231": b"multipart/form-data; boundary=\"q;q\"; charset=latin-1\n--q;q\r\n"
    b"Content-Disposition: form-data; name*=UTF-8''na%C3%AFve; filename*=utf-8''%E2%82%AC.txt\r\n\r\nx\r\n--q;q--",
    "multipart_preamble_padding": MP + b"preamble\r\n--XyZ  \r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n"
    b"--XyZx\r\n--XyZ--epilogue",
    "multipart_no_name": MP + b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nv\r\n--XyZ--\r\n",
    "multipart_charset": b"multipart/form-data; boundary=b; charset=utf-16\n--b\r\nContent-Disposition: form-data; "
    b"name=\"a\"\r\n\r\n\xff\xfe\r\n--b--",
    "urlencoded": b"application/x-www-form-urlencoded\na=1&b=%20x+y&a=&&c",
    "no_content_type": b"\nk=v",
    "cookies": b"a=1; b=\"two\"; =x; c; d=%41%zz",
}
for name, data in FORMS.items():
    write("forms", name, data)


# ---------------------------------------------------------------- typed JSON bodies (json_model_fuzz.cpp's Item)
JSON_MODEL = {
    "valid": b'{"name":"widget","price":9.99,"tags":["red","green"],"description":"x","stock":7,'
    b'"boxes":[{"width":1.5,"depth":null},{"width":2,"depth":-3}],"active":false}',
    "minimal": b'{"name":"","price":0,"tags":[]}',
    "escapes": b'{"name":"a\\"b\\\\c\\u00e9\\ud83d\\ude00\\n","price":-1e-3,"tags":["\\u0000"]}',
    "wrong_types": b'{"name":1,"price":"cheap","tags":"red","stock":70000,"boxes":[{"width":"w"}],"active":"yes"}',
    "missing": b'{"price":1}',
    "extra_deep": b'{"name":"a","price":1,"tags":[],"extra":{"a":[[[[{"b":null}]]]]}}',
    "duplicate_keys": b'{"name":"a","name":"b","price":1,"tags":[],"price":2}',
    "not_object": b'[{"name":"a"}]',
    "truncated": b'{"name":"a","price":1,"ta',
    "bad_utf8": b'{"name":"\xff\xfe","price":1,"tags":[]}',
    "numbers": b'{"name":"n","price":1.7976931348623157e308,"tags":[],"stock":-0}',
}
for name, data in JSON_MODEL.items():
    write("json_model", name, data)


# ---------------------------------------------------------------- HTTP/3 streams (http3_streams_fuzz.cpp)
def varint(n: int) -> bytes:
    """A QUIC variable-length integer (RFC 9000 §16)."""
    if n < 0x40:
        return bytes([n])
    if n < 0x4000:
        return struct.pack(">H", 0x4000 | n)
    return struct.pack(">I", 0x80000000 | n)


def prefixed(n: int, bits: int, first: int = 0) -> bytes:
    """A QPACK/HPACK prefixed integer of `bits` bits, the rest of the first byte being `first`."""
    limit = (1 << bits) - 1
    if n < limit:
        return bytes([first | n])
    out, n = bytearray([first | limit]), n - limit
    while n >= 0x80:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(out + bytes([n]))


def h3_frame(ftype: int, payload: bytes) -> bytes:
    return varint(ftype) + varint(len(payload)) + payload


def qpack_static(index: int) -> bytes:  # indexed field line, static table
    return prefixed(index, 6, 0xC0)


def qpack_static_name(index: int, value: bytes) -> bytes:  # literal value with a static name reference
    return prefixed(index, 4, 0x50) + prefixed(len(value), 7) + value


def qpack_literal(name: bytes, value: bytes) -> bytes:  # literal name and value
    return prefixed(len(name), 3, 0x20) + name + prefixed(len(value), 7) + value


def h3_headers(*fields: bytes, prefix: bytes = b"\x00\x00") -> bytes:
    return h3_frame(0x01, prefix + b"".join(fields))


def record(stream: int, data: bytes, fin: bool = False) -> bytes:
    """One record of the target's input (data over 255 bytes is split into several)."""
    out = b""
    while True:
        chunk, data = data[:255], data[255:]
        out += bytes([stream | (0x80 if fin and not data else 0), len(chunk)]) + chunk
        if not data:
            return out


GET = (qpack_static(17), qpack_static(23), qpack_static(1), qpack_static_name(0, b"localhost"))
POST_ECHO = (qpack_static(20), qpack_static(23), qpack_static_name(1, b"/echo"),
             qpack_static_name(0, b"localhost"))
SETTINGS = h3_frame(0x04, varint(0x01) + varint(4096) + varint(0x07) + varint(16))
H3 = {
    "get": record(4, SETTINGS) + record(0, h3_headers(*GET), fin=True),
    "post_body": record(0, h3_headers(*POST_ECHO, qpack_static_name(4, b"5")) + h3_frame(0x00, b"hello"),
                        fin=True),
    "post_body_in_pieces": record(0, h3_headers(*POST_ECHO)) + record(1, h3_headers(*GET), fin=True)
    + record(0, h3_frame(0x00, b"ab")) + record(0, h3_frame(0x00, b"cd"), fin=True),
    "header_fields": record(0, h3_headers(qpack_static(17), qpack_static(23), qpack_static_name(1, b"/headers"),
                                          qpack_static_name(0, b"localhost"), qpack_literal(b"x-a", b"1"),
                                          qpack_literal(b"cookie", b"a=1"), qpack_literal(b"cookie", b"b=2")),
                            fin=True),
    "trailers": record(0, h3_headers(*POST_ECHO) + h3_frame(0x00, b"xyz")
                       + h3_headers(qpack_literal(b"x-trailer", b"t")), fin=True),
    "too_many_fields": record(0, h3_headers(*GET, *(qpack_literal(b"x-f%d" % i, b"v") for i in range(20))), fin=True),
    "no_path": record(0, h3_headers(qpack_static(17), qpack_static(23)), fin=True),
    "connect": record(0, h3_headers(qpack_static(15), qpack_static_name(0, b"localhost")), fin=True),
    "body_over_limit": record(0, h3_headers(*POST_ECHO, qpack_static_name(4, b"9000")), fin=True),
    "content_length_mismatch": record(0, h3_headers(*POST_ECHO, qpack_static_name(4, b"2"))
                                      + h3_frame(0x00, b"toolong"), fin=True),
    "dynamic_table": record(4, SETTINGS)
    + record(5, prefixed(4096, 5, 0x20) + prefixed(3, 5, 0x40) + b"x-a" + prefixed(2, 7) + b"dy")
    + record(0, h3_headers(*GET, prefixed(0, 6, 0x80), prefix=prefixed(2, 8) + prefixed(0, 7)), fin=True),
    "blocked_stream": record(0, h3_headers(*GET, prefixed(0, 6, 0x80), prefix=prefixed(2, 8) + prefixed(0, 7)),
                             fin=True),
    "decoder_stream": record(6, prefixed(1, 6) + prefixed(0, 7, 0x80)) + record(0, h3_headers(*GET), fin=True),
    "goaway_and_unknown": record(4, SETTINGS + h3_frame(0x07, varint(0)) + h3_frame(0x21, b"reserved"))
    + record(7, varint(0x21) + b"grease") + record(0, h3_headers(*GET), fin=True),
    "data_before_headers": record(0, h3_frame(0x00, b"early") + h3_headers(*GET), fin=True),
    "control_closed": record(4, SETTINGS, fin=True),
    "unfinished_frame": record(0, varint(0x01) + varint(300) + b"\x00\x00"),
    "many_streams": b"".join(record(i, h3_headers(*GET), fin=True) for i in range(4)),
}
for name, data in H3.items():
    write("http3_streams", name, data)
