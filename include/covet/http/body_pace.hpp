// The pace of one request body against Timeouts::body_deadline and min_body_rate, shared by the HTTP/1.1
// connection and each HTTP/2 stream. The protocol counts bytes as they arrive; the periodic sweep checks.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "covet/io/loop.hpp"
#include "covet/net/server_config.hpp"

namespace covet::http {

class BodyPace {
public:
    // The body starts (its head has ended).
    void start(io::Clock::time_point now) noexcept {
        started_ = rate_from_ = now;
        bytes_ = 0;
    }
    void add(std::uint64_t bytes) noexcept { bytes_ += bytes; }
    void reset() noexcept { *this = BodyPace{}; }

    // Empty while within the limits, else the reason, naming the limit and how to change it. `reading` is
    // false while the server itself has stopped reading (its client is slow to take our output): the
    // client's sending is not to blame then, so the rate's window starts again.
    std::string violation(const net::Timeouts& t, io::Clock::time_point now, bool reading) {
        using std::chrono::duration_cast;
        using std::chrono::milliseconds;
        if (t.body_deadline.count() > 0 && now - started_ >= t.body_deadline)
            return "the request body took longer than the body deadline of " + std::to_string(t.body_deadline.count()) +
                   " ms; to accept slower uploads, raise it or turn it off (0) with body_deadline_ms / --body-deadline";
        const std::size_t rate = t.min_body_rate;
        if (rate == 0) return {};
        if (!reading) {
            rate_from_ = now;
            bytes_ = 0;
            return {};
        }
        const auto elapsed = duration_cast<milliseconds>(now - rate_from_);
        if (elapsed < t.min_body_rate_grace || elapsed.count() <= 0) return {};
        if (static_cast<double>(bytes_) * 1000.0 >= static_cast<double>(rate) * static_cast<double>(elapsed.count()))
            return {};
        return "the request body arrived slower than the minimum data rate of " + std::to_string(rate) + " bytes/s (" +
               std::to_string(bytes_) + " bytes in " + std::to_string(elapsed.count()) +
               " ms); to accept slower uploads, lower it or turn it off (0) with min_body_rate / --min-body-rate";
    }

private:
    io::Clock::time_point started_{};    // end of the head (body_deadline counts from here)
    io::Clock::time_point rate_from_{};  // start of the window the data rate is averaged over
    std::uint64_t bytes_ = 0;            // body bytes as sent (chunk framing included) since rate_from_
};

}  // namespace covet::http
