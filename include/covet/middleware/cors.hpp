// Cross-Origin Resource Sharing with Starlette's CORSMiddleware semantics (what FastAPI apps configure):
// a preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered here, 200 "OK" or 400
// "Disallowed CORS origin, method, headers"; every other response gets the allowed origin, credentials and
// exposed headers added when the request has an Origin, and `Vary: Origin` where the answer depends on it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "covet/middleware/middleware.hpp"

namespace covet {

struct CorsOptions {
    std::vector<std::string> allow_origins{};       // exact origins, or "*" for any
    std::vector<std::string> allow_methods{"GET"};  // "*": every method
    std::vector<std::string> allow_headers{};       // "*": any (mirrored back on preflight)
    bool allow_credentials = false;
    std::string allow_origin_regex{};  // ECMAScript syntax, must match the whole origin; "" none
    bool allow_private_network = false;
    std::vector<std::string> expose_headers{};
    int max_age = 600;  // seconds, Access-Control-Max-Age of preflights
};

class CorsMiddleware final : public Middleware {
public:
    // Throws std::invalid_argument naming the cause for an allow_origin_regex that does not compile.
    explicit CorsMiddleware(CorsOptions options);
    ~CorsMiddleware() override;

    // Only a preflight (OPTIONS) is answered here: the app calls `before` for OPTIONS requests only.
    unsigned before_methods() const noexcept override { return 1u << static_cast<unsigned>(Method::options); }
    std::optional<Response> before(Request& request, RequestContext& /*context*/) override {
        if (request.method() != Method::options) return std::nullopt;
        return preflight(request);
    }
    void after(const Request& request, const RequestContext& context, Response& response) override;

    bool allowed_origin(std::string_view origin) const;

private:
    std::optional<Response> preflight(const Request& request) const;
    // after() for a preflight, a response with fields of its own, or an origin answered by echoing it.
    void after_general(const Request& request, Response& response) const;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace covet
