// net::Connection's PROXY protocol step (the rest of Connection is inline in connection.hpp): the header a
// trusted load balancer sends before anything else, parsed by proxy_protocol::parse.

#include <cstddef>

#include "../logging.hpp"
#include "covet/net/connection.hpp"
#include "covet/net/proxy_protocol.hpp"

namespace covet::net {

bool Connection::take_proxy_header(std::span<const char>& wire) {
    // The usual case: the whole header in the first read, parsed in place. Otherwise the bytes so far are kept
    // (bounded by the parser: it answers invalid past max_v2_bytes) until it is whole.
    std::span<const char> input = wire;
    if (!proxy_buffer_.empty()) {
        proxy_buffer_.append(wire.data(), wire.size());
        input = proxy_buffer_;
    }
    const proxy_protocol::Result r = proxy_protocol::parse(std::as_bytes(input));
    switch (r.status) {
        case proxy_protocol::Status::incomplete:
            if (proxy_buffer_.empty()) proxy_buffer_.assign(wire.data(), wire.size());
            wire = {};
            return true;
        case proxy_protocol::Status::invalid:
            logging::warn("connection from {}:{} refused: {} (it is a PROXY protocol peer: proxy_protocol.trusted)",
                          peer_address_, peer_port_, r.error);
            return false;
        case proxy_protocol::Status::complete: break;
    }
    proxy_header_pending_ = false;
    if (!r.local) {
        peer_address_.assign(r.address_text());
        peer_port_ = r.port;
        proxy_trusted_ = driver_.config().proxy_headers.trusts(peer_address_);
    }
    // Per-client limits count the client the balancer names (LOCAL/UNKNOWN: the balancer itself).
    if (!driver_.admit_client(*this)) return false;
    wire = input.subspan(r.consumed);
    return true;
}

}  // namespace covet::net
