"""A small synchronous WebSocket client for `TestClient.websocket_connect` (RFC 6455, no extensions):
enough to drive an app's WebSocket routes from a test, with Starlette's test-session API."""

from __future__ import annotations

import base64
import contextlib
import json as _json
import os
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

from . import encoders
from .websockets import WebSocketDisconnect

__all__ = ["WebSocketTestSession"]

_TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class WebSocketTestSession:
    """``with client.websocket_connect("/ws") as ws: ws.send_text("hi"); ws.receive_text()``.

    ``receive_*`` raise `WebSocketDisconnect` (with the server's close code) once the server has closed.
    `take_error(local_port)` gives the exception the app's endpoint raised for this connection, if any: it is
    raised instead of the disconnect (and by `close`), as Starlette's test session does. `wait_decision(
    local_port)` tells whether the endpoint accepted the connection (``with`` waits for it); `take_denial(
    local_port)` gives the close code and reason of an endpoint that refused it before accepting (the server
    answered HTTP 403 there), raised as `WebSocketDisconnect` as Starlette's test session does."""

    def __init__(self, port: int, path: str,
                 headers: Union[dict[str, str], Sequence[tuple[str, str]], None] = None,
                 subprotocols: Optional[list[str]] = None, timeout: float = 30.0, host: str = "testserver",
                 take_error: Optional[Callable[[int], Optional[BaseException]]] = None,
                 wait_decision: Optional[Callable[[int], Optional[bool]]] = None,
                 take_denial: Optional[Callable[[int], Optional[tuple[int, str]]]] = None) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._local_port: int = self._sock.getsockname()[1]
        self._take_error = take_error
        self._wait_decision = wait_decision
        self._take_denial = take_denial
        self._buffer = b""
        self._closed: Optional[tuple[int, str]] = None
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if subprotocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
        pairs = headers.items() if isinstance(headers, dict) else headers or []
        lines += [f"{k}: {v}" for k, v in pairs]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            head = self._read_until(b"\r\n\r\n").decode("latin-1")
        except WebSocketDisconnect:
            self._sock.close()
            self._raise_app_error()
            raise
        status_line, *header_lines = head.split("\r\n")
        self.status_code = int(status_line.split(" ")[1])
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
        if self.status_code != 101:
            self._sock.close()
            self._refused()
        self.accepted_subprotocol = self.headers.get("sec-websocket-protocol")

    def _refused(self) -> None:
        """The handshake was answered with HTTP: the endpoint's exception, its close code, or the status."""
        port = self._local_port
        error = self._take_error(port) if self._take_error is not None else None
        denial = self._take_denial(port) if self._take_denial is not None else None
        if (error is not None or denial is not None) and self._wait_decision is not None:
            self._wait_decision(port)  # the endpoint has ended: take its word (no stale one for a reused port)
        if error is not None:
            raise error
        if denial is not None:
            raise WebSocketDisconnect(*denial)
        raise WebSocketDisconnect(1006, f"the server refused the WebSocket upgrade: HTTP {self.status_code}")

    def _raise_app_error(self) -> None:
        """Raises the exception the app's endpoint ended with, if it did."""
        error = self._take_error(self._local_port) if self._take_error is not None else None
        if error is not None:
            raise error

    # -- context manager ---------------------------------------------------------------------------
    def __enter__(self) -> WebSocketTestSession:
        """Waits for the endpoint to accept the connection (when the client can tell): an endpoint that closes
        it first raises `WebSocketDisconnect` with its close code here, one that fails raises its exception."""
        if self._wait_decision is not None and self._wait_decision(self._local_port) is False:
            try:
                self._raise_app_error()
                while True:
                    self._message()  # data the endpoint sent cannot come before accept(): the close frame
            finally:
                self._sock.close()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- sending --------------------------------------------------------------------------------------
    def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self._sock.sendall(head + mask + masked)

    def send_text(self, data: str) -> None:
        self._send_frame(_TEXT, data.encode())

    def send_bytes(self, data: bytes) -> None:
        self._send_frame(_BINARY, bytes(data))

    def send_json(self, data: Any, mode: str = "text") -> None:
        text = _json.dumps(data, separators=(",", ":"))
        self.send_text(text) if mode == "text" else self.send_bytes(text.encode())

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Closes the connection (waiting, briefly, for the server's close) and raises the exception the
        endpoint ended with, if any."""
        if self._sock.fileno() < 0:
            self._raise_app_error()
            return
        try:
            if self._closed is None:
                self._send_frame(_CLOSE, struct.pack("!H", code) + reason.encode())
                self._sock.settimeout(min(self._sock.gettimeout() or 5.0, 5.0))
                while True:  # the server's close frame (or the end of the connection) ends the session
                    self._message()
        except (OSError, WebSocketDisconnect):
            pass
        finally:
            self._sock.close()
        self._raise_app_error()

    # -- receiving ------------------------------------------------------------------------------------
    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise WebSocketDisconnect(1006, "connection closed during the handshake")
            self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    def _read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self._sock.recv(65536)
            if not chunk:
                self._raise_app_error()
                raise WebSocketDisconnect(1006, "connection closed without a close frame")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _message(self) -> tuple[int, bytes]:
        if self._closed is not None:
            raise WebSocketDisconnect(*self._closed)
        opcode, parts = 0, []
        while True:
            b0, b1 = self._read_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read_exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read_exact(8))[0]
            payload = self._read_exact(n)
            op = b0 & 0x0F
            if op == _PING:
                self._send_frame(_PONG, payload)
                continue
            if op == _PONG:
                continue
            if op == _CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self._closed = (code, payload[2:].decode(errors="replace"))
                with contextlib.suppress(OSError):
                    self._send_frame(_CLOSE, payload[:2])
                self._raise_app_error()
                raise WebSocketDisconnect(*self._closed)
            if op:
                opcode = op
            parts.append(payload)
            if b0 & 0x80:
                return opcode, b"".join(parts)

    def receive(self) -> dict[str, Any]:
        try:
            opcode, data = self._message()
        except WebSocketDisconnect as exc:
            return {"type": "websocket.close", "code": exc.code, "reason": exc.reason}
        return {"type": "websocket.send", "text": data.decode()} if opcode == _TEXT else \
            {"type": "websocket.send", "bytes": data}

    def receive_text(self) -> str:
        return self._message()[1].decode()

    def receive_bytes(self) -> bytes:
        return self._message()[1]

    def receive_json(self, mode: str = "text") -> Any:
        """The next message parsed as JSON (``json.JSONDecodeError`` if it is not; no `RecursionError` for
        deeply nested messages)."""
        data: Union[str, bytes] = self._message()[1]
        return encoders.loads(data)
