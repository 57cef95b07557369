// Cross-site request forgery protection, two checks on every request with an unsafe method (not GET, HEAD,
// OPTIONS or TRACE):
// 1. Origin (as Go 1.25's http.CrossOriginProtection): `Sec-Fetch-Site` other than same-origin or none, or else
//    an `Origin` whose host is not the request's Host, is refused unless the Origin is one of trusted_origins.
//    Requests with neither header (not from a browser) pass this check.
// 2. A signed double-submit token, for what a cross-site <form> can send (urlencoded, multipart or text/plain
//    bodies, or none): the `csrftoken` cookie holds random bytes and their HMAC-SHA256 under `secret`, and the
//    request must repeat the cookie's value in the form field `csrf_token` or the `X-CSRF-Token` header. A
//    token in the header is checked whatever the content type.
// A request without a valid cookie gets a new token (RequestContext::csrf_token, Python `csrf_token(request)`,
// for the handler to put in its forms) and the cookie is set on the response. Refusals are 403 with a text body
// naming the cause. Exempt: paths in exempt_paths ("/hooks/stripe", or a prefix "/hooks/*"), and with
// exempt_bearer requests carrying `Authorization: Bearer` and no Cookie (an API client, not a browser session).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "covet/middleware/middleware.hpp"

namespace covet {

struct CsrfOptions {
    std::string secret;                          // HMAC key: at least 16 bytes (32 random bytes recommended)
    std::vector<std::string> trusted_origins{};  // "https://app.example.com": cross-origin senders allowed
    std::vector<std::string> exempt_paths{};     // exact paths, or prefixes ending in "*"
    bool exempt_bearer = true;
    bool check_token = true;  // false: the Origin check alone (Go's CrossOriginProtection)
    std::string cookie_name = "csrftoken";
    std::string header_name = "X-CSRF-Token";
    std::string form_field = "csrf_token";
    std::string cookie_samesite = "Lax";
    // The cookie's Secure attribute: on https requests (TLS, or a trusted proxy's X-Forwarded-Proto) always.
};

class CsrfMiddleware final : public Middleware {
public:
    // Throws std::invalid_argument naming the cause: a secret shorter than 16 bytes, a trusted origin that is not
    // scheme://host[:port], names that are not tokens.
    explicit CsrfMiddleware(CsrfOptions options);
    ~CsrfMiddleware() override;

    std::optional<Response> before(Request& request, RequestContext& context) override;
    void after(const Request& request, const RequestContext& context, Response& response) override;

    // A new token (random bytes and their MAC); whether `token` is one this secret made.
    std::string new_token() const;
    bool valid_token(std::string_view token) const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace covet
