// Datagram services on a worker's loop (HTTP/3 over QUIC): what a worker offers a service that owns its own UDP
// socket, and what the worker asks of it. A service's connections live in the worker's connection table (so
// ConnectionRef, Responders and the sweep work for them as for TCP) but have no socket of their own: their
// driver is the service, which sends their packets on its socket.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "covet/io/loop.hpp"
#include "covet/net/connection.hpp"
#include "covet/net/connection_ref.hpp"

namespace covet::net {

// Implemented by net::Worker. Loop thread only.
class DatagramHost {
public:
    // Runs `on_readable` on the loop's thread whenever `fd` is readable (level-triggered: the callback reads until
    // EAGAIN or leaves the rest for the next call). Until unwatch(fd).
    virtual void watch_readable(int fd, std::function<void()> on_readable) = 0;
    virtual void unwatch(int fd) = 0;
    // A connection with no socket of its own, driven by `driver`, in the worker's table: null when the worker
    // is at its connection limit or stopping. `make` builds its protocol handler.
    virtual Connection* adopt_datagram(ConnectionDriver& driver, std::string_view peer_address, std::uint16_t peer_port,
                                       const std::function<std::unique_ptr<ProtocolHandler>(Connection&)>& make) = 0;
    // Ends such a connection: find() no longer returns it; it is freed after the current callback (or kept
    // while the application holds one of its exchanges).
    virtual void close_datagram(Connection& c) = 0;
    // A connection queued output outside a loop turn (a Responder on another thread, an embedded loop between
    // polls): the loop must flush soon.
    virtual void datagram_output() = 0;
    virtual ConnectionHome& home() noexcept = 0;
    virtual io::Loop& host_loop() noexcept = 0;
    virtual unsigned worker_index() const noexcept = 0;

protected:
    ~DatagramHost() = default;
};

// A service on one worker (one per worker thread), made when its loop starts and destroyed with the worker.
class DatagramService {
public:
    virtual ~DatagramService() = default;
    // Once per loop turn, before the backend submits its I/O: send what the connections queued.
    virtual void flush() = 0;
    // Graceful shutdown began: refuse new connections, let the open ones finish (their table entries hold
    // the worker's run() until they close).
    virtual void shutdown() = 0;
};

using DatagramFactory = std::function<std::unique_ptr<DatagramService>(DatagramHost&)>;

}  // namespace covet::net
