// The RFC 7239 `Forwarded` header, read without allocating: elements (one per proxy hop, comma-separated,
// across all of the request's Forwarded fields in order), each a `;`-separated list of `name=value` pairs
// whose value is a token or a quoted-string. Applied by apply_proxy_headers (proxy_headers.hpp), which
// decides whom to believe; this file only says what the bytes mean.
//
//   Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"
//
// A malformed element (a pair without `=`, an unterminated quote, a repeated parameter, stray bytes) is
// marked so, never guessed at; an element's `for=` that is not an IP address (`unknown`, an obfuscated
// `_hidden` identifier, a host name, an unbracketed IPv6 address, an escaped quoted-string) names no address.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

#include "covet/http/ascii.hpp"
#include "covet/net/trusted_proxies.hpp"

namespace covet::http::forwarded {

struct Element {
    std::string_view for_node, proto, host;  // views into the header's bytes (quotes removed)
    bool has_for = false, has_proto = false, has_host = false;
    bool for_escaped = false, proto_escaped = false;  // a quoted-string with a backslash: used as no value
    bool malformed = false;
};

struct Node {
    std::string_view address;  // IPv4 dotted or IPv6 (without brackets): parse_ip accepts it
    std::uint16_t port = 0;    // 0: none, or obfuscated (`_abc`)
};

namespace detail {

constexpr bool is_tchar(char c) noexcept {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    for (const char t : std::string_view("!#$%&'*+-.^_`|~"))
        if (c == t) return true;
    return false;
}

constexpr void skip_ows(std::string_view s, std::size_t& i) noexcept {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
}

// Past the next comma outside a quoted-string (or the end): where the next element starts.
constexpr void skip_element(std::string_view s, std::size_t& i) noexcept {
    bool quoted = false;
    for (; i < s.size(); ++i) {
        if (quoted && s[i] == '\\') {
            ++i;
        } else if (s[i] == '"') {
            quoted = !quoted;
        } else if (!quoted && s[i] == ',') {
            ++i;
            return;
        }
    }
}

inline std::optional<std::uint16_t> decimal_port(std::string_view s) noexcept {
    if (s.empty() || s.size() > 5) return std::nullopt;
    unsigned v = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(v);
}

// node-port (RFC 7239 §6): a decimal port or an obfuscated one ("_" then letters, digits, . _ -).
inline std::optional<std::uint16_t> node_port(std::string_view s) noexcept {
    if (s.starts_with('_')) {
        for (const char c : s.substr(1))
            if (!is_tchar(c)) return std::nullopt;
        return std::uint16_t{0};
    }
    return decimal_port(s);
}

}  // namespace detail

// Reads the element that starts at `s[i]` and moves `i` past it (and its comma).
inline Element parse_element(std::string_view s, std::size_t& i) noexcept {
    Element e;
    const auto fail = [&]() noexcept {
        e.malformed = true;
        detail::skip_element(s, i);
        return e;
    };
    detail::skip_ows(s, i);
    while (true) {
        const std::size_t name_start = i;
        while (i < s.size() && detail::is_tchar(s[i])) ++i;
        const std::string_view name = s.substr(name_start, i - name_start);
        if (name.empty() || i >= s.size() || s[i] != '=') return fail();
        ++i;
        std::string_view value;
        bool escaped = false;
        if (i < s.size() && s[i] == '"') {
            const std::size_t start = ++i;
            while (i < s.size() && s[i] != '"') {
                if (s[i] == '\\') {
                    escaped = true;
                    ++i;
                }
                ++i;
            }
            if (i >= s.size()) return fail();  // unterminated
            value = s.substr(start, i - start);
            ++i;
        } else {
            const std::size_t start = i;
            while (i < s.size() && detail::is_tchar(s[i])) ++i;
            value = s.substr(start, i - start);
            if (value.empty()) return fail();
        }
        // Each parameter at most once per element (RFC 7239 §4): a repeated one makes the element malformed.
        if (iequals(name, "for")) {
            if (e.has_for) return fail();
            e.has_for = true, e.for_node = value, e.for_escaped = escaped;
        } else if (iequals(name, "proto")) {
            if (e.has_proto) return fail();
            e.has_proto = true, e.proto = value, e.proto_escaped = escaped;
        } else if (iequals(name, "host")) {
            if (e.has_host) return fail();
            e.has_host = true, e.host = value;
        }  // by= and extensions: read and ignored
        detail::skip_ows(s, i);
        if (i >= s.size()) return e;
        if (s[i] == ',') {
            ++i;
            return e;
        }
        if (s[i] != ';') return fail();
        ++i;
        detail::skip_ows(s, i);
    }
}

// The address an element's `for=` names: "192.0.2.60", "192.0.2.60:80", "[2001:db8::1]", "[2001:db8::1]:443"
// (ports may be obfuscated). nullopt for anything else.
inline std::optional<Node> node_address(const Element& e) noexcept {
    if (!e.has_for || e.for_escaped || e.malformed) return std::nullopt;
    std::string_view v = e.for_node;
    Node n;
    if (v.starts_with('[')) {
        const std::size_t close = v.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        n.address = v.substr(1, close - 1);
        const std::string_view rest = v.substr(close + 1);
        if (!rest.empty()) {
            if (!rest.starts_with(':')) return std::nullopt;
            const std::optional<std::uint16_t> port = detail::node_port(rest.substr(1));
            if (!port) return std::nullopt;
            n.port = *port;
        }
        if (n.address.find(':') == std::string_view::npos) return std::nullopt;  // brackets are for IPv6
    } else {
        const std::size_t colon = v.find(':');
        n.address = v.substr(0, colon);
        if (colon != std::string_view::npos) {
            const std::optional<std::uint16_t> port = detail::node_port(v.substr(colon + 1));
            if (!port) return std::nullopt;  // includes an unbracketed IPv6 address
            n.port = *port;
        }
        if (n.address.find(':') != std::string_view::npos) return std::nullopt;
    }
    if (!net::parse_ip(n.address)) return std::nullopt;  // unknown, _hidden, host names, garbage
    return n;
}

// The last `capacity` elements of a request's Forwarded fields, in order (older hops beyond them are
// dropped: the right-most hops are the ones a trusted proxy wrote).
class Elements {
public:
    static constexpr std::size_t capacity = 32;

    void add_field(std::string_view value) noexcept {
        std::size_t i = 0;
        while (i < value.size()) {
            std::size_t before = i;
            detail::skip_ows(value, before);
            if (before < value.size() && value[before] == ',') {  // an empty element (", ,"): skipped
                i = before + 1;
                continue;
            }
            if (before >= value.size()) break;
            push(parse_element(value, i));
        }
    }
    std::size_t size() const noexcept { return count_ < capacity ? count_ : capacity; }
    // The i-th element kept, 0 the left-most.
    const Element& operator[](std::size_t i) const noexcept {
        const std::size_t first = count_ < capacity ? 0 : count_ % capacity;
        return ring_[(first + i) % capacity];
    }

private:
    void push(const Element& e) noexcept { ring_[count_++ % capacity] = e; }
    std::array<Element, capacity> ring_{};
    std::size_t count_ = 0;
};

}  // namespace covet::http::forwarded
