// Middleware's do-nothing hooks (see covet/middleware/middleware.hpp for why they are not inline).
#include "covet/middleware/middleware.hpp"

namespace covet {

std::optional<Response> Middleware::before(Request& /*request*/, RequestContext& /*context*/) { return std::nullopt; }

void Middleware::after(const Request& /*request*/, const RequestContext& /*context*/, Response& /*response*/) {}

}  // namespace covet
