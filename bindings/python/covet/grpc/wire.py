"""The gRPC-over-HTTP/2 wire format: length-prefixed messages, message compression, ``grpc-timeout``, metadata.

A message on the wire is a 1-byte compressed flag, a 4-byte big-endian length, then the (maybe compressed)
bytes. A stream of them may be cut anywhere by DATA frames: `MessageReader` reassembles them, within a size limit
checked on the prefix (before the bytes arrive).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple, Optional, Union

from .status import StatusCode

__all__ = ["Metadatum", "Metadata", "MessageReader", "WireError", "Head", "frame", "parse_timeout", "read_head",
           "outgoing_metadata", "CODECS", "ACCEPT_ENCODING", "RESERVED_HEADERS"]


class WireError(Exception):
    """A request the call cannot go on with: ends the call with `code` and this message."""

    def __init__(self, code: StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class Metadatum(NamedTuple):
    """One metadata entry, as grpcio's (``key`` lower-case; ``value`` str, or bytes for a ``-bin`` key)."""

    key: str
    value: Union[str, bytes]


Metadata = tuple[Metadatum, ...]


def _gunzip(data: bytes, limit: int) -> bytes:
    return _inflate(zlib.decompressobj(16 + zlib.MAX_WBITS), data, limit)


def _deflate_decode(data: bytes, limit: int) -> bytes:
    return _inflate(zlib.decompressobj(), data, limit)


def _inflate(decoder: Any, data: bytes, limit: int) -> bytes:
    """Decompressed `data`, refused past `limit` bytes (a small message must not expand into gigabytes)."""
    out: bytes = decoder.decompress(data, limit + 1)
    if len(out) > limit or decoder.unconsumed_tail:
        raise WireError(StatusCode.RESOURCE_EXHAUSTED,
                        f"a decompressed message is larger than the server's limit of {limit} bytes "
                        "(max_receive_message_length)")
    if not decoder.eof:
        raise WireError(StatusCode.INTERNAL, "a compressed message is truncated or not valid for its encoding")
    return out


# name -> (compress, decompress(data, limit))
CODECS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes, int], bytes]]] = {
    "gzip": (lambda data: gzip.compress(data, compresslevel=6, mtime=0), _gunzip),
    "deflate": (zlib.compress, _deflate_decode),
}
ACCEPT_ENCODING = "identity,deflate,gzip"


def frame(payload: bytes, encoding: Optional[str] = None) -> bytes:
    """One message on the wire: compressed with `encoding` (``gzip``, ``deflate``) when given."""
    if encoding is not None:
        payload = CODECS[encoding][0](payload)
        return b"\x01" + len(payload).to_bytes(4, "big") + payload
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


class MessageReader:
    """Reassembles the request's messages from body chunks cut anywhere."""

    __slots__ = ("_buffer", "_limit", "_encoding")

    def __init__(self, limit: int, encoding: Optional[str]) -> None:
        self._buffer = bytearray()
        self._limit = limit
        self._encoding = encoding  # the request's grpc-encoding (None: identity)

    def feed(self, chunk: bytes) -> list[bytes]:
        """The messages complete with `chunk` added (decompressed), in order."""
        buffer = self._buffer
        buffer += chunk
        messages: list[bytes] = []
        start = 0
        while len(buffer) - start >= 5:
            flag = buffer[start]
            size = int.from_bytes(buffer[start + 1:start + 5], "big")
            if size > self._limit:
                raise WireError(StatusCode.RESOURCE_EXHAUSTED,
                                f"a request message of {size} bytes is larger than the server's limit of "
                                f"{self._limit} bytes (max_receive_message_length)")
            if len(buffer) - start - 5 < size:
                break
            payload = bytes(buffer[start + 5:start + 5 + size])
            start += 5 + size
            messages.append(self._decoded(flag, payload))
        if start:
            del buffer[:start]
        return messages

    def _decoded(self, flag: int, payload: bytes) -> bytes:
        if flag == 0:
            return payload
        if flag != 1:
            raise WireError(StatusCode.INTERNAL, f"a message's compressed flag is {flag} (must be 0 or 1)")
        encoding = self._encoding
        if encoding is None:
            raise WireError(StatusCode.INTERNAL,
                            "a message is marked compressed but the request has no grpc-encoding header")
        codec = CODECS.get(encoding)
        if codec is None:
            raise WireError(StatusCode.UNIMPLEMENTED,
                            f"message compression {encoding!r} is not supported (supported: {ACCEPT_ENCODING})")
        return codec[1](payload, self._limit)

    def finish(self) -> None:
        """The body ended: any bytes left are a truncated message."""
        if self._buffer:
            raise WireError(StatusCode.INTERNAL,
                            f"the request ended inside a message ({len(self._buffer)} bytes of it arrived)")


_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_timeout(value: str) -> float:
    """A ``grpc-timeout`` value (at most 8 digits and a unit: H M S m u n) in seconds."""
    digits, unit = value[:-1], value[-1:]
    scale = _TIMEOUT_UNITS.get(unit)
    if scale is None or not (digits.isascii() and digits.isdigit()) or not 0 < len(digits) <= 8:
        raise WireError(StatusCode.INTERNAL, f"malformed grpc-timeout {value!r} (expected up to 8 digits and one "
                        "of the units H, M, S, m, u, n)")
    return int(digits) * scale


# Headers that are the protocol's, not the call's metadata (grpcio leaves user-agent in; so do we).
RESERVED_HEADERS = frozenset({"content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding",
                              "content-length", "host", "connection", "transfer-encoding", "grpc-status",
                              "grpc-message"})


class Head(NamedTuple):
    """What the call needs of the request's header fields, read in one pass."""

    content_type: str
    timeout: Optional[str]
    encoding: Optional[str]  # grpc-encoding (None: identity)
    accepted: str  # grpc-accept-encoding, without spaces
    metadata: Metadata
    error: Optional[WireError]  # a metadata value that is not valid base64


def read_head(headers: list[tuple[str, str]]) -> Head:
    """The call's head from the request's header fields: the protocol's own, and the metadata (``-bin`` values
    base64-decoded, padded or not)."""
    content_type = ""
    timeout = encoding = None
    accepted = ""
    entries: list[Metadatum] = []
    error = None
    for name, value in headers:
        key = name.lower()
        if key in RESERVED_HEADERS or key.startswith(":"):
            if key == "content-type":
                content_type = value
            elif key == "grpc-timeout":
                timeout = value
            elif key == "grpc-encoding":
                encoding = None if value == "identity" else value
            elif key == "grpc-accept-encoding":
                accepted = value.replace(" ", "")
            continue
        if key.endswith("-bin"):
            try:
                entries.append(Metadatum(key, base64.b64decode(value + "=" * (-len(value) % 4), validate=True)))
            except (binascii.Error, ValueError):
                error = WireError(StatusCode.INTERNAL, f"metadata {key!r} is not valid base64")
        else:
            entries.append(Metadatum(key, value))
    return Head(content_type, timeout, encoding, accepted, tuple(entries), error)


_KEY = re.compile(r"[0-9a-z_.-]+")


def outgoing_metadata(metadata: Any) -> list[tuple[str, str]]:
    """Header fields for the application's metadata: ``(key, value)`` pairs or a mapping; ``-bin`` keys take bytes
    (sent base64-encoded, unpadded), others printable ASCII."""
    if metadata is None:
        return []
    items = metadata.items() if hasattr(metadata, "items") else metadata
    fields: list[tuple[str, str]] = []
    for item in items:
        key, value = item
        key = str(key).lower()
        if not _KEY.fullmatch(key):
            raise ValueError(f"metadata key {key!r}: a key is lower-case letters, digits, '-', '_' and '.'")
        reserved = key.startswith("grpc-") and key != "grpc-status-details-bin"  # (rich error details)
        if reserved or key in RESERVED_HEADERS or key == "user-agent":
            raise ValueError(f"metadata key {key!r} is reserved by gRPC or HTTP/2; choose another name")
        if key.endswith("-bin"):
            raw = value if isinstance(value, (bytes, bytearray)) else str(value).encode()
            fields.append((key, base64.b64encode(bytes(raw)).decode("ascii").rstrip("=")))
            continue
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("ascii", errors="strict")
        text = str(value)
        if any(not 0x20 <= ord(c) <= 0x7E for c in text):
            raise ValueError(f"metadata {key!r}: a text value must be printable ASCII; name the key '{key}-bin' "
                             "to send bytes")
        fields.append((key, text))
    return fields
