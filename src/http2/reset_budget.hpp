// The client's RST_STREAM budget (private to src/http2): rapid reset, CVE-2023-44487.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "covet/io/loop.hpp"

namespace covet::http2::detail {

// Token bucket: `per_second` tokens at most, refilled at that rate by the loop's clock (so tests can
// drive it). Each RST_STREAM from the client takes one; none left → the connection is ended.
class ResetBudget {
public:
    explicit ResetBudget(std::uint32_t per_second) : rate_(std::max<std::uint32_t>(per_second, 1)), tokens_(rate_) {}

    bool take(io::Clock::time_point now) noexcept {
        if (last_ != io::Clock::time_point{})
            tokens_ = std::min(rate_, tokens_ + rate_ * std::chrono::duration<double>(now - last_).count());
        last_ = now;
        if (tokens_ < 1) return false;
        tokens_ -= 1;
        return true;
    }

private:
    double rate_;
    double tokens_;
    io::Clock::time_point last_{};
};

}  // namespace covet::http2::detail
