// Writing JSON text into a std::string: strings escaped per RFC 8259 (quote, backslash and control characters;
// valid UTF-8 passes through unchanged, as FastAPI's JSONResponse writes it, and each byte that is not part of
// a valid sequence becomes U+FFFD, as Starlette's errors="replace" decoding does), numbers in their shortest
// round-trip form (std::to_chars), and non-finite doubles as null (JSON has no NaN or Infinity).
#pragma once

#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>

namespace covet::json {

// The length of the valid UTF-8 sequence (2 to 4 bytes) that starts at s[i], or 0: no overlong forms, no
// surrogates, nothing past U+10FFFF.
constexpr std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const auto follows = [&](std::size_t n) {
        for (std::size_t k = 1; k < n; ++k) {
            if (i + k >= s.size() || (byte(k) & 0xC0) != 0x80) return false;
        }
        return true;
    };
    const auto lead = byte(0);
    if (lead >= 0xC2 && lead <= 0xDF) return follows(2) ? 2 : 0;
    if (lead >= 0xE0 && lead <= 0xEF) {
        if (!follows(3) || (lead == 0xE0 && byte(1) < 0xA0) || (lead == 0xED && byte(1) >= 0xA0)) return 0;
        return 3;
    }
    if (lead >= 0xF0 && lead <= 0xF4) {
        if (!follows(4) || (lead == 0xF0 && byte(1) < 0x90) || (lead == 0xF4 && byte(1) >= 0x90)) return 0;
        return 4;
    }
    return 0;
}

inline void write_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out.push_back('"');
    std::size_t plain = 0;  // start of the run not yet copied: runs without escapes are appended at once
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {
            if (const auto n = utf8_sequence(s, i)) {
                i += n - 1;
                continue;
            }
            out.append(s.data() + plain, i - plain);
            plain = i + 1;
            out += "\\ufffd";
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        out.append(s.data() + plain, i - plain);
        plain = i + 1;
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                out += "\\u00";
                out.push_back(hex[c >> 4]);
                out.push_back(hex[c & 0xf]);
        }
    }
    out.append(s.data() + plain, s.size() - plain);
    out.push_back('"');
}

template <std::integral Int>
    requires(!std::same_as<Int, bool>)
void write_number(std::string& out, Int value) {
    char buf[24];
    const auto end = std::to_chars(buf, buf + sizeof buf, value).ptr;
    out.append(buf, end);
}

inline void write_number(std::string& out, double value) {
    if (!std::isfinite(value)) {
        out += "null";
        return;
    }
    char buf[32];
    auto* const end = std::to_chars(buf, buf + sizeof buf, value).ptr;
    out.append(buf, end);
    // A whole number keeps a fraction, as Python's json writes 3.0: a reader typing it sees a float.
    if (std::string_view(buf, static_cast<std::size_t>(end - buf)).find_first_of(".eEn") == std::string_view::npos) {
        out += ".0";
    }
}

inline void write_bool(std::string& out, bool value) { out += value ? "true" : "false"; }

}  // namespace covet::json
