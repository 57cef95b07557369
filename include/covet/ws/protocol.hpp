// The WebSocket protocol handler (RFC 6455, with permessage-deflate from RFC 7692) that takes over a
// connection after an accepted HTTP/1.1 Upgrade.
#pragma once

#include <memory>
#include <span>
#include <string_view>

#include "covet/net/connection.hpp"
#include "covet/net/connection_ref.hpp"
#include "covet/ws/handshake.hpp"
#include "covet/ws/options.hpp"
#include "covet/ws/websocket.hpp"

namespace covet::ws {

// The handler for one connection. Install it with Connection::switch_protocol, then call its on_data
// with the bytes that followed the upgrade request, possibly none: Handlers::on_open runs on that first
// call, so that the WebSocket it receives carries the new protocol epoch. `path` is the request path
// (WebSocket::path()). Never throws out of a ProtocolHandler callback.
std::unique_ptr<net::ProtocolHandler> make_protocol(net::Connection& connection, net::ConnectionHome& home,
                                                    std::shared_ptr<const Handlers> handlers, Options options,
                                                    const Accepted& accepted, std::string_view path = {});

// All of the switch for the HTTP/1.1 handler, from inside its on_data: queues the 101 head, installs
// the WebSocket handler and hands it `rest` (the bytes after the request head).
void switch_to_websocket(net::Connection& connection, net::ConnectionHome& home,
                         std::shared_ptr<const Handlers> handlers, Options options, const Accepted& accepted,
                         std::string_view path, std::span<const char> rest);

}  // namespace covet::ws
