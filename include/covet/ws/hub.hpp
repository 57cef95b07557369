// A per-worker publish/subscribe hub: a message published to a topic is framed once and the same bytes
// are queued to every subscriber on the worker. Subscribers that compress without context takeover get
// it compressed once per distinct configuration; those with context takeover compress it with their own
// stream (their window differs). Closed connections are dropped from the topics as the hub meets them.
//
// One Hub per worker loop: it touches connections only on that loop's thread. Calls from other threads
// are posted to the loop (publish from anywhere; a cross-worker broadcast publishes to every worker's hub).
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "covet/io/loop.hpp"
#include "covet/ws/deflate.hpp"
#include "covet/ws/websocket.hpp"

namespace covet::ws {

// One message, framed once for many connections.
class PreparedMessage {
public:
    PreparedMessage(std::string_view payload, bool binary);
    std::string_view frame() const noexcept { return frame_; }  // uncompressed, header included
    std::string_view payload() const noexcept { return std::string_view(frame_).substr(header_size_); }
    bool binary() const noexcept { return binary_; }
    // The compressed frame for connections that reset their compressor every message with these
    // settings (deterministic output, so computed once per configuration). Null if zlib failed.
    const std::string* compressed_frame(const DeflateParams& params, const DeflateOptions& options);

private:
    struct Compressed {
        int window_bits, level, mem_level;
        std::string frame;
    };
    std::string frame_;
    std::size_t header_size_;
    bool binary_;
    std::vector<Compressed> compressed_;
};

class Hub {
public:
    explicit Hub(io::Loop& loop);
    Hub(const Hub&) = delete;
    Hub& operator=(const Hub&) = delete;
    ~Hub();

    // The hub of the calling thread's worker (net::WorkerContext::hub), created on first use from `ws`'s
    // connection (connection thread only); it lives as long as the worker. Null only if no hub exists
    // yet and `ws`'s connection is already gone.
    static Hub* this_worker(const WebSocket& ws);

    // Any thread (posted unless on the loop's thread). Subscribing twice to a topic is one subscription.
    void subscribe(const WebSocket& ws, std::string_view topic);
    void unsubscribe(const WebSocket& ws, std::string_view topic);
    void unsubscribe_all(const WebSocket& ws);
    // Queues `data` to every open subscriber of `topic`. On the loop's thread it returns how many
    // connections it was queued to (a subscriber whose send buffer is full misses it, see WebSocket);
    // elsewhere it posts the work and returns 0.
    std::size_t publish(std::string_view topic, std::string_view data, bool binary = false);
    // Open subscribers of `topic` (loop thread only; prunes closed ones).
    std::size_t subscribers(std::string_view topic);

private:
    struct State;
    void run(std::function<void(State&)> fn);
    std::shared_ptr<State> state_;  // posted work holds a weak_ptr: a task outliving the hub does nothing
};

}  // namespace covet::ws
