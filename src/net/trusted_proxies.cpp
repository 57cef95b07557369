#include "covet/net/trusted_proxies.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <stdexcept>

namespace covet::net {

namespace {

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool is_v4_mapped(const IpBytes& a) noexcept {
    static constexpr std::uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(a.data(), prefix, sizeof prefix) == 0;
}

// Whether the first `bits` bits of `a` and `b` agree.
bool same_prefix(const IpBytes& a, const IpBytes& b, unsigned bits) noexcept {
    const unsigned whole = bits / 8;
    if (std::memcmp(a.data(), b.data(), whole) != 0) return false;
    const unsigned rest = bits % 8;
    if (rest == 0) return true;
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

std::string to_text(const IpBytes& a) {
    char buf[INET6_ADDRSTRLEN] = "";
    if (is_v4_mapped(a))
        inet_ntop(AF_INET, a.data() + 12, buf, sizeof buf);
    else
        inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
    return buf;
}

[[noreturn]] void refuse(std::string_view entry, std::string_view why) {
    throw std::invalid_argument("forwarded_allow_ips: '" + std::string(entry) + "' " + std::string(why));
}

}  // namespace

std::optional<IpBytes> parse_ip(std::string_view text) noexcept {
    char buf[INET6_ADDRSTRLEN];
    if (text.empty() || text.size() >= sizeof buf) return std::nullopt;
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    IpBytes out{};
    if (inet_pton(AF_INET, buf, out.data() + 12) == 1) {
        out[10] = out[11] = 0xff;
        return out;
    }
    if (inet_pton(AF_INET6, buf, out.data()) == 1) return out;
    return std::nullopt;
}

TrustedProxies::TrustedProxies(std::string_view list) {
    std::string_view rest = list;
    while (true) {
        const std::size_t comma = rest.find(',');
        const std::string_view entry = trim(rest.substr(0, comma));
        if (!entry.empty()) {
            if (!text_.empty()) text_.append(", ");
            text_.append(entry);
            if (entry == "*") {
                all_ = true;
            } else if (const std::size_t slash = entry.find('/'); slash != std::string_view::npos) {
                const std::string_view addr = entry.substr(0, slash), bits = entry.substr(slash + 1);
                const std::optional<IpBytes> parsed = parse_ip(addr);
                if (!parsed) refuse(entry, "is not a network: expected an IP address, '/' and a prefix length");
                const IpBytes ip = parsed.value();  // (refuse threw without one)
                const bool v4 = addr.find(':') == std::string_view::npos;
                unsigned prefix = 0;
                const auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
                if (bits.empty() || ec != std::errc() || end != bits.data() + bits.size() || prefix > (v4 ? 32u : 128u))
                    refuse(entry,
                           v4 ? "has no valid prefix length (0 to 32)" : "has no valid prefix length (0 to 128)");
                if (v4) prefix += 96;
                IpBytes masked{};
                for (unsigned i = 0; i < prefix; ++i)
                    masked[i / 8] |= static_cast<std::uint8_t>(ip[i / 8] & (0x80u >> (i % 8)));
                if (masked != ip) {
                    const std::string network = to_text(masked) + "/" + std::string(bits);
                    refuse(entry, "has host bits set: did you mean " + network + "?");
                }
                networks_.push_back({ip, prefix});
            } else if (const std::optional<IpBytes> ip = parse_ip(entry)) {
                networks_.push_back({*ip, 128});
            } else {
                refuse(entry,
                       "is not an IP address, a network (such as 10.0.0.0/8) or '*' (host names are "
                       "not resolved: give the proxy's address)");
            }
        }
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
    }
}

bool TrustedProxies::contains(const IpBytes& address) const noexcept {
    if (all_) return true;
    return std::any_of(networks_.begin(), networks_.end(),
                       [&](const Network& n) { return same_prefix(n.address, address, n.prefix); });
}

bool TrustedProxies::contains(std::string_view address) const noexcept {
    if (all_) return true;
    if (networks_.empty()) return false;
    const std::optional<IpBytes> ip = parse_ip(address);
    return ip && contains(*ip);
}

}  // namespace covet::net
