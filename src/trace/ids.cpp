#include <pthread.h>

#include <random>

#include "covet/trace/ids.hpp"

namespace covet::trace {
namespace {

// xoshiro256** (Blackman and Vigna): fast, 256 bits of state, seeded per thread from the OS.
class Xoshiro {
public:
    Xoshiro() noexcept {
        std::random_device rd;  // one read of the OS's entropy per thread
        std::uint64_t seed = (std::uint64_t{rd()} << 32 | rd()) ^ reinterpret_cast<std::uintptr_t>(this);
        for (auto& word : s_) word = splitmix(seed);
    }
    std::uint64_t next() noexcept {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
    static std::uint64_t splitmix(std::uint64_t& x) noexcept {
        std::uint64_t z = (x += 0x9e3779b97f4a7c15);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
        z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
        return z ^ (z >> 31);
    }
    std::uint64_t s_[4];
};

Xoshiro& generator() noexcept {
    thread_local Xoshiro g;
    return g;
}

void put64(std::uint8_t* out, std::uint64_t v) noexcept {
    for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<std::uint8_t>(v);
}

}  // namespace

TraceId new_trace_id() noexcept {
    TraceId id;
    do {
        put64(id.data(), generator().next());
        put64(id.data() + 8, generator().next());
    } while (is_zero(id));
    return id;
}

SpanId new_span_id() noexcept {
    SpanId id;
    do put64(id.data(), generator().next());
    while (is_zero(id));
    return id;
}

}  // namespace covet::trace
