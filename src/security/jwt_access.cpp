// Scope and role checks on verified JWT claims (see covet/security/jwt_access.hpp).
#include "covet/security/jwt_access.hpp"

namespace covet::security {

namespace {

// Whether `value` (a space-separated string or an array of strings) names `name`.
bool names(const json::Value* value, std::string_view name) noexcept {
    if (value == nullptr || name.empty()) return false;
    if (value->is_array()) {
        for (const json::Value& item : value->items())
            if (item.is_string() && item.as_string() == name) return true;
        return false;
    }
    if (!value->is_string()) return false;
    std::string_view rest = value->as_string();
    while (!rest.empty()) {
        const std::size_t space = rest.find(' ');
        if (rest.substr(0, space) == name) return true;
        if (space == std::string_view::npos) break;
        rest.remove_prefix(space + 1);
    }
    return false;
}

// Printable ASCII without '"' and '\\' (an RFC 6750 quoted parameter value).
void append_quoted(std::string& out, std::string_view text) {
    for (const char c : text)
        if (c >= 0x20 && c <= 0x7E && c != '"' && c != '\\') out.push_back(c);
}

}  // namespace

bool grants_scope(const json::Value& claims, std::string_view scope) noexcept {
    return names(claims.find("scope"), scope) || names(claims.find("scp"), scope);
}

bool grants_role(const json::Value& claims, std::string_view role) noexcept {
    if (names(claims.find("roles"), role)) return true;
    const json::Value* realm = claims.find("realm_access");
    return realm != nullptr && names(realm->find("roles"), role);
}

std::optional<Response> check_access(const VerifiedToken* token, const AccessRule& rule, std::string_view realm) {
    if (token == nullptr) {
        std::string challenge = "Bearer";
        if (!realm.empty()) {
            challenge += " realm=\"";
            append_quoted(challenge, realm);
            challenge += '"';
        }
        Response r = Response::json(R"({"detail":"Not authenticated"})", 401);
        r.add_header("WWW-Authenticate", challenge);
        return r;
    }
    bool scope_missing = false;
    for (const std::string& scope : rule.scopes) scope_missing = scope_missing || !grants_scope(token->claims, scope);
    bool role_missing = false;
    for (const std::string& role : rule.roles) role_missing = role_missing || !grants_role(token->claims, role);
    if (!scope_missing && !role_missing) return std::nullopt;
    std::string challenge = "Bearer ";
    if (!realm.empty()) {
        challenge += "realm=\"";
        append_quoted(challenge, realm);
        challenge += "\", ";
    }
    challenge += R"(error="insufficient_scope")";
    if (scope_missing) {
        challenge += R"(, scope=")";
        for (std::size_t i = 0; i < rule.scopes.size(); ++i) {
            if (i > 0) challenge += ' ';
            append_quoted(challenge, rule.scopes[i]);
        }
        challenge += '"';
    }
    Response r = Response::json(R"({"detail":"Not enough permissions"})", 403);
    r.add_header("WWW-Authenticate", challenge);
    return r;
}

}  // namespace covet::security
