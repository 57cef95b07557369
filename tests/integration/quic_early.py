"""An aioquic HTTP/3 client protocol that can send requests before the handshake completes (0-RTT early data):
`aioquic.asyncio.connect(..., create_protocol=EarlyClient, wait_connected=False)`, then `request()` at once."""

from __future__ import annotations

import asyncio

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived


class EarlyClient(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.waiters: dict[int, asyncio.Future] = {}
        self.results: dict[int, dict] = {}

    def quic_event_received(self, event) -> None:
        for e in self.h3.handle_event(event):
            sid = getattr(e, "stream_id", None)
            if sid is None:
                continue
            r = self.results.setdefault(sid, {"status": None, "body": b""})
            if isinstance(e, HeadersReceived):
                for k, v in e.headers:
                    if k == b":status":
                        r["status"] = int(v)
            elif isinstance(e, DataReceived):
                r["body"] += e.data
            if getattr(e, "stream_ended", False) and sid in self.waiters:
                self.waiters.pop(sid).set_result(r)

    def request(self, method: bytes, path: bytes, body: bytes = b"") -> asyncio.Future:
        sid = self._quic.get_next_available_stream_id()
        self.h3.send_headers(sid, [(b":method", method), (b":scheme", b"https"), (b":authority", b"localhost"),
                                   (b":path", path)], end_stream=not body)
        if body:
            self.h3.send_data(sid, body, end_stream=True)
        future = asyncio.get_running_loop().create_future()
        self.waiters[sid] = future
        self.transmit()
        return future
