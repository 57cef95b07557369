// Test doubles shared by the protocol handler tests (HTTP/1.1, HTTP/2): no sockets.
//
// A FakeDriver stands in for a reactor worker: it is the connection's driver, its home (ConnectionRef
// resolution) and its loop (posted tasks, a controllable clock). A FakeDispatcher records what handlers
// saw and answers (echo), defers (keeps the Responders) or runs a test's handler.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "covet/http/exchange.hpp"
#include "covet/io/timer_queue.hpp"
#include "covet/net/connection.hpp"
#include "covet/net/connection_ref.hpp"

namespace covet_test {

namespace net = covet::net;
namespace io = covet::io;
using covet::Request;
using covet::Responder;
using covet::Response;
using namespace std::chrono_literals;

class FakeDriver final : public net::ConnectionDriver, public net::ConnectionHome, public io::Loop {
public:
    explicit FakeDriver(net::ServerConfig config) : config_(std::move(config)) { set_home_thread(true); }

    // ---- io::Loop ----
    void post(std::function<void()> task) override { posted.push_back(std::move(task)); }
    io::TimerId post_at(io::Clock::time_point when, std::function<void()> task) override {
        return timers.add(when, std::move(task));
    }
    void cancel(io::TimerId id) override { timers.cancel(id); }
    bool on_loop_thread() const noexcept override { return home_thread; }
    io::Clock::time_point now() const noexcept override { return clock; }

    // ---- net::ConnectionDriver ----
    void request_send(net::Connection&) override { ++send_requests; }
    void set_reading(net::Connection&, bool enabled) override { reading.push_back(enabled); }
    void close(net::Connection&) override {
        ++close_calls;
        closed = true;  // like a worker: the slot is gone, find() no longer resolves it
    }
    io::Loop& loop() noexcept override { return *this; }
    const net::ServerConfig& config() const noexcept override { return config_; }

    // ---- net::ConnectionHome ----
    void with_connection(net::ConnectionId id, std::function<void(net::Connection&)> fn, bool final) override {
        if (home_thread) {
            if (net::Connection* c = find(id))
                fn(*c);
            else if (final)
                ++exchanges_finished;
            return;
        }
        post([this, id, final, fn = std::move(fn)] {
            if (net::Connection* c = find(id))
                fn(*c);
            else if (final)
                ++exchanges_finished;
        });
    }
    net::Connection* find(net::ConnectionId id) noexcept override {
        return connection && !closed && connection->id() == id ? connection : nullptr;
    }
    void exchange_finished(net::ConnectionId) noexcept override { ++exchanges_finished; }
    const std::shared_ptr<net::HomeLink>& link() const noexcept override { return link_; }

    // Whether the test is "on" the connection's thread (Responders complete inline) or another one.
    void set_home_thread(bool on) {
        home_thread = on;
        net::ConnectionHome::current() = on ? this : nullptr;
    }

    // Runs posted tasks on the "home thread" until none are left; returns how many ran.
    int run_posted() {
        const bool was = home_thread;
        set_home_thread(true);
        int n = 0;
        while (!posted.empty()) {
            std::function<void()> task = std::move(posted.front());
            posted.pop_front();
            task();
            ++n;
        }
        set_home_thread(was);
        return n;
    }

    net::Connection* connection = nullptr;
    bool home_thread = true;
    bool closed = false;
    io::Clock::time_point clock = io::Clock::time_point{} + 1h;
    int send_requests = 0;
    int close_calls = 0;
    int exchanges_finished = 0;
    std::vector<bool> reading;
    std::deque<std::function<void()>> posted;
    io::TimerQueue timers;  // post_at's tasks: a test runs them (timers.run_due(clock))

private:
    net::ServerConfig config_;
    std::shared_ptr<net::HomeLink> link_ = std::make_shared<net::HomeLink>(this);
};

// An owning copy of what a handler saw.
struct Seen {
    std::string method, target, path, query, body, protocol;
    std::vector<std::pair<std::string, std::string>> headers;
    bool keep_alive = false;

    std::string header(std::string_view name) const {
        for (const auto& [n, v] : headers)
            if (covet::iequals(n, name)) return v;
        return "<none>";
    }
    friend bool operator==(const Seen&, const Seen&) = default;
};

inline Seen snapshot(const Request& r) {
    Seen s{std::string(r.method_name()),
           std::string(r.target()),
           std::string(r.path()),
           std::string(r.query_string()),
           std::string(r.body()),
           std::string(r.protocol()),
           {},
           r.keep_alive()};
    for (const covet::Header& h : r.headers()) s.headers.emplace_back(h.name, h.value);
    return s;
}

inline std::ostream& operator<<(std::ostream& os, const Seen& s) {
    os << s.method << ' ' << s.target << ' ' << s.protocol << " body=[" << s.body << "] headers={";
    for (const auto& [n, v] : s.headers) os << '[' << n << "]=[" << v << "] ";
    return os << '}';
}

// "GET /x" or "POST /x body": what the default handler answers, so responses identify their request.
inline std::string echo_text(const Request& r) {
    std::string s = std::string(r.method_name()) + " " + std::string(r.target());
    if (!r.body().empty()) s += " " + std::string(r.body());
    return s;
}

class FakeDispatcher final : public covet::RequestDispatcher {
public:
    std::unique_ptr<covet::ExchangeState> make_exchange_state() override {
        ++states_made;
        return std::make_unique<covet::ExchangeState>();
    }
    void dispatch(Request& request, covet::ExchangeState* state, Responder responder) override {
        seen.push_back(snapshot(request));
        dispatch_states.push_back(state);
        if (defer) {
            held.push_back(std::move(responder));
            held_request = &request;
            return;
        }
        if (handler)
            handler(request, responder);
        else
            responder.send(Response::text(echo_text(request)));
    }
    void finalize(const Request& request, covet::ExchangeState* state, Response& response) noexcept override {
        ++finalized;
        finalize_states.push_back(state);
        if (on_finalize) on_finalize(request, response);
    }

    std::string_view filter_body(covet::ExchangeState* /*state*/, std::string_view chunk, bool last) noexcept override {
        if (last)
            ++bodies_ended;
        else
            filtered_bytes += chunk.size();
        return chunk;
    }
    void exchange_over(covet::ExchangeState* state) noexcept override { over_states.push_back(state); }

    bool defer = false;                                          // keep the Responder in `held`
    std::function<void(Request&, Responder&)> handler;           // synchronous handler (default: echo)
    std::function<void(const Request&, Response&)> on_finalize;  // middleware after-hook
    std::vector<Seen> seen;
    std::vector<Responder> held;
    Request* held_request = nullptr;
    int finalized = 0;
    int states_made = 0;                                 // make_exchange_state calls
    std::vector<covet::ExchangeState*> dispatch_states;  // the state each dispatch got
    std::vector<covet::ExchangeState*> finalize_states;  // and each finalize
    int bodies_ended = 0;                                // filter_body calls with `last`
    std::size_t filtered_bytes = 0;                      // body bytes through filter_body
    std::vector<covet::ExchangeState*> over_states;      // exchange_over calls
};

}  // namespace covet_test
