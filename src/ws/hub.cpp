// Per-worker WebSocket broadcast: frame once, queue the same bytes to every subscriber.
#include "covet/ws/hub.hpp"

#include <algorithm>
#include <optional>

#include "covet/net/worker_context.hpp"
#include "covet/ws/frame.hpp"

namespace covet::ws {
namespace {

// Compressors for no-context-takeover output, one per configuration, reused across messages on this
// thread (they reset after every message, so sharing them is invisible to the clients).
Deflater* shared_deflater(const DeflateParams& params, const DeflateOptions& options) {
    struct Entry {
        int window_bits, level, mem_level;
        Deflater deflater;
    };
    thread_local std::vector<Entry> cache;
    for (Entry& e : cache)
        if (e.window_bits == params.server_max_window_bits && e.level == options.level &&
            e.mem_level == options.mem_level)
            return &e.deflater;
    if (cache.size() >= 8) cache.erase(cache.begin());
    DeflateParams p = params;
    p.server_no_context_takeover = true;
    cache.push_back(Entry{params.server_max_window_bits, options.level, options.mem_level, Deflater(p, options)});
    return &cache.back().deflater;
}

}  // namespace

PreparedMessage::PreparedMessage(std::string_view payload, bool binary) : binary_(binary) {
    frame_.reserve(payload.size() + 10);
    append_frame_header(frame_, binary ? Opcode::binary : Opcode::text, payload.size());
    header_size_ = frame_.size();
    frame_.append(payload);
}

const std::string* PreparedMessage::compressed_frame(const DeflateParams& params, const DeflateOptions& options) {
    for (const Compressed& c : compressed_)
        if (c.window_bits == params.server_max_window_bits && c.level == options.level &&
            c.mem_level == options.mem_level)
            return &c.frame;
    Deflater* d = shared_deflater(params, options);
    std::string body;
    if (!d->compress(payload(), body)) return nullptr;
    Compressed c{params.server_max_window_bits, options.level, options.mem_level, {}};
    c.frame.reserve(body.size() + 10);
    append_frame_header(c.frame, binary_ ? Opcode::binary : Opcode::text, body.size(), true, true);
    c.frame.append(body);
    compressed_.push_back(std::move(c));
    return &compressed_.back().frame;
}

struct Hub::State {
    explicit State(io::Loop& l) : loop(l) {}
    io::Loop& loop;
    std::map<std::string, std::vector<WebSocket>, std::less<>> topics;

    void subscribe(const WebSocket& ws, std::string_view topic) {
        auto it = topics.find(topic);
        if (it == topics.end()) it = topics.emplace(std::string(topic), std::vector<WebSocket>{}).first;
        if (std::find(it->second.begin(), it->second.end(), ws) == it->second.end()) it->second.push_back(ws);
    }
    void unsubscribe(const WebSocket& ws, std::string_view topic) {
        auto it = topics.find(topic);
        if (it == topics.end()) return;
        std::erase(it->second, ws);
        if (it->second.empty()) topics.erase(it);
    }
    std::size_t publish(std::string_view topic, std::string_view data, bool binary) {
        auto it = topics.find(topic);
        if (it == topics.end()) return 0;
        std::optional<PreparedMessage> message;  // built only when someone is still there
        std::size_t sent = 0;
        std::erase_if(it->second, [&](const WebSocket& ws) {
            detail::Session* s = ws.session_if_live();
            if (!s) return true;  // closed: unsubscribed on the way
            if (!message) message.emplace(data, binary);
            if (s->send_prepared(*message)) ++sent;
            return false;
        });
        if (it->second.empty()) topics.erase(it);
        return sent;
    }
    std::size_t count(std::string_view topic) {
        auto it = topics.find(topic);
        if (it == topics.end()) return 0;
        std::erase_if(it->second, [](const WebSocket& ws) { return ws.session_if_live() == nullptr; });
        const std::size_t n = it->second.size();
        if (n == 0) topics.erase(it);
        return n;
    }
};

Hub::Hub(io::Loop& loop) : state_(std::make_shared<State>(loop)) {}
Hub::~Hub() = default;

Hub* Hub::this_worker(const WebSocket& ws) {
    // Owned by the worker's context, so it ends with the worker. Keyed by the loop too: on a thread's
    // stand-in context (no worker installed: tests) a new loop gets a fresh hub rather than one that
    // posts to an old, destroyed loop.
    net::WorkerContext& context = net::WorkerContext::current();
    net::Connection* c = ws.ref().on_home_thread() ? ws.ref().get() : nullptr;
    if (c && (!context.hub || context.hub_loop != &c->loop())) {
        context.hub = std::make_unique<Hub>(c->loop());
        context.hub_loop = &c->loop();
    }
    return context.hub.get();
}

void Hub::run(std::function<void(State&)> fn) {
    if (state_->loop.on_loop_thread()) return fn(*state_);
    state_->loop.post([weak = std::weak_ptr<State>(state_), fn = std::move(fn)] {
        if (auto s = weak.lock()) fn(*s);
    });
}

void Hub::subscribe(const WebSocket& ws, std::string_view topic) {
    if (!ws) return;
    run([ws, t = std::string(topic)](State& s) { s.subscribe(ws, t); });
}

void Hub::unsubscribe(const WebSocket& ws, std::string_view topic) {
    run([ws, t = std::string(topic)](State& s) { s.unsubscribe(ws, t); });
}

void Hub::unsubscribe_all(const WebSocket& ws) {
    run([ws](State& s) {
        for (auto it = s.topics.begin(); it != s.topics.end();) {
            std::erase(it->second, ws);
            it = it->second.empty() ? s.topics.erase(it) : std::next(it);
        }
    });
}

std::size_t Hub::publish(std::string_view topic, std::string_view data, bool binary) {
    if (state_->loop.on_loop_thread()) return state_->publish(topic, data, binary);
    run([t = std::string(topic), d = std::string(data), binary](State& s) { s.publish(t, d, binary); });
    return 0;
}

std::size_t Hub::subscribers(std::string_view topic) { return state_->count(topic); }

}  // namespace covet::ws
