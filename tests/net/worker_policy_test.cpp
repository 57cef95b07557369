// The reactor policy both backends share (src/net/worker.cpp), driven without a reactor: a scripted
// backend hands the worker real sockets (socketpairs), reports what it read, runs send batches the way
// the backends do, and moves the loop's clock. Lingering close, accept back-off, parking at the
// connection limit, shutdown, the send batch, the worker context, and the socketless connections of a datagram
// service (HTTP/3).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../../src/net/worker.hpp"
#include "covet/http/date_cache.hpp"

namespace {

namespace net = covet::net;
namespace io = covet::io;
using namespace std::chrono_literals;

// What reached one connection's protocol.
struct Seen {
    std::string data;
    int peer_closed = 0, ticks = 0, shutdowns = 0, drained = 0;
    bool hold_on_shutdown = false;  // a connection busy with a long response: shutdown doesn't end it
};

class RecordingProtocol final : public net::ProtocolHandler {
public:
    RecordingProtocol(net::Connection& c, Seen& seen) : c_(c), seen_(seen) {}
    void on_data(std::span<const char> bytes) override { seen_.data.append(bytes.data(), bytes.size()); }
    void on_peer_closed() override {
        ++seen_.peer_closed;
        c_.close_after_flush();
    }
    void on_output_drained() override { ++seen_.drained; }
    void on_tick(io::Clock::time_point) override { ++seen_.ticks; }
    void on_shutdown() override {
        ++seen_.shutdowns;
        if (!seen_.hold_on_shutdown) c_.close_after_flush();
    }

private:
    net::Connection& c_;
    Seen& seen_;
};

const io::Clock::time_point t0 = io::Clock::time_point{} + 1h;

// The worker keeps a reference to its configuration (a Server owns it): this holds the test's copy.
struct OwnConfig {
    net::ServerConfig own_config;
};

class ScriptedWorker final : private OwnConfig, public net::Worker {
public:
    explicit ScriptedWorker(net::ServerConfig cfg)
        : OwnConfig{std::move(cfg)},
          Worker(0, own_config, /*listen_fd=*/-1, [this](net::Connection& c, net::ConnectionHome&) {
              seen.push_back(std::make_unique<Seen>());
              seen.back()->hold_on_shutdown = hold_on_shutdown;
              return std::make_unique<RecordingProtocol>(c, *seen.back());
          }) {
        enter();
        update_now(t0);
    }
    ~ScriptedWorker() override {
        for (std::uint32_t i : opened)
            if (slot(i).fd >= 0) ::close(std::exchange(slot(i).fd, -1));
    }

    using Worker::accept_failed;
    using Worker::accept_wanted;
    using Worker::accepted;
    using Worker::enforce_shutdown_deadline;
    using Worker::finished;
    using Worker::flush_datagrams;
    using Worker::free_released;
    using Worker::input_ended;
    using Worker::keeps_reading;
    using Worker::received;
    using Worker::report_ready;
    using Worker::run_posted;
    using Worker::slot;
    using Worker::tick;
    using Worker::update_now;
    // Moves the loop's clock to `t` and runs the sweep there, as the backend's timer does.
    void tick_at(io::Clock::time_point t) {
        update_now(t);
        tick();
    }

    net::ConnectionId id(std::uint32_t slot_index) const { return {slot_index, slot(slot_index).generation}; }

    // One send batch, as a backend runs it: whatever is queued goes to the socket, then the policy hears
    // that the queue is empty. Returns the slots it visited.
    std::vector<std::uint32_t> send_batch() {
        std::vector<std::uint32_t> visited;
        for_each_dirty([&](std::uint32_t i) {
            visited.push_back(i);
            Slot& s = slot(i);
            if (s.fd < 0 || !s.connection || s.closed) return;
            io::OutputQueue& q = s.connection->wire_out();
            iovec iov[io::OutputQueue::max_iovecs];
            while (const std::size_t n = q.prepare_send(iov)) {
                msghdr msg{};
                msg.msg_iov = iov;
                msg.msg_iovlen = n;
                const ssize_t sent = ::sendmsg(s.fd, &msg, MSG_NOSIGNAL);
                if (sent <= 0) return;
                q.consume(static_cast<std::size_t>(sent));
            }
            sent_all(*s.connection);
        });
        return visited;
    }

    // ---- the scripted backend ----
    void run() override {}
    std::vector<std::unique_ptr<Seen>> seen;
    std::vector<std::uint32_t> opened, closed_sockets, read_wanted, read_stopped;
    int wakes = 0, stop_accepting_calls = 0, outputs_queued = 0;
    bool hold_on_shutdown = false;

protected:
    void wake() override { ++wakes; }
    void stop_accepting() override { ++stop_accepting_calls; }
    bool open_socket(std::uint32_t i, int) override {
        opened.push_back(i);
        return true;
    }
    void close_socket(std::uint32_t i) override {
        ::close(slot(i).fd);
        closed_sockets.push_back(i);
    }
    void want_read(std::uint32_t i) override { read_wanted.push_back(i); }
    void stop_reading(std::uint32_t i) override { read_stopped.push_back(i); }
    void output_queued() override { ++outputs_queued; }

public:
    std::vector<int> watched;
    void watch_readable(int fd, std::function<void()>) override { watched.push_back(fd); }
    void unwatch(int fd) override { std::erase(watched, fd); }
};

// A datagram service's side of its connections: it drives them (no socket) and counts what the worker asked.
struct FakeService final : net::DatagramService, net::ConnectionDriver {
    explicit FakeService(net::DatagramHost& h) : host(h) {}
    void flush() override { ++flushes; }
    void shutdown() override { ++shutdowns; }
    void request_send(net::Connection&) override { ++sends; }
    void set_reading(net::Connection&, bool) override {}
    void close(net::Connection& c) override { host.close_datagram(c); }
    io::Loop& loop() noexcept override { return host.host_loop(); }
    const net::ServerConfig& config() const noexcept override { return cfg; }

    net::DatagramHost& host;
    net::ServerConfig cfg;
    int flushes = 0, shutdowns = 0, sends = 0;
};

net::ServerConfig config(std::size_t max_connections = 100) {
    net::ServerConfig c;
    c.threads = 1;
    c.limits.max_connections = max_connections;
    return c;
}

// A connected pair: `server` goes to the worker, the test plays the client on `client`.
struct Peer {
    int server = -1, client = -1;
    Peer() {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
            server = sv[0];
            client = sv[1];
        }
    }
    ~Peer() {
        if (client >= 0) ::close(client);
    }
    Peer(const Peer&) = delete;
    Peer& operator=(const Peer&) = delete;

    // What the client can read now, without waiting; `eof` once the server's side is shut for writing.
    std::string read_now(bool* eof = nullptr) const {
        std::string got;
        char buf[256];
        if (eof) *eof = false;
        while (true) {
            const ssize_t n = ::recv(client, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) {
                got.append(buf, static_cast<std::size_t>(n));
                continue;
            }
            if (n == 0 && eof) *eof = true;
            return got;
        }
    }
    bool server_gone() const {
        bool eof = false;
        read_now(&eof);
        return eof;
    }
};

std::span<const char> bytes(std::string_view s) { return {s.data(), s.size()}; }

TEST(WorkerPolicy, TheWorkersContextIsInstalledOnItsThreadAndRemovedWithIt) {
    auto w = std::make_unique<ScriptedWorker>(config());
    EXPECT_TRUE(w->on_loop_thread());
    EXPECT_EQ(net::WorkerContext::installed(), &w->context());
    EXPECT_EQ(net::ConnectionHome::current(), static_cast<net::ConnectionHome*>(w.get()));
    EXPECT_EQ(w->context().loop, static_cast<io::Loop*>(w.get()));
    EXPECT_EQ(&covet::http::DateCache::thread_local_instance(), &w->context().date);
    EXPECT_EQ(covet::http::DateCache::thread_local_instance().get().size(), 29u);

    bool elsewhere_on_loop = true;
    covet::http::DateCache* elsewhere_cache = nullptr;
    net::ConnectionHome* elsewhere_home = w.get();
    std::thread([&] {
        elsewhere_on_loop = w->on_loop_thread();
        elsewhere_cache = &covet::http::DateCache::thread_local_instance();
        elsewhere_home = net::ConnectionHome::current();
    }).join();
    EXPECT_FALSE(elsewhere_on_loop);
    EXPECT_NE(elsewhere_cache, &w->context().date);
    EXPECT_EQ(elsewhere_home, nullptr);

    w.reset();
    EXPECT_EQ(net::WorkerContext::installed(), nullptr) << "a destroyed worker must not stay current";
    EXPECT_EQ(net::ConnectionHome::current(), nullptr);
    EXPECT_EQ(covet::http::DateCache::thread_local_instance().get().size(), 29u);
}

TEST(WorkerPolicy, StatsCountAcceptedClosedAndActive) {
    ScriptedWorker w(config());
    Peer a, b;
    w.accepted(a.server);
    w.accepted(b.server);
    auto s = w.context().stats.snapshot();
    EXPECT_EQ(s.accepted, 2u);
    EXPECT_EQ(s.closed, 0u);
    EXPECT_EQ(s.active, 2u);
    w.input_ended(w.id(w.opened[0]), /*eof=*/false);  // a reset
    w.free_released();
    s = w.context().stats.snapshot();
    EXPECT_EQ(s.accepted, 2u);
    EXPECT_EQ(s.closed, 1u);
    EXPECT_EQ(s.active, 1u);
    EXPECT_EQ(w.live_connections(), 1u);
    w.context().stats.count_request();
    EXPECT_EQ(w.context().stats.snapshot().requests, 1u);
}

TEST(WorkerPolicy, LingeringCloseHalfClosesDrainsInputThenClosesAfterTheLingerTime) {
    ScriptedWorker w(config());
    Peer p;
    w.accepted(p.server);
    const std::uint32_t i = w.opened.at(0);
    const net::ConnectionId id = w.id(i);
    w.received(id, bytes("request"));
    EXPECT_EQ(w.seen[0]->data, "request");

    net::Connection* c = w.find(id);
    ASSERT_NE(c, nullptr);
    c->out().append(std::string_view("final response"));
    c->close_after_flush();
    EXPECT_EQ(w.send_batch(), std::vector<std::uint32_t>{i});

    // Sent, half-closed, still reading: the client gets the whole response and then EOF...
    bool eof = false;
    EXPECT_EQ(p.read_now(&eof), "final response");
    EXPECT_TRUE(eof);
    EXPECT_TRUE(w.slot(i).lingering);
    EXPECT_EQ(w.find(id), nullptr) << "a lingering connection is closed to everyone but the drain";
    EXPECT_TRUE(w.keeps_reading(id));
    EXPECT_EQ(w.read_wanted.back(), i);
    EXPECT_TRUE(w.closed_sockets.empty());
    // ...while what it still sends is read and dropped, not answered with a reset.
    EXPECT_EQ(::send(p.client, "late", 4, MSG_NOSIGNAL), 4);
    w.received(id, bytes("late"));
    EXPECT_EQ(w.seen[0]->data, "request");

    w.tick_at(t0 + net::Worker::linger_time - 1ms);
    EXPECT_TRUE(w.closed_sockets.empty());
    w.tick_at(t0 + net::Worker::linger_time);
    EXPECT_EQ(w.closed_sockets, std::vector<std::uint32_t>{i});
    EXPECT_FALSE(w.slot(i).lingering);
    EXPECT_FALSE(w.keeps_reading(id));
    w.free_released();
    EXPECT_EQ(w.slot(i).connection, nullptr);
    EXPECT_NE(w.slot(i).generation, id.generation) << "stale ids never match the reused slot";
}

TEST(WorkerPolicy, LingeringEndsAtOnceWhenThePeerCloses) {
    ScriptedWorker w(config());
    Peer p;
    w.accepted(p.server);
    const std::uint32_t i = w.opened.at(0);
    const net::ConnectionId id = w.id(i);
    w.find(id)->close_after_flush();  // nothing to send: lingers too (close_when_drained)
    w.send_batch();
    EXPECT_TRUE(w.slot(i).lingering);
    EXPECT_TRUE(p.server_gone());
    w.input_ended(id, /*eof=*/true);
    EXPECT_EQ(w.closed_sockets, std::vector<std::uint32_t>{i});
    EXPECT_FALSE(w.slot(i).lingering);
    EXPECT_EQ(w.seen[0]->peer_closed, 0) << "the protocol had already finished";
}

TEST(WorkerPolicy, PeerEofBeforeTheCloseSkipsTheLinger) {
    ScriptedWorker w(config());
    Peer p;
    w.accepted(p.server);
    const std::uint32_t i = w.opened.at(0);
    w.input_ended(w.id(i), /*eof=*/true);
    EXPECT_EQ(w.seen[0]->peer_closed, 1);
    EXPECT_TRUE(w.slot(i).peer_eof);
    w.send_batch();  // the protocol closed after flush: nothing left to drain from a peer that closed
    EXPECT_EQ(w.closed_sockets, std::vector<std::uint32_t>{i});
    EXPECT_FALSE(w.slot(i).lingering);
}

TEST(WorkerPolicy, AReadErrorClosesAtOnce) {
    ScriptedWorker w(config());
    Peer p;
    w.accepted(p.server);
    const std::uint32_t i = w.opened.at(0);
    w.input_ended(w.id(i), /*eof=*/false);
    EXPECT_EQ(w.closed_sockets, std::vector<std::uint32_t>{i});
    EXPECT_EQ(w.seen[0]->peer_closed, 0);
    EXPECT_FALSE(w.slot(i).lingering);
    EXPECT_TRUE(p.server_gone());
}

TEST(WorkerPolicy, PastTheConnectionLimitSocketsAreParkedUnreadAndAdoptedWhenASlotFrees) {
    ScriptedWorker w(config(/*max_connections=*/2));
    Peer a, b, c;
    EXPECT_TRUE(w.accept_wanted());
    w.accepted(a.server);
    w.accepted(b.server);
    EXPECT_FALSE(w.accept_wanted()) << "at the limit";
    w.accepted(c.server);  // a multishot batch delivered one more
    EXPECT_EQ(w.opened.size(), 2u);
    EXPECT_EQ(w.context().stats.snapshot().accepted, 2u);
    EXPECT_FALSE(c.server_gone()) << "parked, not refused";

    w.input_ended(w.id(w.opened[0]), /*eof=*/false);
    EXPECT_FALSE(w.accept_wanted()) << "a parked socket waits: no new accepts before it";
    w.free_released();
    ASSERT_EQ(w.opened.size(), 3u) << "the parked socket took the freed slot";
    EXPECT_EQ(w.opened[2], w.opened[0]);
    EXPECT_FALSE(w.accept_wanted()) << "at the limit again";
    w.received(w.id(w.opened[2]), bytes("hello"));
    EXPECT_EQ(w.seen.back()->data, "hello");

    w.input_ended(w.id(w.opened[1]), /*eof=*/false);
    w.free_released();
    EXPECT_TRUE(w.accept_wanted());
}

TEST(WorkerPolicy, AFailingAcceptPausesAcceptsForOneSweepInterval) {
    ScriptedWorker w(config());
    EXPECT_TRUE(w.accept_wanted());
    w.accept_failed(EMFILE);
    EXPECT_FALSE(w.accept_wanted());
    w.update_now(t0 + net::Worker::sweep_interval - 1ms);
    EXPECT_FALSE(w.accept_wanted());
    w.update_now(t0 + net::Worker::sweep_interval);
    EXPECT_TRUE(w.accept_wanted());
}

// A socket accepted around the stop (parked at the limit, or delivered after it) may carry a request sent before
// the stop: it is served, shut like the others, as slots free up; what never gets a slot is closed at the deadline.
TEST(WorkerPolicy, ShutdownServesParkedAndLateSocketsAndClosesWhatRemainsAtTheDeadline) {
    ScriptedWorker w(config(/*max_connections=*/1));
    w.hold_on_shutdown = true;
    Peer busy, parked, late, never;
    w.accepted(busy.server);
    w.accepted(parked.server);
    w.request_stop();
    EXPECT_EQ(w.wakes, 1);
    w.run_posted();
    EXPECT_EQ(w.stop_accepting_calls, 1);
    EXPECT_EQ(w.seen[0]->shutdowns, 1);
    EXPECT_FALSE(parked.server_gone()) << "parked before the stop: its request must not be lost";
    w.accepted(late.server);  // an accept that completed as the stop began
    EXPECT_FALSE(late.server_gone());
    EXPECT_FALSE(w.accept_wanted());
    EXPECT_FALSE(w.finished()) << "a connection is still busy";

    w.input_ended(w.id(w.opened[0]), /*eof=*/true);  // the busy client leaves: the parked socket gets the slot
    w.send_batch();
    w.free_released();
    ASSERT_EQ(w.opened.size(), 2u);
    EXPECT_EQ(w.seen.back()->shutdowns, 1) << "adopted while stopping: shut like the others";
    EXPECT_FALSE(w.finished()) << "a socket is still parked";

    w.update_now(t0 + net::ServerConfig{}.timeouts.shutdown - 1ms);
    w.enforce_shutdown_deadline();
    EXPECT_EQ(w.closed_sockets.size(), 1u) << "only the one that left";
    w.update_now(t0 + net::ServerConfig{}.timeouts.shutdown);
    w.enforce_shutdown_deadline();
    EXPECT_TRUE(late.server_gone()) << "still parked at the deadline: closed";
    EXPECT_EQ(w.closed_sockets.size(), 2u);
    w.free_released();
    EXPECT_TRUE(w.finished());
}

TEST(WorkerPolicy, AnInheritedListenersQueueIsServedToTheEndWhileStopping) {
    net::ServerConfig cfg = config(/*max_connections=*/1);
    cfg.inherited_listener = 1000;  // only compared: the worker never touches an inherited listener
    ScriptedWorker w(cfg);
    Peer first, queued;
    w.accepted(first.server);
    w.accepted(queued.server);
    w.request_stop();
    w.run_posted();
    EXPECT_FALSE(queued.server_gone()) << "still parked: the next worker generation must not lose it";
    w.input_ended(w.id(w.opened[0]), /*eof=*/true);  // the first client leaves
    w.send_batch();
    w.free_released();
    ASSERT_EQ(w.opened.size(), 2u);
    EXPECT_EQ(w.seen.back()->shutdowns, 1) << "adopted while stopping: shut like the others";
}

TEST(WorkerPolicy, ASendBatchVisitsEachMarkedConnectionOnce) {
    ScriptedWorker w(config());
    Peer a, b;
    w.accepted(a.server);
    w.accepted(b.server);
    net::Connection* ca = w.find(w.id(w.opened[0]));
    net::Connection* cb = w.find(w.id(w.opened[1]));
    ca->out().append(std::string_view("one"));
    ca->flush();
    ca->out().append(std::string_view("two"));
    ca->flush();
    cb->out().append(std::string_view("x"));
    cb->flush();
    EXPECT_EQ(w.outputs_queued, 3);
    EXPECT_EQ(w.send_batch(), (std::vector<std::uint32_t>{w.opened[0], w.opened[1]}));
    EXPECT_EQ(a.read_now(), "onetwo");
    EXPECT_EQ(b.read_now(), "x");
    EXPECT_EQ(w.seen[0]->drained, 1);
    EXPECT_TRUE(w.send_batch().empty());
}

TEST(WorkerPolicy, ReadingOnAndOffGoesToTheBackend) {
    ScriptedWorker w(config());
    Peer p;
    w.accepted(p.server);
    const std::uint32_t i = w.opened.at(0);
    net::Connection* c = w.find(w.id(i));
    c->set_reading(false);
    EXPECT_FALSE(w.slot(i).reading);
    EXPECT_EQ(w.read_stopped, std::vector<std::uint32_t>{i});
    c->set_reading(true);
    EXPECT_TRUE(w.slot(i).reading);
    EXPECT_EQ(w.read_wanted.back(), i);
}

TEST(WorkerPolicy, TheTickSweepsLiveConnectionsOnly) {
    ScriptedWorker w(config());
    Peer a, b;
    w.accepted(a.server);
    w.accepted(b.server);
    w.input_ended(w.id(w.opened[1]), /*eof=*/false);
    w.tick();
    EXPECT_EQ(w.seen[0]->ticks, 1);
    EXPECT_EQ(w.seen[1]->ticks, 0);
}

TEST(WorkerPolicy, ALateTickPassesNoDeadlineButTheNextOneDoes) {
    ScriptedWorker w(config());
    Peer p;
    w.accepted(p.server);
    int task_runs = 0;
    w.tick();
    EXPECT_EQ(w.seen[0]->ticks, 1);

    // The thread did not run for a while (the previous tick was long ago): connections are not ticked, since input
    // may wait for them unread; tasks due at a time still run.
    w.post_at(t0 + 100ms, [&] { ++task_runs; });
    io::Clock::time_point now = t0 + net::Worker::stalled_after + 1ms;
    w.tick_at(now);
    EXPECT_EQ(w.seen[0]->ticks, 1);
    EXPECT_EQ(task_runs, 1);
    // Never two in a row: a worker that is always late still enforces its timeouts.
    now += net::Worker::stalled_after + 1ms;
    w.tick_at(now);
    EXPECT_EQ(w.seen[0]->ticks, 2);
    w.tick_at(now + net::Worker::sweep_interval);
    EXPECT_EQ(w.seen[0]->ticks, 3);
    // One on time after late ones: ticked.
    w.tick_at(now + 2 * net::Worker::sweep_interval);
    EXPECT_EQ(w.seen[0]->ticks, 4);
}

TEST(WorkerPolicy, TheFirstTickIsJudgedFromTheLoopsStart) {
    ScriptedWorker w(config());
    Peer p;
    w.accepted(p.server);
    w.report_ready();  // the backend's loop is set up at t0 (its timer armed)
    w.tick_at(t0 + net::Worker::stalled_after + 1ms);
    EXPECT_EQ(w.seen[0]->ticks, 0) << "the loop was blocked before its first tick: that tick is late";
    w.tick_at(t0 + net::Worker::stalled_after + net::Worker::sweep_interval);
    EXPECT_EQ(w.seen[0]->ticks, 1);
}

TEST(WorkerPolicy, ALateTickLeavesLingeringClosesToTheNextTick) {
    ScriptedWorker w(config());
    Peer p;
    w.accepted(p.server);
    const std::uint32_t i = w.opened.at(0);
    net::Connection* c = w.find(w.id(i));
    ASSERT_NE(c, nullptr);
    c->close_after_flush();
    w.send_batch();
    ASSERT_TRUE(w.slot(i).lingering);
    w.tick();                                        // at t0
    w.tick_at(t0 + net::Worker::linger_time + 1ms);  // late: the peer's FIN may wait unread
    EXPECT_TRUE(w.closed_sockets.empty());
    w.tick_at(t0 + net::Worker::linger_time + net::Worker::sweep_interval);
    EXPECT_EQ(w.closed_sockets, std::vector<std::uint32_t>{i});
}

// ---- a datagram service's connections (HTTP/3: net/datagram.hpp) ----

struct WithService {
    ScriptedWorker w;
    FakeService* service = nullptr;
    explicit WithService(std::size_t max_connections = 100) : w(config(max_connections)) {
        w.set_datagram_factory([this](net::DatagramHost& host) {
            auto s = std::make_unique<FakeService>(host);
            service = s.get();
            return s;
        });
        w.report_ready();  // as a backend does once its loop is set up: the service is made then
    }
    net::Connection* adopt() {
        return w.adopt_datagram(*service, "192.0.2.7", 4433, [this](net::Connection& c) {
            w.seen.push_back(std::make_unique<Seen>());
            w.seen.back()->hold_on_shutdown = w.hold_on_shutdown;
            return std::make_unique<RecordingProtocol>(c, *w.seen.back());
        });
    }
};

TEST(WorkerPolicy, ADatagramConnectionLivesInTheTableWithoutASocket) {
    WithService ws;
    ASSERT_NE(ws.service, nullptr) << "the service is made when the loop is ready";
    net::Connection* c = ws.adopt();
    ASSERT_NE(c, nullptr);
    const net::ConnectionId id = c->id();
    EXPECT_EQ(ws.w.find(id), c) << "Responders reach it through the table, as a TCP connection";
    EXPECT_EQ(ws.w.live_connections(), 1u);
    EXPECT_EQ(c->fd(), -1);
    EXPECT_EQ(c->peer_address(), "192.0.2.7");
    c->out().append(std::string_view("queued"));
    c->flush();  // its output goes to the service, not to a backend send batch
    EXPECT_GE(ws.service->sends, 1);
    EXPECT_TRUE(ws.w.send_batch().empty());
    ws.w.tick();
    EXPECT_EQ(ws.w.seen[0]->ticks, 1) << "swept like any connection";
    ws.w.flush_datagrams();
    EXPECT_EQ(ws.service->flushes, 1);

    ws.w.close_datagram(*c);
    EXPECT_EQ(ws.w.find(id), nullptr);
    EXPECT_EQ(ws.w.live_connections(), 0u);
    ws.w.free_released();
    EXPECT_TRUE(ws.w.closed_sockets.empty()) << "it had no socket to close";
    net::Connection* next = ws.adopt();
    ASSERT_NE(next, nullptr);
    EXPECT_EQ(next->id().slot, id.slot) << "the slot is reused";
    EXPECT_NE(next->id().generation, id.generation) << "and a stale id never matches it";
    EXPECT_EQ(ws.w.find(id), nullptr);
}

TEST(WorkerPolicy, DatagramConnectionsCountAgainstTheLimitAndAreRefusedWhileStopping) {
    WithService ws(/*max_connections=*/2);
    Peer tcp;
    ws.w.accepted(tcp.server);
    ASSERT_NE(ws.adopt(), nullptr);
    EXPECT_EQ(ws.adopt(), nullptr) << "TCP and QUIC connections share the worker's limit";
    ws.w.input_ended(ws.w.id(ws.w.opened[0]), /*eof=*/false);
    ws.w.free_released();
    ws.w.request_stop();
    ws.w.run_posted();
    EXPECT_EQ(ws.service->shutdowns, 1);
    EXPECT_EQ(ws.w.seen.back()->shutdowns, 1) << "open QUIC connections hear the shutdown (GOAWAY)";
    EXPECT_EQ(ws.adopt(), nullptr) << "no new connection once stopping";
}

TEST(WorkerPolicy, ADatagramConnectionHoldsTheShutdownUntilItEndsOrTheDeadline) {
    WithService ws;
    ws.w.hold_on_shutdown = true;
    ASSERT_NE(ws.adopt(), nullptr);
    ws.w.request_stop();
    ws.w.run_posted();
    EXPECT_FALSE(ws.w.finished()) << "its streams are still finishing";
    ws.w.update_now(t0 + net::ServerConfig{}.timeouts.shutdown);
    ws.w.enforce_shutdown_deadline();
    ws.w.free_released();
    EXPECT_TRUE(ws.w.finished()) << "closed at the deadline";
}

}  // namespace
