// Test doubles for the WebSocket tests: a fake worker that drives several connections (the Hub fans out
// across them), a client-side frame encoder (masked, any header form) and a decoder for server frames.
#pragma once

#include <gtest/gtest.h>
#include <sys/uio.h>
#include <zlib.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../support/drain.hpp"
#include "covet/io/timer_queue.hpp"
#include "covet/net/connection.hpp"
#include "covet/net/connection_ref.hpp"
#include "covet/ws/frame.hpp"
#include "covet/ws/protocol.hpp"
#include "covet/ws/websocket.hpp"

namespace ws_test {

namespace net = covet::net;
namespace io = covet::io;
namespace ws = covet::ws;
using ws::Opcode;
using namespace std::chrono_literals;

// One fake reactor worker: driver, home and loop for any number of connections.
class FakeWorker final : public net::ConnectionDriver, public net::ConnectionHome, public io::Loop {
public:
    FakeWorker() { net::ConnectionHome::current() = this; }
    ~FakeWorker() {
        if (net::ConnectionHome::current() == this) net::ConnectionHome::current() = nullptr;
    }
    // io::Loop
    void post(std::function<void()> task) override { posted.push_back(std::move(task)); }
    io::TimerId post_at(io::Clock::time_point when, std::function<void()> task) override {
        return timers.add(when, std::move(task));
    }
    void cancel(io::TimerId id) override { timers.cancel(id); }
    bool on_loop_thread() const noexcept override { return home_thread; }
    io::Clock::time_point now() const noexcept override { return clock; }
    // net::ConnectionDriver
    void request_send(net::Connection&) override { ++send_requests; }
    void set_reading(net::Connection&, bool enabled) override { reading.push_back(enabled); }
    void close(net::Connection& c) override { closed.push_back(c.id().slot); }
    io::Loop& loop() noexcept override { return *this; }
    const net::ServerConfig& config() const noexcept override { return config_; }
    // net::ConnectionHome
    void with_connection(net::ConnectionId id, std::function<void(net::Connection&)> fn, bool) override {
        post([this, id, fn = std::move(fn)] {
            if (net::Connection* c = find(id)) fn(*c);
        });
    }
    net::Connection* find(net::ConnectionId id) noexcept override {
        for (net::Connection* c : connections)
            if (c->id() == id && !is_closed(id.slot)) return c;
        return nullptr;
    }
    void exchange_finished(net::ConnectionId) noexcept override {}
    const std::shared_ptr<net::HomeLink>& link() const noexcept override { return link_; }

    bool is_closed(std::uint32_t slot) const {
        for (std::uint32_t s : closed)
            if (s == slot) return true;
        return false;
    }
    // Pretend to be another thread (WebSocket calls are then posted).
    void set_home_thread(bool on) {
        home_thread = on;
        net::ConnectionHome::current() = on ? this : nullptr;
    }
    int run_posted() {
        const bool was = home_thread;
        set_home_thread(true);
        int n = 0;
        while (!posted.empty()) {
            auto task = std::move(posted.front());
            posted.pop_front();
            task();
            ++n;
        }
        set_home_thread(was);
        return n;
    }

    std::vector<net::Connection*> connections;
    std::vector<std::uint32_t> closed;  // slots closed (now or after flush)
    std::vector<bool> reading;
    std::deque<std::function<void()>> posted;
    io::TimerQueue timers;  // post_at's tasks: a test runs them (timers.run_due(clock))
    io::Clock::time_point clock = io::Clock::time_point{} + 1h;
    bool home_thread = true;
    int send_requests = 0;

private:
    net::ServerConfig config_;
    std::shared_ptr<net::HomeLink> link_ = std::make_shared<net::HomeLink>(this);
};

// A client frame: masked unless told otherwise; `len_form` forces the 7/16/64-bit length encoding.
inline std::string client_frame(Opcode op, std::string_view payload, bool fin = true, bool rsv1 = false,
                                bool masked = true, int len_form = 0, std::uint8_t extra_bits = 0) {
    std::string f;
    f.push_back(static_cast<char>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | extra_bits | static_cast<int>(op)));
    const std::uint64_t n = payload.size();
    const int form = len_form ? len_form : n < 126 ? 7 : n <= 0xFFFF ? 16 : 64;
    const char mbit = masked ? static_cast<char>(0x80) : 0;
    if (form == 7) {
        f.push_back(static_cast<char>(mbit | static_cast<char>(n)));
    } else if (form == 16) {
        f.push_back(static_cast<char>(mbit | 126));
        f.push_back(static_cast<char>(n >> 8));
        f.push_back(static_cast<char>(n));
    } else {
        f.push_back(static_cast<char>(mbit | 127));
        for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>(n >> (8 * i)));
    }
    const std::uint8_t mask[4] = {0x37, 0xFA, 0x21, 0x3D};
    if (masked) f.append(reinterpret_cast<const char*>(mask), 4);
    for (std::size_t i = 0; i < payload.size(); ++i)
        f.push_back(masked ? static_cast<char>(payload[i] ^ static_cast<char>(mask[i % 4])) : payload[i]);
    return f;
}

inline std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
    std::string p;
    p.push_back(static_cast<char>(code >> 8));
    p.push_back(static_cast<char>(code));
    p.append(reason);
    return p;
}

struct ServerFrame {
    Opcode opcode;
    bool fin, rsv1;
    std::string payload;
    std::uint16_t close_code() const {
        return payload.size() >= 2 ? static_cast<std::uint16_t>((static_cast<unsigned char>(payload[0]) << 8) |
                                                                static_cast<unsigned char>(payload[1]))
                                   : 0;
    }
};

// Decodes server frames (which must be unmasked and complete).
inline std::vector<ServerFrame> parse_server_frames(std::string_view s) {
    std::vector<ServerFrame> out;
    std::size_t p = 0;
    while (p < s.size()) {
        EXPECT_GE(s.size() - p, 2u);
        const auto b0 = static_cast<unsigned char>(s[p]), b1 = static_cast<unsigned char>(s[p + 1]);
        EXPECT_EQ(b1 & 0x80, 0) << "server frames are never masked";
        std::uint64_t n = b1 & 0x7F;
        p += 2;
        if (n == 126) {
            n = (std::uint64_t{static_cast<unsigned char>(s[p])} << 8) | static_cast<unsigned char>(s[p + 1]);
            p += 2;
        } else if (n == 127) {
            n = 0;
            for (int i = 0; i < 8; ++i) n = (n << 8) | static_cast<unsigned char>(s[p + static_cast<std::size_t>(i)]);
            p += 8;
        }
        if (p + n > s.size()) {
            ADD_FAILURE() << "truncated server frame";
            break;
        }
        out.push_back(
            {static_cast<Opcode>(b0 & 0x0F), (b0 & 0x80) != 0, (b0 & 0x40) != 0, std::string(s.substr(p, n))});
        p += n;
    }
    return out;
}

// A raw-deflate "client" on zlib directly (RFC 7692 §7.2.1): sync flush, tail removed.
class ZClient {
public:
    explicit ZClient(bool reset_each = false) : reset_each_(reset_each) {
        deflateInit2(&d_, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
        inflateInit2(&i_, -15);
    }
    ~ZClient() {
        deflateEnd(&d_);
        inflateEnd(&i_);
    }
    ZClient(const ZClient&) = delete;
    ZClient& operator=(const ZClient&) = delete;

    std::string compress(std::string_view in) {
        std::string out(in.size() + 1024, '\0');
        d_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
        d_.avail_in = static_cast<uInt>(in.size());
        d_.next_out = reinterpret_cast<Bytef*>(out.data());
        d_.avail_out = static_cast<uInt>(out.size());
        EXPECT_EQ(deflate(&d_, Z_SYNC_FLUSH), Z_OK);
        EXPECT_EQ(d_.avail_in, 0u);
        out.resize(out.size() - d_.avail_out);
        EXPECT_EQ(out.substr(out.size() - 4), std::string("\0\0\xff\xff", 4));
        out.resize(out.size() - 4);
        if (reset_each_) deflateReset(&d_);
        return out;
    }
    std::string decompress(std::string in) {
        in.append("\0\0\xff\xff", 4);
        std::string out(1 << 20, '\0');
        i_.next_in = reinterpret_cast<Bytef*>(in.data());
        i_.avail_in = static_cast<uInt>(in.size());
        i_.next_out = reinterpret_cast<Bytef*>(out.data());
        i_.avail_out = static_cast<uInt>(out.size());
        const int rc = inflate(&i_, Z_SYNC_FLUSH);
        EXPECT_TRUE(rc == Z_OK || rc == Z_BUF_ERROR) << rc;
        out.resize(out.size() - i_.avail_out);
        if (reset_each_) inflateReset(&i_);
        return out;
    }

private:
    bool reset_each_;
    z_stream d_{}, i_{};
};

// One WebSocket connection on a FakeWorker, with handlers that record what they saw.
struct Client {
    struct Message {
        std::string data;
        bool binary;
    };

    Client(FakeWorker& w, ws::Options options = {}, ws::DeflateParams deflate = {}, std::uint32_t slot = 1)
        : worker(w), conn(w, -1, net::ConnectionId{slot, 1}, "127.0.0.1", 40000) {
        w.connections.push_back(&conn);
        auto h = std::make_shared<ws::Handlers>();
        h->on_open = [this](ws::WebSocket s) { socket = s, ++opens; };
        h->on_message = [this](ws::WebSocket s, std::string_view d, bool binary) {
            messages.push_back({std::string(d), binary});
            if (on_message) on_message(s, d, binary);
        };
        h->on_close = [this](ws::WebSocket, std::uint16_t code, std::string_view reason) {
            closes.emplace_back(code, std::string(reason));
        };
        h->on_drain = [this](ws::WebSocket) { ++drains; };
        handlers = h;
        ws::Accepted a;
        a.deflate = deflate;
        conn.switch_protocol(ws::make_protocol(conn, w, handlers, std::move(options), a, "/chat"));
        feed("");  // the first on_data opens it (as after a real switch)
    }
    ~Client() { std::erase(worker.connections, &conn); }

    void feed(std::string_view bytes) {
        std::string copy(bytes);  // private buffer, scribbled over afterwards like a recv buffer
        conn.receive(std::span<const char>(copy.data(), copy.size()));
        copy.assign(copy.size(), '#');
    }
    std::string take() { return covet_test::drain(conn.wire_out()); }
    std::vector<ServerFrame> frames() { return parse_server_frames(take()); }
    void tick_after(io::Clock::duration d) {
        worker.clock += d;
        conn.tick(worker.clock);
    }
    bool closing() const { return conn.closing() || worker.is_closed(conn.id().slot); }

    FakeWorker& worker;
    net::Connection conn;
    std::shared_ptr<const ws::Handlers> handlers;
    std::function<void(ws::WebSocket, std::string_view, bool)> on_message;
    ws::WebSocket socket;
    int opens = 0, drains = 0;
    std::vector<Message> messages;
    std::vector<std::pair<std::uint16_t, std::string>> closes;
};

}  // namespace ws_test
