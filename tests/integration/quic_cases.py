"""Helpers for test_quic_interop_cases.py: the quic-interop-runner test cases without Docker.

The runner puts an ns-3 network simulator between client and server and judges the result from
packet traces. Here the network is `UdpRelay`, a UDP relay in a thread between the aioquic client
and the server: it drops, corrupts, delays or black-holes datagrams in either direction, carries
the ECN bits over (or marks them), changes its outbound socket (a NAT rebinding, new port or new
address), and records every datagram with the QUIC packets it carries (the unprotected bits of the
headers: form, version, type, connection IDs, token) and its ECN codepoint. What a trace would
show inside the encrypted payloads comes from the client instead: `CaseSession` is the H3Session of
h3_client.py with the aioquic configuration and connection open to the test (cipher suites,
session tickets, versions, early requests), `KeyPhases` / `FrameLog` instrument its QuicConnection
(key phase of every 1-RTT packet each way; frames received by type, ACK_ECN counts), and
`EcnClient` makes it ECN-capable. Also: a long certificate chain (amplificationlimit), the worker
of the server that a source address lands on (`worker_of`), and an IPv6-only server.
"""
from __future__ import annotations

import heapq
import itertools
import os
import queue
import random
import re
import selectors
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aioquic import tls
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import pull_ack_frame

import covet_proc
from h3_client import H3HandshakeError, H3Session, _Client, read_varint
from tls_certs import _openssl

QUIC_V1 = 0x00000001
QUIC_V2 = 0x6B3343CF
TO_SERVER, TO_CLIENT = "to_server", "to_client"
ECN_NOT_ECT, ECN_ECT1, ECN_ECT0, ECN_CE = 0, 1, 2, 3
SOCKET_BUFFER = 4 << 20

# ---- the QUIC packets in a datagram (unprotected header fields only) -------------------------

_LONG_TYPES = {QUIC_V1: {0: "initial", 1: "0rtt", 2: "handshake", 3: "retry"},
               QUIC_V2: {1: "initial", 2: "0rtt", 3: "handshake", 0: "retry"}}


@dataclass
class Packet:
    kind: str                 # initial, 0rtt, handshake, retry, 1rtt, vn, unknown-version, garbled
    version: int | None = None
    dcid: bytes = b""
    scid: bytes = b""
    token: bytes = b""        # Initial and Retry
    size: int = 0


def parse_datagram(data: bytes) -> list[Packet]:
    """The (coalesced) QUIC packets of one datagram, from their unprotected header fields."""
    out: list[Packet] = []
    pos = 0
    while pos < len(data):
        first = data[pos]
        if not first & 0x80:
            out.append(Packet("1rtt", size=len(data) - pos))
            break
        if pos + 7 > len(data):
            out.append(Packet("garbled", size=len(data) - pos))
            break
        version = int.from_bytes(data[pos + 1:pos + 5], "big")
        p = pos + 5
        dcid = data[p + 1:p + 1 + data[p]]
        p += 1 + data[p]
        if p >= len(data):
            out.append(Packet("garbled", version, dcid, size=len(data) - pos))
            break
        scid = data[p + 1:p + 1 + data[p]]
        p += 1 + data[p]
        if version == 0:
            out.append(Packet("vn", 0, dcid, scid, size=len(data) - pos))
            break
        if version not in _LONG_TYPES:
            out.append(Packet("unknown-version", version, dcid, scid, size=len(data) - pos))
            break
        kind = _LONG_TYPES[version][(first >> 4) & 3]
        if kind == "retry":   # the token, then a 16-byte integrity tag
            out.append(Packet(kind, version, dcid, scid, data[p:-16], size=len(data) - pos))
            break
        token = b""
        if kind == "initial":
            got = read_varint(data, p)
            if got is None or got[1] + got[0] > len(data):
                out.append(Packet("garbled", version, dcid, scid, size=len(data) - pos))
                break
            token = data[got[1]:got[1] + got[0]]
            p = got[1] + got[0]
        got = read_varint(data, p)
        if got is None or got[1] + got[0] > len(data):
            out.append(Packet("garbled", version, dcid, scid, size=len(data) - pos))
            break
        end = got[1] + got[0]
        out.append(Packet(kind, version, dcid, scid, token, end - pos))
        pos = end
    return out


# ---- the relay -------------------------------------------------------------------------------


@dataclass
class Datagram:
    at: float
    direction: str
    size: int
    packets: list[Packet]
    fate: str                       # forwarded, dropped, corrupted, blackholed, stale (old NAT mapping)
    path: tuple                     # the relay's outbound address it went through
    tos: int | None = None          # the IP TOS / traffic class byte as it came (ECN in its low 2 bits)

    @property
    def kinds(self) -> list[str]:
        return [p.kind for p in self.packets]

    @property
    def ecn(self) -> int | None:
        return None if self.tos is None else self.tos & 0x3

    @property
    def reached(self) -> bool:
        """It arrived (possibly corrupted) at the other end."""
        return self.fate in ("forwarded", "corrupted")


class _Impairment:
    """The drop-rate / corrupt-rate error models of quic-network-simulator: each datagram is hit
    with probability `rate`, but never more than `burst` in a row."""

    def __init__(self, rate: float, burst: int, rng: random.Random):
        self.rate, self.burst, self.rng = rate, burst, rng
        self.in_a_row = 0

    def hit(self) -> bool:
        if self.rate <= 0:
            return False
        if self.in_a_row >= self.burst:
            self.in_a_row = 0
            return False
        if self.rng.random() < self.rate:
            self.in_a_row += 1
            return True
        self.in_a_row = 0
        return False


class _Link:
    """One client's mapping: its address and the relay's outbound socket(s) towards the server."""

    def __init__(self, client: tuple, sock: socket.socket):
        self.client = client
        self.sock = sock
        self.paths = [sock.getsockname()[:2]]
        self.retired: list[socket.socket] = []
        self.pending: socket.socket | None = None   # the next mapping (rebind), taken at the next datagram

    def switch(self, sel: selectors.BaseSelector) -> None:
        self.retired.append(self.sock)
        sel.modify(self.sock, selectors.EVENT_READ, (self, "stale"))
        self.sock, self.pending = self.pending, None
        self.paths.append(self.sock.getsockname()[:2])
        sel.register(self.sock, selectors.EVENT_READ, (self, "live"))


class UdpRelay:
    """A UDP relay between clients (they send to `relay.port`) and the server's UDP port.

    Impairments (any time, from the test thread): `drop`/`corrupt` rates per direction with a burst
    limit, `drop_to_server` (1-based indices of the client's datagrams to drop, the runner's
    droplist), `delay` (one way, seconds), `blackhole()`. The ECN codepoint of each datagram is
    carried over (as a router does), and recorded; `mark_tos` sets it on every datagram to the
    server instead. `rebind()` gives every client a new outbound socket (new port; with `host=`, a
    new address too) from its next datagram on: the server sees the client come from a new
    address. Everything that passed is in `records`."""

    def __init__(self, server_port: int, server_host: str = "127.0.0.1", *, seed: int | None = None,
                 out_host: str | None = None):
        self.server = (server_host, server_port)
        self.family = socket.AF_INET6 if ":" in server_host else socket.AF_INET
        self.out_host = out_host or server_host
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        self.lock = threading.Lock()
        self.records: list[Datagram] = []
        self.drop = {TO_SERVER: _Impairment(0, 3, self.rng), TO_CLIENT: _Impairment(0, 3, self.rng)}
        self.corrupt = {TO_SERVER: _Impairment(0, 3, self.rng), TO_CLIENT: _Impairment(0, 3, self.rng)}
        self.drop_to_server: set[int] = set()
        self.delay = 0.0
        self.mark_tos: int | None = None
        self._blackhole_until = 0.0
        self._to_server_count = 0
        self.listen = socket.socket(self.family, socket.SOCK_DGRAM)
        _big_buffers(self.listen)
        _receive_tos(self.listen)
        self.listen.bind((server_host, 0))
        self.listen.setblocking(False)
        self.port = self.listen.getsockname()[1]
        self.links: dict[tuple, _Link] = {}
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.listen, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._commands: queue.Queue = queue.Queue()
        self._delayed: list = []
        self._seq = itertools.count()
        self._stop = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"udp-relay-{self.port}", daemon=True)
        self._thread.start()

    # -- configuration (test thread)

    def set_loss(self, rate: float, burst: int = 3, directions=(TO_SERVER, TO_CLIENT)) -> None:
        with self.lock:
            for d in directions:
                self.drop[d] = _Impairment(rate, burst, self.rng)

    def set_corruption(self, rate: float, burst: int = 3, directions=(TO_SERVER, TO_CLIENT)) -> None:
        with self.lock:
            for d in directions:
                self.corrupt[d] = _Impairment(rate, burst, self.rng)

    def blackhole(self, seconds: float) -> None:
        with self.lock:
            self._blackhole_until = time.monotonic() + seconds

    def rebind(self, host: str | None = None, port: int = 0) -> list[tuple]:
        """Every client gets a new outbound socket (on `host`, default the current one; on `port`,
        default any), as from a NAT whose mapping expired: the client's next datagram leaves from
        the new address, and from then on what the server still sends to the old one is not
        delivered (the old socket stays open to count it). Returns the new outbound addresses.

        (quic-network-simulator's rebind scenario switches on a timer instead, even while only the
        server is sending; when the client then has nothing to send, a server's packets all go to
        the forgotten address and the connection stalls whatever the server does. A real NAT makes
        a new mapping for an outgoing packet, so the server hears of it first.)"""
        done = threading.Event()
        result: list = []
        self._commands.put(("rebind", (host, port), result, done))
        self._wake_w.send(b"x")
        if not done.wait(5):
            raise AssertionError("the relay did not rebind within 5 s")
        if result and isinstance(result[0], BaseException):
            raise result[0]
        return result

    # -- what went through

    def snapshot(self) -> list[Datagram]:
        with self.lock:
            return list(self.records)

    def summary(self) -> str:
        recs = self.snapshot()
        c = Counter((d.direction, d.fate) for d in recs)
        return (f"relay seed={self.seed}: " + ", ".join(f"{k[0]} {k[1]}={v}" for k, v in sorted(c.items()))
                + f"; paths={[link.paths for link in self.links.values()]}")

    # -- the loop (relay thread)

    def _new_out(self, host: str, port: int = 0) -> socket.socket:
        s = socket.socket(self.family, socket.SOCK_DGRAM)
        _big_buffers(s)
        _receive_tos(s)
        s.bind((host, port))
        s.connect(self.server)
        s.setblocking(False)
        return s

    def _run(self) -> None:
        try:
            while not self._stop:
                timeout = 0.2
                if self._delayed:
                    timeout = max(0.0, min(timeout, self._delayed[0][0] - time.monotonic()))
                for key, _ in self._sel.select(timeout):
                    if key.data == "wake":
                        try:
                            self._wake_r.recv(4096)
                        except BlockingIOError:
                            pass
                    elif key.data is None:
                        self._from_clients()
                    else:
                        self._from_server(key.fileobj, key.data)
                self._commands_due()
                self._delayed_due()
        except BaseException as e:  # surfaced by close()
            self.error = e

    def _commands_due(self) -> None:
        while True:
            try:
                cmd, (host, port), result, done = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                if cmd == "rebind":
                    for link in self.links.values():
                        if link.pending is not None:
                            link.pending.close()
                        link.pending = self._new_out(host or link.paths[-1][0], port)
                        result.append(link.pending.getsockname()[:2])
            except BaseException as e:
                result.insert(0, e)
            done.set()

    def _record(self, direction: str, data: bytes, fate: str, path, tos=None) -> None:
        try:
            packets = parse_datagram(data)
        except Exception:
            packets = [Packet("garbled", size=len(data))]
        with self.lock:
            self.records.append(Datagram(time.monotonic(), direction, len(data), packets, fate, path, tos))

    def _fate(self, direction: str, data: bytes) -> tuple[str, bytes]:
        with self.lock:
            if time.monotonic() < self._blackhole_until:
                return "blackholed", data
            if direction == TO_SERVER:
                self._to_server_count += 1
                if self._to_server_count in self.drop_to_server:
                    return "dropped", data
            if self.drop[direction].hit():
                return "dropped", data
            # Version Negotiation is never corrupted (as in quic-network-simulator): a client that
            # sees its own version listed ignores it anyway.
            if len(data) > 5 and data[0] & 0x80 and data[1:5] == b"\0\0\0\0":
                return "forwarded", data
            if self.corrupt[direction].hit():
                # quic-network-simulator's corrupt-rate: one byte of the first 50 gets another value
                b = bytearray(data)
                pos = self.rng.randrange(min(50, len(b)))
                b[pos] = (b[pos] + self.rng.randrange(1, 256)) & 0xFF
                return "corrupted", bytes(b)
            return "forwarded", data

    def _send_later(self, sock: socket.socket, data: bytes, addr, tos: int | None) -> None:
        if self.delay > 0:
            heapq.heappush(self._delayed, (time.monotonic() + self.delay, next(self._seq), sock, data, addr, tos))
        else:
            _send(sock, data, addr, tos)

    def _delayed_due(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, sock, data, addr, tos = heapq.heappop(self._delayed)
            _send(sock, data, addr, tos)

    def _from_clients(self) -> None:
        for _ in range(256):
            try:
                data, anc, _, client = self.listen.recvmsg(65536, socket.CMSG_SPACE(4))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            tos = _tos_of(anc) if self.mark_tos is None else self.mark_tos
            link = self.links.get(client)
            if link is None:
                link = _Link(client, self._new_out(self.out_host))
                self.links[client] = link
                self._sel.register(link.sock, selectors.EVENT_READ, (link, "live"))
            if link.pending is not None:
                link.switch(self._sel)
            fate, out = self._fate(TO_SERVER, data)
            self._record(TO_SERVER, data, fate, link.paths[-1], tos)
            if fate in ("forwarded", "corrupted"):
                self._send_later(link.sock, out, None, tos)

    def _from_server(self, sock: socket.socket, data) -> None:
        link, state = data
        for _ in range(256):
            try:
                payload, anc, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(4))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:   # ICMP errors of earlier datagrams (the server is gone): keep going
                continue
            tos = _tos_of(anc)
            path = sock.getsockname()[:2]
            if state == "stale":
                self._record(TO_CLIENT, payload, "stale", path, tos)
                continue
            fate, out = self._fate(TO_CLIENT, payload)
            self._record(TO_CLIENT, payload, fate, path, tos)
            if fate in ("forwarded", "corrupted"):
                self._send_later(self.listen, out, link.client, tos)

    def close(self) -> None:
        self._stop = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._thread.join(5)
        for link in self.links.values():
            for s in [link.sock, *link.retired, *([link.pending] if link.pending else [])]:
                s.close()
        for s in (self.listen, self._wake_r, self._wake_w):
            s.close()
        self._sel.close()
        if self.error is not None:
            raise AssertionError(f"the UDP relay failed: {self.error!r}") from self.error

    def __enter__(self) -> "UdpRelay":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _big_buffers(s: socket.socket) -> None:
    for force, plain in ((getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF),
                         (getattr(socket, "SO_SNDBUFFORCE", 32), socket.SO_SNDBUF)):
        try:
            s.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)


def _receive_tos(s: socket.socket) -> None:
    if s.family == socket.AF_INET:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
    else:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, 1)


def _tos_of(ancillary) -> int | None:
    """The IPv4 TOS / IPv6 traffic class byte from recvmsg's ancillary data."""
    for level, kind, value in ancillary:
        if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TOS), (socket.IPPROTO_IPV6, socket.IPV6_TCLASS)) and value:
            return value[0] if len(value) == 1 else int.from_bytes(value[:4], "little")
    return None


def _send(sock: socket.socket, data: bytes, addr, tos: int | None = None) -> None:
    try:
        if tos:   # the ECN bits (and the rest of the byte) as they came
            v6 = sock.family == socket.AF_INET6
            cmsg = [(socket.IPPROTO_IPV6 if v6 else socket.IPPROTO_IP, socket.IPV6_TCLASS if v6 else socket.IP_TOS,
                     tos.to_bytes(4, "little"))]
            if addr is None:
                sock.sendmsg([data], cmsg)
            else:
                sock.sendmsg([data], cmsg, 0, addr)
        elif addr is None:
            sock.send(data)
        else:
            sock.sendto(data, addr)
    except OSError:   # a full buffer or an ICMP error: the datagram is lost, as on a network
        pass


def amplification_report(records: list[Datagram]) -> tuple[bool, int, int, list[str]]:
    """The runner's amplificationlimit check on the relay's records: until the server has seen a
    Handshake packet from the client (address validated), what the server sent must stay within 3x
    of the client's Initial datagrams that reached it. Returns (validated, most server bytes sent
    before validation, the 3x budget at that point, a log)."""
    allowed = sent = 0
    log: list[str] = []
    for d in records:
        if d.direction == TO_SERVER:
            if not d.reached:
                log.append(f"client datagram of {d.size} bytes {d.kinds} dropped")
                continue
            if "handshake" in d.kinds:
                log.append(f"client Handshake packet in {d.size} bytes: address validated")
                return True, sent, allowed, log
            if "initial" in d.kinds:
                allowed += 3 * d.size
                log.append(f"client Initial datagram of {d.size} bytes: budget {allowed}")
        else:
            sent += d.size
            log.append(f"server datagram of {d.size} bytes {d.kinds}: {sent} sent of {allowed}"
                       + ("  <-- OVER THE LIMIT" if sent > allowed else ""))
    return False, sent, allowed, log


# ---- instrumenting aioquic's QuicConnection ---------------------------------------------------


class KeyPhases:
    """The key phase bit of every 1-RTT packet the client sends and receives (decrypted, so only
    packets that authenticated count), as run lengths: [[phase, packets], ...]."""

    def __init__(self):
        self.sent: list[list[int]] = []
        self.received: list[list[int]] = []

    @staticmethod
    def _add(runs: list[list[int]], phase: int) -> None:
        if runs and runs[-1][0] == phase:
            runs[-1][1] += 1
        else:
            runs.append([phase, 1])

    def attach(self, quic: QuicConnection) -> None:
        pair = quic._cryptos[tls.Epoch.ONE_RTT]
        decrypt, encrypt = pair.decrypt_packet, pair.encrypt_packet

        def on_decrypt(packet, encrypted_offset, expected_packet_number):
            out = decrypt(packet, encrypted_offset, expected_packet_number)
            if not out[0][0] & 0x80:
                self._add(self.received, (out[0][0] >> 2) & 1)
            return out

        def on_encrypt(plain_header, plain_payload, packet_number):
            out = encrypt(plain_header, plain_payload, packet_number)
            if not plain_header[0] & 0x80:
                # the phase actually used: encrypt_packet applies a requested update first
                self._add(self.sent, pair.send.key_phase)
            return out

        pair.decrypt_packet = on_decrypt
        pair.encrypt_packet = on_encrypt

    def count(self, runs: list[list[int]], phase: int) -> int:
        return sum(n for p, n in runs if p == phase)


FRAME_NAMES = {0x02: "ACK", 0x03: "ACK_ECN", 0x07: "NEW_TOKEN", 0x12: "MAX_STREAMS_BIDI",
               0x18: "NEW_CONNECTION_ID", 0x1A: "PATH_CHALLENGE", 0x1B: "PATH_RESPONSE",
               0x1E: "HANDSHAKE_DONE"}


class FrameLog:
    """Frames the client received, by type, with the address they came from; and the ECN counts
    (ECT(0), ECT(1), CE) of the last ACK_ECN frame in each packet number space (by epoch number:
    0 Initial, 2 Handshake, 3 1-RTT)."""

    def __init__(self, types=tuple(FRAME_NAMES)):
        self.types = types
        self.counts: Counter = Counter()
        self.sources: dict[str, set] = {}
        self.ecn_counts: dict[int, tuple[int, int, int]] = {}

    def attach(self, quic: QuicConnection) -> None:
        table = quic._QuicConnection__frame_handlers
        for t in self.types:
            handler, epochs = table[t]

            def wrapped(context, frame_type, buf, handler=handler):
                name = FRAME_NAMES.get(frame_type, hex(frame_type))
                self.counts[name] += 1
                self.sources.setdefault(name, set()).add(tuple(context.network_path.addr[:2]))
                start = buf.tell()
                result = handler(context, frame_type, buf)
                if frame_type == 0x03:   # read again what aioquic skips
                    end = buf.tell()
                    buf.seek(start)
                    pull_ack_frame(buf)
                    counts = (buf.pull_uint_var(), buf.pull_uint_var(), buf.pull_uint_var())
                    buf.seek(end)
                    self.ecn_counts[getattr(context.epoch, "value", context.epoch)] = counts
                return result
            table[t] = (wrapped, epochs)


class EcnClient:
    """Makes the aioquic client ECN-capable (aioquic is not): its datagrams leave marked ECT(0),
    it reads the ECN codepoint of each datagram it receives (the socket under asyncio's transport
    reads with recvmsg), counts the packets of each packet number space by codepoint, and sends
    ACK_ECN frames with those counts (RFC 9000 section 19.3.2) instead of ACK. A server validating
    ECN (section 13.4.2) then sees it work and keeps marking."""

    def __init__(self, mark: int = ECN_ECT0):
        self.mark = mark
        self.current = ECN_NOT_ECT
        self.received: dict[int, list[int]] = {}   # epoch -> [not-ECT, ECT(1), ECT(0), CE] packets
        self.acks_sent = 0

    def on_datagram_tos(self, tos: int | None) -> None:
        self.current = (tos or 0) & 0x3

    def attach(self, quic: QuicConnection) -> None:
        from aioquic.quic.connection import ACK_FRAME_CAPACITY
        from aioquic.quic.packet import push_ack_frame
        payload_received = quic._payload_received

        def counted(context, plain, crypto_frame_required=False):
            result = payload_received(context, plain, crypto_frame_required=crypto_frame_required)
            space = 0 if context.epoch == tls.Epoch.INITIAL else 2 if context.epoch == tls.Epoch.HANDSHAKE else 3
            self.received.setdefault(space, [0, 0, 0, 0])[self.current] += 1
            return result

        def write_ack_ecn(builder, space, now):
            epoch = next(e for e, sp in quic._spaces.items() if sp is space)
            key = 0 if epoch == tls.Epoch.INITIAL else 2 if epoch == tls.Epoch.HANDSHAKE else 3
            counts = self.received.get(key, [0, 0, 0, 0])
            ack_delay = now - space.largest_received_time
            buf = builder.start_frame(0x03, capacity=ACK_FRAME_CAPACITY + 24, handler=quic._on_ack_delivery,
                                      handler_args=(space, space.largest_received_packet))
            push_ack_frame(buf, space.ack_queue, int(ack_delay * 1000000) >> quic._local_ack_delay_exponent,
                           builder.remaining_buffer_space - 24)
            for n in (counts[ECN_ECT0], counts[ECN_ECT1], counts[ECN_CE]):
                buf.push_uint_var(n)
            space.ack_at = None
            self.acks_sent += 1

        quic._payload_received = counted
        quic._write_ack_frame = write_ack_ecn


class _TosSocket:
    """The client's socket as asyncio's datagram transport sees it, with recvfrom reading the
    datagram's ECN codepoint too (recvmsg and IP_RECVTOS / IPV6_RECVTCLASS)."""

    def __init__(self, sock: socket.socket, on_tos):
        self._sock, self._on_tos = sock, on_tos

    def recvfrom(self, size: int):
        data, anc, _, addr = self._sock.recvmsg(size, socket.CMSG_SPACE(4))
        self._on_tos(_tos_of(anc))
        return data, addr

    def __getattr__(self, name):
        return getattr(self._sock, name)


# ---- the client ------------------------------------------------------------------------------


class CaseSession(H3Session):
    """H3Session with the aioquic side open to the test:
      configure(config)   edits the QuicConfiguration (cipher suites, session ticket, versions...)
      instrument(quic)    sees the QuicConnection before its first packet (hooks)
      ticket_handler      receives the server's session tickets
      ecn                 an EcnClient: the client marks, reads and reports ECN
      early               requests (method, path[, headers[, body]]) started right after the first
                          Initial, before the handshake completes (0-RTT when the ticket allows it);
                          their stream ids are in `early_streams`
    `quic` is the QuicConnection. IPv6 when `host` has a colon."""

    def __init__(self, port: int, *, configure=None, instrument=None, ticket_handler=None, early=(),
                 ecn: EcnClient | None = None, **kw):
        self.configure, self.instrument, self.ticket_handler = configure, instrument, ticket_handler
        self.ecn = ecn
        self.early = [tuple(r) + ((), b"")[len(r) - 2:] for r in early]
        self.early_streams: list[int] = []
        self.quic: QuicConnection | None = None
        super().__init__(port, **kw)

    async def _connect(self) -> None:
        import asyncio
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
        if self.configure is not None:
            self.configure(config)
        quic = QuicConnection(configuration=config, session_ticket_handler=self.ticket_handler)
        self.quic = quic
        if self.instrument is not None:
            self.instrument(quic)
        v6 = ":" in self.host
        sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
        _big_buffers(sock)   # a slow Python reader must not lose datagrams in its own socket
        sock.bind(("::1" if v6 else "127.0.0.1", 0))
        self.local_port = sock.getsockname()[1]
        if self.ecn is not None:
            level, mark, recv = ((socket.IPPROTO_IPV6, socket.IPV6_TCLASS, socket.IPV6_RECVTCLASS) if v6 else
                                 (socket.IPPROTO_IP, socket.IP_TOS, socket.IP_RECVTOS))
            sock.setsockopt(level, mark, self.ecn.mark)
            sock.setsockopt(level, recv, 1)
            self.ecn.attach(quic)
        loop = asyncio.get_running_loop()
        transport, client = await loop.create_datagram_endpoint(lambda: _Client(quic, self), sock=sock)
        if self.ecn is not None:   # asyncio's transport reads with self._sock.recvfrom
            transport._sock = _TosSocket(transport._sock, self.ecn.on_datagram_tos)
        self._transport, self._client = transport, client
        # aioquic compares the addresses datagrams come from with the one it connected to, and an
        # AF_INET6 socket reports 4-tuples
        client.connect((self.host, self.port, 0, 0) if v6 else (self.host, self.port))
        authority = f"{self.server_name or self.host}:{self.port}"
        self.early_streams = [client.start(m, p, list(h), b, True, authority) for m, p, h, b in self.early]
        try:
            await asyncio.wait_for(client.wait_connected(), self.timeout)
        except TimeoutError:
            raise H3HandshakeError(f"no QUIC handshake with {self.host}:{self.port} within {self.timeout} s") from None
        except ConnectionError:
            raise H3HandshakeError(f"QUIC handshake with {self.host}:{self.port} failed: {self.describe()}") from None

    def call(self, fn, *args):
        """Run fn(*args) on the session's loop (where aioquic lives) and return its result."""
        return self._call(fn, *args)

    def transmit(self) -> None:
        self._call(self._client.transmit)


# ---- a long certificate chain ------------------------------------------------------------------


def long_chain(directory: Path, ca: Path, ca_key: Path, intermediates: int = 10) -> tuple[Path, Path]:
    """A localhost certificate under `intermediates` intermediate CAs below the test CA, all RSA-2048
    (the runner's amplificationlimit case uses a long chain so that the server's first flight is far
    more than 3x the client's Initial; CRYPTO data over 7500 bytes). One key serves the whole chain:
    RSA key generation is the slow part. Returns (chain file: leaf first, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "chain.key"
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key, cwd=directory)
    issuer, issuer_key = ca, ca_key
    chain: list[Path] = []
    for i in range(intermediates + 1):
        leaf = i == intermediates
        name = "leaf" if leaf else f"int{i}"
        cert, csr, ext = directory / f"{name}.pem", directory / f"{name}.csr", directory / f"{name}.ext"
        ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
                       if leaf else
                       "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
        _openssl("req", "-new", "-key", key, "-out", csr,
                 "-subj", f"/CN={'localhost' if leaf else f'Covet Intermediate {i}'}", cwd=directory)
        _openssl("x509", "-req", "-in", csr, "-CA", issuer, "-CAkey", issuer_key, "-set_serial", str(0x7000 + i),
                 "-days", "30", "-extfile", ext, "-out", cert, cwd=directory)
        chain.insert(0, cert)
        issuer, issuer_key = cert, key
    full = directory / "chain.pem"
    full.write_text("".join(p.read_text() for p in chain))
    return full, key


def pem_der_sizes(path: Path) -> list[int]:
    """DER sizes of the certificates in a PEM file."""
    import base64
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", path.read_text(), re.S)
    return [len(base64.b64decode("".join(b.split()))) for b in blocks]


# ---- an IPv6 server ----------------------------------------------------------------------------

V6_BANNER_RE = re.compile(r"^listening on \[?::1\]?:(\d+) backend=(\S+) threads=(\d+)$")


class Ipv6Server(covet_proc.ServerProcess):
    """hello on ::1 only (`--host ::1`); covet_proc's ServerProcess knows only the 127.0.0.1 banner."""

    def argv(self, port: int) -> list[str]:
        argv = super().argv(port)
        i = argv.index("--host")
        return argv[:i + 1] + ["::1"] + argv[i + 2:]

    def _start_once(self, port: int, attempt: int) -> bool:
        self.port = port
        self.banner = None
        self._banner_event = threading.Event()
        self.stdout_lines.clear()
        self.stderr_path = covet_proc._TMPDIR / f"hello-v6-{os.getpid()}-{id(self):x}-{attempt}.stderr"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv(port), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, preexec_fn=covet_proc._die_with_parent, close_fds=True)
        self.started_at = time.monotonic()
        self._pump = threading.Thread(target=self._pump_stdout, args=(self.proc,), daemon=True)
        self._pump.start()
        self._banner_event.wait(covet_proc.START_TIMEOUT)
        if self.banner is None:
            rc = self.proc.poll()
            if rc is None:
                self._kill()
                raise AssertionError(f"no banner within {covet_proc.START_TIMEOUT} s; stderr:\n{self.stderr_tail()}")
            self.proc.wait()
            self.failed_starts.append(f"attempt {attempt} exited rc={rc}; stderr:\n{self.stderr_tail()}")
            return False
        m = V6_BANNER_RE.match(self.banner)
        if not m or int(m.group(1)) != port or m.group(2) != self.backend:
            self._kill()
            raise AssertionError(f"unexpected banner {self.banner!r} for {self.argv(port)}")
        self.reported_backend, self.reported_threads = m.group(2), int(m.group(3))
        return True


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def worker_of(server_port: int, host: str = "127.0.0.1", port: int = 0) -> tuple[int, int]:
    """Which of the server's workers (SO_REUSEPORT sockets) the kernel gives datagrams from
    host:port (any port when 0): a client Initial from there is answered with the server's connection
    ID, whose first byte is the worker index (endpoint.hpp: cid_prefix). Returns (worker, port);
    the half-open connection this leaves is dropped by the server's handshake timeout."""
    from h3_client import client_initial
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, port))
        s.connect(("127.0.0.1", server_port))
        s.settimeout(1.0)
        for _ in range(3):
            s.send(client_initial())
            try:
                reply = s.recv(65536)
            except TimeoutError:
                continue
            packets = parse_datagram(reply)
            if packets and packets[0].kind == "initial" and packets[0].scid:
                return packets[0].scid[0], s.getsockname()[1]
    raise AssertionError(f"no Initial from the server to {host}:{port}")


def wait_until(pred, timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True
