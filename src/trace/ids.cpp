#include "covet/trace/ids.hpp"

#include <bit>
#include <chrono>
#include <cstring>
#include <random>

namespace covet::trace {
namespace {

// wyrand (Wang Yi): one add and one 64x64->128 multiply per 64 bits, passes BigCrush and PractRand; ids need
// uniqueness and unpredictability across processes, not cryptographic strength. Seeded per thread from the
// OS on first use; the state is trivially constructible, so reaching it costs no thread_local guard per id.
struct Generator {
    std::uint64_t state;
    bool seeded;
};
thread_local Generator generator;

[[gnu::noinline]] void seed(Generator& g) noexcept {
    std::uint64_t x = reinterpret_cast<std::uintptr_t>(&g) ^
                      static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    try {
        std::random_device rd;  // one read of the OS's entropy per thread
        x ^= std::uint64_t{rd()} << 32 | rd();
    } catch (...) {  // no entropy source: the address and the clock still differ per thread and run
    }
    g.state = x;
    g.seeded = true;
}

// NOLINTNEXTLINE(modernize-use-using): __extension__ (no -Wpedantic warning for __int128) takes a typedef
__extension__ typedef unsigned __int128 u128;  // GCC and Clang

inline std::uint64_t next() noexcept {
    Generator& g = generator;
    if (!g.seeded) [[unlikely]]
        seed(g);
    g.state += 0xa0761d6478bd642f;
    const u128 t = static_cast<u128>(g.state) * (g.state ^ 0xe7037ed1a0b428db);
    return static_cast<std::uint64_t>(t >> 64) ^ static_cast<std::uint64_t>(t);
}

void put64(std::uint8_t* out, std::uint64_t v) noexcept { put_id64(out, v); }

}  // namespace

TraceId new_trace_id() noexcept {
    std::uint64_t hi, lo;
    do {
        hi = next();
        lo = next();
    } while ((hi | lo) == 0);
    TraceId id;
    put64(id.data(), hi);
    put64(id.data() + 8, lo);
    return id;
}

std::uint64_t new_id_seed() noexcept {
    std::uint64_t v;
    do v = next();
    while (v == 0);
    return v;
}

SpanId new_span_id() noexcept {
    std::uint64_t v;
    do v = next();
    while (v == 0);
    SpanId id;
    put64(id.data(), v);
    return id;
}

}  // namespace covet::trace
