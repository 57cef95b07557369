"""HTTP/3's UDP sockets of a ``covet run --workers N --http3`` group, owned by the master and routed by QUIC
connection ID between the worker processes.

Without it each worker process binds its own SO_REUSEPORT socket and the kernel picks one by hashing the client's
address: after a NAT rebinding or a migration a client's packets reach another process, which does not know its
connection. Here the master binds every socket once, in a fixed order (a socket's index in the kernel's reuseport
group is the order it joined, as long as none leaves: the master keeps them all open), and attaches a BPF program
that sends each packet to the socket named by the first byte of its connection ID (covet/http3/cid_router.hpp).
Worker i's engine thread t adopts the socket of index ``bank * slots * threads + i * threads + t`` and starts the
IDs it issues with that byte.

Banks make rolling restarts work: a new worker takes a bank its slot's old worker does not use, so that during the
overlap the old process still receives its connections' packets (they name its sockets) while a client's first
Initial goes to the socket that takes new connections: the current worker's bank (`route`, called by the master
when a worker takes over). A second bank is made when a restart needs it, more when a worker still drains from
each (up to 256 sockets, the byte's range).
"""
from __future__ import annotations

import logging
import random
import socket
from typing import Any, Optional

log = logging.getLogger("covet.supervisor")

MAX_SOCKETS = 256  # a connection ID's first byte


class QuicGroup:
    def __init__(self, native: Any, host: str, port: int, slots: int, threads: int) -> None:
        self.native = native
        self.host = host
        self.port = port
        self.slots = slots
        self.threads = threads
        self.per_bank = slots * threads
        self.tag = random.getrandbits(16)  # bytes 1-2 of every ID: tells ours from a client's random ones
        self.banks: list[list[socket.socket]] = []
        self._address: Optional[tuple[int, Any]] = None  # (family, sockaddr) of the first socket that bound
        self._attached: Optional[list[int]] = None

    @classmethod
    def open(cls, native: Any, host: str, port: int, slots: int, threads: int) -> Optional[QuicGroup]:
        """The group with its first bank bound and routed, or None (workers then bind their own sockets) when this
        engine cannot adopt sockets or the kernel cannot route (logged with the reason). Raises OSError when
        the UDP port is taken."""
        if not hasattr(native, "attach_http3_router"):
            log.warning("this engine build cannot route HTTP/3 between worker processes (rebuild covet._native): "
                        "a client whose address changes may reach another process and reconnect")
            return None
        if 2 * slots * threads > MAX_SOCKETS:
            log.warning("HTTP/3: %d workers x %d threads is more than the %d sockets connection-ID routing can name "
                     "in two banks; each worker binds its own socket (the kernel hashes clients to them)",
                     slots, threads, MAX_SOCKETS // 2)
            return None
        group = cls(native, host, port, slots, threads)
        group.add_bank()
        try:
            group.route(dict.fromkeys(range(slots), 0))
        except OSError as e:
            group.close()
            log.warning("HTTP/3: %s; each worker binds its own socket", e.strerror or e)
            return None
        return group

    def add_bank(self) -> Optional[int]:
        """Binds one more bank of sockets (one per worker thread); None when the group is full."""
        if (len(self.banks) + 1) * self.per_bank > MAX_SOCKETS:
            return None
        bank = [self._bind() for _ in range(self.per_bank)]
        self.banks.append(bank)
        return len(self.banks) - 1

    def _bind(self) -> socket.socket:
        candidates = ([self._address] if self._address else
                      [(family, address) for family, _, _, _, address in
                       socket.getaddrinfo(self.host or None, self.port, socket.AF_UNSPEC, socket.SOCK_DGRAM, 0,
                                          socket.AI_PASSIVE)])
        error: Optional[OSError] = None
        for family, address in candidates:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            first = self._address is None
            try:
                # The first binds alone, so that it fails on a port another socket holds (it would join that
                # socket's reuseport group otherwise); the rest join it.
                if not first:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.bind(address)
                if first:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            except OSError as e:
                sock.close()
                error = e
                continue
            sock.setblocking(False)  # shared with the workers, which never block on it
            if first:  # the rest join this one's address (its port, when `port` was 0)
                self._address = (family, sock.getsockname())
                self.port = self._address[1][1]
            return sock
        raise OSError(error.errno if error else 0,
                      f"cannot bind UDP {self.host}:{self.port} for HTTP/3: "
                      f"{error.strerror if error else 'no address'} (is another server using the port?)")

    def bank_for(self, slot: int, busy: set[int], preferred: Optional[int]) -> int:
        """The bank a new worker of `slot` takes: `preferred` (the one its slot's new connections go to) unless a
        live worker of the slot uses it (`busy`), else the lowest free one, made if need be."""
        if preferred is not None and preferred not in busy:
            return preferred
        free = next((b for b in range(len(self.banks)) if b not in busy), None)
        if free is None:
            free = self.add_bank()
        if free is None:  # every bank has a live worker of this slot (restarts faster than drains)
            log.warning("HTTP/3: no free socket bank for worker %d; it shares one with a draining worker, whose "
                        "remaining HTTP/3 connections may be reset", slot)
            return preferred if preferred is not None else 0
        return free

    def fds(self, bank: int, slot: int) -> list[int]:
        """The descriptors worker `slot` adopts from `bank`, one per engine thread."""
        start = slot * self.threads
        return [s.fileno() for s in self.banks[bank][start:start + self.threads]]

    def cid_base(self, bank: int, slot: int) -> int:
        """The group index of the first of those sockets: the first byte of its thread 0's connection IDs."""
        return bank * self.per_bank + slot * self.threads

    def route(self, banks: dict[int, int]) -> None:
        """New connections (a client's first Initial) to each slot's sockets in ``banks[slot]``."""
        targets = [self.cid_base(banks.get(slot, 0), slot) + t for slot in range(self.slots)
                   for t in range(self.threads)]
        if targets != self._attached:
            self.native.attach_http3_router(self.banks[0][0].fileno(), targets, self.tag)
            self._attached = targets

    def close(self) -> None:
        for bank in self.banks:
            for sock in bank:
                sock.close()
        self.banks.clear()
