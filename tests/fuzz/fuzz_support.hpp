// What the libFuzzer targets of tests/fuzz share: reading a fuzz input as a few small decisions plus the
// bytes that follow, a hard failure that libFuzzer records as a crash, and a connection on the fake driver of
// the protocol handler tests (tests/support/fake_driver.hpp) that takes its input in the pieces the fuzzer
// chose, as reads from a socket would deliver it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <span>
#include <string>
#include <string_view>

#include "../support/drain.hpp"
#include "../support/fake_driver.hpp"
#include "covet/net/connection.hpp"

namespace covet_fuzz {

// A property the target checks was broken: report it and abort, which libFuzzer saves as a crash input.
[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "fuzz property broken: %s\n", what);
    std::abort();
}
inline void check(bool ok, const char* what) {
    if (!ok) fail(what);
}

// The input, consumed from the front: fixed-size choices first, then the payload.
class Input {
public:
    Input(const std::uint8_t* data, std::size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}
    std::uint8_t byte() {
        if (rest_.empty()) return 0;
        const auto b = static_cast<std::uint8_t>(rest_.front());
        rest_.remove_prefix(1);
        return b;
    }
    std::uint16_t u16() { return static_cast<std::uint16_t>(byte() << 8 | byte()); }
    std::string_view take(std::size_t n) {
        const std::string_view s = rest_.substr(0, n);
        rest_.remove_prefix(s.size());
        return s;
    }
    std::string_view rest() const noexcept { return rest_; }
    bool empty() const noexcept { return rest_.empty(); }

private:
    std::string_view rest_;
};

// Piece sizes from a seed: reads of 1..max bytes, the same for the same seed (xorshift).
class Splitter {
public:
    explicit Splitter(std::uint8_t seed) : state_(seed * 2654435761u + 1), whole_(seed == 0) {}
    std::size_t next(std::size_t left) {
        if (whole_) return left;
        state_ ^= state_ << 13, state_ ^= state_ >> 17, state_ ^= state_ << 5;
        const std::size_t max = (state_ & 3) == 0 ? 1 : 64;  // a quarter of the reads byte by byte
        return std::min(left, 1 + static_cast<std::size_t>(state_ >> 8) % max);
    }

private:
    std::uint32_t state_;
    bool whole_;
};

// A connection on a FakeDriver: receive() in pieces from buffers scribbled over once consumed (so that a view
// into a consumed read shows up under ASan as wrong bytes, not silently), then every deadline passed.
struct ConnectionHarness {
    explicit ConnectionHarness(covet::net::ServerConfig config)
        : driver(std::move(config)), conn(driver, -1, covet::net::ConnectionId{1, 1}, "127.0.0.1", 40000) {
        driver.connection = &conn;
    }
    ~ConnectionHarness() { driver.connection = nullptr; }
    ConnectionHarness(const ConnectionHarness&) = delete;
    ConnectionHarness& operator=(const ConnectionHarness&) = delete;

    void feed(std::string_view bytes, Splitter& split) {
        for (std::size_t from = 0; from < bytes.size() && !driver.closed;) {
            const std::size_t n = split.next(bytes.size() - from);
            std::string& buf = reads_.emplace_back(bytes.substr(from, n));
            from += n;
            conn.receive(std::span<const char>(buf.data(), buf.size()));
            buf.assign(buf.size(), '#');
            driver.run_posted();
            out += covet_test::drain(conn.wire_out());
            if (!driver.closed) conn.output_drained();
        }
    }
    // Time passes (every timeout fires), then the output is taken.
    void finish() {
        for (int i = 0; i < 3 && !driver.closed; ++i) {
            driver.clock += std::chrono::seconds(40);
            conn.tick(driver.clock);
            driver.run_posted();
        }
        out += covet_test::drain(conn.wire_out());
    }

    covet_test::FakeDriver driver;
    covet::net::Connection conn;
    std::string out;  // everything the server wrote

private:
    std::deque<std::string> reads_;
};

}  // namespace covet_fuzz
