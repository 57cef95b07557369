// Limits of one route, in place of the server's (net::Limits) for the requests it takes.
#pragma once

#include <cstdint>

namespace covet {

struct RouteLimits {
    // The request body's size limit on this route; 0: the server's Limits::max_body_bytes. Over it: 413, before
    // the handler runs (a declared Content-Length is refused before the body is read). Lower than the server's: a
    // login form that never needs a megabyte. Higher: an upload route; a body the protocol receives whole is still
    // held to the server's limit, so such a route takes streamed bodies (a StreamingHandler, which must then count
    // what it reads; Python routes are held to this limit as they collect the body).
    std::uint64_t max_body_bytes = 0;
};

}  // namespace covet
