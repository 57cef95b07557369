// X-Forwarded-Proto and X-Forwarded-For from a trusted proxy (ServerConfig::proxy_headers), with the meaning
// uvicorn's ProxyHeadersMiddleware gives them (0.30+): the protocols call apply_proxy_headers for each request
// on a connection whose peer is trusted (Connection::proxy_trusted, decided once at accept), so everything
// that reads Request::scheme() and client_address() — the Python request, url_for, HTTPSRedirectMiddleware,
// the access log — sees the client's side of the proxy.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "covet/http/ascii.hpp"
#include "covet/http/forwarded.hpp"
#include "covet/http/request.hpp"
#include "covet/net/trusted_proxies.hpp"

namespace covet::http {

namespace detail {

struct HostPort {
    std::string_view host;
    std::uint16_t port = 0;
};

inline std::optional<std::uint16_t> parse_port(std::string_view s) noexcept {
    std::uint16_t port = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), port);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return port;
}

// An X-Forwarded-For entry: "1.2.3.4", "1.2.3.4:5678", "[2001:db8::1]:443" or a bare IPv6 address. Anything
// else is kept whole with port 0, so that a trust check never sees a quietly shortened value (uvicorn's rule).
inline HostPort split_host_port(std::string_view value) noexcept {
    if (value.starts_with('[')) {
        const std::size_t close = value.find(']');
        if (close == std::string_view::npos) return {value};
        const std::string_view host = value.substr(1, close - 1), rest = value.substr(close + 1);
        if (rest.empty()) return {host};
        if (!rest.starts_with(':')) return {value};
        return {host, parse_port(rest.substr(1)).value_or(0)};
    }
    const std::size_t colon = value.find(':');
    if (colon != std::string_view::npos && value.find(':', colon + 1) == std::string_view::npos) {
        if (const std::optional<std::uint16_t> port = parse_port(value.substr(colon + 1)))
            return {value.substr(0, colon), *port};
    }
    return {value};
}

// RFC 7239 Forwarded: see apply_proxy_headers. `client`, `scheme`: what it may set.
inline void apply_forwarded(Request& r, const net::TrustedProxies& trusted, bool client, bool scheme) noexcept {
    forwarded::Elements elements;
    for (const Header& h : r.headers())
        if (h.name.size() == 9 && iequals(h.name, "forwarded")) elements.add_field(h.value);
    if (elements.size() == 0) return;
    const forwarded::Element* chosen = nullptr;
    forwarded::Node node{};
    bool hop_known = false;  // the chosen hop names an address: `node`
    for (std::size_t i = elements.size(); i-- > 0;) {
        const std::optional<forwarded::Node> hop = forwarded::node_address(elements[i]);
        hop_known = hop.has_value();
        node = hop.value_or(forwarded::Node{});
        // Not an address (unknown, obfuscated, malformed): the hop is unknown, so nothing left of it is believed.
        if (!hop_known || (!trusted.trusts_all() && !trusted.contains(node.address))) {
            chosen = &elements[i];
            break;
        }
    }
    if (!chosen) {  // every hop is a trusted proxy (or "*"): the left-most
        chosen = &elements[0];
        const std::optional<forwarded::Node> hop = forwarded::node_address(*chosen);
        hop_known = hop.has_value();
        node = hop.value_or(forwarded::Node{});
    }
    if (client && hop_known) r.set_client(node.address, node.port);
    if (scheme && chosen->has_proto && !chosen->proto_escaped && !chosen->malformed)
        for (const std::string_view known : {"http", "https", "ws", "wss"})
            if (iequals(chosen->proto, known)) r.set_scheme(known);
}

}  // namespace detail

// Applies the forwarded scheme and client to `r`, whose connection's peer is trusted (the caller checked):
// - X-Forwarded-Proto (the last one) of http, https, ws or wss becomes the scheme; other values are ignored.
// - X-Forwarded-For (all of them, in order, as one comma list): the client is the right-most entry that is not
//   a trusted proxy (each proxy appends the address it received from), or the left-most when every entry is
//   trusted; "*" trusts every entry, so the left-most is taken. Its port is the entry's, else 0. An empty
//   entry chosen leaves the connection's peer in place.
// - Forwarded (RFC 7239; all of them, in order, one element per hop), for what the X-Forwarded-* headers do
//   not say: X-Forwarded-For wins over `for=` and X-Forwarded-Proto over `proto=` when both are present
//   (uvicorn reads only X-Forwarded-*, so an app moved from it sees the same client). The element that names
//   the client is chosen by the X-Forwarded-For rule: the right-most whose `for=` is not a trusted proxy (or
//   the left-most when all are). Its `for=` becomes the client unless it is no address (`unknown`,
//   `_hidden`, malformed: the connection's peer stays, and no hop further left is believed); its `proto=`
//   (http, https, ws, wss; any case) the scheme. `host=` is not applied (as X-Forwarded-Host is not).
// Restores the connection's own scheme first, so a Request reused for the next request starts clean.
inline void apply_proxy_headers(Request& r, const net::TrustedProxies& trusted) noexcept {
    r.set_scheme({});
    std::optional<std::string_view> proto;
    bool forwarded_for = false, forwarded = false;
    for (const Header& h : r.headers()) {
        if (h.name.size() == 17 && iequals(h.name, "x-forwarded-proto"))
            proto = h.value;
        else if (h.name.size() == 15 && iequals(h.name, "x-forwarded-for"))
            forwarded_for = true;
        else if (h.name.size() == 9 && iequals(h.name, "forwarded"))
            forwarded = true;
    }
    if (proto) {
        const std::string_view p = trim_ows(*proto);
        for (const std::string_view known : {"http", "https", "ws", "wss"})
            if (p == known) r.set_scheme(known);
    }
    if (forwarded && (!proto || !forwarded_for)) [[unlikely]]
        detail::apply_forwarded(r, trusted, /*client=*/!forwarded_for, /*scheme=*/!proto);
    if (!forwarded_for) return;
    const std::span<const Header> headers = r.headers();
    std::optional<detail::HostPort> chosen;
    std::string_view first;  // the left-most entry
    bool have_first = false;
    for (std::size_t i = headers.size(); i-- > 0 && !chosen;) {
        const Header& h = headers[i];
        if (h.name.size() != 15 || !iequals(h.name, "x-forwarded-for")) continue;
        std::string_view rest = h.value;
        while (true) {  // the entries of this header, right to left
            const std::size_t comma = rest.rfind(',');
            const std::string_view entry = trim_ows(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
            first = entry, have_first = true;
            if (!trusted.trusts_all()) {
                const detail::HostPort hp = detail::split_host_port(entry);
                if (!trusted.contains(hp.host)) {
                    chosen = hp;
                    break;
                }
            }
            if (comma == std::string_view::npos) break;
            rest = rest.substr(0, comma);
        }
    }
    if (!chosen && have_first) chosen = detail::split_host_port(first);
    if (chosen && !chosen->host.empty()) r.set_client(chosen->host, chosen->port);
}

}  // namespace covet::http
