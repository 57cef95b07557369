"""Per-client-address connection limits (``covet run --max-connections-per-ip``, ``--max-new-connections-per-ip``),
enforced by the engine at accept, before a byte is parsed, and the HTTP/2 stream limit across one address's
connections (``--max-streams-per-ip``): real ``covet run`` processes over real sockets, an h2c client on the `h2`
library. Both reactor backends are tested in C++ (tests/net/client_limits_test.cpp)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from serverproc import ServerProcess, free_port, get, require_compiled_engine, sample

APP = textwrap.dedent("""
    from covet import CovetPy, Request

    app = CovetPy()

    @app.get("/client")
    async def client(request: Request):
        return {"client": request.client.host}

    @app.get("/slow")
    async def slow():
        import asyncio
        await asyncio.sleep(1.0)
        return {"slow": True}
    """)

REQUEST = b"GET /client HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture(scope="module", autouse=True)
def compiled_engine() -> None:
    require_compiled_engine()


def serve(tmp_path: Path, *args: str) -> ServerProcess:
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    server = ServerProcess([sys.executable, "-m", "covet", "run", "app:app", "--host", "127.0.0.1", "--port",
                            str(port), *args], cwd=tmp_path)
    server.port = port
    return server


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def served(s: socket.socket) -> bool:
    """One request on the open connection `s` answered 200 (keep-alive)."""
    try:
        s.sendall(REQUEST)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
        while len(body) < length:
            body += s.recv(4096)
        return head.startswith(b"HTTP/1.1 200")
    except (ConnectionResetError, BrokenPipeError):
        return False


def refused(s: socket.socket) -> bool:
    """The server closed `s` without answering its request."""
    try:
        s.sendall(REQUEST)
        return s.recv(4096) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_connections_per_address_are_capped_at_accept(tmp_path: Path) -> None:
    ops_port = free_port()
    with serve(tmp_path, "--max-connections-per-ip", "2", "--ops-port", str(ops_port)) as server:
        first, second = connect(server.port), connect(server.port)
        assert served(first) and served(second)
        started = time.monotonic()
        over = [connect(server.port) for _ in range(5)]
        assert all(refused(s) for s in over)
        elapsed = time.monotonic() - started
        assert served(first) and served(second)  # the admitted ones are still served

        status, text = get(ops_port, "/_metrics")
        assert status == 200
        assert sample(text, "covet_connections_refused_total", reason="per_ip") == 5
        # Logged at most once a second per address, however many are refused.
        logged = server.wait_for(r"connections from 127\.0\.0\.1 refused: it has 2 open \(max_connections_per_ip")
        assert logged
        count = sum("connections from 127.0.0.1 refused" in line for line in server.lines)
        assert 1 <= count <= 1 + int(elapsed)

        # One closes: a new connection is admitted once the server has seen it go.
        first.close()
        deadline = time.monotonic() + 5
        while True:
            again = connect(server.port)
            if served(again):
                break
            again.close()
            assert time.monotonic() < deadline, "a freed slot was never reused"
            time.sleep(0.05)
        assert refused(connect(server.port))  # and the cap holds again
        for s in (second, again, *over):
            s.close()
        server.stop()


def test_new_connections_per_second(tmp_path: Path) -> None:
    with serve(tmp_path, "--max-new-connections-per-ip", "3", "--workers", "2") as server:
        # One budget for both worker processes (the rate limiter's shared table): 3 at once, then refused.
        results = []
        for _ in range(6):
            s = connect(server.port)
            results.append(served(s))
            s.close()
        assert results[:3] == [True, True, True]
        assert results.count(True) <= 4, results  # a 4th may pass if a third of a second went by
        assert "connections from 127.0.0.1 refused: more than 3 new ones per 1000 ms" in server.output()
        server.stop()


def test_bad_values_are_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    result = subprocess.run([sys.executable, "-m", "covet", "run", "app:app", "--port", "0",
                             "--max-connections-per-ip", "many"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("covet: --max-connections-per-ip: expected a whole number"), result.stderr


def test_http2_streams_per_address_are_capped_across_its_connections(tmp_path: Path) -> None:
    h2_connection = pytest.importorskip("h2.connection")
    h2_config = pytest.importorskip("h2.config")
    h2_events = pytest.importorskip("h2.events")
    refused_stream = 0x7  # RFC 9113 REFUSED_STREAM

    class H2c:
        """An h2c (prior knowledge) client: its streams' statuses and resets."""

        def __init__(self, port: int) -> None:
            self.sock = connect(port)
            self.conn = h2_connection.H2Connection(config=h2_config.H2Configuration(client_side=True))
            self.conn.initiate_connection()
            self.sock.sendall(self.conn.data_to_send())
            self.status: dict[int, str] = {}
            self.ended: set[int] = set()
            self.reset: dict[int, int] = {}

        def get(self, path: str) -> int:
            stream_id: int = self.conn.get_next_available_stream_id()
            self.conn.send_headers(stream_id, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                               (":authority", "t")], end_stream=True)
            self.sock.sendall(self.conn.data_to_send())
            return stream_id

        def pump_until(self, done: Any, timeout: float = 10) -> None:
            deadline = time.monotonic() + timeout
            while not done():
                assert time.monotonic() < deadline, (self.status, self.ended, self.reset)
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                raw = self.sock.recv(65536)
                assert raw, "the server closed the connection"
                for event in self.conn.receive_data(raw):
                    if isinstance(event, h2_events.ResponseReceived):
                        self.status[event.stream_id] = dict(event.headers)[b":status"].decode()
                    elif isinstance(event, h2_events.DataReceived):
                        self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2_events.StreamEnded):
                        self.ended.add(event.stream_id)
                    elif isinstance(event, h2_events.StreamReset):
                        self.reset[event.stream_id] = event.error_code
                self.sock.sendall(self.conn.data_to_send())

    ops_port = free_port()
    with serve(tmp_path, "--max-streams-per-ip", "3", "--ops-port", str(ops_port)) as server:
        one, two = H2c(server.port), H2c(server.port)
        held = [one.get("/slow"), one.get("/slow"), two.get("/slow")]  # 3 open streams from one address
        over = two.get("/slow")  # a 4th on another connection of the same address: refused, not queued
        two.pump_until(lambda: over in two.reset)
        assert two.reset[over] == refused_stream
        # The connections and their admitted streams go on; once they end, a new stream is admitted.
        one.pump_until(lambda: set(held[:2]) <= one.ended)
        two.pump_until(lambda: held[2] in two.ended)
        assert [one.status[held[0]], one.status[held[1]], two.status[held[2]]] == ["200", "200", "200"]
        again = two.get("/client")
        two.pump_until(lambda: again in two.ended or again in two.reset)
        assert two.status.get(again) == "200", two.reset
        one.sock.close()
        two.sock.close()
        server.stop()
