// Host checks with Starlette's semantics: TrustedHostMiddleware answers 400 "Invalid host header" to a
// request whose Host is not one of allowed_hosts ("example.com", "*.example.com", "*" for any), or 307 to
// the www. form when only that one is allowed (www_redirect); HTTPSRedirectMiddleware answers every plain
// HTTP request with 307 to its https:// URL (ports 80 and 443 dropped from the host).
#pragma once

#include <string>
#include <vector>

#include "covet/middleware/middleware.hpp"

namespace covet {

struct TrustedHostOptions {
    std::vector<std::string> allowed_hosts{"*"};
    bool www_redirect = true;
};

class TrustedHostMiddleware final : public Middleware {
public:
    // Throws std::invalid_argument for a wildcard anywhere but a leading "*." (Starlette's rule).
    explicit TrustedHostMiddleware(TrustedHostOptions options);
    std::optional<Response> before(Request& request, RequestContext& context) override;
    // WebSocket handshakes are checked too (Starlette's middleware sees websocket scopes): 400, or 307.
    std::optional<Response> before_upgrade(Request& request) override;

private:
    std::optional<Response> check(const Request& request) const;
    std::vector<std::string> allowed_;  // lowercased
    bool allow_any_ = false;
    bool www_redirect_ = true;
};

class HttpsRedirectMiddleware final : public Middleware {
public:
    std::optional<Response> before(Request& request, RequestContext& context) override;
};

// The host part of a Host header value (brackets kept around IPv6 literals) and its port ("" when none),
// or false for a malformed value (characters that could change the URL's authority or path).
bool parse_host_header(std::string_view value, std::string_view& host, std::string_view& port) noexcept;

}  // namespace covet
