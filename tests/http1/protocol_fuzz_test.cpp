// Deterministic mutation fuzzing of HTTP/1.1: valid requests are corrupted (bytes flipped, inserted, deleted,
// duplicated, truncated) and fed in random pieces. Under ASan/UBSan this checks that no input crashes
//  - the request reader alone (fast, many inputs): it keeps its contract whatever the split, and reads
//    the same requests from the input in random pieces as from it whole;
//  - the session over it: it never answers garbage: every output is a sequence of well-formed HTTP/1.1
//    responses, and a refusal always closes the connection.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "../support/drain.hpp"
#include "covet/http1/protocol.hpp"
#include "covet/http1/request_reader.hpp"
#include "covet/io/loop.hpp"

namespace {

namespace net = covet::net;
namespace io = covet::io;

class Driver final : public net::ConnectionDriver, public net::ConnectionHome, public io::Loop {
public:
    Driver() { net::ConnectionHome::current() = this; }
    ~Driver() { net::ConnectionHome::current() = nullptr; }
    void post(std::function<void()> task) override { task(); }
    io::TimerId post_at(io::Clock::time_point /*when*/, std::function<void()> /*task*/) override {  // no time passes
        return {};
    }
    void cancel(io::TimerId /*id*/) override {}
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

// Mutates a few seeds glued together.
std::string mutated_input(std::mt19937& rng) {
    auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
    const char specials[] = {'\r', '\n', ':', ' ', '\t', '\0', '0', 'f', ';', '-', '\x7f', '\xff'};
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
    return input;
}

// ================================================================ the request reader alone

covet::http1::ReaderLimits fuzz_limits() {
    covet::http1::ReaderLimits l;
    l.max_header_bytes = 2048;
    l.max_url_bytes = 512;
    l.max_headers = 16;
    l.max_body_bytes = 4096;
    return l;
}

// Feeds `input` to a reader in pieces of the sizes `next_piece` returns, keeping the unconsumed bytes and
// scribbling every buffer it reuses (after keep()). Returns the requests read, one line each, then
// "error <status>" if one was refused.
template <class NextPiece>
std::vector<std::string> read_requests(const std::string& input, NextPiece next_piece) {
    using covet::http1::RequestReader;
    RequestReader reader(fuzz_limits());
    std::vector<std::string> got;
    std::string buf;
    std::vector<std::string> old;  // scribbled, kept allocated
    bool in_request = false;       // a head was reported, its completion not yet
    auto reuse = [&] {
        reader.keep(buf);
        std::string fresh = buf;
        buf.assign(buf.size(), '#');
        buf.swap(fresh);
        old.push_back(std::move(fresh));
    };
    for (std::size_t from = 0; from < input.size();) {
        const std::size_t n = std::min(next_piece(input.size() - from), input.size() - from);
        reuse();
        buf.append(input, from, n);
        from += n;
        while (true) {
            const RequestReader::Result r = reader.feed(buf);
            EXPECT_LE(r.used, buf.size());
            EXPECT_TRUE(r.body.empty());  // nothing streams here
            if (r.event == RequestReader::Event::error) {
                got.push_back("error " + std::to_string(reader.error().status));
                EXPECT_EQ(reader.feed(buf).event, RequestReader::Event::error) << "an error is final";
                return got;
            }
            if (r.event == RequestReader::Event::head) {
                EXPECT_FALSE(in_request) << "a second head before the first request completed";
                in_request = true;
            }
            if (r.event == RequestReader::Event::complete) {
                in_request = false;
                const covet::Request& q = reader.request();
                std::string line(q.method_name());
                line.append(" ").append(q.target()).append(" ").append(q.body());
                for (const covet::Header& h : q.headers()) line.append(" ").append(h.name).append(":").append(h.value);
                EXPECT_EQ(line.find('#'), std::string::npos) << "the request views consumed input";
                got.push_back(std::move(line));
            }
            reuse();
            buf.erase(0, r.used);
            if (r.event == RequestReader::Event::more) break;
        }
    }
    return got;
}

TEST(Http1Fuzz, ReaderReadsTheSameRequestsWhateverTheSplit) {
    std::mt19937 rng(20261126);
    auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
    for (int iteration = 0; iteration < 100000; ++iteration) {
        const std::string input = mutated_input(rng);
        const std::vector<std::string> whole = read_requests(input, [](std::size_t left) { return left; });
        const std::vector<std::string> pieces = read_requests(input, [&](std::size_t left) { return 1 + pick(left); });
        // Requests read are the same; a refusal may name another status when the split shows an incomplete
        // head over a limit before the whole input would have shown another error.
        const auto requests = [](const std::vector<std::string>& v) {
            std::vector<std::string> r = v;
            if (!r.empty() && r.back().rfind("error ", 0) == 0) r.pop_back();
            return r;
        };
        EXPECT_EQ(requests(whole), requests(pieces)) << testing::PrintToString(input);
        if (HasFailure()) return;
    }
}

// ================================================================ the session

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
    for (int iteration = 0; iteration < 100000; ++iteration) {
        const std::string input = mutated_input(rng);
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
