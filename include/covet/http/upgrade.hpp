// A request that asks to switch protocols (RFC 9110 §7.8), as the application sees it: the app decides
// whether it takes it (RequestDispatcher::upgrade) and with what. Protocols the server alone decides (h2c)
// never reach the application.
#pragma once

#include <cstdint>
#include <optional>

#include "covet/http/response.hpp"

#include "covet/ws/route.hpp"

namespace covet {

struct Upgrade {
    enum class Protocol : std::uint8_t {
        websocket,  // `Upgrade: websocket` (RFC 6455)
    };
    Protocol protocol = Protocol::websocket;
    ws::Route websocket;  // websocket: the connection's handlers and the route's options
    // Set by the application instead of a route: the response that refuses the switch (middleware that
    // guards every request, e.g. a Host check); the connection closes after it.
    std::optional<Response> refusal;
};

}  // namespace covet
