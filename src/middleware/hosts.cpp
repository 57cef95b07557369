// TrustedHost and HTTPSRedirect (see covet/middleware/hosts.hpp).
#include "covet/middleware/hosts.hpp"

#include <stdexcept>

#include "covet/http/ascii.hpp"

namespace covet {

namespace {

bool reg_name_char(char c) noexcept {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("._~%!$&'()*+,;=-").find(c) != std::string_view::npos;
}

bool hex_digit(char c) noexcept { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

Response invalid_host() { return Response::text("Invalid host header", 400); }

Response redirect(const std::string& location) {
    Response r(307);
    r.add_header("location", location);
    return r;
}

// The request's path and query as sent (origin-form).
std::string path_and_query(const Request& r) {
    std::string out(r.path().empty() ? std::string_view("/") : r.path());
    if (!r.query_string().empty()) out.append("?").append(r.query_string());
    return out;
}

}  // namespace

bool parse_host_header(std::string_view value, std::string_view& host, std::string_view& port) noexcept {
    std::size_t end = 0;
    if (!value.empty() && value.front() == '[') {  // an IP literal: hex digits, ':' and '.' (or "v..." forms)
        const std::size_t close = value.find(']');
        if (close == std::string_view::npos || close < 2) return false;
        const std::string_view inside = value.substr(1, close - 1);
        if (inside.front() == 'v') {
            for (const char c : inside.substr(1))
                if (!reg_name_char(c) && c != ':') return false;
        } else {
            if (inside.find(':') == std::string_view::npos) return false;
            for (const char c : inside)
                if (!hex_digit(c) && c != ':' && c != '.') return false;
        }
        end = close + 1;
    } else {
        while (end < value.size() && reg_name_char(value[end])) ++end;
        if (end == 0) return false;
    }
    host = value.substr(0, end);
    port = {};
    if (end == value.size()) return true;
    if (value[end] != ':' || end + 1 == value.size()) return false;
    port = value.substr(end + 1);
    for (const char c : port)
        if (c < '0' || c > '9') return false;
    return true;
}

TrustedHostMiddleware::TrustedHostMiddleware(TrustedHostOptions options) : www_redirect_(options.www_redirect) {
    for (std::string& pattern : options.allowed_hosts) {
        const bool bad_star = pattern.find('*', 1) != std::string::npos ||
                              (pattern.starts_with('*') && pattern != "*" && !pattern.starts_with("*."));
        if (bad_star)
            throw std::invalid_argument("TrustedHostMiddleware: allowed host " + pattern +
                                        ": domain wildcard patterns must be like '*.example.com'");
        if (pattern == "*") allow_any_ = true;
        for (char& c : pattern) c = ascii_lower(c);
        allowed_.push_back(std::move(pattern));
    }
}

std::optional<Response> TrustedHostMiddleware::before(Request& request, RequestContext&) { return check(request); }

std::optional<Response> TrustedHostMiddleware::before_upgrade(Request& request) { return check(request); }

std::optional<Response> TrustedHostMiddleware::check(const Request& request) const {
    if (allow_any_) return std::nullopt;
    const std::optional<std::string_view> header = request.header("host");
    std::string_view host_view, port;
    if (!header || !parse_host_header(*header, host_view, port)) return invalid_host();
    char buf[256];
    if (host_view.size() > sizeof buf) return invalid_host();
    for (std::size_t i = 0; i < host_view.size(); ++i) buf[i] = ascii_lower(host_view[i]);
    const std::string_view host(buf, host_view.size());

    bool www_allowed = false;
    for (const std::string& pattern : allowed_) {
        if (host == pattern) return std::nullopt;
        if (pattern.starts_with('*') && host.ends_with(std::string_view(pattern).substr(1))) return std::nullopt;
        if (pattern.size() == host.size() + 4 && pattern.starts_with("www.") && pattern.ends_with(host))
            www_allowed = true;
    }
    if (www_allowed && www_redirect_)
        return redirect(std::string(request.scheme()) + "://www." + std::string(*header) + path_and_query(request));
    return invalid_host();
}

std::optional<Response> HttpsRedirectMiddleware::before(Request& request, RequestContext&) {
    // As Starlette's: http and ws (a trusted proxy's X-Forwarded-Proto may say ws) go to https and wss.
    const std::string_view scheme = request.scheme();
    if (scheme != "http" && scheme != "ws") return std::nullopt;
    const std::optional<std::string_view> header = request.header("host");
    if (!header || header->empty()) return invalid_host();
    std::string netloc(*header);
    std::string_view host, port;
    if (parse_host_header(*header, host, port) && (port == "80" || port == "443")) {
        netloc.assign(host);
        for (char& c : netloc) c = ascii_lower(c);
    }
    return redirect((scheme == "ws" ? "wss://" : "https://") + netloc + path_and_query(request));
}

}  // namespace covet
