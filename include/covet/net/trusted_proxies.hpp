// The proxies whose X-Forwarded-For / X-Forwarded-Proto a server believes (uvicorn's --forwarded-allow-ips):
// a list of IP addresses and CIDR networks, or "*" for every peer. Parsed once when the server is configured;
// a connection's peer is checked once, when it is accepted (Connection::proxy_trusted), and the headers of
// its requests are applied by covet::http::apply_proxy_headers (covet/http/proxy_headers.hpp).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace covet::net {

// An IPv4 or IPv6 address as 16 bytes: IPv4 as its IPv4-mapped IPv6 form (::ffff:a.b.c.d), so that an IPv4
// peer seen through a dual-stack socket matches the same entries as a plain IPv4 one.
using IpBytes = std::array<std::uint8_t, 16>;

// The address `text` ("10.1.2.3", "::1", "::ffff:10.1.2.3"); nullopt if it is not one. No allocation.
std::optional<IpBytes> parse_ip(std::string_view text) noexcept;

class TrustedProxies {
public:
    TrustedProxies() = default;  // trusts no peer
    // "127.0.0.1", "10.0.0.0/8, 192.168.1.5, ::1, fd00::/8", "*" (every peer). Entries are separated by
    // commas; blanks around them are ignored. Throws std::invalid_argument naming the entry that is neither
    // an IP address, a network (address/prefix, without host bits) nor "*" — host names are not resolved.
    explicit TrustedProxies(std::string_view list);

    bool trusts_all() const noexcept { return all_; }
    bool empty() const noexcept { return !all_ && networks_.empty(); }
    // Whether `address` (a peer's or an X-Forwarded-For entry's text) is one of these proxies. Anything that
    // is not an IP address is not trusted (unless "*").
    bool contains(std::string_view address) const noexcept;
    bool contains(const IpBytes& address) const noexcept;
    // The list as given, normalised: entries joined by ", " ("" for none).
    const std::string& text() const noexcept { return text_; }

private:
    struct Network {
        IpBytes address;
        unsigned prefix;  // bits, of the 128 (an IPv4 /24 is 96 + 24)
    };
    std::vector<Network> networks_;
    std::string text_;
    bool all_ = false;
};

// The proxy-header settings of a server (ServerConfig::proxy_headers). On by default with 127.0.0.1 trusted,
// as uvicorn: a proxy on the same machine may say which client and scheme a request came from.
struct ProxyHeaders {
    bool enabled = true;
    TrustedProxies trusted{"127.0.0.1"};

    // Whether the peer at `address` may set the client and scheme (decided once per connection).
    bool trusts(std::string_view address) const noexcept { return enabled && trusted.contains(address); }
};

}  // namespace covet::net
