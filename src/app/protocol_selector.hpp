// Picks each connection's protocol: HTTP/1.1 on plain TCP (which itself switches to h2c on the client
// preface or `Upgrade: h2c`), and on TLS whatever ALPN agreed on (h2 or http/1.1).
#pragma once

#include <memory>

#include "covet/http/exchange.hpp"
#include "covet/net/connection.hpp"
#include "covet/net/connection_ref.hpp"

namespace covet::app {

std::unique_ptr<net::ProtocolHandler> make_connection_protocol(net::Connection& connection, net::ConnectionHome& home,
                                                               RequestDispatcher& dispatcher);

}  // namespace covet::app
