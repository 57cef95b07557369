// Percent-decoding and query-string lookup (RFC 3986; '+' is a space in application/x-www-form-urlencoded).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace covet::http {

namespace detail {
constexpr int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
}  // namespace detail

// Decodes %XX escapes (and '+' when `plus_is_space`). A '%' not followed by two hex digits is kept as is,
// as browsers and most servers do.
inline std::string percent_decode(std::string_view in, bool plus_is_space) {
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '%' && i + 2 < in.size()) {
            const int hi = detail::hex_value(in[i + 1]), lo = detail::hex_value(in[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out.push_back(static_cast<char>(hi * 16 + lo));
                i += 2;
                continue;
            }
        }
        out.push_back(plus_is_space && c == '+' ? ' ' : c);
    }
    return out;
}

inline bool needs_decoding(std::string_view s, bool plus_is_space) noexcept {
    return s.find('%') != std::string_view::npos || (plus_is_space && s.find('+') != std::string_view::npos);
}

// Calls fn(raw_key, raw_value) for each `key=value` pair of a query string, until fn returns false.
template <class Fn>
void for_each_query_pair(std::string_view query, Fn&& fn) {
    while (!query.empty()) {
        const std::size_t amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (pair.empty()) continue;
        const std::size_t eq = pair.find('=');
        const std::string_view key = pair.substr(0, eq);
        const std::string_view value = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
        if (!fn(key, value)) return;
    }
}

// The decoded value of the first `name` parameter, if present.
inline std::optional<std::string> query_value(std::string_view query, std::string_view name) {
    std::optional<std::string> found;
    for_each_query_pair(query, [&](std::string_view key, std::string_view value) {
        const bool match = needs_decoding(key, true) ? percent_decode(key, true) == name : key == name;
        if (match) found = percent_decode(value, true);
        return !match;
    });
    return found;
}

}  // namespace covet::http
