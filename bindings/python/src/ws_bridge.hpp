// WebSocket connections for Python: what a Python handler sees of one connection (the upgrade request,
// copied, and the native handle) and the events that reach the asyncio thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "covet/covet.hpp"

namespace covet_py {

// The upgrade request, copied when the connection is accepted: the Python handler runs after the
// request's bytes are gone.
struct WsConnection {
    covet::ws::WebSocket ws;
    std::string target, path, query, http_version, scheme, client_address;
    std::uint16_t client_port = 0;
    std::vector<std::pair<std::string, std::string>> headers, params;
    struct Tls {
        std::string version, cipher, alpn, server_name, client_subject, client_common_name;
        bool session_reused = false, client_verified = false;
    };
    std::optional<Tls> tls;

    explicit WsConnection(const covet::Request& r)
        : target(r.target()),
          path(r.path()),
          query(r.query_string()),
          http_version(std::to_string(r.version_major()) + "." + std::to_string(r.version_minor())),
          scheme(r.scheme() == "https" || r.scheme() == "wss" ? "wss" : "ws"),  // X-Forwarded-Proto may say either
          client_address(r.client_address()),
          client_port(r.client_port()) {
        for (const covet::Header& h : r.headers()) headers.emplace_back(h.name, h.value);
        for (const covet::PathParam& p : r.params()) params.emplace_back(p.name, p.value);
        if (const covet::net::TlsInfo* t = r.tls())
            tls = Tls{std::string(t->version), std::string(t->cipher), std::string(t->alpn), t->server_name,
                      t->client_subject,       t->client_common_name,  t->session_reused,    t->client_verified};
    }
};
using WsPtr = std::shared_ptr<WsConnection>;

enum class WsEventKind : int { open = 0, message = 1, close = 2, drain = 3 };

struct WsEvent {
    int route_id;
    WsEventKind kind;
    WsPtr connection;
    std::string data;  // message payload, or the close reason
    bool binary = false;
    std::uint16_t code = 0;  // close code
};

}  // namespace covet_py
