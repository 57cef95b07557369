// RateLimitMiddleware: GCRA rate limits checked before routing, so a refused request never reaches a
// handler (nor Python). Each rule is `limit` requests per `period` with a `burst`, per key:
//   client_ip  the client's address (the trusted proxy's X-Forwarded-For entry when the server believes one:
//              covet/net/trusted_proxies.hpp), IPv4 aggregated to /ipv4_prefix and IPv6 to /ipv6_prefix;
//   header     the value of a request header (an API key, a tenant id), hashed; a request without it is
//              keyed by its client address instead, so leaving the header out does not escape the limit;
//   route      one budget per route template, shared by every client;
//   global     one budget for everything the rule covers.
// A rule with `routes` (templates as the router takes them, "/login", "/items/{id}") covers the requests
// whose path matches one of them; without, every request. Every covering rule charges the request; the first
// that refuses answers it: 429, `Retry-After` (whole seconds until one request passes), the IETF draft's
// `RateLimit-Policy: "name";q=<limit>;w=<period s>` and `RateLimit: "name";r=0;t=<s>`
// (draft-ietf-httpapi-ratelimit-headers-12), and {"detail": "Too Many Requests"}. With `headers` the answers
// that pass carry the two fields too, for the covering rule with the fewest requests left (off by default:
// formatting and writing them costs several times the check itself, docs/benchmarks.md).
//
// State lives in a SharedTable (covet/ratelimit/shared_table.hpp) named `table`: shared by every worker
// process of a `covet run` (COVET_METRICS_DIR), or by the threads of this process.
//
//     RateLimitOptions o;
//     o.rules.push_back({.name = "per-ip", .limit = 100, .period = std::chrono::minutes(1)});
//     o.rules.push_back({.name = "login", .limit = 5, .period = std::chrono::minutes(1), .routes = {"/login"}});
//     app.use(std::make_unique<ratelimit::RateLimitMiddleware>(std::move(o)));
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "covet/middleware/middleware.hpp"
#include "covet/ratelimit/gcra.hpp"
#include "covet/ratelimit/shared_table.hpp"

namespace covet::ratelimit {

enum class KeyKind : std::uint8_t { client_ip, header, route, global };

struct RateLimitRule {
    std::string name = "default";  // the policy's name in the RateLimit fields
    std::uint32_t limit = 0;       // requests per period (> 0)
    std::chrono::nanoseconds period = std::chrono::seconds(60);
    std::uint32_t burst = 0;  // at once; 0: limit
    KeyKind key = KeyKind::client_ip;
    std::string header{};  // KeyKind::header: which one (e.g. "X-API-Key")
    int ipv4_prefix = 32;
    int ipv6_prefix = 64;  // one /64 is what a single host usually gets
    std::vector<std::string> routes{};
};

struct RateLimitOptions {
    std::vector<RateLimitRule> rules;
    std::string table = "default";
    std::size_t capacity = std::size_t{1} << 16;  // keys (16 bytes each)
    bool headers = false;  // RateLimit fields on the answers that pass too (429s always carry them)
    // Where the shared table lives: unset = COVET_METRICS_DIR (or process-local without it), "" = process-local.
    std::optional<std::string> directory{};
};

// The key of one client address under a rule's prefixes: the masked address bytes (4 or 16, an IPv4-mapped
// IPv6 address counting as IPv4), or the text itself when it is not an address. Written into `out`.
std::string_view client_key(std::string_view address, int ipv4_prefix, int ipv6_prefix, char (&out)[17]) noexcept;

class RateLimitMiddleware final : public Middleware {
public:
    // Throws std::invalid_argument naming the rule for a zero limit or period, a bad prefix, a header rule
    // without a header, a route rule without routes, or a route template the router refuses.
    explicit RateLimitMiddleware(RateLimitOptions options);
    ~RateLimitMiddleware() override;
    // `after` only with `headers` (the fields on the answers that pass).
    unsigned hooks() const noexcept override { return headers_ ? all_hooks : before_hook; }
    std::optional<Response> before(Request& request, RequestContext& context) override;
    void after(const Request& request, const RequestContext& context, Response& response) override;

    SharedTable& table() noexcept { return table_; }
    // The 429 answer for a refusal by rule `index` (public for tests and other limiters).
    Response too_many_requests(std::size_t index, const GcraDecision& decision) const;

private:
    struct Compiled;
    // The table hash of a client address under `rule` (client_key, then hash with `salt`), remembered in this
    // thread's memo for rule `index` (before() checks the memo first).
    std::uint64_t address_hash(std::string_view address, const RateLimitRule& rule, std::uint64_t salt,
                               std::size_t index) const noexcept;
    // Rule `index`'s table hash for `request`: keyed by its client address (the memo first), or by any key (its
    // routes matched first: 0 when they do not cover the request).
    std::uint64_t client_hash(const Request& request, std::size_t index) const noexcept;
    std::uint64_t other_key_hash(const Request& request, std::size_t index) const noexcept;
    // The 429 for rule `index`, whose key's TAT was `tat` at `now`.
    std::optional<Response> refusal(std::size_t index, std::int64_t tat, std::int64_t now) const;
    // before() for any rules (the loop), and for the usual one when its inline path cannot decide.
    std::optional<Response> before_rules(Request& request, RequestContext& context);
    std::optional<Response> usual_rule(const Request& request, RequestContext& context);
    std::vector<std::unique_ptr<Compiled>> rules_;
    SharedTable table_;
    bool headers_;
    // One rule, by client address, every route, no fields: before()'s short path, with that rule's memo tag and
    // policy at hand (no pointer to follow).
    bool one_address_rule_ = false;
    std::uint64_t usual_tag_ = 0;
    GcraPolicy usual_policy_{};
};

}  // namespace covet::ratelimit
