// Per-client limits (covet/net/client_limits.hpp): the address keys, the limiter's counts and rate, and over
// real sockets (once per reactor backend: COVET_BACKEND) connections per address refused at accept, counted
// after a PROXY header, new connections per second, and HTTP/2 streams per address across connections.
#include "covet/net/client_limits.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "covet/covet.hpp"
#include "support/http_client.hpp"
#include "support/local_app.hpp"

using namespace std::chrono_literals;
using covet::net::client_key;
using covet::net::ClientLimiter;
using covet::net::ClientLimits;
using covet::net::ClientVerdict;

namespace {

constexpr std::int64_t second = 1'000'000'000;

// Whether the server ended the connection (EOF or reset) without sending anything.
bool refused(covet_test::Client& c) {
    char buf[256];
    const ssize_t n = covet_test::recv_through_signals(c.fd(), buf, sizeof buf);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

// One request answered 200 (and, when given, with `client` as the client address the handler saw).
bool served(covet_test::Client& c, std::string_view client = "") {
    c.send(covet_test::get("/ok"));
    const std::vector<std::string> r = c.responses(1);
    return r.size() == 1 && covet_test::status_of(r[0]) == "HTTP/1.1 200 OK" &&
           (client.empty() || covet_test::body_of(r[0]) == client);
}

}  // namespace

TEST(ClientKey, Ipv4WholeIpv6PerSlash64) {
    EXPECT_EQ(client_key("10.1.2.3"), client_key("::ffff:10.1.2.3"));
    EXPECT_NE(client_key("10.1.2.3"), client_key("10.1.2.4"));
    EXPECT_EQ(client_key("2001:db8:1:2::1"), client_key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
    EXPECT_NE(client_key("2001:db8:1:2::1"), client_key("2001:db8:1:3::1"));
    EXPECT_NE(client_key("::1"), client_key("0.0.0.0"));
    EXPECT_FALSE(client_key("unknown"));
    EXPECT_FALSE(client_key(""));
    EXPECT_FALSE(client_key("[::1]"));
}

TEST(ClientLimiter, ConnectionsAreCountedAndReleased) {
    ClientLimiter l(ClientLimits{.max_connections_per_ip = 2});
    const auto a = *client_key("192.0.2.1"), b = *client_key("192.0.2.2");
    EXPECT_EQ(l.admit_connection(a, 1), ClientVerdict::admitted);
    EXPECT_EQ(l.admit_connection(a, 1), ClientVerdict::admitted);
    EXPECT_EQ(l.admit_connection(a, 1), ClientVerdict::too_many_connections);
    EXPECT_EQ(l.admit_connection(b, 1), ClientVerdict::admitted);  // another address has its own budget
    EXPECT_EQ(l.connections(a), 2u);
    l.release_connection(a);
    EXPECT_EQ(l.admit_connection(a, 1), ClientVerdict::admitted);
    l.release_connection(a), l.release_connection(a), l.release_connection(a);  // one too many: harmless
    EXPECT_EQ(l.connections(a), 0u);
}

TEST(ClientLimiter, NewConnectionRate) {
    ClientLimiter l(ClientLimits{.new_connections_per_ip = 3, .new_connections_period = 1000ms});
    const auto a = *client_key("198.51.100.1");
    const std::int64_t t = 100 * second;
    for (int i = 0; i < 3; ++i) EXPECT_EQ(l.admit_connection(a, t), ClientVerdict::admitted) << i;
    EXPECT_EQ(l.admit_connection(a, t), ClientVerdict::too_many_new_connections);
    EXPECT_EQ(l.connections(a), 3u);                                                // the refused one is not counted
    EXPECT_EQ(l.admit_connection(a, t + second / 3 + 1), ClientVerdict::admitted);  // one emission later
}

TEST(ClientLimiter, StreamsAcrossConnections) {
    ClientLimiter l(ClientLimits{.max_streams_per_ip = 3});
    const auto a = *client_key("2001:db8::5");
    ASSERT_EQ(l.admit_connection(a, 1), ClientVerdict::admitted);
    ASSERT_EQ(l.admit_connection(*client_key("2001:db8::6"), 1), ClientVerdict::admitted);  // same /64
    EXPECT_EQ(l.connections(a), 2u);
    EXPECT_TRUE(l.admit_stream(a));
    EXPECT_TRUE(l.admit_stream(a));
    EXPECT_TRUE(l.admit_stream(a));
    EXPECT_FALSE(l.admit_stream(a));
    l.release_stream(a);
    EXPECT_TRUE(l.admit_stream(a));
    EXPECT_EQ(l.streams(a), 3u);
}

TEST(ClientLimiter, LogsAtMostOncePerInterval) {
    ClientLimiter l(ClientLimits{.max_connections_per_ip = 1});
    const auto a = *client_key("192.0.2.9");
    EXPECT_TRUE(l.should_log(a, 10 * second));
    EXPECT_FALSE(l.should_log(a, 10 * second + second / 2));
    EXPECT_TRUE(l.should_log(a, 11 * second));
}

TEST(ClientLimiter, ThreadsRacingKeepTheCountExact) {
    ClientLimiter l(ClientLimits{.max_connections_per_ip = 50});
    const auto a = *client_key("203.0.113.1");
    std::vector<std::thread> threads;
    std::atomic<int> admitted{0};
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 1000; ++i)
                if (l.admit_connection(a, 1) == ClientVerdict::admitted) {
                    ++admitted;
                    l.release_connection(a);
                }
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(admitted.load(), 4000);
    EXPECT_EQ(l.connections(a), 0u);
}

// ---- over real sockets ----

class ClientLimitsServer : public ::testing::Test {
protected:
    void SetUp() override {
        covet_test::configure_local_app(app_);
        app_.config().ops.endpoints = true;
        app_.get("/ok", [](covet::Request& r) { return covet::Response::text(std::string(r.client_address())); });
        app_.get("/hold", [this](covet::Request&, covet::Responder responder) {
            std::lock_guard lock(mutex_);
            held_.push_back(std::move(responder));
        });
    }
    void TearDown() override {
        release_held();
        app_.stop();
        app_.wait();
    }
    std::size_t held() {
        std::lock_guard lock(mutex_);
        return held_.size();
    }
    void release_held() {
        std::vector<covet::Responder> held;
        {
            std::lock_guard lock(mutex_);
            held.swap(held_);
        }
        for (covet::Responder& r : held) r.send(covet::Response::text("done"));
    }
    bool wait_held(std::size_t n) {
        for (int i = 0; i < 500 && held() < n; ++i) std::this_thread::sleep_for(10ms);
        return held() >= n;
    }
    std::string metrics(covet_test::Client& c) {
        c.send(covet_test::get("/_metrics"));
        const std::vector<std::string> r = c.responses(1);
        return r.empty() ? "" : r[0];
    }

    covet::App app_;
    std::mutex mutex_;
    std::vector<covet::Responder> held_;
};

TEST_F(ClientLimitsServer, ConnectionsPerAddressAreRefusedAtAcceptAndFreedOnClose) {
    app_.config().client_limits.max_connections_per_ip = 3;
    app_.start(2);  // two workers: the count is the process's
    std::vector<std::unique_ptr<covet_test::Client>> clients;
    for (int i = 0; i < 3; ++i) {
        clients.push_back(std::make_unique<covet_test::Client>(app_.port()));
        ASSERT_TRUE(served(*clients.back())) << i;
    }
    {
        covet_test::Client over(app_.port());
        ASSERT_TRUE(over.connected());  // the kernel accepts; the server closes it before reading
        over.send(covet_test::get("/ok"));
        EXPECT_TRUE(refused(over));
    }
    for (auto& c : clients) EXPECT_TRUE(served(*c));  // the others are still served
    EXPECT_NE(metrics(*clients[0]).find("covet_connections_refused_total{reason=\"per_ip\"} 1"), std::string::npos);

    clients.pop_back();  // one closes: a new connection is admitted once the server has seen it go
    bool admitted = false;
    for (int i = 0; i < 200 && !admitted; ++i) {
        covet_test::Client again(app_.port());
        again.send(covet_test::get("/ok"));
        const std::vector<std::string> r = again.responses(1);
        admitted = r.size() == 1 && covet_test::status_of(r[0]) == "HTTP/1.1 200 OK";
        if (!admitted) std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(admitted);
}

TEST_F(ClientLimitsServer, ProxyProtocolCountsTheProxiedClient) {
    app_.config().client_limits.max_connections_per_ip = 1;
    app_.config().proxy_protocol.enabled = true;
    app_.config().proxy_protocol.trusted = covet::net::TrustedProxies("127.0.0.1");
    app_.start(1);
    const auto connect = [&](const char* client) {
        auto c = std::make_unique<covet_test::Client>(app_.port());
        c->send(std::string("PROXY TCP4 ") + client + " 127.0.0.1 1000 80\r\n");
        return c;
    };
    // The balancer's one address carries two clients: each has its own budget.
    auto a = connect("203.0.113.7");
    auto b = connect("203.0.113.8");
    EXPECT_TRUE(served(*a, "203.0.113.7"));
    EXPECT_TRUE(served(*b, "203.0.113.8"));
    auto a2 = connect("203.0.113.7");  // a second one of the same client: over its limit
    a2->send(covet_test::get("/ok"));
    EXPECT_TRUE(refused(*a2));
    EXPECT_TRUE(served(*a));
}

TEST_F(ClientLimitsServer, NewConnectionsPerSecond) {
    app_.config().client_limits.new_connections_per_ip = 3;
    app_.config().client_limits.new_connections_period = 60s;
    app_.start(1);
    for (int i = 0; i < 3; ++i) {
        covet_test::Client c(app_.port());
        EXPECT_TRUE(served(c)) << i;
    }
    covet_test::Client over(app_.port());
    over.send(covet_test::get("/ok"));
    EXPECT_TRUE(refused(over));
}

// ---- HTTP/2 (h2c by prior knowledge), a minimal client: frames written by hand ----

namespace {

std::string frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream, std::string_view payload) {
    std::string f;
    f += static_cast<char>(payload.size() >> 16), f += static_cast<char>(payload.size() >> 8),
        f += static_cast<char>(payload.size());
    f += static_cast<char>(type), f += static_cast<char>(flags);
    for (int shift = 24; shift >= 0; shift -= 8) f += static_cast<char>(stream >> shift);
    return f + std::string(payload);
}

// GET /hold over http, :authority t (HPACK: three indexed fields, one literal without indexing).
std::string get_hold(std::uint32_t stream) {
    static const std::string block("\x82\x86\x04\x05/hold\x01\x01t", 12);
    return frame(0x1, 0x5, stream, block);  // HEADERS, END_STREAM | END_HEADERS
}

struct Frame {
    std::uint8_t type = 0;
    std::uint32_t stream = 0;
    std::string payload;
};

// Reads frames until `want` matches one (true) or the connection ends or times out (false).
template <class Want>
bool read_until(covet_test::Client& c, Want want) {
    std::string buf;
    char chunk[16384];
    while (true) {
        while (buf.size() >= 9) {
            const std::size_t len = (std::size_t{static_cast<unsigned char>(buf[0])} << 16) |
                                    (std::size_t{static_cast<unsigned char>(buf[1])} << 8) |
                                    static_cast<unsigned char>(buf[2]);
            if (buf.size() < 9 + len) break;
            Frame f;
            f.type = static_cast<std::uint8_t>(buf[3]);
            for (int i = 5; i < 9; ++i) f.stream = (f.stream << 8) | static_cast<unsigned char>(buf[i]);
            f.stream &= 0x7fffffff;
            f.payload = buf.substr(9, len);
            buf.erase(0, 9 + len);
            if (want(f)) return true;
        }
        const ssize_t n = covet_test::recv_through_signals(c.fd(), chunk, sizeof chunk);
        if (n <= 0) return false;
        buf.append(chunk, static_cast<std::size_t>(n));
    }
}

std::unique_ptr<covet_test::Client> h2_client(std::uint16_t port) {
    auto c = std::make_unique<covet_test::Client>(port);
    c->send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    c->send(frame(0x4, 0, 0, ""));  // SETTINGS
    return c;
}

}  // namespace

TEST_F(ClientLimitsServer, Http2StreamsPerAddressAcrossConnections) {
    app_.config().client_limits.max_streams_per_ip = 4;
    app_.start(2);
    auto one = h2_client(app_.port());
    for (std::uint32_t id : {1u, 3u, 5u}) one->send(get_hold(id));
    ASSERT_TRUE(wait_held(3));
    auto two = h2_client(app_.port());
    two->send(get_hold(1));  // the 4th stream of this address: admitted
    ASSERT_TRUE(wait_held(4));
    two->send(get_hold(3));  // the 5th: refused, on whichever connection
    EXPECT_TRUE(read_until(*two, [](const Frame& f) {
        return f.type == 0x3 && f.stream == 3 && f.payload == std::string("\0\0\0\x07", 4);  // REFUSED_STREAM
    }));
    EXPECT_EQ(held(), 4u);
    // The held streams end: the address's budget is free again.
    release_held();
    ASSERT_TRUE(read_until(*two, [](const Frame& f) { return f.type == 0x0 && f.stream == 1; }));  // DATA "done"
    ASSERT_TRUE(read_until(*one, [](const Frame& f) { return f.type == 0x0 && f.stream == 5; }));
    two->send(get_hold(5));
    EXPECT_TRUE(wait_held(1));
}
