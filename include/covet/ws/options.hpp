// Per-route WebSocket settings.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "covet/ws/deflate.hpp"

namespace covet::ws {

struct Options {
    std::size_t max_message_bytes = std::size_t{1024} * 1024;  // a larger message (after decompression) → close 1009
    // No bytes from the client for this long → close 1001. 0: never.
    std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
    // After this long without bytes from the client, a ping asks for a pong (repeated at this pace). 0: never.
    std::chrono::milliseconds ping_interval = std::chrono::seconds(20);
    // After our close frame, how long the client has to answer with its own before the socket closes.
    std::chrono::milliseconds close_timeout = std::chrono::seconds(5);
    // Unsent bytes above which send() refuses messages (returns false) until Handlers::on_drain; reading
    // from the client also pauses above it (a client that floods pings but never reads its pongs).
    std::size_t max_send_buffer = std::size_t{4} * 1024 * 1024;
    bool permessage_deflate = true;  // accept the extension when a client offers it
    DeflateOptions deflate;
    // Subprotocols the route speaks, preferred first; the first one the client also lists is selected.
    // Empty: none is selected (Sec-WebSocket-Protocol is not answered).
    std::vector<std::string> subprotocols;
    // The application decides the handshake: Handlers::on_open runs before the 101 is sent, and the
    // connection waits for WebSocket::accept() or deny() (for at most Timeouts::header; then 503 and close).
    // False: the 101 goes out at once and on_open runs after it.
    bool defer_accept = false;
};

}  // namespace covet::ws
