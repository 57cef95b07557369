// Deterministic mutation fuzzing of the HTTP/1.1 protocol handler: valid requests are corrupted (bytes
// flipped, inserted, deleted, duplicated, truncated) and fed in random pieces. Under ASan/UBSan this checks
// that no input crashes the parser or leaves the connection in a state that answers garbage: every
// output is a sequence of well-formed HTTP/1.1 responses, and a refusal always closes the connection.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "../support/drain.hpp"
#include "covet/http1/protocol.hpp"
#include "covet/io/loop.hpp"

namespace {

namespace net = covet::net;
namespace io = covet::io;

class Driver final : public net::ConnectionDriver, public net::ConnectionHome, public io::Loop {
public:
    Driver() { net::ConnectionHome::current() = this; }
    ~Driver() { net::ConnectionHome::current() = nullptr; }
    void post(std::function<void()> task) override { task(); }
    bool on_loop_thread() const noexcept override { return true; }
    io::Clock::time_point now() const noexcept override { return clock; }
    void request_send(net::Connection&) override {}
    void set_reading(net::Connection&, bool) override {}
    void close(net::Connection&) override { closed = true; }
    io::Loop& loop() noexcept override { return *this; }
    const net::ServerConfig& config() const noexcept override { return config_; }
    void with_connection(net::ConnectionId id, std::function<void(net::Connection&)> fn, bool) override {
        if (net::Connection* c = find(id)) fn(*c);
    }
    net::Connection* find(net::ConnectionId id) noexcept override {
        return connection && !closed && connection->id() == id ? connection : nullptr;
    }
    void exchange_finished(net::ConnectionId) noexcept override {}
    const std::shared_ptr<net::HomeLink>& link() const noexcept override { return link_; }

    net::Connection* connection = nullptr;
    bool closed = false;
    io::Clock::time_point clock = io::Clock::time_point{} + std::chrono::hours(1);

private:
    net::ServerConfig config_ = [] {
        net::ServerConfig c;
        c.limits.max_header_bytes = 2048;
        c.limits.max_url_bytes = 512;
        c.limits.max_headers = 16;
        c.limits.max_body_bytes = 4096;
        return c;
    }();
    std::shared_ptr<net::HomeLink> link_ = std::make_shared<net::HomeLink>(this);
};

// Answers with the body echoed; every third request completes through the Responder after a stream.
class Echo final : public covet::RequestDispatcher {
public:
    void dispatch(covet::Request& r, covet::ExchangeState*, covet::Responder responder) override {
        methods.push_back(r.method());
        if (++count % 3 == 0) {
            covet::StreamWriter w = responder.stream(covet::Response(200, "", "text/plain"));
            w.write(r.body());
            w.write(r.path());
            w.end();
            return;
        }
        responder.send(covet::Response::bytes(std::string(r.body())));
    }
    int count = 0;
    std::vector<covet::Method> methods;  // in dispatch order, to know which responses have no body
};

const std::vector<std::string> seeds = {
    "GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
    "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "HEAD /h HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz",
};

// Checks that `out` is a sequence of complete HTTP/1.1 responses (interim 100s allowed), the last one
// possibly unterminated only when it is close-delimited.
void expect_well_formed(const std::string& out, const std::string& input, const std::vector<covet::Method>& methods) {
    std::size_t pos = 0, answered = 0;
    while (pos < out.size()) {
        ASSERT_EQ(out.compare(pos, 9, "HTTP/1.1 "), 0)
            << "garbage in output for input: " << testing::PrintToString(input);
        const std::size_t head_end = out.find("\r\n\r\n", pos);
        ASSERT_NE(head_end, std::string::npos) << testing::PrintToString(input);
        const std::string head = out.substr(pos, head_end - pos);
        pos = head_end + 4;
        if (head.rfind("HTTP/1.1 100 ", 0) == 0) continue;  // interim
        // Refusals come after the dispatched requests; each dispatched request gets one response.
        const bool head_request = answered < methods.size() && methods[answered] == covet::Method::head;
        ++answered;
        if (head_request) {
            // HEAD: headers only, whatever the framing headers say.
        } else if (head.find("Transfer-Encoding: chunked") != std::string::npos) {
            while (true) {
                const std::size_t eol = out.find("\r\n", pos);
                ASSERT_NE(eol, std::string::npos) << testing::PrintToString(input);
                const std::size_t n = std::stoul(out.substr(pos, eol - pos), nullptr, 16);
                pos = eol + 2 + n + 2;
                if (n == 0) break;
            }
        } else if (const std::size_t cl = head.find("Content-Length: "); cl != std::string::npos) {
            pos += std::stoul(head.substr(cl + 16));
        } else if (head.find(" 204 ") == std::string::npos && head.find(" 304 ") == std::string::npos) {
            // A close-delimited body (a stream to an HTTP/1.0 client): the rest of the output, then close.
            EXPECT_NE(head.find("Connection: close"), std::string::npos) << testing::PrintToString(input);
            return;
        }
    }
}

TEST(Http1Fuzz, MutatedRequestsNeverCrashAndAlwaysAnswerCleanly) {
    std::mt19937 rng(20261125);
    auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
    const char specials[] = {'\r', '\n', ':', ' ', '\t', '\0', '0', 'f', ';', '-', '\x7f', '\xff'};
    for (int iteration = 0; iteration < 100000; ++iteration) {
        std::string input;
        for (std::size_t k = 1 + pick(3); k-- > 0;) input += seeds[pick(seeds.size())];
        for (std::size_t m = pick(4); m-- > 0 && !input.empty();) {
            const std::size_t at = pick(input.size());
            switch (pick(5)) {
                case 0: input[at] = specials[pick(sizeof specials)]; break;
                case 1: input.insert(at, 1, specials[pick(sizeof specials)]); break;
                case 2: input.erase(at, 1 + pick(4)); break;
                case 3: input.insert(at, input.substr(at, pick(64))); break;
                default: input.resize(at); break;
            }
        }
        Driver driver;
        Echo echo;
        net::Connection conn(driver, -1, net::ConnectionId{1, 1}, "127.0.0.1", 1);
        driver.connection = &conn;
        conn.set_protocol(covet::http1::make_protocol(conn, driver, echo));
        for (std::size_t from = 0; from < input.size() && !driver.closed;) {
            std::string piece = input.substr(from, 1 + pick(input.size() - from));
            from += piece.size();
            conn.receive(std::span<const char>(piece.data(), piece.size()));
            piece.assign(piece.size(), '#');  // nothing may keep pointing into a consumed read
        }
        driver.clock += std::chrono::minutes(2);  // every deadline passes
        conn.tick(driver.clock);

        std::string out = covet_test::drain(conn.wire_out());
        expect_well_formed(out, input, echo.methods);
        if (out.find("HTTP/1.1 4") != std::string::npos || out.find("HTTP/1.1 5") != std::string::npos) {
            EXPECT_TRUE(conn.closing() || driver.closed) << "a refusal must close: " << testing::PrintToString(input);
        }
        driver.connection = nullptr;
        if (HasFailure()) return;
    }
}

}  // namespace
