// Out-of-line bodies for covet/router/router.hpp; include that header, not this one.
#pragma once

#include <cassert>
#include <charconv>
#include <system_error>

// Included at the end of covet/router/router.hpp, whose declarations these bodies define (no #include of it
// here: that would be an include cycle).

namespace covet {
namespace router_detail {

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

constexpr bool is_hex(char c) noexcept { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

constexpr bool is_name_char(char c, bool first) noexcept {
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    return alpha || (!first && is_digit(c));
}

inline bool is_int(std::string_view s) noexcept {
    // from_chars rejects '+', whitespace and empty input, and reports int64 overflow.
    std::int64_t v = 0;
    const char* end = s.data() + s.size();
    const auto [ptr, ec] = std::from_chars(s.data(), end, v);
    return ec == std::errc{} && ptr == end;
}

inline bool is_float(std::string_view s) noexcept {
    std::size_t i = 0;
    const std::size_t n = s.size();
    auto sign = [&] {
        if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    };
    auto digits = [&] {
        const std::size_t start = i;
        while (i < n && is_digit(s[i])) ++i;
        return i - start;
    };
    sign();
    std::size_t mantissa = digits();
    if (i < n && s[i] == '.') {
        ++i;
        mantissa += digits();
    }
    if (mantissa == 0) return false;  // rejects "", ".", "-", "e5"
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        sign();
        if (digits() == 0) return false;
    }
    return i == n;  // anything left ("inf", "0x1", "1.2.3") is not a plain decimal
}

inline bool is_uuid(std::string_view s) noexcept {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool dash_pos = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash_pos ? s[i] != '-' : !is_hex(s[i])) return false;
    }
    return true;
}

inline bool value_matches(ParamType type, std::string_view s) noexcept {
    switch (type) {
        case ParamType::integer: return is_int(s);
        case ParamType::number: return is_float(s);
        case ParamType::uuid: return is_uuid(s);
        case ParamType::str: return !s.empty();
        case ParamType::path: return true;
    }
    return false;
}

[[noreturn]] inline void bad_pattern(std::string_view pattern, std::string_view why) {
    std::string msg = "bad route pattern '";
    msg.append(pattern).append("': ").append(why);
    throw RouteError(msg);
}

// Parses one segment that contains a brace: it must be exactly "{name}" or "{name:type}".
inline PatternSegment parse_param_segment(std::string_view pattern, std::string_view seg) {
    const std::string quoted = "'" + std::string(seg) + "'";
    int depth = 0;
    int groups = 0;
    for (char c : seg) {
        if (c == '{') {
            if (depth != 0) bad_pattern(pattern, "unbalanced braces in segment " + quoted);
            ++depth;
            ++groups;
        } else if (c == '}') {
            if (depth == 0) bad_pattern(pattern, "unbalanced braces in segment " + quoted);
            --depth;
        }
    }
    if (depth != 0) bad_pattern(pattern, "unbalanced braces in segment " + quoted);
    if (groups != 1 || seg.front() != '{' || seg.back() != '}')
        bad_pattern(pattern, "segment " + quoted + " must be either fully literal or exactly one {parameter}");

    const std::string_view inner = seg.substr(1, seg.size() - 2);
    const std::size_t colon = inner.find(':');
    const std::string_view name = inner.substr(0, colon);
    if (name.empty()) bad_pattern(pattern, "empty parameter name in segment " + quoted);
    for (std::size_t i = 0; i < name.size(); ++i)
        if (!is_name_char(name[i], i == 0))
            bad_pattern(pattern, "invalid parameter name '" + std::string(name) +
                                     "' (use letters, digits and '_', not starting with a digit)");

    PatternSegment out{true, ParamType::str, name};
    if (colon == std::string_view::npos) return out;
    const std::string_view type = inner.substr(colon + 1);
    if (type == "str")
        out.type = ParamType::str;
    else if (type == "int")
        out.type = ParamType::integer;
    else if (type == "float")
        out.type = ParamType::number;
    else if (type == "uuid")
        out.type = ParamType::uuid;
    else if (type == "path")
        out.type = ParamType::path;
    else
        bad_pattern(pattern,
                    "unknown parameter type '" + std::string(type) + "' (expected str, int, float, uuid or path)");
    return out;
}

inline ParsedPattern parse_pattern(std::string_view pattern) {
    if (pattern.empty() || pattern.front() != '/') bad_pattern(pattern, "must start with '/'");
    ParsedPattern out;
    if (pattern.find_first_of("{}") == std::string_view::npos) return out;

    out.is_static = false;
    std::size_t count = 0;
    // Segments are the pieces between slashes after the leading one: "/a/" -> {"a", ""}.
    for (std::size_t pos = 1;;) {
        const std::size_t slash = pattern.find('/', pos);
        const std::string_view seg =
            pattern.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
        if (seg.find_first_of("{}") == std::string_view::npos) {
            out.segments.push_back(PatternSegment{false, ParamType::str, seg});
        } else {
            const PatternSegment p = parse_param_segment(pattern, seg);
            for (const PatternSegment& prev : out.segments)
                if (prev.is_param && prev.text == p.text)
                    bad_pattern(pattern, "duplicate parameter name '" + std::string(p.text) + "'");
            if (++count > PathParams::capacity)
                bad_pattern(pattern, "more than " + std::to_string(PathParams::capacity) + " parameters");
            out.segments.push_back(p);
        }
        if (slash == std::string_view::npos) break;
        pos = slash + 1;
    }
    // A catch-all swallows the rest of the path, so nothing (literal or parameter) may follow it.
    for (std::size_t i = 0; i + 1 < out.segments.size(); ++i)
        if (out.segments[i].is_param && out.segments[i].type == ParamType::path)
            bad_pattern(pattern, "a {path} parameter must be the last segment");
    return out;
}

}  // namespace router_detail

template <class Handler>
void Router<Handler>::add(Method method, std::string_view pattern, Handler handler) {
    const router_detail::ParsedPattern parsed = router_detail::parse_pattern(pattern);
    // May leave freshly created, empty trie nodes behind if we throw below; they hold no route, so
    // matching ignores them.
    Endpoint& ep = endpoint_for(parsed, pattern);
    const std::size_t slot = router_detail::index(method);
    if (const Route* prev = ep.by_method[slot]) {
        std::string msg = "route conflict: ";
        msg.append(to_string(method)).append(" ").append(pattern);
        msg.append(" clashes with ").append(to_string(prev->method)).append(" ");
        msg.append(prev->pattern).append(" registered earlier (same shape)");
        throw RouteError(msg);
    }

    // Everything that can throw happens before the endpoint is touched.
    std::string allow = allow_list(ep, method);
    Route& route = routes_.emplace_back(method, std::string(pattern), std::move(handler));
    const std::string_view stored = route.pattern;
    for (const router_detail::PatternSegment& seg : parsed.segments)
        if (seg.is_param)
            route.names[route.name_count++] =
                stored.substr(static_cast<std::size_t>(seg.text.data() - pattern.data()), seg.text.size());

    ep.by_method[slot] = &route;
    if (ep.first == nullptr) ep.first = &route;
    ep.allow.swap(allow);
}

template <class Handler>
auto Router<Handler>::endpoint_for(const router_detail::ParsedPattern& parsed, std::string_view pattern) -> Endpoint& {
    if (parsed.is_static) {
        auto it = static_.find(pattern);
        if (it == static_.end()) it = static_.emplace(std::string(pattern), Endpoint{}).first;
        return it->second;
    }
    if (!root_) root_ = std::make_unique<Node>();
    Node* node = root_.get();
    for (const router_detail::PatternSegment& seg : parsed.segments) {
        std::unique_ptr<Node>* child = nullptr;
        if (seg.is_param) {
            child = &node->params[router_detail::index(seg.type)];
        } else {
            auto it = node->literals.find(seg.text);
            if (it == node->literals.end()) it = node->literals.emplace(std::string(seg.text), nullptr).first;
            child = &it->second;
        }
        if (!*child) *child = std::make_unique<Node>();
        node = child->get();
    }
    return node->endpoint;
}

template <class Handler>
std::string Router<Handler>::allow_list(const Endpoint& e, Method adding) {
    std::array<bool, method_count> has{};
    for (std::size_t i = 0; i < method_count; ++i) has[i] = e.by_method[i] != nullptr;
    has[router_detail::index(adding)] = true;
    // Automatic HEAD: anything served by GET also answers HEAD.
    if (has[router_detail::index(Method::get)]) has[router_detail::index(Method::head)] = true;
    std::string out;
    for (std::size_t i = 0; i < method_count; ++i) {
        if (!has[i]) continue;
        if (!out.empty()) out.append(", ");
        out.append(method_names[i]);
    }
    return out;
}

template <class Handler>
bool Router<Handler>::visit(const Endpoint& e, Search& s) noexcept {
    if (const Route* r = e.accepting(s.method)) {
        s.found = r;
        s.found_at = &e;
        return true;
    }
    if (s.partial == nullptr && e.first != nullptr) s.partial = &e;
    return false;
}

// Depth-first in priority order (literal, int, float, uuid, str, path) and stops at the first node
// that accepts the method, so a more specific branch failing deeper falls back to the next one.
// Every trie node sits at a fixed segment index, so each is visited at most once per call: the cost
// is bounded by the trie, whatever the request path looks like.
template <class Handler>
bool Router<Handler>::descend(const Node& node, std::size_t pos, std::size_t depth, Search& s) noexcept {
    constexpr std::size_t npos = std::string_view::npos;
    if (pos == npos) return visit(node.endpoint, s);  // every segment consumed

    const std::size_t slash = s.path.find('/', pos);
    const std::string_view seg = s.path.substr(pos, slash == npos ? npos : slash - pos);
    const std::size_t next = slash == npos ? npos : slash + 1;

    if (auto it = node.literals.find(seg); it != node.literals.end())
        if (descend(*it->second, next, depth, s)) return true;

    for (const ParamType type : router_detail::param_priority) {
        const Node* child = node.params[router_detail::index(type)].get();
        if (child == nullptr) continue;
        // Patterns carry at most `capacity` parameters, so a deeper param node cannot exist.
        assert(depth < PathParams::capacity);
        if (type == ParamType::path) {
            // Catch-all: the rest of the path, slashes included, possibly empty. Always a leaf.
            s.values[depth] = s.path.substr(pos);
            if (visit(child->endpoint, s)) return true;
        } else if (router_detail::value_matches(type, seg)) {  // never true for an empty segment
            s.values[depth] = seg;
            if (descend(*child, next, depth + 1, s)) return true;
        }
    }
    return false;
}

template <class Handler>
auto Router<Handler>::match(Method method, std::string_view path, PathParams& params) const noexcept -> Match {
    params.clear();
    if (path.empty() || path.front() != '/') return Match{};

    Search s{method, path};
    const Endpoint* static_ep = nullptr;
    if (auto it = static_.find(path); it != static_.end()) {
        static_ep = &it->second;
        if (const Route* r = static_ep->accepting(method))
            return Match{Status::found, &r->handler, static_ep->allow, r->pattern};
    }
    if (root_) descend(*root_, 1, 0, s);

    if (s.found != nullptr) {
        for (std::size_t i = 0; i < s.found->name_count; ++i) params.push(s.found->names[i], s.values[i]);
        return Match{Status::found, &s.found->handler, s.found_at->allow, s.found->pattern};
    }
    // The static node is the most specific one, so its Allow list beats any trie node's.
    const Endpoint* partial = (static_ep != nullptr && static_ep->first != nullptr) ? static_ep : s.partial;
    if (partial != nullptr) return Match{Status::method_not_allowed, nullptr, partial->allow, partial->first->pattern};
    return Match{};
}

template <class Handler>
std::vector<std::pair<Method, std::string>> Router<Handler>::routes() const {
    std::vector<std::pair<Method, std::string>> out;
    out.reserve(routes_.size());
    for (const Route& r : routes_) out.emplace_back(r.method, r.pattern);
    return out;
}

}  // namespace covet
