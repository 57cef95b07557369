"""covet.server.quic_group: the master's HTTP/3 sockets for `covet run --workers N --http3`, their order in the
kernel's SO_REUSEPORT group, the banks that rolling restarts take, the routing table handed to the engine, and
the flags that carry a worker's sockets to it. The routing itself (the BPF program on real sockets) is
tests/http3/cid_router_test.cpp; whole servers behind it are in test_http3_python.py."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from covet.server.quic_group import QuicGroup


class Router:
    """The engine's attach_http3_router, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[int], int]] = []

    def attach_http3_router(self, fd: int, initial_targets: list[int], tag: int) -> None:
        self.calls.append((fd, list(initial_targets), tag))


def _open(router: Any, slots: int = 2, threads: int = 2) -> QuicGroup:
    group = QuicGroup.open(router, "127.0.0.1", 0, slots, threads)
    assert group is not None
    return group


def test_a_bank_is_one_socket_per_worker_thread_on_one_port_routed_to_bank_0() -> None:
    router = Router()
    group = _open(router)
    try:
        (bank,) = group.banks
        assert len(bank) == 4
        assert {s.getsockname() for s in bank} == {("127.0.0.1", group.port)} and group.port != 0
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in bank)
        assert router.calls == [(bank[0].fileno(), [0, 1, 2, 3], group.tag)]
        assert group.fds(0, 1) == [bank[2].fileno(), bank[3].fileno()]  # worker 1's threads
        assert (group.cid_base(0, 0), group.cid_base(0, 1), group.cid_base(1, 1)) == (0, 2, 6)
    finally:
        group.close()


def test_a_restarting_slot_gets_a_bank_its_live_workers_do_not_use() -> None:
    router = Router()
    group = _open(router)
    try:
        assert group.bank_for(0, busy=set(), preferred=None) == 0      # first start
        assert group.bank_for(0, busy={0}, preferred=0) == 1           # rolling restart: a second bank
        assert len(group.banks) == 2
        assert {s.getsockname()[1] for b in group.banks for s in b} == {group.port}
        assert group.bank_for(0, busy={1}, preferred=1) == 0           # the next one: the first, drained
        assert group.bank_for(1, busy=set(), preferred=1) == 1         # a crash: the bank it was routed to
        assert group.bank_for(0, busy={0, 1}, preferred=1) == 2        # still draining from both: a third
        assert len(group.banks) == 3
        group.route({0: 1, 1: 2})  # new connections: slot 0 on bank 1, slot 1 on bank 2
        assert router.calls[-1][1] == [4, 5, 10, 11]
        calls = len(router.calls)
        group.route({0: 1, 1: 2})
        assert len(router.calls) == calls  # unchanged: not attached again
    finally:
        group.close()


def test_the_group_stops_at_256_sockets_one_id_byte() -> None:
    router = Router()
    group = _open(router, slots=32, threads=2)  # 64 per bank: four banks
    try:
        for n in range(1, 4):
            assert group.bank_for(0, busy=set(range(n)), preferred=0) == n
        assert group.add_bank() is None
        assert group.bank_for(0, busy={0, 1, 2, 3}, preferred=2) == 2  # shared with a draining worker (logged)
    finally:
        group.close()


def test_without_routing_the_workers_bind_their_own(caplog: pytest.LogCaptureFixture) -> None:
    assert QuicGroup.open(object(), "127.0.0.1", 0, 2, 1) is None
    assert "cannot route HTTP/3" in caplog.text
    assert QuicGroup.open(Router(), "127.0.0.1", 0, 65, 2) is None  # two banks would pass 256 sockets
    assert "more than the 128 sockets" in caplog.text


def test_a_taken_udp_port_names_the_cause() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(OSError, match=r"cannot bind UDP 127\.0\.0\.1:.* for HTTP/3: .*another server"):
            QuicGroup.open(Router(), "127.0.0.1", taken.getsockname()[1], 1, 1)


def test_a_port_held_by_a_reuseport_socket_is_taken_not_joined() -> None:
    """Another SO_REUSEPORT socket on the port (a second server of the same user): the group's first socket must
    not join its reuseport group, which would split that server's packets with ours."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        with pytest.raises(OSError, match=r"cannot bind UDP 127\.0\.0\.1:.* for HTTP/3"):
            QuicGroup.open(Router(), "127.0.0.1", other.getsockname()[1], 1, 1)


def _udp_port_free_on_tcp() -> socket.socket:
    """A UDP socket on a loopback port whose number is free on TCP (the listener the test makes there)."""
    for _ in range(50):
        held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        held.bind(("127.0.0.1", 0))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as open_listener binds
            try:
                probe.bind(("127.0.0.1", held.getsockname()[1]))
                return held
            except OSError:
                held.close()
    pytest.fail("no UDP port whose number was free on TCP in 50 tries")


def test_a_picked_tcp_port_held_on_udp_is_picked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """`covet run --port 0 --http3 --workers N`: the kernel picks the TCP port alone, and that number may be held
    on UDP. The master picks again. The kernel's first pick is made here a port held on UDP (real sockets)."""
    from covet.server import supervisor
    from covet.tls import TransportOptions

    if not supervisor.engine_adopts_sockets(supervisor.native_module()):
        pytest.skip("this engine build cannot adopt sockets (the master binds nothing)")
    held = _udp_port_free_on_tcp()
    real_open = supervisor.open_listener
    picks: list[int] = []

    def kernel_picks(host: str, port: int, backlog: Any = None) -> socket.socket:
        sock = real_open(host, held.getsockname()[1] if not picks else port, backlog)
        picks.append(sock.getsockname()[1])
        return sock

    monkeypatch.setattr(supervisor, "open_listener", kernel_picks)
    open_group = QuicGroup.open
    monkeypatch.setattr(QuicGroup, "open", staticmethod(lambda _native, *a: open_group(Router(), *a)))
    master = supervisor.Supervisor(supervisor.WorkerOptions(app="m:app", port=0, transport=TransportOptions(
        ssl_certfile="c.pem", ssl_keyfile="k.pem", http3=True)), workers=2)
    try:
        master._open_listeners()
        assert master.listener is not None and master.quic is not None
        assert picks[0] == held.getsockname()[1] and len(picks) == 2
        assert master.opts.port == picks[1] == master.listener.getsockname()[1] == master.quic.port
        assert {s.getsockname()[1] for s in master.quic.banks[0]} == {master.opts.port}
    finally:
        held.close()
        if master.listener is not None:
            master.listener.close()
        if master.quic is not None:
            master.quic.close()


def test_worker_flags_carry_the_sockets_to_the_engine() -> None:
    from covet.server import cli
    from covet.server.supervisor import WorkerOptions, worker_command
    from covet.tls import TransportOptions

    tls = TransportOptions(ssl_certfile="c.pem", ssl_keyfile="k.pem", http3=True)
    command = worker_command(WorkerOptions(app="main:app", transport=tls), quic=([7, 8], 4, 0xBEEF))
    at = command.index("--http3-fds")
    assert command[at:at + 6] == ["--http3-fds", "7,8", "--http3-cid-base", "4", "--http3-cid-tag", "48879"]
    parsed = cli._transport(cli._parser().parse_args(["_worker", *command[command.index("main:app"):]]))
    assert (parsed.http3_sockets, parsed.http3_cid_base, parsed.http3_cid_tag) == ((7, 8), 4, 0xBEEF)

    class Engine:
        http2 = True
        http3 = False
        adopted: Any = None

        def configure_tls(self, *args: Any, **kwargs: Any) -> None:
            pass

        def adopt_http3_sockets(self, fds: list[int], cid_base: int, cid_tag: int) -> None:
            self.adopted = (fds, cid_base, cid_tag)

    engine = Engine()
    parsed.apply(engine)
    assert engine.http3 and engine.adopted == ([7, 8], 4, 0xBEEF)
    assert "--http3-fds" not in worker_command(WorkerOptions(app="main:app", transport=tls))
