// URL router. Static routes (no '{') are found by one hash lookup of the whole path; parameterised
// routes live in a trie with one node per '/'-separated segment. Registration happens up front and
// is not thread-safe; after that `match` is const, allocation-free and safe to call from many
// threads.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "covet/http/method.hpp"
#include "covet/http/path_params.hpp"

namespace covet {

// Pattern spellings: {x} {x:str} -> str, {x:int} -> integer, {x:float} -> number, {x:uuid} -> uuid,
// {x:path} -> path. Enumerator order is not the matching order; see router_detail::param_priority.
enum class ParamType : std::uint8_t { str, integer, number, uuid, path };

// Thrown by Router::add for malformed patterns and for conflicting registrations.
class RouteError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

namespace router_detail {

inline constexpr std::size_t param_type_count = 5;

// Most specific first, so e.g. "42" goes to {id:int} before {name}; the catch-all comes last.
inline constexpr std::array<ParamType, param_type_count> param_priority = {
    ParamType::integer, ParamType::number, ParamType::uuid, ParamType::str, ParamType::path};

constexpr std::size_t index(ParamType t) noexcept { return static_cast<std::size_t>(t); }
constexpr std::size_t index(Method m) noexcept { return static_cast<std::size_t>(m); }

// Transparent so that lookups with a std::string_view never build a std::string.
struct StringViewHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

template <class Value>
using StringMap = std::unordered_map<std::string, Value, StringViewHash, std::equal_to<>>;

// One '/'-separated piece of a pattern. `text` views into the pattern passed to parse_pattern.
struct PatternSegment {
    bool is_param = false;
    ParamType type = ParamType::str;
    std::string_view text;  // the literal, or the parameter name
};

struct ParsedPattern {
    bool is_static = true;                 // no parameters: the whole pattern is a hash key
    std::vector<PatternSegment> segments;  // filled only for parameterised patterns
};

// Validates `pattern` and splits it; throws RouteError naming the pattern and the problem.
ParsedPattern parse_pattern(std::string_view pattern);

// Value checks for typed parameters; `s` is one raw path segment (or the rest of the path).
bool is_int(std::string_view s) noexcept;    // -?[0-9]+ that fits in int64
bool is_float(std::string_view s) noexcept;  // [+-]?(d+(.d*)?|.d+)([eE][+-]?d+)?
bool is_uuid(std::string_view s) noexcept;   // 8-4-4-4-12 hex digits, any case
bool value_matches(ParamType type, std::string_view s) noexcept;

}  // namespace router_detail

template <class Handler>
class Router {
    static_assert(std::is_move_constructible_v<Handler>, "Router stores handlers by value");

public:
    enum class Status : std::uint8_t { found, not_found, method_not_allowed };

    struct Match {
        Status status = Status::not_found;
        const Handler* handler = nullptr;  // non-null only when found; valid while the Router lives
        // Allow header value of the matched node, e.g. "GET, HEAD, POST" (set on found and on
        // method_not_allowed, empty on not_found). Views into router storage.
        std::string_view allow;
        // On found: the pattern the handler was registered with. On method_not_allowed: the first
        // pattern registered on the matched node. Empty on not_found.
        std::string_view pattern;
    };

    Router() = default;
    // Internal pointers (handlers, names, allow strings) point into the router's own node-based
    // storage: moving keeps those nodes in place, copying would not.
    Router(const Router&) = delete;
    Router& operator=(const Router&) = delete;
    Router(Router&&) = default;
    Router& operator=(Router&&) = default;
    ~Router() = default;

    // Registers `handler` for `method` on `pattern`. Throws RouteError on a bad pattern or when the
    // same method is already registered on a pattern of the same shape (parameter names ignored).
    void add(Method method, std::string_view pattern, Handler handler);

    // `path` is the raw request path (no query string, not percent-decoded). `params` is cleared,
    // then on found holds (name, value) pairs in pattern order; values view into `path`.
    // A route registered for the method anywhere wins over a 405 from a more specific node.
    Match match(Method method, std::string_view path, PathParams& params) const noexcept;

    // (method, pattern) in registration order, for docs and debugging.
    std::vector<std::pair<Method, std::string>> routes() const;

private:
    // One registration. Lives in a std::deque, which never relocates elements on emplace_back,
    // so `names` may view into `pattern` and endpoints may hold plain pointers to it.
    struct Route {
        Route(Method m, std::string p, Handler h) : method(m), pattern(std::move(p)), handler(std::move(h)) {}
        Route(const Route&) = delete;
        Route& operator=(const Route&) = delete;

        Method method;
        std::string pattern;
        Handler handler;
        std::array<std::string_view, PathParams::capacity> names{};  // views into `pattern`
        std::size_t name_count = 0;
    };

    // The handlers of one route shape, one slot per method.
    struct Endpoint {
        std::array<const Route*, method_count> by_method{};
        const Route* first = nullptr;  // earliest registration; null means "no route ends here"
        std::string allow;             // precomputed Allow header value

        // An explicit HEAD handler wins; otherwise HEAD is served by GET.
        const Route* accepting(Method m) const noexcept {
            const Route* r = by_method[router_detail::index(m)];
            if (r == nullptr && m == Method::head) r = by_method[router_detail::index(Method::get)];
            return r;
        }
    };

    struct Node {
        router_detail::StringMap<std::unique_ptr<Node>> literals;
        std::array<std::unique_ptr<Node>, router_detail::param_type_count> params;  // by ParamType
        Endpoint endpoint;
    };

    // Per-call traversal state, on the caller's stack so `match` touches no shared mutable data.
    struct Search {
        Method method;
        std::string_view path;
        std::array<std::string_view, PathParams::capacity> values{};
        const Route* found = nullptr;
        const Endpoint* found_at = nullptr;
        const Endpoint* partial = nullptr;  // first (most specific) node matching the path only
    };

    Endpoint& endpoint_for(const router_detail::ParsedPattern& parsed, std::string_view pattern);
    static std::string allow_list(const Endpoint& e, Method adding);
    static bool visit(const Endpoint& e, Search& s) noexcept;
    static bool descend(const Node& node, std::size_t pos, std::size_t depth, Search& s) noexcept;

    std::deque<Route> routes_;
    router_detail::StringMap<Endpoint> static_;  // node-based: Endpoint addresses are stable
    std::unique_ptr<Node> root_;                 // created on first parameterised add
};

}  // namespace covet

#include "covet/router/impl/router.hpp"
