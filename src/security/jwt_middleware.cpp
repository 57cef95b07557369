// Bearer JWT middleware (see covet/security/jwt_middleware.hpp).
#include "covet/security/jwt_middleware.hpp"

#include <deque>
#include <utility>

#include "covet/http/ascii.hpp"

namespace covet::security {

namespace {

// Verified tokens of the requests whose handler may run on this thread, keyed by the Request. `after` drops
// an entry; `before` drops any stale one first (a request at a reused address never inherits claims).
struct Verified {
    const Request* request;
    VerifiedToken token;
};
thread_local std::deque<Verified> verified_tokens;
constexpr std::size_t max_kept = 4096;  // bounds what exchanges that never reach `after` could leave

void forget(const Request& request) noexcept {
    for (auto it = verified_tokens.begin(); it != verified_tokens.end(); ++it)
        if (it->request == &request) {
            verified_tokens.erase(it);
            return;
        }
}

// An RFC 7230 quoted-string body from a fixed text: only what RFC 6750's error_description allows.
std::string quoted(std::string_view text) {
    std::string out;
    for (const char c : text)
        if (c >= 0x20 && c <= 0x7E && c != '"' && c != '\\') out.push_back(c);
    return out;
}

// The credentials of `Authorization: Bearer <token>` (scheme case-insensitive), or empty.
std::string_view bearer_token(const Request& request) noexcept {
    const auto value = request.header("authorization");
    if (!value) return {};
    std::string_view v = *value;
    constexpr std::string_view scheme = "bearer";
    if (v.size() <= scheme.size() || v[scheme.size()] != ' ') return {};
    for (std::size_t i = 0; i < scheme.size(); ++i)
        if (ascii_lower(v[i]) != scheme[i]) return {};
    v.remove_prefix(scheme.size());
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    return v;
}

}  // namespace

JwtBearerMiddleware::JwtBearerMiddleware(std::shared_ptr<const JwtVerifier> verifier, JwtBearerOptions options)
    : verifier_(std::move(verifier)), options_(std::move(options)) {}

Response JwtBearerMiddleware::unauthorized(const JwtStatus* status) const {
    std::string challenge = "Bearer";
    std::string detail = "Not authenticated";
    const char* sep = " ";
    if (!options_.realm.empty()) {
        challenge.append(" realm=\"").append(quoted(options_.realm)).append("\"");
        sep = ", ";
    }
    if (status != nullptr) {
        detail = quoted(status->message());
        challenge.append(sep).append(R"(error="invalid_token", error_description=")").append(detail).append("\"");
    }
    Response r = Response::json(R"({"detail":")" + detail + "\"}", 401);
    r.add_header("WWW-Authenticate", challenge);
    return r;
}

std::optional<Response> JwtBearerMiddleware::before(Request& request, RequestContext&) {
    forget(request);
    bool guarded = false;
    for (const std::string& prefix : options_.paths) guarded = guarded || request.path().starts_with(prefix);
    if (!guarded) return std::nullopt;
    const std::string_view token = bearer_token(request);
    if (token.empty()) return unauthorized(nullptr);
    VerifiedToken verified;
    if (JwtStatus status = verifier_->verify(token, verified); !status) return unauthorized(&status);
    const AccessRule* rule = nullptr;
    std::size_t matched = 0;
    for (const auto& [prefix, candidate] : options_.rules)
        if (request.path().starts_with(prefix) && (rule == nullptr || prefix.size() > matched)) {
            rule = &candidate;
            matched = prefix.size();
        }
    if (rule != nullptr)
        if (auto denied = check_access(&verified, *rule, options_.realm)) return denied;
    if (verified_tokens.size() >= max_kept) verified_tokens.pop_front();
    verified_tokens.push_back({&request, std::move(verified)});
    return std::nullopt;
}

void JwtBearerMiddleware::after(const Request& request, const RequestContext&, Response&) { forget(request); }

const VerifiedToken* JwtBearerMiddleware::token(const Request& request) noexcept {
    for (const Verified& v : verified_tokens)
        if (v.request == &request) return &v.token;
    return nullptr;
}

}  // namespace covet::security
