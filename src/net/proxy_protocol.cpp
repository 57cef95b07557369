// PROXY protocol v1 and v2 (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt): see proxy_protocol.hpp.
#include "covet/net/proxy_protocol.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace covet::net::proxy_protocol {

namespace {

constexpr std::string_view v1_prefix = "PROXY ";
constexpr unsigned char v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

Result invalid(const char* why, int version = 0) noexcept {
    Result r;
    r.status = Status::invalid;
    r.version = version;
    r.error = why;
    return r;
}

Result incomplete(int version) noexcept {
    Result r;
    r.status = Status::incomplete;
    r.version = version;
    return r;
}

// Whether `have` is a prefix of `whole` (as far as it goes).
bool prefix_of(std::span<const unsigned char> have, std::span<const unsigned char> whole) noexcept {
    const std::size_t n = std::min(have.size(), whole.size());
    return std::equal(have.begin(), have.begin() + static_cast<std::ptrdiff_t>(n), whole.begin());
}

bool parse_port(std::string_view s, std::uint16_t& out) noexcept {
    if (s.empty() || s.size() > 5 || (s.size() > 1 && s.front() == '0')) return false;
    unsigned v = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v > 65535) return false;
    out = static_cast<std::uint16_t>(v);
    return true;
}

// The next space-separated field of a v1 line; empty when none is left.
std::string_view next_field(std::string_view& rest) noexcept {
    const std::size_t space = rest.find(' ');
    const std::string_view field = rest.substr(0, space);
    rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
    return field;
}

// An address field of a v1 line, checked with inet_pton for `family` and copied (canonical) into r.address.
bool parse_address(std::string_view text, int family, char* into, std::size_t into_size) noexcept {
    char buf[64];
    if (text.empty() || text.size() >= sizeof buf) return false;
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    unsigned char raw[16];
    if (inet_pton(family, buf, raw) != 1) return false;
    if (into) return inet_ntop(family, raw, into, static_cast<socklen_t>(into_size)) != nullptr;
    return true;
}

Result parse_v1(std::string_view in) noexcept {
    const std::size_t limit = std::min(in.size(), max_v1_bytes);
    const std::size_t cr = in.substr(0, limit).find('\r');
    if (cr == std::string_view::npos || cr + 1 >= in.size()) {
        if (in.substr(0, limit).find('\n') != std::string_view::npos)
            return invalid("PROXY v1 header: a line feed without carriage return", 1);
        if (in.size() >= max_v1_bytes) return invalid("PROXY v1 header: no CRLF within 107 bytes", 1);
        return incomplete(1);
    }
    if (in[cr + 1] != '\n') return invalid("PROXY v1 header: CR not followed by LF", 1);
    if (cr + 2 > max_v1_bytes) return invalid("PROXY v1 header: no CRLF within 107 bytes", 1);
    std::string_view line = in.substr(v1_prefix.size(), cr - v1_prefix.size());
    for (const char c : line)
        if (c < 0x20 || c > 0x7e) return invalid("PROXY v1 header: a control or non-ASCII byte", 1);
    Result r;
    r.version = 1;
    r.consumed = cr + 2;
    const std::string_view proto = next_field(line);
    if (proto == "UNKNOWN") {  // the sender does not know the client: keep the connection's address
        r.status = Status::complete;
        r.local = true;
        return r;
    }
    int family;
    if (proto == "TCP4")
        family = AF_INET;
    else if (proto == "TCP6")
        family = AF_INET6;
    else
        return invalid("PROXY v1 header: the protocol must be TCP4, TCP6 or UNKNOWN", 1);
    const std::string_view src = next_field(line), dst = next_field(line), sport = next_field(line);
    const std::string_view dport = next_field(line);
    if (!line.empty() || dport.empty()) return invalid("PROXY v1 header: expected 4 fields after the protocol", 1);
    if (!parse_address(src, family, r.address, sizeof r.address) || !parse_address(dst, family, nullptr, 0))
        return invalid("PROXY v1 header: an address is not one of the protocol's family", 1);
    std::uint16_t dport_value = 0;
    if (!parse_port(sport, r.port) || !parse_port(dport, dport_value))
        return invalid("PROXY v1 header: a port is not a number from 0 to 65535", 1);
    r.status = Status::complete;
    return r;
}

Result parse_v2(std::span<const unsigned char> in) noexcept {
    if (in.size() < 16) return incomplete(2);
    const unsigned version = in[12] >> 4, command = in[12] & 0x0f;
    if (version != 2) return invalid("PROXY v2 header: the version is not 2", 2);
    if (command > 1) return invalid("PROXY v2 header: the command is neither LOCAL nor PROXY", 2);
    const std::size_t length = (std::size_t{in[14]} << 8) | in[15];
    if (16 + length > max_v2_bytes) return invalid("PROXY v2 header: longer than 1040 bytes", 2);
    if (in.size() < 16 + length) return incomplete(2);
    Result r;
    r.version = 2;
    r.consumed = 16 + length;
    r.status = Status::complete;
    const unsigned family = in[13] >> 4, transport = in[13] & 0x0f;
    if (command == 0 || transport != 1 || (family != 1 && family != 2)) {
        // LOCAL (the balancer's own health check), or UNSPEC/UDP/UNIX: the connection's addresses stand.
        r.local = true;
        return r;
    }
    const unsigned char* block = in.data() + 16;
    if (family == 1) {
        if (length < 12) return invalid("PROXY v2 header: the IPv4 address block is shorter than 12 bytes", 2);
        if (!inet_ntop(AF_INET, block, r.address, sizeof r.address)) return invalid("PROXY v2 header: bad address", 2);
        r.port = static_cast<std::uint16_t>((block[8] << 8) | block[9]);
    } else {
        if (length < 36) return invalid("PROXY v2 header: the IPv6 address block is shorter than 36 bytes", 2);
        if (!inet_ntop(AF_INET6, block, r.address, sizeof r.address)) return invalid("PROXY v2 header: bad address", 2);
        r.port = static_cast<std::uint16_t>((block[32] << 8) | block[33]);
    }
    return r;
}

}  // namespace

Result parse(std::span<const std::byte> input) noexcept {
    const std::span<const unsigned char> in(reinterpret_cast<const unsigned char*>(input.data()), input.size());
    if (in.empty()) return incomplete(0);
    const std::span<const unsigned char> v1(reinterpret_cast<const unsigned char*>(v1_prefix.data()), v1_prefix.size());
    if (in[0] == 'P') {
        if (!prefix_of(in, v1)) return invalid("no PROXY protocol header (expected \"PROXY \")");
        if (in.size() < v1.size()) return incomplete(1);
        return parse_v1({reinterpret_cast<const char*>(in.data()), in.size()});
    }
    if (in[0] == v2_signature[0]) {
        if (!prefix_of(in, v2_signature)) return invalid("no PROXY protocol header (bad v2 signature)");
        return parse_v2(in);
    }
    return invalid("no PROXY protocol header at the start of the connection");
}

}  // namespace covet::net::proxy_protocol
