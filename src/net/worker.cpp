#include "worker.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

namespace covet::net {

thread_local Worker* Worker::current_ = nullptr;

Worker::Worker(unsigned index, const ServerConfig& config, int listen_fd, ProtocolFactory factory)
    : index_(index), config_(config), listen_fd_(listen_fd), factory_(std::move(factory)),
      link_(std::make_shared<HomeLink>(this)) {
    const unsigned threads = std::max(1u, config.threads);
    max_connections_ = std::max<std::size_t>(1, (config.limits.max_connections + threads - 1) / threads);
}

Worker::~Worker() {
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
        if (Connection* c = find(id)) f(*c);
        else if (final) exchange_finished(id);
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
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    std::uint32_t index;
    if (!free_slots_.empty()) {
        index = free_slots_.back();
        free_slots_.pop_back();
    } else {
        index = static_cast<std::uint32_t>(slots_.size());
        slots_.emplace_back();
    }
    Slot& s = slots_[index];
    s.closed = false;
    s.connection = std::make_unique<Connection>(*this, fd, ConnectionId{index, s.generation}, text, port);
    try {
        // The transport goes in before the protocol exists: the factory may look at it (ALPN comes later,
        // after the handshake, through Connection::tls()).
        if (tls_) s.connection->set_transport(tls_->make_transport(s.connection->wire_out()));
        s.connection->set_protocol(factory_(*s.connection, *this));
    } catch (const std::exception& e) {
        spdlog::error("worker {}: could not set up a connection: {}", index_, e.what());
        s.connection.reset();
        free_slots_.push_back(index);
        return nullptr;
    }
    ++live_;
    // Accepted while stopping (from an inherited listener, whose queue we must not drop): shut like the
    // others; HTTP/1.1 still waits briefly for a fresh connection's first request and answers it.
    if (stopping_) s.connection->shutdown();
    return s.connection.get();
}

void Worker::mark_closed(Connection& c) noexcept {
    Slot& s = slots_[c.id().slot];
    if (s.closed) return;
    s.closed = true;
    --live_;
}

void Worker::release(std::uint32_t index) {
    Slot& s = slots_[index];
    // Application code may still hold this connection's request (its response is pending): keep the
    // connection, inert, until that exchange finishes.
    if (s.connection && s.connection->protocol() && s.connection->protocol()->exchange_outstanding())
        kept_for_exchange_.emplace(key(s.connection->id()), std::move(s.connection));
    s.connection.reset();
    s.closed = false;
    ++s.generation;
    free_slots_.push_back(index);
    on_released(index);
}

void Worker::sweep() {
    for (Slot& s : slots_)
        if (s.connection && !s.closed) s.connection->tick(now_);
}

void Worker::begin_shutdown() {
    if (stopping_) return;
    stopping_ = true;
    shutdown_deadline_ = now_ + config_.timeouts.shutdown;
    stop_accepting();
    // A listening socket shut down for reading stops listening: new connections are refused at once
    // instead of waiting in a backlog nobody accepts from. An inherited socket is not ours to shut: the
    // next worker generation accepts what waits in its queue.
    if (config_.inherited_listener < 0) ::shutdown(listen_fd_, SHUT_RD);
    for (Slot& s : slots_)
        if (s.connection && !s.closed) s.connection->shutdown();
}

}  // namespace covet::net
