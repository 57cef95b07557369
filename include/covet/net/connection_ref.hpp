// A handle to a connection that is safe to hold on any thread, even past the server's life: work sent
// through it runs on the connection's worker thread, and only if that connection (and its protocol
// handler) still exists.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "covet/net/connection.hpp"
#include "covet/net/worker_context.hpp"

namespace covet::net {

// Implemented by net::Worker (one per reactor thread); test drivers implement it too.
class ConnectionHome {
public:
    // Runs `fn` with the live connection `id` on the worker thread: inline when already there, posted
    // otherwise. Not run at all if the connection has gone. `final`: this ends the connection's pending
    // exchange, so a closed connection kept for it (see ProtocolHandler::exchange_outstanding) can go.
    virtual void with_connection(ConnectionId id, std::function<void(Connection&)> fn, bool final) = 0;
    // The live connection `id`, or null. Home thread only.
    virtual Connection* find(ConnectionId id) noexcept = 0;
    // A closed connection kept alive for its pending exchange is no longer needed. Home thread only.
    virtual void exchange_finished(ConnectionId id) noexcept = 0;
    // The link every ConnectionRef to this home shares.
    virtual const std::shared_ptr<struct HomeLink>& link() const noexcept = 0;

    // The home whose loop runs on this thread, if any: the installed worker context's (see
    // worker_context.hpp). Assignable so that test drivers without a worker can stand in.
    static ConnectionHome*& current() noexcept { return WorkerContext::current().home; }

protected:
    ~ConnectionHome() = default;
};

// Shared by a worker and every ConnectionRef to it. The worker clears `home` (under the lock) when it
// is destroyed, so a Responder kept past the server's life finds nothing instead of freed memory.
struct HomeLink {
    explicit HomeLink(ConnectionHome* h) : home(h), identity(h) {}
    std::mutex mutex;
    ConnectionHome* home;                  // null once the worker is gone
    const ConnectionHome* const identity;  // compared, never dereferenced
};

class ConnectionRef {
public:
    ConnectionRef() = default;
    ConnectionRef(std::shared_ptr<HomeLink> link, ConnectionId id, std::uint32_t epoch)
        : link_(std::move(link)), id_(id), epoch_(epoch) {}

    // `fn` runs only while the same protocol handler is installed (the epoch matches).
    void run(std::function<void(Connection&)> fn, bool final) const {
        if (!link_) return;
        const std::uint32_t epoch = epoch_;
        std::lock_guard lock(link_->mutex);
        if (!link_->home) return;
        link_->home->with_connection(
            id_,
            [epoch, fn = std::move(fn)](Connection& c) {
                if (c.protocol_epoch() == epoch) fn(c);
            },
            final);
    }
    bool on_home_thread() const noexcept { return link_ && ConnectionHome::current() == link_->identity; }
    // The connection if it is alive with the same protocol handler; home thread only (no allocation).
    Connection* get() const noexcept {
        Connection* c = link_ ? ConnectionHome::current()->find(id_) : nullptr;
        return c && c->protocol_epoch() == epoch_ ? c : nullptr;
    }
    // Home thread only: see ConnectionHome::exchange_finished.
    void finished() const noexcept {
        if (link_) ConnectionHome::current()->exchange_finished(id_);
    }
    explicit operator bool() const noexcept { return link_ != nullptr; }

private:
    std::shared_ptr<HomeLink> link_;
    ConnectionId id_{};
    std::uint32_t epoch_ = 0;
};

}  // namespace covet::net
