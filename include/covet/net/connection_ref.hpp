// A handle to a connection that is safe to hold on any thread: work sent through it runs on the
// connection's worker thread, and only if that connection (and its protocol handler) still exists.
#pragma once

#include <cstdint>
#include <functional>

#include "covet/net/connection.hpp"

namespace covet::net {

// Implemented by each backend's worker.
class ConnectionHome {
public:
    // Runs `fn` with the live connection `id` on the worker thread: inline when already there, posted
    // otherwise. Not run at all if the connection has gone.
    virtual void with_connection(ConnectionId id, std::function<void(Connection&)> fn) = 0;
    virtual bool on_home_thread() const noexcept = 0;
    // The live connection `id`, or null. Home thread only.
    virtual Connection* find(ConnectionId id) noexcept = 0;

protected:
    ~ConnectionHome() = default;
};

class ConnectionRef {
public:
    ConnectionRef() = default;
    ConnectionRef(ConnectionHome& home, ConnectionId id, std::uint32_t epoch) : home_(&home), id_(id), epoch_(epoch) {}

    // `fn` runs only while the same protocol handler is installed (the epoch matches).
    void run(std::function<void(Connection&)> fn) const {
        if (!home_) return;
        const std::uint32_t epoch = epoch_;
        home_->with_connection(id_, [epoch, fn = std::move(fn)](Connection& c) {
            if (c.protocol_epoch() == epoch) fn(c);
        });
    }
    bool on_home_thread() const noexcept { return home_ && home_->on_home_thread(); }
    // The connection if it is alive with the same protocol handler; home thread only (no allocation).
    Connection* get() const noexcept {
        Connection* c = home_ ? home_->find(id_) : nullptr;
        return c && c->protocol_epoch() == epoch_ ? c : nullptr;
    }
    explicit operator bool() const noexcept { return home_ != nullptr; }

private:
    ConnectionHome* home_ = nullptr;
    ConnectionId id_{};
    std::uint32_t epoch_ = 0;
};

}  // namespace covet::net
