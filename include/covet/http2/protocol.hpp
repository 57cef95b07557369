// HTTP/2 on a connection (nghttp2 server sessions): stream multiplexing, flow control, HPACK, trailers,
// SETTINGS limits, GOAWAY on shutdown, and the abuse limits (rapid reset, CONTINUATION floods, HPACK
// bombs). Requests reach the same RequestDispatcher as HTTP/1.1.
//
// Limits (net::Http2Limits, net::Limits, net::Timeouts), per connection:
//   SETTINGS: max_concurrent_streams (more → RST_STREAM REFUSED_STREAM), initial_window_size (also the
//     connection window), max_header_list_bytes, max_frame_size (a larger frame → GOAWAY FRAME_SIZE_ERROR).
//   Decoded header list over max_header_list_bytes, or more than Limits::max_headers fields → 431 on that
//     stream (nothing of it is kept); the connection stays usable.
//   Body over Limits::max_body_bytes → 413; bodies still arriving on all streams together over
//     max_body_bytes + max_buffered_input → 503 on the stream that went over.
//   RST_STREAM from the client beyond max_resets_per_second (token bucket) → GOAWAY ENHANCE_YOUR_CALM.
//   More than max_continuations CONTINUATION frames → connection error (GOAWAY).
//   Timeouts::header: a header block left incomplete → GOAWAY; Timeouts::body: a stalled body → 408 on
//     its stream; Timeouts::keep_alive: no streams → GOAWAY NO_ERROR and close.
// Unknown methods and CONNECT → 501. Cookie crumbs are joined into one header; :authority is exposed as
// a `host` header when there is none. Response trailers (Response::trailer) are sent as a trailing
// HEADERS frame.
#pragma once

#include <memory>
#include <span>
#include <string_view>

#include "covet/http/exchange.hpp"
#include "covet/http/request.hpp"
#include "covet/net/connection.hpp"
#include "covet/net/connection_ref.hpp"

namespace covet::http2 {

// The connection preface a client sends first ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").
inline constexpr std::string_view client_preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// A new HTTP/2 connection (h2 via ALPN, or h2c with prior knowledge). The client preface is expected as
// the first bytes given to on_data. Null only if nghttp2 could not be set up (out of memory).
// Exchange ids are stream ids; several exchanges may be outstanding at once on one connection.
std::unique_ptr<net::ProtocolHandler> make_protocol(net::Connection& connection, net::ConnectionHome& home,
                                                    RequestDispatcher& dispatcher);

// HTTP/1.1 `Upgrade: h2c` (RFC 7540 §3.2): after the 101 response has been queued, the HTTP/2 handler
// takes over. `settings_header` is the request's HTTP2-Settings value (base64url); `request` (fully read,
// body included) becomes stream 1 and is dispatched by the new handler, which copies what it needs.
// Returns null if the settings header is invalid (the caller then answers over HTTP/1.1). The caller
// queues the 101, installs the handler (Connection::switch_protocol) and then calls its on_data with the
// bytes that followed the request, possibly none: stream 1 is dispatched then, so that its Responder
// carries the new protocol epoch.
std::unique_ptr<net::ProtocolHandler> make_upgraded_protocol(net::Connection& connection, net::ConnectionHome& home,
                                                             RequestDispatcher& dispatcher,
                                                             std::string_view settings_header, const Request& request);

}  // namespace covet::http2
