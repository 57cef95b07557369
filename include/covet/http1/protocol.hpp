// HTTP/1.1 on a connection: keep-alive, pipelining with in-order batched responses, Content-Length and
// chunked bodies, Expect: 100-continue, HEAD, limits, timeouts, streaming responses. The session
// (src/http1/session.cpp) reads requests with the sans-I/O RequestReader (request_reader.hpp).
#pragma once

#include <memory>

#include "covet/http/exchange.hpp"
#include "covet/http1/switch.hpp"
#include "covet/net/connection.hpp"
#include "covet/net/connection_ref.hpp"

namespace covet::http1 {

// Creates the HTTP/1.1 handler for a new connection. `home` resolves completions that arrive later or
// from other threads; `dispatcher` must outlive the connection. `switcher` decides every switch to another
// protocol (HTTP/2 prior knowledge, Upgrade: see switch.hpp); null keeps the connection on HTTP/1.1.
std::unique_ptr<net::ProtocolHandler> make_protocol(net::Connection& connection, net::ConnectionHome& home,
                                                    RequestDispatcher& dispatcher, Switcher* switcher = nullptr);

}  // namespace covet::http1
