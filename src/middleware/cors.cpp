// CORS (see covet/middleware/cors.hpp): the preflight answer and the headers of simple responses are
// computed once here; per request only the Origin is compared.
#include "covet/middleware/cors.hpp"

#include <algorithm>
#include <regex>
#include <set>
#include <stdexcept>

#include "covet/http/ascii.hpp"

namespace covet {

namespace {

constexpr std::string_view all_methods[] = {"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY"};
constexpr std::string_view safelisted_headers[] = {"Accept", "Accept-Language", "Content-Language", "Content-Type"};
constexpr std::string_view preflight_vary =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network";

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const std::string& item : items) {
        if (!out.empty()) out += ", ";
        out += item;
    }
    return out;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = ascii_lower(c);
    return out;
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool contains(const std::vector<std::string>& items, std::string_view item) {
    return std::find(items.begin(), items.end(), item) != items.end();
}

// Vary: every value it has, joined, then `value` (Starlette's add_vary_header).
void append_vary(Response& response, std::string_view value) {
    std::string joined;
    for (const Fields::Field f : response.headers())
        if (iequals(f.name, "vary")) joined.append(f.value).append(", ");
    joined += value;
    response.set_header("Vary", joined);
}

}  // namespace

struct CorsMiddleware::Impl {
    CorsOptions o;
    std::optional<std::regex> origin_regex;
    bool allow_all_origins = false;
    bool allow_all_headers = false;
    bool preflight_explicit_origin = false;
    std::vector<std::string> methods;          // allowed (after "*")
    std::vector<std::string> allowed_headers;  // lowercased, with the safelisted ones
    // Preflight header values computed once.
    std::string allow_methods_value, max_age_value, allow_headers_value, expose_value;
};

CorsMiddleware::CorsMiddleware(CorsOptions options) : impl_(std::make_unique<Impl>()) {
    Impl& m = *impl_;
    m.o = std::move(options);
    if (contains(m.o.allow_methods, "*"))
        m.methods.assign(std::begin(all_methods), std::end(all_methods));
    else
        m.methods = m.o.allow_methods;
    if (!m.o.allow_origin_regex.empty()) {
        try {
            m.origin_regex.emplace(m.o.allow_origin_regex, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
            throw std::invalid_argument("CORS allow_origin_regex " + m.o.allow_origin_regex +
                                        " does not compile: " + e.what());
        }
    }
    m.allow_all_origins = contains(m.o.allow_origins, "*");
    m.allow_all_headers = contains(m.o.allow_headers, "*");
    m.preflight_explicit_origin = !m.allow_all_origins || m.o.allow_credentials;
    std::set<std::string> headers(m.o.allow_headers.begin(), m.o.allow_headers.end());
    headers.insert(std::begin(safelisted_headers), std::end(safelisted_headers));
    std::vector<std::string> sorted(headers.begin(), headers.end());  // std::set sorts as Python's sorted()
    m.allow_headers_value = join(sorted);
    for (const std::string& h : sorted) m.allowed_headers.push_back(lower(h));
    m.allow_methods_value = join(m.methods);
    m.max_age_value = std::to_string(m.o.max_age);
    m.expose_value = join(m.o.expose_headers);
    // Values are checked now, not on the first request.
    Response probe;
    probe.add_header("Access-Control-Allow-Methods", m.allow_methods_value);
    probe.add_header("Access-Control-Allow-Headers", m.allow_headers_value);
    probe.add_header("Access-Control-Expose-Headers", m.expose_value);
}

CorsMiddleware::~CorsMiddleware() = default;

bool CorsMiddleware::allowed_origin(std::string_view origin) const {
    const Impl& m = *impl_;
    if (m.allow_all_origins) return true;
    if (m.origin_regex && std::regex_match(origin.begin(), origin.end(), *m.origin_regex)) return true;
    return contains(m.o.allow_origins, origin);
}

namespace {
bool is_preflight(const Request& r) noexcept {
    return r.method() == Method::options && r.header("origin") && r.header("access-control-request-method");
}
}  // namespace

std::optional<Response> CorsMiddleware::before(Request& request, RequestContext&) {
    if (!is_preflight(request)) return std::nullopt;
    const Impl& m = *impl_;
    const std::string_view origin = *request.header("origin");
    const std::string_view method = *request.header("access-control-request-method");
    const std::optional<std::string_view> requested_headers = request.header("access-control-request-headers");
    const std::optional<std::string_view> private_network = request.header("access-control-request-private-network");

    Response r = Response::text("");
    r.add_header("Vary", preflight_vary);
    if (!m.preflight_explicit_origin) r.add_header("Access-Control-Allow-Origin", "*");
    r.add_header("Access-Control-Allow-Methods", m.allow_methods_value);
    r.add_header("Access-Control-Max-Age", m.max_age_value);
    if (!m.allow_all_headers) r.add_header("Access-Control-Allow-Headers", m.allow_headers_value);
    if (m.o.allow_credentials) r.add_header("Access-Control-Allow-Credentials", "true");

    std::string failures;
    const auto fail = [&failures](std::string_view what) {
        if (!failures.empty()) failures += ", ";
        failures += what;
    };
    if (allowed_origin(origin)) {
        if (m.preflight_explicit_origin) r.set_header("Access-Control-Allow-Origin", origin);
    } else {
        fail("origin");
    }
    if (!contains(m.methods, method)) fail("method");
    if (m.allow_all_headers && requested_headers) {
        r.set_header("Access-Control-Allow-Headers", *requested_headers);
    } else if (requested_headers) {
        std::string_view rest = *requested_headers;
        while (true) {
            const std::size_t comma = rest.find(',');
            const std::string name = lower(trim(rest.substr(0, comma)));
            if (!contains(m.allowed_headers, name)) {
                fail("headers");
                break;
            }
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
        }
    }
    if (private_network) {
        if (m.o.allow_private_network)
            r.set_header("Access-Control-Allow-Private-Network", "true");
        else
            fail("private-network");
    }
    if (failures.empty()) {
        r.set_body("OK");
    } else {
        r.set_status(400);
        r.set_body("Disallowed CORS " + failures);
    }
    return r;
}

void CorsMiddleware::after(const Request& request, const RequestContext&, Response& response) {
    if (is_preflight(request)) return;  // answered by before(): Starlette sends it as it is
    const Impl& m = *impl_;
    const std::optional<std::string_view> origin = request.header("origin");
    if (origin) {
        if (m.allow_all_origins) response.set_header("Access-Control-Allow-Origin", "*");
        if (m.o.allow_credentials) response.set_header("Access-Control-Allow-Credentials", "true");
        if (!m.o.expose_headers.empty()) response.set_header("Access-Control-Expose-Headers", m.expose_value);
    }
    if (origin &&
        ((m.allow_all_origins && m.o.allow_credentials) || (!m.allow_all_origins && allowed_origin(*origin)))) {
        response.set_header("Access-Control-Allow-Origin", *origin);
    }
    append_vary(response, "Origin");
}

}  // namespace covet
