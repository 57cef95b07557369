#include "worker.hpp"

#include "../logging.hpp"
#include "covet/io/errno_text.hpp"
#include "covet/metrics/http_metrics.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace covet::net {

Worker::Worker(unsigned index, const ServerConfig& config, int listen_fd, ProtocolFactory factory)
    : index_(index),
      config_(config),
      listen_fd_(listen_fd),
      factory_(std::move(factory)),
      link_(std::make_shared<HomeLink>(this)),
      context_(*this, *this) {
    const unsigned threads = std::max(1u, config.threads);
    max_connections_ = std::max<std::size_t>(1, (config.limits.max_connections + threads - 1) / threads);
}

Worker::~Worker() {
    for (int fd : parked_) ::close(fd);
    // The thread that ran the loop keeps the context installed after an embedded worker's last poll; the
    // worker is destroyed there, and the thread must not point at it afterwards.
    if (WorkerContext::installed() == &context_) WorkerContext::install(nullptr);
    std::lock_guard lock(link_->mutex);
    link_->home = nullptr;  // Responders still held elsewhere now find nothing
}

namespace {
std::uint64_t key(ConnectionId id) { return (std::uint64_t{id.slot} << 32) | id.generation; }
}  // namespace

void Worker::exchange_finished(ConnectionId id) noexcept {
    const auto it = kept_for_exchange_.find(key(id));
    if (it == kept_for_exchange_.end()) return;
    ProtocolHandler* protocol = it->second->protocol();
    if (!protocol || protocol->exchange_released()) kept_for_exchange_.erase(it);  // HTTP/2: the last stream
}

void Worker::open_embedded() {
    throw std::runtime_error("this reactor backend cannot run on the caller's event loop (it needs io_uring)");
}

void Worker::request_stop() {
    post([this] { begin_shutdown(); });
}

void Worker::post(std::function<void()> task) {
    {
        std::lock_guard lock(posted_mutex_);
        posted_.push_back(std::move(task));
    }
    if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) wake();
}

io::TimerId Worker::post_at(io::Clock::time_point when, std::function<void()> task) {
    const io::TimerId id = timers_.reserve(when);
    if (on_loop_thread())
        timers_.add(id, std::move(task));
    else
        post([this, id, task = std::move(task)]() mutable { timers_.add(id, std::move(task)); });
    return id;
}

void Worker::cancel(io::TimerId id) {
    if (on_loop_thread())
        timers_.cancel(id);
    else
        post([this, id] { timers_.cancel(id); });
}

void Worker::run_posted() {
    wake_pending_.store(false, std::memory_order_release);
    {
        std::lock_guard lock(posted_mutex_);
        running_.swap(posted_);
    }
    for (auto& task : running_) task();
    running_.clear();
}

void Worker::with_connection(ConnectionId id, std::function<void(Connection&)> fn, bool final) {
    auto deliver = [this, id, final](const std::function<void(Connection&)>& f) {
        if (Connection* c = find(id))
            f(*c);
        else if (final)
            exchange_finished(id);
    };
    if (on_home_thread()) {
        deliver(fn);
        return;
    }
    post([deliver, fn = std::move(fn)] { deliver(fn); });
}

Connection* Worker::find(ConnectionId id) noexcept {
    if (id.slot >= slots_.size()) return nullptr;
    Slot& s = slots_[id.slot];
    return s.connection && !s.closed && s.generation == id.generation ? s.connection.get() : nullptr;
}

void Worker::request_send(Connection& c) {
    Slot& s = slots_[c.id().slot];
    if (!s.dirty) {
        s.dirty = true;
        dirty_.push_back(c.id().slot);
    }
    output_queued();
}

void Worker::set_reading(Connection& c, bool enabled) {
    const std::uint32_t i = c.id().slot;
    if (slots_[i].connection.get() != &c) return;  // kept for its exchange: no longer on a socket
    slots_[i].reading = enabled;
    if (enabled)
        want_read(i);
    else
        stop_reading(i);
}

void Worker::close(Connection& c) {
    const std::uint32_t i = c.id().slot;
    // A connection kept for its pending exchange no longer owns its slot (it may hold a new connection).
    if (slots_[i].connection.get() == &c) close_slot(i);
}

void Worker::close_slot(std::uint32_t i) {
    Slot& s = slots_[i];
    if (s.datagram) {
        if (s.closed) return;
        mark_closed(s);
        to_free_.push_back(i);
        return;
    }
    if (s.fd < 0) return;
    if (s.lingering) {
        s.lingering = false;
        --lingering_;
    }
    mark_closed(s);
    close_socket(i);
    s.fd = -1;
    to_free_.push_back(i);
}

void Worker::mark_closed(Slot& s) noexcept {
    if (s.closed || !s.connection) return;
    s.closed = true;
    s.connection->uncount_client();
    --live_;
    context_.stats.count_closed();
    if (config_.ops.record_metrics) metrics::connection_closed();
}

// ---- accepting ----

void Worker::accepted(int fd) {
    if (at_connection_limit()) {
        if (config_.ops.record_metrics) metrics::connection_refused(metrics::RefusedReason::limit);
        parked_.push_back(fd);
        return;
    }
    start_connection(fd);
}

void Worker::accept_failed(int error) {
    // Out of descriptors or memory: retrying at once would spin on the same error. Back off until the
    // next sweep (closing connections frees descriptors meanwhile).
    accept_backoff_until_ = now() + sweep_interval;
    if (now() >= next_accept_warning_) {
        logging::warn("worker {}: accept failed: {} (pausing accepts briefly; raise `ulimit -n`?)", index_,
                      io::errno_text(error));
        next_accept_warning_ = now() + accept_warning_interval;
    }
}

void Worker::start_connection(int fd) {
    Connection* c = adopt(fd);
    if (!c) {
        ::close(fd);
        return;
    }
    if (!open_socket(c->id().slot, fd)) {
        close(*c);
        return;
    }
    // Accepted while stopping (from an inherited listener, whose queue we must not drop): shut like the
    // others; HTTP/1.1 still waits briefly for a fresh connection's first request and answers it.
    if (stopping_) c->shutdown();
}

bool Worker::admit_address(std::string_view address, std::optional<ClientKey>& key) {
    key = client_key(address);
    if (!key) return true;  // not an IP address: never limited
    const std::int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now().time_since_epoch()).count();
    const ClientVerdict verdict = limiter_->admit_connection(*key, now_ns);
    if (verdict == ClientVerdict::admitted) return true;
    const bool too_many = verdict == ClientVerdict::too_many_connections;
    if (config_.ops.record_metrics)
        metrics::connection_refused(too_many ? metrics::RefusedReason::per_ip : metrics::RefusedReason::per_ip_rate);
    if (limiter_->should_log(*key, now_ns)) {
        const ClientLimits& l = limiter_->limits();
        if (too_many)
            logging::warn("connections from {} refused: it has {} open (max_connections_per_ip; IPv6 counts per /64)",
                          address, l.max_connections_per_ip);
        else
            logging::warn("connections from {} refused: more than {} new ones per {} ms (new_connections_per_ip)",
                          address, l.new_connections_per_ip, l.new_connections_period.count());
    }
    key.reset();
    return false;
}

bool Worker::admit_client(Connection& c) {
    if (!limiter_) return true;
    std::optional<ClientKey> key;
    if (!admit_address(c.peer_address(), key)) return false;
    if (key) c.count_client(*limiter_, *key);
    return true;
}

Connection* Worker::adopt(int fd) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    char text[INET6_ADDRSTRLEN] = "";
    std::uint16_t port = 0;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
        if (addr.ss_family == AF_INET) {
            auto* a = reinterpret_cast<sockaddr_in*>(&addr);
            inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
            port = ntohs(a->sin_port);
        } else if (addr.ss_family == AF_INET6) {
            auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
            inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
            port = ntohs(a->sin6_port);
        }
    }
    // Per-client limits, before a byte is read: over one, the connection closes at once, without an answer
    // (its protocol is not known yet: TLS, HTTP/1, h2 by prior knowledge). A PROXY-protocol peer's connection
    // is counted once its header names the client (Connection::take_proxy_header -> admit_client).
    std::optional<ClientKey> key;
    if (limiter_ &&
        !(config_.proxy_protocol.enabled && config_.proxy_protocol.trusted.contains(std::string_view(text))) &&
        !admit_address(text, key))
        return nullptr;
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    const std::uint32_t index = take_slot();
    Slot& s = slots_[index];
    s.closed = false;
    s.connection = std::make_unique<Connection>(*this, fd, ConnectionId{index, s.generation}, text, port);
    try {
        // The transport goes in before the protocol exists: the factory may look at it (ALPN comes later,
        // after the handshake, through Connection::tls()).
        if (tls_) s.connection->set_transport(tls_->make_transport(s.connection->wire_out()));
        s.connection->set_protocol(factory_(*s.connection, *this));
    } catch (const std::exception& e) {
        logging::error("worker {}: could not set up a connection: {}", index_, e.what());
        if (key) limiter_->release_connection(*key);  // admitted above, never counted by the connection
        s.connection.reset();
        free_slots_.push_back(index);
        return nullptr;
    }
    if (key) s.connection->count_client(*limiter_, *key);
    s.fd = fd;
    ++live_;
    context_.stats.count_accepted();
    if (config_.ops.record_metrics) metrics::connection_opened();
    return s.connection.get();
}

std::uint32_t Worker::take_slot() {
    if (free_slots_.empty()) {
        slots_.emplace_back();
        return static_cast<std::uint32_t>(slots_.size() - 1);
    }
    const std::uint32_t index = free_slots_.back();
    free_slots_.pop_back();
    return index;
}

void Worker::make_datagram_service() {
    try {
        datagrams_ = datagram_factory_(*this);
    } catch (const std::exception& e) {
        throw ServiceStartError(e.what());
    }
}

Connection* Worker::adopt_datagram(ConnectionDriver& driver, std::string_view peer_address, std::uint16_t peer_port,
                                   const std::function<std::unique_ptr<ProtocolHandler>(Connection&)>& make) {
    if (stopping_ || at_connection_limit()) return nullptr;
    const std::uint32_t index = take_slot();
    Slot& s = slots_[index];
    s.closed = false;
    s.datagram = true;
    s.connection = std::make_unique<Connection>(driver, -1, ConnectionId{index, s.generation},
                                                std::string(peer_address), peer_port);
    try {
        s.connection->set_protocol(make(*s.connection));
    } catch (const std::exception& e) {
        logging::error("worker {}: could not set up a connection: {}", index_, e.what());
        s.connection.reset();
        s.datagram = false;
        free_slots_.push_back(index);
        return nullptr;
    }
    ++live_;
    context_.stats.count_accepted();
    if (config_.ops.record_metrics) metrics::connection_opened();
    return s.connection.get();
}

void Worker::close_datagram(Connection& c) {
    const std::uint32_t i = c.id().slot;
    if (i < slots_.size() && slots_[i].connection.get() == &c) close_slot(i);
}

// Connections accepted past the limit wait here, unread, as they would in the kernel backlog, until a
// slot frees up.
void Worker::adopt_parked() {
    while (!parked_.empty() && !at_connection_limit()) {
        const int fd = parked_.front();
        parked_.pop_front();
        start_connection(fd);
    }
}

// ---- reading, lingering, freeing ----

void Worker::input_ended(ConnectionId id, bool eof) {
    Slot& s = slots_[id.slot];
    if (s.generation != id.generation) return;
    if (s.lingering) return finish_linger(id.slot);
    Connection* c = find(id);
    if (!c) return;
    if (!eof) return close(*c);  // ECONNRESET and friends
    s.peer_eof = true;
    c->peer_closed();
}

void Worker::begin_linger(std::uint32_t i) {
    Slot& s = slots_[i];
    if (s.fd < 0 || s.closed || s.lingering) return;
    mark_closed(s);
    ::shutdown(s.fd, SHUT_WR);
    s.lingering = true;
    ++lingering_;
    s.reading = true;
    s.linger_until = now() + linger_time;
    if (s.peer_eof)
        finish_linger(i);
    else
        want_read(i);
}

void Worker::finish_linger(std::uint32_t i) {
    if (slots_[i].lingering) close_slot(i);
}

void Worker::free_released() {
    for (std::uint32_t i : to_free_) {
        const Slot& s = slots_[i];
        if (!s.connection || s.fd >= 0 || s.lingering) continue;
        if (!s.datagram) {
            if (send_in_flight(i)) continue;
            reset_socket_state(i);
        }
        release(i);
    }
    to_free_.clear();
    adopt_parked();
}

void Worker::release(std::uint32_t index) {
    Slot& s = slots_[index];
    // Application code may still hold this connection's request (its response is pending): keep the
    // connection, inert, until that exchange finishes.
    if (s.connection && s.connection->protocol()) {
        s.connection->protocol()->on_closed();
        if (s.connection->protocol()->exchange_outstanding())
            kept_for_exchange_.emplace(key(s.connection->id()), std::move(s.connection));
    }
    s.connection.reset();
    const std::uint32_t generation = s.generation + 1;
    s = Slot{};
    s.generation = generation;
    free_slots_.push_back(index);
}

// ---- timers and shutdown ----

void Worker::tick() {
    if (tick_stamp_) tick_stamp_->store(now_.time_since_epoch().count(), std::memory_order_relaxed);
    const bool stalled =
        !last_tick_skipped_ && last_tick_ != io::Clock::time_point{} && now_ - last_tick_ > stalled_after;
    last_tick_ = now_;
    last_tick_skipped_ = stalled;
    timers_.run_due(now_);  // tasks due at a point in time (post_at): late or not, their time has come
    if (stalled) return;
    for (Slot& s : slots_)
        if (s.connection && !s.closed) s.connection->tick(now_);
    for (std::uint32_t i = 0; i < slots_.size(); ++i)
        if (slots_[i].lingering && now() >= slots_[i].linger_until) finish_linger(i);
}

void Worker::enforce_shutdown_deadline() {
    if (!stopping_ || now_ < shutdown_deadline_) return;
    for (std::uint32_t i = 0; i < slots_.size(); ++i)
        if (slots_[i].connection && !slots_[i].closed) close_slot(i);
    for (std::uint32_t i = 0; i < slots_.size(); ++i)
        if (slots_[i].lingering) finish_linger(i);
    for (int fd : parked_) ::close(fd);  // never got a slot in time
    parked_.clear();
}

void Worker::begin_shutdown() {
    if (stopping_) return;
    stopping_ = true;
    shutdown_deadline_ = now_ + config_.timeouts.shutdown;
    stop_accepting();
    for (Slot& s : slots_)
        if (s.connection && !s.closed) s.connection->shutdown();
    if (datagrams_) datagrams_->shutdown();
    // Connections accepted from here on are shut as they start (start_connection).
    drain_listen_queue();
    // A listening socket shut down for reading stops listening: new connections are refused at once
    // instead of waiting in a backlog nobody accepts from. An inherited socket is not ours to shut: the
    // next worker generation accepts what waits in its queue.
    if (!shares_listener()) ::shutdown(listen_fd_, SHUT_RD);
}

void Worker::drain_listen_queue() {
    if (listen_fd_ < 0) return;
    // Bounded: a flood arriving meanwhile must not keep the loop here. What is past the connection limit is
    // parked and served as slots free up, until the shutdown deadline.
    const std::size_t most = std::max<std::size_t>(1024, max_connections_);
    for (std::size_t taken = 0; taken < most;) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, accepted_socket_flags());
        if (fd >= 0) {
            ++taken;
            accepted(fd);
        } else if (errno != EINTR && errno != ECONNABORTED) {
            return;  // EAGAIN: the queue is empty (the listener is non-blocking); anything else: leave it
        }
    }
}

}  // namespace covet::net
