"""gRPC-Web (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md): gRPC for browsers, over HTTP/1.1 or
HTTP/2 without HTTP trailers. The same calls as `covet.grpc.call.Call`, with the status and trailing metadata sent
as a last length-prefixed frame (flag 0x80) in the body, and, for ``application/grpc-web-text``, every frame of
the body base64-encoded both ways. Browsers calling from another origin need CORS on the app (CORSMiddleware,
exposing ``grpc-status`` and ``grpc-message``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from .call import Call
from .status import StatusCode
from .wire import ACCEPT_ENCODING, WireError

__all__ = ["WebCall", "content_kind"]


def _is(content_type: str, base: str) -> bool:
    """`content_type` is `base`, alone or followed by ``+format`` or ``;parameters`` (not ``application/grpcx``)."""
    return content_type.startswith(base) and content_type[len(base):len(base) + 1] in ("", "+", ";")


def content_kind(content_type: str) -> str:
    """``"grpc"``, ``"web"``, ``"web-text"`` for the content types of gRPC and gRPC-Web (binary, text), ``""`` for
    anything else (answered 415), as grpc-go tells them apart."""
    # The common case first: a base matches only when followed by nothing, '+' or ';', so none is a prefix match
    # of another ("application/grpc" does not match "application/grpc-web").
    for base, kind in (("application/grpc", "grpc"), ("application/grpc-web", "web"),
                       ("application/grpc-web-text", "web-text")):
        if _is(content_type, base):
            return kind
    return ""


class WebCall(Call):
    """A gRPC-Web call: `text` for application/grpc-web-text (base64 bodies)."""

    __slots__ = ("text", "_undecoded")

    def __init__(self, *args: Any, text: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.text = text
        self._undecoded = b""  # base64 text not yet a multiple of 4 characters

    def _head(self) -> list[tuple[str, str]]:
        content_type = "application/grpc-web-text+proto" if self.text else "application/grpc-web+proto"
        fields = [("content-type", content_type), ("grpc-accept-encoding", ACCEPT_ENCODING)]
        if self.out_encoding is not None:
            fields.append(("grpc-encoding", self.out_encoding))
        fields += self.initial_metadata
        return fields

    def _encoded(self, data: bytes) -> bytes:
        return base64.b64encode(data) if self.text else data

    def _decoded(self, chunk: bytes) -> bytes:
        if not self.text:
            return chunk
        text = self._undecoded + chunk.replace(b"\r", b"").replace(b"\n", b"")
        whole = len(text) - len(text) % 4
        self._undecoded = text[whole:]
        try:
            return base64.b64decode(text[:whole], validate=True)
        except (binascii.Error, ValueError):
            raise WireError(StatusCode.INTERNAL, "a grpc-web-text request body is not valid base64") from None

    def finish(self, code: int, details: str) -> None:
        """The status as the body's last frame (flag 0x80: the trailers as HTTP/1 header lines), then the end."""
        if self.ended:
            return
        self.ended = True
        lines = "".join(f"{name}:{value}\r\n" for name, value in self._status_fields(code, details)).encode("latin-1")
        trailer_frame = self._encoded(b"\x80" + len(lines).to_bytes(4, "big") + lines)
        responder = self.responder
        if not self.headers_sent:
            reply = self._reply if code == 0 else None
            body = (self._encoded(reply) if reply is not None else b"") + trailer_frame
            responder.send(200, self._head(), body)
            return
        if responder.write(trailer_frame) is not False:
            responder.end()
