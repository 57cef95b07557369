// The per-connection protocol seam: HTTP/1.1 today; HTTP/2, WebSocket and others plug in here, and a
// connection can switch handler mid-stream (Upgrade, h2c).
#pragma once

#include <span>

#include "covet/io/loop.hpp"

namespace covet::net {

class ProtocolHandler {
public:
    virtual ~ProtocolHandler() = default;
    // Plaintext received from the peer. The bytes are only valid during the call: keep what you need.
    virtual void on_data(std::span<const char> bytes) = 0;
    // The peer closed its sending side (EOF). Output already queued is still sent.
    virtual void on_peer_closed() = 0;
    // Everything queued so far has been written to the socket.
    virtual void on_output_drained() {}
    // Periodic sweep (a few times a second): enforce deadlines.
    virtual void on_tick(io::Clock::time_point now) = 0;
    // Graceful shutdown: finish what is in flight, then close.
    virtual void on_shutdown() = 0;
    // True while application code may still use this handler's state (a request whose response is
    // pending). A connection closed meanwhile is kept, inert, until the exchange finishes.
    virtual bool exchange_outstanding() const noexcept { return false; }
    // The connection closed while exchanges were outstanding and is kept, inert; one of them has now
    // finished (its final completion found no live connection). True when none is left, so the connection
    // may go. One exchange at a time (HTTP/1.1) is the default; HTTP/2 counts its streams.
    virtual bool exchange_released() noexcept { return true; }
    // The connection is closed (its socket is gone). A handler kept for an outstanding exchange receives
    // nothing more (completions for it are dropped): what waits on it must hear now (StreamFlow).
    virtual void on_closed() noexcept {}
};

}  // namespace covet::net
