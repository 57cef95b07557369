// The WebSocket opening handshake (RFC 6455 §4.2): validating an HTTP/1.1 Upgrade request and building
// the 101 response, with the negotiated subprotocol and permessage-deflate parameters.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "covet/http/request.hpp"
#include "covet/http/response.hpp"
#include "covet/ws/deflate.hpp"
#include "covet/ws/options.hpp"

namespace covet::ws {

// The request may be accepted: `head` is the complete 101 response head to queue as is.
struct Accepted {
    std::string head;
    DeflateParams deflate;
    std::string subprotocol;  // empty: none selected
    std::string accept;       // Sec-WebSocket-Accept (for a deferred accept's head: handshake_head)
};

// The 101 head of an accepted handshake with `subprotocol` (none when empty) and the `extra` fields (a
// deferred accept's choice); accept_upgrade's `head` is this with its negotiated subprotocol and no extras.
std::string handshake_head(const Accepted& accepted, std::string_view subprotocol, const Fields& extra = {});

// Whether the request asks for a WebSocket (an `Upgrade` header with the `websocket` token): the
// HTTP/1.1 handler's cue to route it to accept_upgrade() rather than answer it as a plain request.
bool is_upgrade_request(const Request& request) noexcept;

// Validates the handshake. Refusals are a Response to send over HTTP/1.1: 400 naming what is wrong
// (method, version, Upgrade, Connection, Sec-WebSocket-Key), or 426 with `Sec-WebSocket-Version: 13`
// for another protocol version.
std::variant<Accepted, Response> accept_upgrade(const Request& request, const Options& options);

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + the RFC's GUID)).
std::string accept_key(std::string_view key);

// Whether `key` is base64 of exactly 16 bytes (24 characters, "==" padded).
bool valid_key(std::string_view key) noexcept;

}  // namespace covet::ws
