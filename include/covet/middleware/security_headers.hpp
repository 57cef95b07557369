// Security headers with safe defaults, added to every response the app sends (helmet's and Django's
// SecurityMiddleware's set): Strict-Transport-Security on HTTPS responses only, Content-Security-Policy (a fixed
// policy, or one with a fresh nonce per request), X-Content-Type-Options: nosniff, Referrer-Policy,
// X-Frame-Options and Cross-Origin-Opener-Policy. A header the handler set itself is left alone (it wins).
// The values are checked and rendered once, at construction; per response the middleware only appends them.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "covet/middleware/middleware.hpp"

namespace covet {

struct SecurityHeadersOptions {
    // Strict-Transport-Security, on responses to https requests (TLS, or a trusted proxy's X-Forwarded-Proto):
    // browsers then refuse plain HTTP to this host for max_age seconds. 0: not sent.
    long hsts_max_age = 31536000;  // one year
    bool hsts_include_subdomains = false;
    bool hsts_preload = false;  // only with include_subdomains and max_age >= one year (hstspreload.org's rule)
    // Content-Security-Policy; "" none. Each "{nonce}" in it is replaced by a fresh random nonce per request,
    // which the handler reads (RequestContext::csp_nonce, Python `csp_nonce(request)`) for its inline <script
    // nonce="...">: "script-src 'self' 'nonce-{nonce}'".
    std::string content_security_policy{};
    bool csp_report_only = false;                                     // send it as Content-Security-Policy-Report-Only
    bool content_type_options = true;                                 // X-Content-Type-Options: nosniff
    std::string referrer_policy = "strict-origin-when-cross-origin";  // "" none
    std::string frame_options = "DENY";                               // X-Frame-Options: DENY, SAMEORIGIN; "" none
    std::string cross_origin_opener_policy = "same-origin";           // "" none
};

class SecurityHeadersMiddleware final : public Middleware {
public:
    // Throws std::invalid_argument naming the option whose value cannot be a header value (CR, LF, NUL), an
    // X-Frame-Options other than DENY/SAMEORIGIN, or preload without include_subdomains and a year's max_age.
    explicit SecurityHeadersMiddleware(SecurityHeadersOptions options);
    ~SecurityHeadersMiddleware() override;

    // `before` only with a CSP nonce to make.
    unsigned hooks() const noexcept override;
    std::optional<Response> before(Request& request, RequestContext& context) override;
    void after(const Request& request, const RequestContext& context, Response& response) override;

private:
    // after() when the response already has fields (a name of the set may be among them) or a CSP nonce is on.
    void after_general(const Request& request, const RequestContext& context, Response& response) const;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace covet
