// HTTP/3 over QUIC (ngtcp2 + nghttp3, the handshake through ngtcp2's GnuTLS helper): one UDP socket per worker
// beside the TLS listener, requests to the same RequestDispatcher (the App) as HTTP/1.1 and HTTP/2.
//
// Each worker binds its own socket to the HTTP/3 port with SO_REUSEPORT (the kernel keeps a client's 4-tuple on
// one worker); a QUIC connection lives in its worker's connection table like a TCP one (net/datagram.hpp), so
// Responders, the sweep and graceful shutdown work for it unchanged. Settings: net::Http3Options
// (ServerConfig::http3); certificates: ServerConfig::tls (the same files as TLS over TCP).
#pragma once

#include <cstdint>
#include <string>

#include "covet/http/exchange.hpp"
#include "covet/net/datagram.hpp"
#include "covet/net/server_config.hpp"

namespace covet::http3 {

// HTTP/3 for one server: `factory` makes each worker's endpoint (give it to net::Server::set_datagram_factory;
// `tcp_port` is the TCP listener's bound port, the UDP port when Http3Options::port is 0), `reload_tls` loads
// ServerConfig::tls's files again (new connections use them; throws naming the file that failed, and the
// previous certificates stay in use).
struct Service {
    std::function<std::unique_ptr<net::DatagramService>(net::DatagramHost&, std::uint16_t tcp_port)> factory;
    std::function<void()> reload_tls;
};
// `config` (its tls and http3) and `dispatcher` must outlive the server. Throws std::runtime_error naming the
// cause when TLS is not configured or a certificate cannot be loaded.
Service make_service(const net::ServerConfig& config, RequestDispatcher& dispatcher);

// The Alt-Svc field value that advertises HTTP/3 on `udp_port` (RFC 7838, RFC 9114 §3.1.1).
std::string alt_svc_value(const net::Http3Options& options, std::uint16_t udp_port);

}  // namespace covet::http3
