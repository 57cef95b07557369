// JwtBearerMiddleware: requires `Authorization: Bearer <JWT>` on the requests under its path prefixes and
// verifies it with a JwtVerifier before the handler runs. A request without a bearer token is answered
// 401 with `WWW-Authenticate: Bearer realm="..."` (no error code, RFC 6750 §3.1); a token that fails gets
// 401 with `Bearer realm="...", error="invalid_token", error_description="<cause>"` and a JSON body
// {"detail": "<cause>"}. The cause is one of the fixed texts of JwtError, never the token.
//
// The handler reads the verified claims with JwtBearerMiddleware::token(request), on the request's thread
// during the handler call (the middleware keeps them until its `after` hook, keyed by the request).
//
//     auto verifier = std::make_shared<JwtVerifier>(VerifyOptions{.algorithms = {JwtAlgorithm::ES256},
//                                                                 .audiences = {"api"}}, keys);
//     app.use(std::make_unique<JwtBearerMiddleware>(verifier, JwtBearerOptions{.paths = {"/api/"}}));
//     app.get("/api/me", [](Request& r) {
//         const VerifiedToken* t = JwtBearerMiddleware::token(r);
//         return Response::text(std::string(t->claims.string_member("sub")));
//     });
//
// `rules` add authorization by path prefix (scopes and roles the token must grant: 403 otherwise).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "covet/middleware/middleware.hpp"
#include "covet/security/jwt_access.hpp"
#include "covet/security/jwt_verifier.hpp"

namespace covet::security {

struct JwtBearerOptions {
    std::vector<std::string> paths{"/"};  // path prefixes that require a token
    std::string realm{};                  // "": no realm parameter
    // Authorization by path prefix: a verified token must also grant the rule of the longest prefix that
    // matches the path (else 403 insufficient_scope, see covet/security/jwt_access.hpp).
    std::vector<std::pair<std::string, AccessRule>> rules{};
};

class JwtBearerMiddleware final : public Middleware {
public:
    explicit JwtBearerMiddleware(std::shared_ptr<const JwtVerifier> verifier, JwtBearerOptions options = {});
    std::optional<Response> before(Request& request, RequestContext& context) override;
    void after(const Request& request, const RequestContext& context, Response& response) override;

    // The verified token of `request`, during its handler; null when the middleware did not verify one.
    static const VerifiedToken* token(const Request& request) noexcept;

    // The 401 answer for `status` (none: the token was missing), as sent; public for other bearer checks.
    Response unauthorized(const JwtStatus* status) const;

private:
    std::shared_ptr<const JwtVerifier> verifier_;
    JwtBearerOptions options_;
};

}  // namespace covet::security
