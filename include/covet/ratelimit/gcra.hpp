// GCRA (the generic cell rate algorithm, a token bucket kept as one number): a key's whole state is its
// theoretical arrival time (TAT), in integer nanoseconds on a clock shared by every process of the machine
// (CLOCK_MONOTONIC). A policy of `limit` requests per `period` spaces requests `emission` = period / limit
// apart and lets `burst` of them arrive at once: a request at `now` is allowed when
//     max(tat, now) + emission - burst * emission <= now
// and then moves the TAT to max(tat, now) + emission. A TAT at or before `now` means a full bucket, so a key
// whose TAT has passed carries no information and may be forgotten (the shared table evicts those first).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace covet::ratelimit {

struct GcraPolicy {
    std::int64_t emission_ns = 0;   // period / limit
    std::int64_t tolerance_ns = 0;  // burst * emission: how far ahead of `now` the TAT may run
    std::uint32_t limit = 0;
    std::uint32_t burst = 0;
    std::int64_t period_ns = 0;

    // `burst` 0 means `limit` (a client may spend a whole period's quota at once, then one every emission).
    // Returns a policy with limit 0 for a limit or period of 0, which callers refuse (see valid()).
    static constexpr GcraPolicy make(std::uint32_t limit, std::chrono::nanoseconds period,
                                     std::uint32_t burst = 0) noexcept {
        GcraPolicy p;
        if (limit == 0 || period.count() <= 0) return p;
        p.limit = limit;
        p.burst = burst == 0 ? limit : burst;
        p.period_ns = period.count();
        p.emission_ns = std::max<std::int64_t>(1, period.count() / limit);
        p.tolerance_ns = p.emission_ns * static_cast<std::int64_t>(p.burst);
        return p;
    }
    constexpr bool valid() const noexcept { return limit != 0; }
};

struct GcraDecision {
    bool allowed = false;
    std::int64_t tat = 0;             // the key's TAT after this request (unchanged when refused)
    std::int64_t retry_after_ns = 0;  // refused: how long until one request would pass
    std::int64_t reset_ns = 0;        // until the bucket is full again (the RateLimit field's t)
    std::uint32_t remaining = 0;      // requests that would still pass right now
};

// The decision for one request of `cost` units on a key whose TAT is `tat` (0: never seen).
constexpr GcraDecision gcra(const GcraPolicy& p, std::int64_t tat, std::int64_t now, std::uint32_t cost = 1) noexcept {
    GcraDecision d;
    const std::int64_t base = std::max(tat, now);
    const std::int64_t new_tat = base + p.emission_ns * static_cast<std::int64_t>(cost);
    const std::int64_t allow_at = new_tat - p.tolerance_ns;
    if (allow_at > now) {
        d.allowed = false;
        d.tat = tat;
        d.retry_after_ns = allow_at - now;
        d.reset_ns = base - now;
        d.remaining = 0;
        return d;
    }
    d.allowed = true;
    d.tat = new_tat;
    d.reset_ns = new_tat - now;
    const std::int64_t room = (now - allow_at) / p.emission_ns;
    d.remaining = static_cast<std::uint32_t>(std::min<std::int64_t>(room, p.burst));
    return d;
}

// The decision for a request that gcra() allowed and that moved the key's TAT to `new_tat`: its remaining and reset
// figures, computed only where they are sent (the RateLimit fields).
constexpr GcraDecision gcra_allowed(const GcraPolicy& p, std::int64_t new_tat, std::int64_t now) noexcept {
    GcraDecision d;
    d.allowed = true;
    d.tat = new_tat;
    d.reset_ns = new_tat - now;
    const std::int64_t room = (now - (new_tat - p.tolerance_ns)) / p.emission_ns;
    d.remaining = static_cast<std::uint32_t>(std::min<std::int64_t>(room, p.burst));
    return d;
}

}  // namespace covet::ratelimit
