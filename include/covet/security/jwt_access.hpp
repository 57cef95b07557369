// Authorization on a verified JWT: the scopes and roles its claims grant, and the check that answers 401
// (no verified token) or 403 (a scope or role missing) as RFC 6750 §3.1 says. The C++ side of Python's
// `@requires(...)` (covet.security.authorization):
//
//     JwtBearerOptions{.paths = {"/api/"}, .rules = {{"/api/admin/", {.scopes = {"admin:write"}}}}}
//
// or, in a handler, for finer decisions:
//
//     if (auto denied = check_access(JwtBearerMiddleware::token(r), {.roles = {"admin"}})) return *denied;
//
// Scopes: the `scope` claim (space separated, RFC 8693 / RFC 9068) and `scp` (an array or a string). Roles:
// the `roles` claim (an array or a space-separated string, RFC 9068 §2.2.3.1) and Keycloak's
// `realm_access.roles`.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "covet/http/response.hpp"
#include "covet/security/json.hpp"
#include "covet/security/jwt_verifier.hpp"

namespace covet::security {

// What a resource needs: every scope and every role listed.
struct AccessRule {
    std::vector<std::string> scopes{};
    std::vector<std::string> roles{};
};

bool grants_scope(const json::Value& claims, std::string_view scope) noexcept;
bool grants_role(const json::Value& claims, std::string_view role) noexcept;

// nullopt when `token` grants all of `rule`. Otherwise the answer: no token, 401 `WWW-Authenticate: Bearer`
// (with `realm` when given) and {"detail":"Not authenticated"}; a scope or role missing, 403 with
// `WWW-Authenticate: Bearer error="insufficient_scope"` (plus `scope="<rule's scopes>"` when a scope is
// missing) and {"detail":"Not enough permissions"}.
std::optional<Response> check_access(const VerifiedToken* token, const AccessRule& rule, std::string_view realm = {});

}  // namespace covet::security
