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
};

}  // namespace covet::net
