// See covet/ratelimit/middleware.hpp.
#include "covet/ratelimit/middleware.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <iterator>
#include <stdexcept>

#include "covet/app/context.hpp"
#include "covet/http/ascii.hpp"
#include "covet/router/router.hpp"

namespace covet::ratelimit {

namespace {

std::int64_t now_ns(const Request& request) noexcept {
    // When the request's head was read (the protocol read the clock then): no clock read here. A request
    // without one (built by hand) reads the clock.
    const io::Clock::time_point at = request.received_at();
    const io::Clock::time_point now = at.time_since_epoch().count() != 0 ? at : io::Clock::now();
    return std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
}

std::uint32_t ceil_seconds(std::int64_t ns) noexcept {
    constexpr std::int64_t second = 1'000'000'000;
    return ns <= 0 ? 0 : static_cast<std::uint32_t>(std::min<std::int64_t>((ns + second - 1) / second, 0xffffff));
}

void mask(unsigned char* bytes, std::size_t size, int prefix) noexcept {
    for (std::size_t i = 0; i < size; ++i) {
        const int bits = prefix - static_cast<int>(i * 8);
        if (bits >= 8) continue;
        bytes[i] &= bits <= 0 ? 0 : static_cast<unsigned char>(0xff << (8 - bits));
    }
}

// The note RequestContext keeps between `before` and `after`: rule index + 1, remaining, reset seconds.
std::uint64_t pack(std::size_t index, std::uint32_t remaining, std::uint32_t reset_s) noexcept {
    return (static_cast<std::uint64_t>(index + 1) << 48) | (static_cast<std::uint64_t>(remaining & 0xffffff) << 24) |
           (reset_s & 0xffffff);
}

}  // namespace

namespace {

// Dotted-quad IPv4 as the engine writes it (inet_ntop: no leading zeros, no spaces) into 4 bytes; false for
// anything else, which then goes through inet_pton. A quarter of inet_pton's instructions on the hot path.
bool parse_ipv4(std::string_view text, unsigned char (&bytes)[4]) noexcept {
    unsigned value = 0, digits = 0, part = 0;
    for (const char ch : text) {
        if (ch >= '0' && ch <= '9') {
            value = value * 10 + static_cast<unsigned>(ch - '0');
            if (++digits > 3 || value > 255) return false;
        } else if (ch == '.' && digits != 0 && part < 3) {
            bytes[part++] = static_cast<unsigned char>(value);
            value = digits = 0;
        } else {
            return false;
        }
    }
    if (digits == 0 || part != 3) return false;
    bytes[3] = static_cast<unsigned char>(value);
    return true;
}

// The last client address a rule keyed on this thread, and its hash: the requests of a keep-alive connection
// (a pipelined batch, a browser's page) come from one address, so its key is built and hashed once per run of
// them instead of per request. A memo: the hash is a function of the table's seed, the salt (the rule's identity,
// prefixes included) and the address; the address is compared, the seed and salt as one 64-bit tag (memo_tag:
// two pairs sharing a tag, odds 2^-63, would share keys, as two keys sharing a hash share a budget). Trivially
// constructible: no thread_local guard per use.
struct AddressMemo {
    std::uint64_t tag, hash;  // tag 0: empty (memo_tag is odd)
    std::size_t size;
    std::uint64_t head, tail;  // an address of 8 to 16 bytes (IPv4 text) as two overlapping words
    char address[48];
};
thread_local AddressMemo address_memo[4];  // per rule index (mod 4): a few rules keyed by address each keep theirs

// The memo's tag for a table seed and a rule's salt (odd: never an empty memo's 0).
std::uint64_t memo_tag(std::uint64_t seed, std::uint64_t salt) noexcept {
    return (salt ^ (seed * 0x9e3779b97f4a7c15ULL)) | 1;
}

// Whether `m` holds `address` (its tag compared by the caller). Fixed-size loads for the usual IPv4 text, no libc
// call.
bool holds(const AddressMemo& m, std::string_view address) noexcept {
    const std::size_t n = address.size();
    if (m.size != n) return false;
    if (n >= 8 && n <= 16) return m.head == load8(address.data()) && m.tail == load8(address.data() + n - 8);
    return n == 0 || std::memcmp(m.address, address.data(), n) == 0;
}

}  // namespace

std::string_view client_key(std::string_view address, int ipv4_prefix, int ipv6_prefix, char (&out)[17]) noexcept {
    // The common case, a whole IPv4 address as the engine writes it: its text is the key (no parsing). The
    // IPv4-mapped IPv6 form counts as the same address.
    if (address.size() > 7 && address.size() <= 22 && (address[0] == ':' || address[0] == 'f' || address[0] == 'F')) {
        if (address.starts_with("::ffff:") || address.starts_with("::FFFF:")) {
            const std::string_view rest = address.substr(7);
            if (rest.find(':') == std::string_view::npos) address = rest;
        }
    }
    if (ipv4_prefix == 32 && std::none_of(address.begin(), address.end(), [](char ch) { return ch == ':'; }))
        return address;
    if (unsigned char v4[4]; parse_ipv4(address, v4)) {
        if (ipv4_prefix < 32) mask(v4, 4, ipv4_prefix);
        out[0] = 4;
        std::memcpy(out + 1, v4, 4);
        return {out, 5};
    }
    char text[INET6_ADDRSTRLEN + 1];
    if (address.empty() || address.size() >= sizeof text) return address;
    std::memcpy(text, address.data(), address.size());
    text[address.size()] = '\0';
    unsigned char bytes[16];
    if (::inet_pton(AF_INET, text, bytes) == 1) {
        mask(bytes, 4, ipv4_prefix);
        out[0] = 4;
        std::memcpy(out + 1, bytes, 4);
        return {out, 5};
    }
    if (::inet_pton(AF_INET6, text, bytes) != 1) return address;
    static constexpr unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(bytes, v4_mapped, 12) == 0) {
        mask(bytes + 12, 4, ipv4_prefix);
        out[0] = 4;
        std::memcpy(out + 1, bytes + 12, 4);
        return {out, 5};
    }
    mask(bytes, 16, ipv6_prefix);
    out[0] = 6;
    std::memcpy(out + 1, bytes, 16);
    return {out, 17};
}

struct RateLimitMiddleware::Compiled {
    RateLimitRule rule;
    GcraPolicy policy;
    std::string policy_field;  // "name";q=..;w=..
    std::string rate_prefix;   // "name";r=
    std::uint64_t salt = 0;    // the rule's identity in the table (its name, policy, key and routes)
    std::unique_ptr<Router<std::uint8_t>> routes;
    bool by_address = false;  // keyed by the client's address, every route: before()'s inline path
};

RateLimitMiddleware::RateLimitMiddleware(RateLimitOptions options)
    : table_(options.directory ? SharedTable(options.table, options.capacity, *options.directory)
                               : SharedTable::open(options.table, options.capacity)),
      headers_(options.headers) {
    for (RateLimitRule& rule : options.rules) {
        const std::string which = "rate limit rule '" + rule.name + "': ";
        auto c = std::make_unique<Compiled>();
        c->policy = GcraPolicy::make(rule.limit, rule.period, rule.burst);
        if (!c->policy.valid()) throw std::invalid_argument(which + "limit and period must be greater than 0");
        if (rule.ipv4_prefix < 0 || rule.ipv4_prefix > 32 || rule.ipv6_prefix < 0 || rule.ipv6_prefix > 128)
            throw std::invalid_argument(which + "ipv4_prefix must be 0..32 and ipv6_prefix 0..128");
        if (rule.key == KeyKind::header && rule.header.empty())
            throw std::invalid_argument(which + "a header key needs the header's name");
        if (rule.key == KeyKind::route && rule.routes.empty())
            throw std::invalid_argument(which + "a route key needs the route templates it covers (routes)");
        if (rule.name.empty() || rule.name.size() > 64)
            throw std::invalid_argument(which + "the name must be 1 to 64 characters");
        for (const char ch : rule.name)
            if (ch == '"' || ch == '\\' || static_cast<unsigned char>(ch) < 0x20 ||
                static_cast<unsigned char>(ch) > 0x7e)
                throw std::invalid_argument(which + "the name must be printable ASCII without quotes or backslashes");
        if (!rule.routes.empty()) {
            c->routes = std::make_unique<Router<std::uint8_t>>();
            for (const std::string& pattern : rule.routes) {
                for (std::size_t m = 0; m < method_count; ++m) {
                    try {
                        c->routes->add(static_cast<Method>(m), pattern, 1);
                    } catch (const RouteError& e) {
                        std::string message = which;
                        message.append("route ").append(pattern).append(": ").append(e.what());
                        throw std::invalid_argument(message);
                    }
                }
            }
        }
        const std::int64_t second = 1'000'000'000;
        c->policy_field = "\"" + rule.name + "\";q=" + std::to_string(rule.limit) +
                          ";w=" + std::to_string((c->policy.period_ns + second - 1) / second);
        c->rate_prefix = "\"" + rule.name + "\";r=";
        // Two middleware on one table (or the workers of one group) with the same rule share its budgets; rules
        // that differ in anything never do, whatever their order.
        std::string identity = c->policy_field + ";b=" + std::to_string(c->policy.burst) +
                               ";k=" + std::to_string(static_cast<int>(rule.key)) + ";h=" + rule.header +
                               ";p=" + std::to_string(rule.ipv4_prefix) + "/" + std::to_string(rule.ipv6_prefix) +
                               ";p=" + std::to_string(c->policy.period_ns);
        for (const std::string& pattern : rule.routes) identity += ";r=" + pattern;
        c->salt = table_.hash(identity) & ~std::uint64_t{1};
        c->by_address = rule.key == KeyKind::client_ip && !c->routes;
        c->rule = std::move(rule);
        rules_.push_back(std::move(c));
    }
    one_address_rule_ = rules_.size() == 1 && rules_.front()->by_address && !headers_;
    if (one_address_rule_) {
        usual_tag_ = memo_tag(table_.seed(), rules_.front()->salt | 1);  // the salt as client_hash() makes it
        usual_policy_ = rules_.front()->policy;
    }
}

RateLimitMiddleware::~RateLimitMiddleware() = default;

Response RateLimitMiddleware::too_many_requests(std::size_t index, const GcraDecision& decision) const {
    const Compiled& c = *rules_.at(index);
    Response r = Response::json(R"({"detail":"Too Many Requests"})", 429);
    r.add_header("Retry-After", std::to_string(std::max<std::uint32_t>(1, ceil_seconds(decision.retry_after_ns))));
    r.add_header("RateLimit-Policy", c.policy_field);
    r.add_header("RateLimit", "\"" + c.rule.name + "\";r=0;t=" +
                                  std::to_string(std::max<std::uint32_t>(1, ceil_seconds(decision.reset_ns))));
    return r;
}

std::uint64_t RateLimitMiddleware::address_hash(std::string_view address, const RateLimitRule& rule, std::uint64_t salt,
                                                std::size_t index) const noexcept {
    AddressMemo& m = address_memo[index % std::size(address_memo)];
    char buffer[17];
    const std::uint64_t hash = table_.hash(client_key(address, rule.ipv4_prefix, rule.ipv6_prefix, buffer), salt);
    const std::size_t n = address.size();
    if (n <= sizeof m.address) {
        m.tag = memo_tag(table_.seed(), salt), m.hash = hash, m.size = n;
        if (n != 0) std::memcpy(m.address, address.data(), n);
        if (n >= 8 && n <= 16) m.head = load8(address.data()), m.tail = load8(address.data() + n - 8);
    }
    return hash;
}

// Inlined into before() (and other_key_hash): the common rule's whole key work.
[[gnu::always_inline]] inline std::uint64_t RateLimitMiddleware::client_hash(const Request& request,
                                                                             std::size_t index) const noexcept {
    const Compiled& c = *rules_[index];
    // A keep-alive connection's address is usually the one this rule saw last on this thread: no key, no hash.
    // The salt's low bit keeps an address apart from a header value equal to it.
    const std::uint64_t salt = c.salt | 1;
    const std::string_view client = request.client_address();
    const AddressMemo& m = address_memo[index % std::size(address_memo)];
    return m.tag == memo_tag(table_.seed(), salt) && holds(m, client) ? m.hash
                                                                      : address_hash(client, c.rule, salt, index);
}

[[gnu::noinline]] std::uint64_t RateLimitMiddleware::other_key_hash(const Request& request,
                                                                    std::size_t index) const noexcept {
    const Compiled& c = *rules_[index];
    std::string_view pattern;
    if (c.routes) {
        PathParams params;
        const auto match = c.routes->match(request.method(), request.path(), params);
        if (match.status != Router<std::uint8_t>::Status::found) return 0;
        pattern = match.pattern;
    }
    switch (c.rule.key) {
        case KeyKind::client_ip: break;
        case KeyKind::header:
            if (const auto value = request.header(c.rule.header)) return table_.hash(*value, c.salt);
            break;  // no header: keyed by the address, so leaving it out does not escape the limit
        case KeyKind::route: return table_.hash(pattern, c.salt);
        case KeyKind::global: return table_.hash({}, c.salt);
    }
    return client_hash(request, index);
}

[[gnu::noinline, gnu::cold]] std::optional<Response> RateLimitMiddleware::refusal(std::size_t index, std::int64_t tat,
                                                                                  std::int64_t now) const {
    return too_many_requests(index, gcra(rules_[index]->policy, tat, now));
}

std::optional<Response> RateLimitMiddleware::before(Request& request, RequestContext& context) {
    if (!one_address_rule_) return before_rules(request, context);
    // The usual configuration (one rule per client address, no fields on the answers), the client's address in
    // the exchange slot's memo (a keep-alive connection's last one: no thread-local lookup, whose call GCC assumes
    // and saves registers for) and its key in its first slot: inline, with no call. Anything else (a new address,
    // one of another length than IPv4 text, a key further in its window, a refusal, a request without its arrival
    // time) is decided from the start by usual_rule (one refused here changed nothing).
    const RequestContext::RateLimitMemo& m = context.rate_limit_memo();
    const std::int64_t now = request.received_at().time_since_epoch().count();  // steady_clock: nanoseconds
    const std::string_view client = request.client_address();
    const std::size_t n = client.size();
    if (now != 0 && m.tag == usual_tag_ && m.size == n && m.head == load8(client.data()) &&
        m.tail == load8(client.data() + n - 8) && table_.admit_in_first_slot(m.hash, usual_policy_, now))
        return std::nullopt;
    return usual_rule(request, context);
}

[[gnu::noinline]] std::optional<Response> RateLimitMiddleware::usual_rule(const Request& request,
                                                                          RequestContext& context) {
    const std::int64_t now = now_ns(request);
    const std::uint64_t hash = client_hash(request, 0);
    // Kept for the slot's next request when the address is IPv4 text (8 to 16 bytes: before() compares two words).
    const std::string_view client = request.client_address();
    if (client.size() >= 8 && client.size() <= 16)
        context.rate_limit_memo() = {usual_tag_, hash, client.size(), load8(client.data()),
                                     load8(client.data() + client.size() - 8)};
    const SharedTable::Admission a = table_.admit(hash, usual_policy_, now);
    if (!a.allowed) return refusal(0, a.tat, now);
    return std::nullopt;
}

[[gnu::noinline]] std::optional<Response> RateLimitMiddleware::before_rules(Request& request, RequestContext& context) {
    const std::int64_t now = now_ns(request);
    std::uint64_t note = 0;
    std::uint32_t least = UINT32_MAX;
    for (std::size_t i = 0; i < rules_.size(); ++i) {
        const Compiled& c = *rules_[i];
        const std::uint64_t hash = c.by_address ? client_hash(request, i) : other_key_hash(request, i);
        if (hash == 0) continue;  // a rule whose routes do not cover the request (hashes are never 0)
        const SharedTable::Admission a = table_.admit(hash, c.policy, now);
        if (!a.allowed) [[unlikely]]
            return refusal(i, a.tat, now);
        if (headers_) {
            const GcraDecision d = gcra_allowed(c.policy, a.tat, now);
            if (d.remaining < least) least = d.remaining, note = pack(i, d.remaining, ceil_seconds(d.reset_ns));
        }
    }
    context.set_rate_limit_note(note);
    return std::nullopt;
}

void RateLimitMiddleware::after(const Request& /*request*/, const RequestContext& context, Response& response) {
    const std::uint64_t note = context.rate_limit_note();
    if (note == 0 || response.status() == 429) return;
    const std::size_t index = (note >> 48) - 1;
    if (index >= rules_.size()) return;
    const Compiled& c = *rules_[index];
    // Formatted on the stack: no allocation per answer.
    char field[96];
    char* end = std::copy(c.rate_prefix.begin(), c.rate_prefix.end(), field);
    end = std::to_chars(end, field + sizeof field, (note >> 24) & 0xffffff).ptr;
    end = std::copy_n(";t=", 3, end);
    end = std::to_chars(end, field + sizeof field, note & 0xffffff).ptr;
    // Both values are printable ASCII by construction (the rule's name is checked so when configured, the rest is
    // digits and punctuation): no CR/LF/NUL scan, one reserve for the two.
    const std::string_view rate(field, static_cast<std::size_t>(end - field));
    response.reserve_headers(16 + c.policy_field.size() + 9 + rate.size(), 2);
    response.add_prechecked_header("RateLimit-Policy", c.policy_field);
    response.add_prechecked_header("RateLimit", rate);
}

}  // namespace covet::ratelimit
