// Middleware: ordered hooks around every request. `before` runs in registration order and may answer
// the request itself (short-circuit); `after` runs in reverse order on the response, for each middleware
// whose `before` ran, on the connection's thread just before the response is written. Both get the
// exchange's RequestContext (covet/app/context.hpp: the request id), which lives until `after` returns.
#pragma once

#include <optional>

#include "covet/app/context.hpp"
#include "covet/http/request.hpp"
#include "covet/http/response.hpp"

namespace covet {

class Middleware {
public:
    virtual ~Middleware() = default;
    virtual std::optional<Response> before(Request& /*request*/, RequestContext& /*context*/) { return std::nullopt; }
    virtual void after(const Request& /*request*/, const RequestContext& /*context*/, Response& /*response*/) {}
};

}  // namespace covet
