// The PROXY protocol (HAProxy's, versions 1 and 2): the header a load balancer (HAProxy, AWS NLB, ...) writes
// at the start of a TCP connection, before TLS or HTTP, to say which client the connection comes from. A pure
// parser (no allocation, no I/O: what fuzzers call) and the listener settings; net::Connection applies it to
// the first bytes of a connection from a trusted peer (ServerConfig::proxy_protocol).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "covet/net/trusted_proxies.hpp"

namespace covet::net::proxy_protocol {

// A v1 header is at most 107 bytes, CRLF included (the spec's bound). A v2 header is 16 bytes and a length;
// its address block and TLVs are bounded here (HAProxy sends a few hundred bytes of TLVs at most).
constexpr std::size_t max_v1_bytes = 107;
constexpr std::size_t max_v2_bytes = 16 + 1024;

enum class Status : std::uint8_t {
    complete,    // `consumed` bytes are the header; the client's address is set unless `local`
    incomplete,  // a prefix of a valid header: read more (never more than max_v2_bytes in all)
    invalid,     // not a PROXY header, or a malformed one: `error` says why
};

struct Result {
    Status status = Status::invalid;
    std::size_t consumed = 0;
    int version = 0;     // 1 or 2 once recognised
    bool local = false;  // v2 LOCAL (health checks), v1 UNKNOWN, or an address family other than TCP over IP:
                         // the connection keeps its own peer address
    char address[46]{};  // the client (source) address as text, NUL-terminated (INET6_ADDRSTRLEN)
    std::uint16_t port = 0;
    const char* error = "";

    std::string_view address_text() const noexcept { return address; }
};

// Parses the PROXY header at the start of `input`. Never reads past input; bounded by the limits above.
Result parse(std::span<const std::byte> input) noexcept;

}  // namespace covet::net::proxy_protocol

namespace covet::net {

// ServerConfig::proxy_protocol. Off by default. When enabled, a connection from one of `trusted` (load balancer
// addresses or networks) must start with a PROXY header (v1 or v2; refused otherwise), whose client address then
// becomes the connection's peer (the request's client, the access log, X-Forwarded-For trust). A connection from
// any other peer is read as plain HTTP (or TLS), so a PROXY header it sends is garbage: 400.
struct ProxyProtocolConfig {
    bool enabled = false;
    TrustedProxies trusted{};
};

}  // namespace covet::net
