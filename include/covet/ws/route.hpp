// What an app answers for a WebSocket upgrade request: the handlers for this connection and the route's
// options. Filled by RequestDispatcher::websocket (covet::App: routes added with App::ws).
#pragma once

#include <memory>

#include "covet/ws/options.hpp"
#include "covet/ws/websocket.hpp"

namespace covet::ws {

struct Route {
    std::shared_ptr<const Handlers> handlers;
    Options options;
};

}  // namespace covet::ws
