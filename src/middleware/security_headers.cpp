// Security headers (see covet/middleware/security_headers.hpp): the fixed headers are checked and rendered once
// (covet::SharedFields) and attached to each response by pointer; only a CSP nonce is made per request.
#include "covet/middleware/security_headers.hpp"

#include <openssl/rand.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "covet/http/ascii.hpp"

namespace covet {

namespace {

void check_value(const char* option, std::string_view name, std::string_view value) {
    if (const char* why = field_error(name, value))
        throw std::invalid_argument(std::string("security headers: ") + option + ": " + why);
}

// Base64url of 16 random bytes: 22 characters, safe in a CSP source expression and an HTML attribute.
std::size_t make_nonce(char (&out)[32]) {
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1) return 0;
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::size_t n = 0;
    unsigned bits = 0, have = 0;
    for (const unsigned char byte : raw) {
        bits = (bits << 8) | byte, have += 8;
        while (have >= 6) out[n++] = alphabet[(bits >> (have -= 6)) & 63];
    }
    if (have) out[n++] = alphabet[(bits << (6 - have)) & 63];
    return n;
}

}  // namespace

struct SecurityHeadersMiddleware::Impl {
    struct Field {
        std::string name, value;
    };
    std::vector<Field> fixed;  // sent on every response (unless the handler set the same name)
    std::string hsts;          // "" none; https responses only
    std::string csp_name;      // Content-Security-Policy or its -Report-Only form
    std::string csp;           // a fixed policy (no nonce) is in `fixed` instead
    bool csp_nonce = false;    // `csp` has "{nonce}" placeholders
    // `fixed` rendered once, without and with HSTS: attached to responses by pointer (Response::set_shared_fields).
    std::optional<SharedFields> plain, https;
};

SecurityHeadersMiddleware::SecurityHeadersMiddleware(SecurityHeadersOptions o) : impl_(std::make_unique<Impl>()) {
    Impl& m = *impl_;
    if (o.hsts_max_age < 0) throw std::invalid_argument("security headers: hsts_max_age must be >= 0");
    if (o.hsts_preload && (!o.hsts_include_subdomains || o.hsts_max_age < 31536000))
        throw std::invalid_argument(
            "security headers: hsts_preload needs hsts_include_subdomains and hsts_max_age >= 31536000 (a year)");
    if (o.hsts_max_age > 0) {
        m.hsts = "max-age=" + std::to_string(o.hsts_max_age);
        if (o.hsts_include_subdomains) m.hsts += "; includeSubDomains";
        if (o.hsts_preload) m.hsts += "; preload";
    }
    m.csp_name = o.csp_report_only ? "Content-Security-Policy-Report-Only" : "Content-Security-Policy";
    check_value("content_security_policy", m.csp_name, o.content_security_policy);
    if (o.content_security_policy.find("{nonce}") != std::string::npos) {
        m.csp_nonce = true;
        m.csp = std::move(o.content_security_policy);
    } else if (!o.content_security_policy.empty()) {
        m.fixed.push_back({m.csp_name, std::move(o.content_security_policy)});
    }
    if (o.content_type_options) m.fixed.push_back({"X-Content-Type-Options", "nosniff"});
    check_value("referrer_policy", "Referrer-Policy", o.referrer_policy);
    if (!o.referrer_policy.empty()) m.fixed.push_back({"Referrer-Policy", std::move(o.referrer_policy)});
    if (!o.frame_options.empty()) {
        if (!iequals(o.frame_options, "DENY") && !iequals(o.frame_options, "SAMEORIGIN"))
            throw std::invalid_argument(
                "security headers: frame_options must be DENY or SAMEORIGIN (or \"\" for none), "
                "not \"" +
                o.frame_options + "\"; use the CSP's frame-ancestors for a list");
        m.fixed.push_back({"X-Frame-Options", std::move(o.frame_options)});
    }
    check_value("cross_origin_opener_policy", "Cross-Origin-Opener-Policy", o.cross_origin_opener_policy);
    if (!o.cross_origin_opener_policy.empty())
        m.fixed.push_back({"Cross-Origin-Opener-Policy", std::move(o.cross_origin_opener_policy)});
    Fields plain;
    for (const Impl::Field& f : m.fixed) plain.add(f.name, f.value);
    Fields https = plain;
    if (!m.hsts.empty()) https.add("Strict-Transport-Security", m.hsts);
    m.plain.emplace(std::move(plain));
    m.https.emplace(std::move(https));
}

SecurityHeadersMiddleware::~SecurityHeadersMiddleware() = default;

unsigned SecurityHeadersMiddleware::hooks() const noexcept { return impl_->csp_nonce ? all_hooks : after_hook; }

std::optional<Response> SecurityHeadersMiddleware::before(Request& /*request*/, RequestContext& context) {
    if (impl_->csp_nonce) {
        char nonce[32];
        context.set_csp_nonce({nonce, make_nonce(nonce)});
    }
    return std::nullopt;
}

void SecurityHeadersMiddleware::after(const Request& request, const RequestContext& context, Response& response) {
    const Impl& m = *impl_;
    // The usual case: no CSP nonce, a response with none of its own fields yet (so none of these names) and no
    // other pre-rendered set: the whole set goes by pointer (no copy, no allocation, no compare).
    if (!m.csp_nonce && response.headers().empty() && !response.shared_fields()) [[likely]] {
        // NOLINTNEXTLINE(bugprone-unchecked-optional-access): both sets are made by the constructor
        response.add_shared_fields(!m.hsts.empty() && request.scheme() == "https" ? &*m.https : &*m.plain);
        return;
    }
    after_general(request, context, response);
}

[[gnu::noinline]] void SecurityHeadersMiddleware::after_general(const Request& request, const RequestContext& context,
                                                                Response& response) const {
    const Impl& m = *impl_;
    // NOLINTNEXTLINE(bugprone-unchecked-optional-access): both sets are made by the constructor
    const SharedFields& set = !m.hsts.empty() && request.scheme() == "https" ? *m.https : *m.plain;
    // The handler (or another middleware's set) has none of these names: the pre-rendered set goes by pointer if
    // there is room for it. A handler's own header of one of these names wins: then the others are added one by one.
    bool collision = false;
    const auto check = [&](const Fields& fields) {
        for (const Fields::Field own : fields) {
            for (const Fields::Field f : set.fields)
                if (iequals(own.name, f.name)) collision = true;
            if (m.csp_nonce && iequals(own.name, m.csp_name)) collision = true;
        }
    };
    check(response.headers());
    for (std::size_t i = 0; const SharedFields* other = response.shared_fields(i); ++i) check(other->fields);
    // A name the response carries, as its own field or in an attached set.
    const auto present = [&response](std::string_view name) {
        if (response.has_header(name)) return true;
        for (std::size_t i = 0; const SharedFields* other = response.shared_fields(i); ++i)
            if (other->fields.get(name)) return true;
        return false;
    };
    if (collision || !response.add_shared_fields(&set)) {
        for (const Fields::Field f : set.fields)
            if (!present(f.name)) response.add_prechecked_header(f.name, f.value);
    }
    if (m.csp_nonce && !present(m.csp_name)) {
        std::string policy;
        const std::string_view nonce = context.csp_nonce();
        policy.reserve(m.csp.size() + 4 * nonce.size());
        std::size_t at = 0;
        for (std::size_t hit; (hit = m.csp.find("{nonce}", at)) != std::string::npos; at = hit + 7)
            policy.append(m.csp, at, hit - at).append(nonce);
        policy.append(m.csp, at);
        response.add_prechecked_header(m.csp_name, policy);
    }
}

}  // namespace covet
