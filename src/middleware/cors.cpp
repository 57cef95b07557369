// CORS (see covet/middleware/cors.hpp): the preflight answer and the headers of simple responses are
// computed once here; per request only the Origin is compared.
#include "covet/middleware/cors.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <regex>
#include <set>
#include <stdexcept>

#include "covet/http/ascii.hpp"

namespace covet {

namespace {

constexpr std::string_view all_methods[] = {"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY"};
constexpr std::string_view safelisted_headers[] = {"Accept", "Accept-Language", "Content-Language", "Content-Type"};
constexpr std::string_view allow_origin_name = "Access-Control-Allow-Origin";
constexpr std::string_view allow_credentials_name = "Access-Control-Allow-Credentials";
constexpr std::string_view expose_name = "Access-Control-Expose-Headers";
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

bool contains(const std::vector<std::string>& items, std::string_view item) {
    return std::find(items.begin(), items.end(), item) != items.end();
}

// Vary: every value it has, joined, then `value` (Starlette's add_vary_header).
void append_vary(Response& response, std::string_view value) {
    if (!response.has_header("vary")) {  // the usual case: nothing to join (`value` is one of ours: no check)
        response.add_prechecked_header("Vary", value);
        return;
    }
    std::string joined;
    for (const Fields::Field f : response.headers())
        if (iequals(f.name, "vary")) joined.append(f.value).append(", ");
    joined += value;
    response.set_header("Vary", joined);
}

std::optional<std::string_view> origin_header(const Request& request) noexcept {
    if (const Header* h = request.origin_field()) return h->value;
    return std::nullopt;
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
    // Every configured origin passes field_error: an Origin equal to one of them is echoed with no scan.
    bool exact_origins_clean = true;
    // The fields after() adds in the usual case (the response has none of them yet), built once so that a
    // response gets them in one copy: per configured origin (parallel to o.allow_origins; empty unless
    // exact_origins_clean), for any origin under "*" without credentials, and for a request without Origin.
    // Pre-rendered (SharedFields): attached to the response by pointer when it has room for one more set.
    std::vector<SharedFields> exact_fields;
    std::optional<SharedFields> any_origin_fields, no_origin_fields;
    // The configured origin equal to `origin` (a length check, then the bytes), or null.
    const std::string* exact_origin(std::string_view origin) const noexcept {
        for (const std::string& o : this->o.allow_origins)
            if (o == origin) return &o;
        return nullptr;
    }
    // The set built at construction that answers `request` when the response has no CORS fields yet: for no Origin,
    // any origin under "*" without credentials, or a configured origin (all checked clean); null: none applies.
    const SharedFields* simple_fields(const Request& request) const noexcept {
        const Header* origin = request.origin_field();
        if (!origin) return &*no_origin_fields;  // NOLINT(bugprone-unchecked-optional-access): set by the constructor
        if (allow_all_origins) return any_origin_set;
        const std::string* exact = exact_fields.empty() ? nullptr : exact_origin(origin->value);
        return exact ? &exact_fields[static_cast<std::size_t>(exact - o.allow_origins.data())] : nullptr;
    }
    // simple_fields for after()'s inline path, without a call or a nested loop (so no registers to save): an Origin
    // of 8 to 32 bytes (URL origins mostly are) is four 8-byte words, compared with the table's; null when the
    // answer is not found so (after_general then asks simple_fields).
    const SharedFields* quick_simple_fields(const Request& request) const noexcept {
        const Header* origin = request.origin_field();  // a pointer, not an optional view: nothing spilled
        if (!origin) return &*no_origin_fields;  // NOLINT(bugprone-unchecked-optional-access): set by the constructor
        if (allow_all_origins) return any_origin_set;
        const std::size_t n = origin->value.size();
        if (n - 8 > 32 - 8) return nullptr;
        const OriginWords words(origin->value.data(), n);
        for (const SimpleOrigin* simple = simple_origins.data();; ++simple) {
            if (simple->size == n && simple->words == words) {
                if (!simple->fields) __builtin_unreachable();  // (every entry has a set: no test)
                return simple->fields;
            }
            if (simple->size == 0) return nullptr;
        }
    }
    // An origin of 8 to 32 bytes as four overlapping 8-byte words that cover it: at 0, min(8, n-8), max(0, n-16) and
    // n-8. Two origins of one length are equal when their words are.
    struct OriginWords {
        std::uint64_t w0, w1, w2, w3;
        OriginWords(const char* p, std::size_t n) noexcept
            : w0(load8(p)),
              w1(load8(p + (n < 16 ? n - 8 : 8))),
              w2(load8(p + (n > 16 ? n - 16 : 0))),
              w3(load8(p + n - 8)) {}
        bool operator==(const OriginWords&) const noexcept = default;
    };
    // quick_simple_fields' table, flat: each configured origin of 8 to 32 bytes (none unless exact_origins_clean)
    // with its words and its set, and a last entry of size 0.
    struct SimpleOrigin {
        std::size_t size;
        OriginWords words;
        const SharedFields* fields;
    };
    std::vector<SimpleOrigin> simple_origins;
    const SharedFields* any_origin_set = nullptr;
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
    for (const std::string& origin : m.o.allow_origins)
        if (field_error("Access-Control-Allow-Origin", origin)) m.exact_origins_clean = false;
    // Values are checked now, not on the first request.
    Response probe;
    probe.add_header("Access-Control-Allow-Methods", m.allow_methods_value);
    probe.add_header("Access-Control-Allow-Headers", m.allow_headers_value);
    probe.add_header("Access-Control-Expose-Headers", m.expose_value);
    // after()'s fields for a request with an Origin answered `allow_origin` ("": none), in its order.
    const auto simple_fields = [&m](std::string_view allow_origin) {
        Fields f;
        if (!allow_origin.empty()) f.add(allow_origin_name, allow_origin);
        if (m.o.allow_credentials) f.add(allow_credentials_name, "true");
        if (!m.o.expose_headers.empty()) f.add(expose_name, m.expose_value);
        f.add("Vary", "Origin");
        return f;
    };
    Fields vary;
    vary.add("Vary", "Origin");
    m.no_origin_fields.emplace(std::move(vary));
    m.any_origin_fields.emplace(simple_fields("*"));
    if (m.exact_origins_clean) {
        m.exact_fields.reserve(m.o.allow_origins.size());  // never moved after this: responses point into it
        for (const std::string& origin : m.o.allow_origins) m.exact_fields.emplace_back(simple_fields(origin));
        for (std::size_t i = 0; i < m.exact_fields.size(); ++i) {
            const std::string& origin = m.o.allow_origins[i];
            if (origin.size() >= 8 && origin.size() <= 32)
                m.simple_origins.push_back(
                    {origin.size(), Impl::OriginWords(origin.data(), origin.size()), &m.exact_fields[i]});
        }
    }
    m.simple_origins.push_back({0, Impl::OriginWords("........", 8), nullptr});  // the table's end
    if (!m.o.allow_credentials) m.any_origin_set = &*m.any_origin_fields;
}

CorsMiddleware::~CorsMiddleware() = default;

bool CorsMiddleware::allowed_origin(std::string_view origin) const {
    const Impl& m = *impl_;
    if (m.allow_all_origins) return true;
    if (m.exact_origin(origin)) return true;
    return m.origin_regex && std::regex_match(origin.begin(), origin.end(), *m.origin_regex);
}

namespace {
bool is_preflight(const Request& r) noexcept {
    return r.method() == Method::options && r.header("origin") && r.header("access-control-request-method");
}
}  // namespace

std::optional<Response> CorsMiddleware::preflight(const Request& request) const {
    if (!is_preflight(request)) return std::nullopt;
    const Impl& m = *impl_;
    const std::string_view origin = request.header("origin").value_or("");  // both present: is_preflight
    const std::string_view method = request.header("access-control-request-method").value_or("");
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
            const std::string name = lower(trim_ows(rest.substr(0, comma)));
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

namespace {
// CR, LF or NUL: a value that would split the response (field_error's value check, as one loop).
bool splits_header(std::string_view value) noexcept {
    for (const char c : value)
        if (c == '\r' || c == '\n' || c == '\0') return true;
    return false;
}
// Whether `fields` has a field that after() replaces or joins (then it takes the general path).
bool has_cors_field(const Fields& fields) noexcept {
    for (const Fields::Field f : fields) {
        const std::size_t n = f.name.size();
        if ((n == 4 && iequals(f.name, "vary")) ||
            (n == allow_origin_name.size() && iequals(f.name, allow_origin_name)) ||
            (n == allow_credentials_name.size() && iequals(f.name, allow_credentials_name)) ||
            (n == expose_name.size() && iequals(f.name, expose_name)))
            return true;
    }
    return false;
}
// The same for a response: its own fields and the sets attached to it.
bool has_cors_field(const Response& response) noexcept {
    if (!response.headers().empty() && has_cors_field(response.headers())) return true;
    for (std::size_t i = 0; const SharedFields* set = response.shared_fields(i); ++i)
        if (has_cors_field(set->fields)) return true;
    return false;
}
}  // namespace

void CorsMiddleware::after(const Request& request, const RequestContext& /*context*/, Response& response) {
    // The usual case, inline and without a call (so no registers to save): not a preflight, the answer's fields one
    // of the sets built at construction, and a response without fields or sets of its own yet: attached by pointer.
    if (request.method() != Method::options && response.headers().empty() && !response.shared_fields()) {
        if (const SharedFields* fields = impl_->quick_simple_fields(request)) {
            response.add_shared_fields(fields);
            return;
        }
    }
    after_general(request, response);
}

[[gnu::noinline]] void CorsMiddleware::after_general(const Request& request, Response& response) const {
    if (request.method() == Method::options && is_preflight(request)) return;  // answered by before(), sent as is
    const Impl& m = *impl_;
    const std::optional<std::string_view> origin = origin_header(request);
    // The answer's fields are one of the sets built at construction and the response has none of them yet: by
    // pointer when the response has room for one more set, else copied among its own fields (one copy).
    const SharedFields* fields = m.simple_fields(request);
    const bool has_field = has_cors_field(response);
    if (fields && !has_field) {
        if (!response.add_shared_fields(fields)) response.add_prechecked_headers(fields->fields);
        return;
    }
    // Below, fields are found, replaced and joined by name: an attached set's become the response's own first.
    if (has_field && response.shared_fields()) response.unshare_fields();
    // The Access-Control-Allow-Origin to send ("" none) and whether its value is known clean: "*" and a configured
    // origin are (an exact match has the configured bytes); an echoed Origin matched by "*" + credentials or by the
    // regex comes from the request and is scanned for CR, LF and NUL.
    std::string_view allow_origin;
    bool allow_origin_clean = true;
    if (origin) {
        if (m.allow_all_origins) {
            if (m.o.allow_credentials)
                allow_origin = *origin, allow_origin_clean = false;
            else
                allow_origin = "*";
        } else if (const std::string* exact = m.exact_origin(*origin)) {
            allow_origin = *exact, allow_origin_clean = m.exact_origins_clean;
        } else if (m.origin_regex && std::regex_match(origin->begin(), origin->end(), *m.origin_regex)) {
            allow_origin = *origin, allow_origin_clean = false;
        }
        if (!allow_origin_clean) allow_origin_clean = !splits_header(allow_origin);
    }
    const bool credentials = origin && m.o.allow_credentials;
    const bool expose = origin && !m.o.expose_headers.empty();
    // The usual case: none of these fields is on the response yet and the values are clean, so each is appended
    // once, with no name lookups, value scans or string building (one reserve for all of them).
    if (allow_origin_clean && (response.headers().empty() || !has_cors_field(response))) {
        response.reserve_headers((allow_origin.empty() ? 0 : allow_origin_name.size() + allow_origin.size()) +
                                     (credentials ? allow_credentials_name.size() + 4 : 0) +
                                     (expose ? expose_name.size() + m.expose_value.size() : 0) + 4 + 6,
                                 std::size_t{!allow_origin.empty()} + credentials + expose + 1);
        if (!allow_origin.empty()) response.add_prechecked_header(allow_origin_name, allow_origin);
        if (credentials) response.add_prechecked_header(allow_credentials_name, "true");
        if (expose) response.add_prechecked_header(expose_name, m.expose_value);
        response.add_prechecked_header("Vary", "Origin");
        return;
    }
    // General path: set_header's semantics (replace) for the Access-Control fields, Vary joined; an unclean echoed
    // Origin reaches add_header, which throws naming the header.
    const auto put = [&response](std::string_view name, std::string_view value, bool checked) {
        if (response.has_header(name))
            response.set_header(name, value);
        else if (checked)
            response.add_prechecked_header(name, value);
        else
            response.add_header(name, value);
    };
    if (!allow_origin.empty()) put(allow_origin_name, allow_origin, allow_origin_clean);
    if (credentials) put(allow_credentials_name, "true", true);
    if (expose) put(expose_name, m.expose_value, true);
    append_vary(response, "Origin");
}

}  // namespace covet
