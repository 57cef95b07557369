// HTTP request methods, shared by every protocol (HTTP/1.1 today, HTTP/2 later) and the router.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace covet {

enum class Method : std::uint8_t { get, head, post, put, del, patch, options, connect, trace };

inline constexpr std::size_t method_count = 9;

inline constexpr std::array<std::string_view, method_count> method_names = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"};

constexpr std::string_view to_string(Method m) noexcept { return method_names[static_cast<std::size_t>(m)]; }

// Exact, case-sensitive match (RFC 9110: method names are case-sensitive).
constexpr std::optional<Method> parse_method(std::string_view s) noexcept {
    for (std::size_t i = 0; i < method_count; ++i)
        if (method_names[i] == s) return static_cast<Method>(i);
    return std::nullopt;
}

}  // namespace covet
