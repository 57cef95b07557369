// CSRF protection (see covet/middleware/csrf.hpp).
#include "covet/middleware/csrf.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "covet/http/ascii.hpp"
#include "covet/security/base64url.hpp"

namespace covet {

namespace {

constexpr std::size_t random_bytes = 16;

bool safe_method(Method m) noexcept {
    return m == Method::get || m == Method::head || m == Method::options || m == Method::trace;
}

bool istarts_with(std::string_view s, std::string_view prefix) noexcept {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// The value of cookie `name` in the request's Cookie header(s); empty when absent.
std::string_view cookie_value(const Request& request, std::string_view name) noexcept {
    for (const Header& h : request.headers()) {
        if (h.name.size() != 6 || !iequals(h.name, "cookie")) continue;
        std::string_view rest = h.value;
        while (!rest.empty()) {
            const std::size_t semi = rest.find(';');
            const std::string_view pair = trim_ows(rest.substr(0, semi));
            rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
            const std::size_t eq = pair.find('=');
            if (eq != std::string_view::npos && trim_ows(pair.substr(0, eq)) == name) {
                std::string_view v = trim_ows(pair.substr(eq + 1));
                if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
                return v;
            }
        }
    }
    return {};
}

int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Percent-decodes (and '+' as space) into `out`, at most `limit` bytes; false when longer or malformed.
bool form_decode(std::string_view in, std::string& out, std::size_t limit) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        char c = in[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= in.size()) return false;
            const int hi = hex_digit(in[i + 1]), lo = hex_digit(in[i + 2]);
            if (hi < 0 || lo < 0) return false;
            c = static_cast<char>(hi * 16 + lo);
            i += 2;
        }
        if (out.size() >= limit) return false;
        out += c;
    }
    return true;
}

// The value of field `name` in an application/x-www-form-urlencoded body.
bool urlencoded_field(std::string_view body, std::string_view name, std::string& out) {
    while (!body.empty()) {
        const std::size_t amp = body.find('&');
        const std::string_view pair = body.substr(0, amp);
        body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
        const std::size_t eq = pair.find('=');
        if (eq != std::string_view::npos && pair.substr(0, eq) == name)
            return form_decode(pair.substr(eq + 1), out, 256);
    }
    return false;
}

// The value of the part named `name` in a multipart/form-data body (a short text field: the token).
bool multipart_field(std::string_view body, std::string_view content_type, std::string_view name, std::string& out) {
    const std::size_t b = content_type.find("boundary=");
    if (b == std::string_view::npos) return false;
    std::string_view boundary = content_type.substr(b + 9);
    boundary = boundary.substr(0, boundary.find(';'));
    boundary = trim_ows(boundary);
    if (boundary.size() >= 2 && boundary.front() == '"' && boundary.back() == '"')
        boundary = boundary.substr(1, boundary.size() - 2);
    if (boundary.empty()) return false;
    const std::string needle = "name=\"" + std::string(name) + "\"";
    std::string delimiter = "\r\n--";
    delimiter += boundary;
    std::size_t at = 0;
    while ((at = body.find(needle, at)) != std::string_view::npos) {
        // The needle must be in a part's head (before its blank line) and be exactly the name (not name="x_y").
        const std::size_t head_end = body.find("\r\n\r\n", at);
        if (head_end == std::string_view::npos) return false;
        const std::size_t value_end = body.find(delimiter, head_end + 4);
        if (value_end == std::string_view::npos) return false;
        const std::string_view value = body.substr(head_end + 4, value_end - head_end - 4);
        if (value.size() > 256) return false;
        out.assign(value);
        return true;
    }
    return false;
}

bool equal_ct(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// "https://Example.com:8443" -> "example.com:8443": the host (and port) of an Origin; empty for "null" or junk.
std::string_view origin_host(std::string_view origin) noexcept {
    const std::size_t sep = origin.find("://");
    if (sep == std::string_view::npos) return {};
    const std::string_view host = origin.substr(sep + 3);
    if (host.empty() || host.find_first_of("/?#@") != std::string_view::npos) return {};
    return host;
}

}  // namespace

struct CsrfMiddleware::Impl {
    CsrfOptions o;
    std::vector<std::string> trusted;  // lowercased origins
    std::string cookie_attributes;     // "; Path=/; SameSite=Lax"
};

CsrfMiddleware::CsrfMiddleware(CsrfOptions options) : impl_(std::make_unique<Impl>()) {
    Impl& m = *impl_;
    m.o = std::move(options);
    if (m.o.secret.size() < 16)
        throw std::invalid_argument("CSRF: the secret must be at least 16 bytes (32 random bytes recommended), got " +
                                    std::to_string(m.o.secret.size()));
    for (const std::string& origin : m.o.trusted_origins) {
        if (origin_host(origin).empty() || origin.find('/', origin.find("://") + 3) != std::string::npos)
            throw std::invalid_argument("CSRF: trusted origin \"" + origin +
                                        "\" is not scheme://host[:port] (no path, no trailing slash)");
        std::string lower(origin);
        for (char& c : lower) c = ascii_lower(c);
        m.trusted.push_back(std::move(lower));
    }
    for (const std::string* name : {&m.o.cookie_name, &m.o.header_name, &m.o.form_field})
        if (field_error(*name, "") != nullptr)
            throw std::invalid_argument("CSRF: \"" + *name + "\" is not a valid cookie, header or field name");
    if (!iequals(m.o.cookie_samesite, "Lax") && !iequals(m.o.cookie_samesite, "Strict") &&
        !iequals(m.o.cookie_samesite, "None"))
        throw std::invalid_argument("CSRF: cookie_samesite must be Lax, Strict or None");
    m.cookie_attributes = "; Path=/; SameSite=" + m.o.cookie_samesite;
}

CsrfMiddleware::~CsrfMiddleware() = default;

std::string CsrfMiddleware::new_token() const {
    unsigned char raw[random_bytes];
    if (RAND_bytes(raw, sizeof raw) != 1) throw std::runtime_error("CSRF: RAND_bytes failed");
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), impl_->o.secret.data(), static_cast<int>(impl_->o.secret.size()), raw, sizeof raw, mac,
         &mac_len);
    return security::base64url_encode({reinterpret_cast<const char*>(raw), sizeof raw}) + "." +
           security::base64url_encode({reinterpret_cast<const char*>(mac), mac_len});
}

bool CsrfMiddleware::valid_token(std::string_view token) const noexcept {
    const std::size_t dot = token.find('.');
    if (dot == std::string_view::npos || token.size() > RequestContext::max_token) return false;
    try {
        std::string raw, mac;
        if (!security::base64url_decode(token.substr(0, dot), raw) || raw.size() != random_bytes) return false;
        if (!security::base64url_decode(token.substr(dot + 1), mac)) return false;
        unsigned char expected[EVP_MAX_MD_SIZE];
        unsigned int expected_len = 0;
        HMAC(EVP_sha256(), impl_->o.secret.data(), static_cast<int>(impl_->o.secret.size()),
             reinterpret_cast<const unsigned char*>(raw.data()), raw.size(), expected, &expected_len);
        return equal_ct(mac, {reinterpret_cast<const char*>(expected), expected_len});
    } catch (...) {
        return false;
    }
}

std::optional<Response> CsrfMiddleware::before(Request& request, RequestContext& context) {
    const Impl& m = *impl_;
    const std::string_view cookie = cookie_value(request, m.o.cookie_name);
    const bool cookie_ok = !cookie.empty() && valid_token(cookie);
    if (cookie_ok) {
        context.set_csrf_token(cookie);
    } else {
        context.set_csrf_token(new_token());
        context.csrf_cookie_new = true;
    }
    if (safe_method(request.method())) return std::nullopt;

    const std::string_view path = request.path();
    for (const std::string& exempt : m.o.exempt_paths) {
        const bool prefix = !exempt.empty() && exempt.back() == '*';
        if (prefix ? path.starts_with(std::string_view(exempt).substr(0, exempt.size() - 1)) : path == exempt)
            return std::nullopt;
    }
    if (m.o.exempt_bearer && !request.header("cookie")) {
        if (const auto auth = request.header("authorization"); auth && istarts_with(trim_ows(*auth), "bearer "))
            return std::nullopt;
    }
    const auto refuse = [](const std::string& why) {
        Response r = Response::text("Forbidden: CSRF check failed: " + why + "\n", 403);
        return std::optional<Response>(std::move(r));
    };

    // 1. Where the request comes from.
    const std::optional<std::string_view> origin = request.header("origin");
    const auto trusted_origin = [&] {
        if (!origin) return false;
        const std::string_view o = trim_ows(*origin);
        return std::any_of(m.trusted.begin(), m.trusted.end(), [&](const std::string& t) { return iequals(t, o); });
    };
    if (const std::optional<std::string_view> site = request.header("sec-fetch-site")) {
        const std::string_view s = trim_ows(*site);
        if (s != "same-origin" && s != "none" && !trusted_origin())
            return refuse("cross-origin request (Sec-Fetch-Site: " + std::string(s) + ") from " +
                          (origin ? "Origin " + std::string(trim_ows(*origin)) : std::string("an unknown origin")) +
                          ", which is not a trusted origin");
    } else if (origin) {
        const std::string_view host = origin_host(trim_ows(*origin));
        const std::optional<std::string_view> request_host = request.header("host");
        if ((host.empty() || !request_host || !iequals(host, trim_ows(*request_host))) && !trusted_origin())
            return refuse("Origin " + std::string(trim_ows(*origin)) + " does not match the Host " +
                          std::string(request_host ? trim_ows(*request_host) : "(none)") +
                          " and is not a trusted origin");
    }
    if (!m.o.check_token) return std::nullopt;

    // 2. The double-submit token.
    const std::optional<std::string_view> header_token = request.header(m.o.header_name);
    const std::string_view content_type = trim_ows(request.header("content-type").value_or(""));
    const bool urlencoded = istarts_with(content_type, "application/x-www-form-urlencoded");
    const bool multipart = istarts_with(content_type, "multipart/form-data");
    const bool form_like = content_type.empty() || urlencoded || multipart || istarts_with(content_type, "text/plain");
    if (!header_token && !form_like) return std::nullopt;  // a JSON (etc.) body needs a CORS preflight cross-origin
    if (!cookie_ok)
        return refuse(cookie.empty() ? "the " + m.o.cookie_name + " cookie is missing (load the form first)"
                                     : "the " + m.o.cookie_name + " cookie is not one this server signed");
    std::string submitted;
    if (header_token) {
        submitted.assign(trim_ows(*header_token));
    } else if (request.body_streamed()) {
        return refuse("the body is too large to look for the token: send it in the " + m.o.header_name + " header");
    } else if (!(urlencoded && urlencoded_field(request.body(), m.o.form_field, submitted)) &&
               !(multipart && multipart_field(request.body(), content_type, m.o.form_field, submitted))) {
        return refuse("the token is missing: send it in the form field " + m.o.form_field + " or the " +
                      m.o.header_name + " header");
    }
    if (!equal_ct(submitted, cookie)) return refuse("the token does not match the " + m.o.cookie_name + " cookie");
    return std::nullopt;
}

void CsrfMiddleware::after(const Request& request, const RequestContext& context, Response& response) {
    if (!context.csrf_cookie_new || context.csrf_token().empty()) return;
    std::string cookie = impl_->o.cookie_name;
    cookie.append("=").append(context.csrf_token()).append(impl_->cookie_attributes);
    if (request.scheme() == "https") cookie += "; Secure";
    response.add_header("Set-Cookie", cookie);
}

}  // namespace covet
