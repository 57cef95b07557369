#include "covet/trace/trace_context.hpp"

#include <array>

#include "covet/http/ascii.hpp"

namespace covet::trace {
namespace {

constexpr int lower_hex(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;  // uppercase hex is invalid too
}

template <std::size_t N>
bool read_hex(std::string_view s, std::array<std::uint8_t, N>& out) noexcept {
    for (std::size_t i = 0; i < N; ++i) {
        const int hi = lower_hex(s[2 * i]), lo = lower_hex(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    return true;
}

constexpr bool lcalpha(char c) noexcept { return c >= 'a' && c <= 'z'; }
constexpr bool digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool key_char(char c) noexcept {
    return lcalpha(c) || digit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}
// nblk-chr: printable ASCII but ',' and '='.
constexpr bool value_char(char c) noexcept { return c >= 0x21 && c <= 0x7e && c != ',' && c != '='; }

// simple-key = lcalpha 0*255(key char); multi-tenant: tenant-id "@" system-id, tenant-id = (lcalpha / DIGIT)
// 0*240(key char), system-id = lcalpha 0*13(key char).
bool valid_key(std::string_view key) noexcept {
    const auto at = key.find('@');
    const auto chars_ok = [](std::string_view s) {
        for (char c : s.substr(1))
            if (!key_char(c)) return false;
        return true;
    };
    if (at == std::string_view::npos) return !key.empty() && key.size() <= 256 && lcalpha(key[0]) && chars_ok(key);
    const std::string_view tenant = key.substr(0, at), system = key.substr(at + 1);
    return !tenant.empty() && tenant.size() <= 241 && (lcalpha(tenant[0]) || digit(tenant[0])) && chars_ok(tenant) &&
           !system.empty() && system.size() <= 14 && lcalpha(system[0]) && chars_ok(system);
}

// value = 0*255(chr) nblk-chr, chr = %x20 / nblk-chr: 1 to 256 characters, no trailing space.
bool valid_value(std::string_view v) noexcept {
    if (v.empty() || v.size() > 256 || v.back() == ' ') return false;
    for (char c : v)
        if (c != ' ' && !value_char(c)) return false;
    return true;
}

}  // namespace

std::optional<TraceParent> parse_traceparent(std::string_view h) noexcept {
    if (h.size() < traceparent_length) return std::nullopt;
    const int v_hi = lower_hex(h[0]), v_lo = lower_hex(h[1]);
    if (v_hi < 0 || v_lo < 0 || h[2] != '-') return std::nullopt;
    const int version = v_hi << 4 | v_lo;
    if (version == 0xff) return std::nullopt;
    // Version 00 is exactly 55 characters; a later version may carry more fields, after a '-'.
    if (version == 0 ? h.size() != traceparent_length : h.size() > traceparent_length && h[55] != '-')
        return std::nullopt;
    if (h[35] != '-' || h[52] != '-') return std::nullopt;
    TraceParent p;
    std::array<std::uint8_t, 1> flags{};
    if (!read_hex(h.substr(3, 32), p.trace_id) || !read_hex(h.substr(36, 16), p.parent_id) ||
        !read_hex(h.substr(53, 2), flags))
        return std::nullopt;
    if (is_zero(p.trace_id) || is_zero(p.parent_id)) return std::nullopt;
    p.flags = flags[0];
    return p;
}

bool valid_tracestate(std::string_view h) noexcept {
    if (h.size() > max_tracestate_bytes) return false;
    std::array<std::string_view, max_tracestate_members> keys{};
    std::size_t members = 0;
    while (true) {
        const auto comma = h.find(',');
        const std::string_view member = trim_ows(h.substr(0, comma));
        if (!member.empty()) {  // empty list members are allowed and skipped
            const auto eq = member.find('=');
            if (eq == std::string_view::npos) return false;
            const std::string_view key = member.substr(0, eq), value = member.substr(eq + 1);
            if (!valid_key(key) || !valid_value(value) || members == max_tracestate_members) return false;
            for (std::size_t i = 0; i < members; ++i)
                if (keys[i] == key) return false;
            keys[members++] = key;
        }
        if (comma == std::string_view::npos) break;
        h.remove_prefix(comma + 1);
    }
    return members > 0;
}

std::string_view format_traceparent(const TraceId& trace_id, const SpanId& span_id, std::uint8_t flags,
                                    char (&out)[traceparent_length]) noexcept {
    constexpr char digits[] = "0123456789abcdef";
    out[0] = '0';
    out[1] = '0';
    out[2] = '-';
    to_hex(trace_id, out + 3);
    out[35] = '-';
    to_hex(span_id, out + 36);
    out[52] = '-';
    out[53] = digits[flags >> 4];
    out[54] = digits[flags & 0xf];
    return {out, traceparent_length};
}

}  // namespace covet::trace
