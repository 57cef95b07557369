// Trace and span ids (W3C Trace Context: 16 and 8 bytes, all zeros invalid), their lowercase hex form, and a
// per-thread generator: xoshiro256** seeded once per thread from std::random_device, so a new id costs a few
// arithmetic instructions, no syscall and no lock.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace covet::trace {

using TraceId = std::array<std::uint8_t, 16>;
using SpanId = std::array<std::uint8_t, 8>;

template <std::size_t N>
constexpr bool is_zero(const std::array<std::uint8_t, N>& id) noexcept {
    for (std::uint8_t b : id)
        if (b) return false;
    return true;
}

// Lowercase hex into out[0 .. 2N); returns the view of it.
template <std::size_t N>
std::string_view to_hex(const std::array<std::uint8_t, N>& id, char* out) noexcept {
    constexpr char digits[] = "0123456789abcdef";
    for (std::size_t i = 0; i < N; ++i) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 0xf];
    }
    return {out, 2 * N};
}

// The low 64 bits of a trace id (its last 8 bytes, big-endian): what ratio sampling compares.
inline std::uint64_t low64(const TraceId& id) noexcept {
    std::uint64_t v;
    std::memcpy(&v, id.data() + 8, sizeof v);
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
    return v;
}

// New random ids on the calling thread (never all zeros).
TraceId new_trace_id() noexcept;
SpanId new_span_id() noexcept;

// A seed for an id stream of one's own (wyrand_next): 64 bits from the thread's generator, never zero.
std::uint64_t new_id_seed() noexcept;

// The next 64 random bits of a wyrand stream (Wang Yi: one add and one 64x64->128 multiply): inline, for a
// state kept where the caller already is (an exchange slot's SpanState), so a new id costs no call and no
// thread_local access.
inline std::uint64_t wyrand_next(std::uint64_t& state) noexcept {
    state += 0xa0761d6478bd642f;
    __extension__ typedef unsigned __int128 u128;  // GCC and Clang; __extension__: no -Wpedantic warning
    const u128 t = static_cast<u128>(state) * (state ^ 0xe7037ed1a0b428db);
    return static_cast<std::uint64_t>(t >> 64) ^ static_cast<std::uint64_t>(t);
}

// A 64-bit id's 8 bytes, big-endian (the byte order of the ids' hex form).
inline void put_id64(std::uint8_t* out, std::uint64_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
    std::memcpy(out, &v, sizeof v);
}

}  // namespace covet::trace
