// The rate limiter: GCRA's arithmetic, the shared table (keys, eviction, one table seen through two mappings
// of its file as two worker processes see it, and exact budgets under threads racing on one key), and the
// middleware's answers and RateLimit fields.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "covet/covet.hpp"
#include "covet/ratelimit/gcra.hpp"
#include "covet/ratelimit/middleware.hpp"
#include "covet/ratelimit/shared_table.hpp"

using namespace std::chrono_literals;
namespace rl = covet::ratelimit;

namespace {

constexpr std::int64_t s = 1'000'000'000;
constexpr std::int64_t t0 = 1000 * s;  // any point on the monotonic clock

covet::Request request(std::string_view target, std::string_view client,
                       std::initializer_list<std::pair<std::string_view, std::string_view>> headers = {}) {
    covet::Request r;
    r.set_method(covet::Method::get);
    r.set_target(target);
    r.set_client(client, 40000);
    for (const auto& [name, value] : headers) r.add_header(name, value);
    return r;
}

std::string header(const covet::Response& r, std::string_view name) {
    return std::string(r.headers().get(name).value_or("<none>"));
}

// How many of `per_thread` calls of `passes(i)` (i = 0..per_thread-1) in each of four racing threads returned true.
int passed_in_threads(const std::function<bool(int)>& passes, int per_thread = 1000) {
    std::atomic<int> passed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < per_thread; ++i)
                if (passes(i)) passed.fetch_add(1);
        });
    for (auto& t : threads) t.join();
    return passed.load();
}

struct TempDir {
    std::string path;
    TempDir() {
        char templ[] = "/tmp/covet-ratelimit-test-XXXXXX";
        path = ::mkdtemp(templ);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST(Gcra, BurstThenOneEveryEmission) {
    const auto p = rl::GcraPolicy::make(10, 10s, 3);  // 1/s, 3 at once
    std::int64_t tat = 0;
    for (std::uint32_t i = 0; i < 3; ++i) {
        const auto d = rl::gcra(p, tat, t0);
        ASSERT_TRUE(d.allowed) << i;
        EXPECT_EQ(d.remaining, 2 - i);
        tat = d.tat;
    }
    auto d = rl::gcra(p, tat, t0);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.tat, tat);  // a refusal changes nothing
    EXPECT_EQ(d.retry_after_ns, 1 * s);
    EXPECT_EQ(d.reset_ns, 3 * s);
    d = rl::gcra(p, tat, t0 + s - 1);
    EXPECT_FALSE(d.allowed);
    d = rl::gcra(p, tat, t0 + s);  // one emission later exactly one more
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, 0u);
    EXPECT_FALSE(rl::gcra(p, d.tat, t0 + s).allowed);
    // Long idle: the bucket is full again, never more than the burst.
    d = rl::gcra(p, d.tat, t0 + 100 * s);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, 2u);
}

TEST(Gcra, DefaultBurstIsTheLimitAndBadPoliciesAreInvalid) {
    const auto p = rl::GcraPolicy::make(100, 60s);
    EXPECT_EQ(p.burst, 100u);
    EXPECT_EQ(p.emission_ns, 600'000'000);
    EXPECT_FALSE(rl::GcraPolicy::make(0, 1s).valid());
    EXPECT_FALSE(rl::GcraPolicy::make(5, 0s).valid());
    // A cost above the burst never passes.
    EXPECT_FALSE(rl::gcra(rl::GcraPolicy::make(5, 1s), 0, t0, 6).allowed);
}

TEST(SharedTable, KeysAreIndependentAndHashesSeeded) {
    rl::SharedTable table("t", 1024, "");
    const auto p = rl::GcraPolicy::make(2, 1s);
    const auto a = table.hash("10.0.0.1"), b = table.hash("10.0.0.2");
    EXPECT_NE(a, b);
    EXPECT_NE(table.hash("x", 1), table.hash("x", 2));
    EXPECT_TRUE(table.acquire(a, p, t0).allowed);
    EXPECT_TRUE(table.acquire(a, p, t0).allowed);
    EXPECT_FALSE(table.acquire(a, p, t0).allowed);
    EXPECT_TRUE(table.acquire(b, p, t0).allowed);
    EXPECT_GT(table.tat(a), t0);
    rl::SharedTable other("t", 1024, "");  // another process-local table: another seed
    EXPECT_NE(other.hash("10.0.0.1"), a);
}

TEST(SharedTable, AFileTableIsSharedByEveryMapping) {
    TempDir dir;
    rl::SharedTable one("api", 1000, dir.path), two("api", 1000, dir.path);
    EXPECT_EQ(one.capacity(), 1024u);
    EXPECT_EQ(one.file(), dir.path + "/ratelimit-api-1024.table");
    const auto key = one.hash("203.0.113.9");
    EXPECT_EQ(two.hash("203.0.113.9"), key);  // the seed is the file's
    const auto p = rl::GcraPolicy::make(3, 1s);
    EXPECT_TRUE(one.acquire(key, p, t0).allowed);
    EXPECT_TRUE(two.acquire(key, p, t0).allowed);
    EXPECT_TRUE(one.acquire(key, p, t0).allowed);
    EXPECT_FALSE(two.acquire(key, p, t0).allowed);
    EXPECT_THROW(rl::SharedTable("x", 16, "/nonexistent/dir"), std::system_error);
}

TEST(SharedTable, AFloodOfKeysStaysBoundedAndForgetsExpiredKeysFirst) {
    rl::SharedTable table("t", 64, "");
    const auto p = rl::GcraPolicy::make(1, 1s);
    // 64 slots, 10,000 keys: every request decided, memory fixed.
    for (int i = 0; i < 10'000; ++i) EXPECT_TRUE(table.acquire(table.hash(std::to_string(i)), p, t0 + i * s).allowed);
    // Each key's TAT passed before the next arrived: only expired keys were forgotten.
    EXPECT_EQ(table.evictions_live(), 0u);
    // Now all at once: the windows fill with live keys, and the oldest are forgotten.
    for (int i = 0; i < 1'000; ++i) table.acquire(table.hash("live" + std::to_string(i)), p, t0 + 20'000 * s);
    EXPECT_GT(table.evictions_live(), 0u);
}

// Threads racing on one key at one instant: exactly the burst passes, never one more (the TAT's CAS).
TEST(SharedTable, ThreadsRacingOnOneKeyGetExactlyTheBudget) {
    rl::SharedTable table("t", 1024, "");
    const auto p = rl::GcraPolicy::make(1000, 1000s);  // burst 1000
    const auto key = table.hash("shared");
    EXPECT_EQ(passed_in_threads([&](int) { return table.acquire(key, p, t0).allowed; }), 1000);
    // The request path's admission (admit_in_first_slot, then admit) on another key of the same table.
    const auto other = table.hash("other");
    EXPECT_EQ(passed_in_threads(
                  [&](int) { return table.admit_in_first_slot(other, p, t0) || table.admit(other, p, t0).allowed; }),
              1000);
}

// Threads inserting distinct keys into a small table at once: no key is lost or doubled while it fits.
TEST(SharedTable, ThreadsInsertingKeysConcurrently) {
    rl::SharedTable table("t", 4096, "");
    const auto p = rl::GcraPolicy::make(1, 1000s);
    // The same 500 keys in every thread: each passes once overall.
    EXPECT_EQ(
        passed_in_threads([&](int i) { return table.acquire(table.hash(std::to_string(i)), p, t0).allowed; }, 500),
        500);
}

TEST(ClientKey, PrefixesAggregateAddresses) {
    char a[17], b[17];
    EXPECT_EQ(rl::client_key("192.0.2.1", 24, 64, a), rl::client_key("192.0.2.200", 24, 64, b));
    EXPECT_NE(rl::client_key("192.0.2.1", 32, 64, a), rl::client_key("192.0.2.2", 32, 64, b));
    EXPECT_EQ(rl::client_key("::ffff:192.0.2.1", 32, 64, a), rl::client_key("192.0.2.1", 32, 64, b));
    EXPECT_EQ(rl::client_key("2001:db8:1:2::1", 32, 64, a), rl::client_key("2001:db8:1:2:ffff::9", 32, 64, b));
    EXPECT_NE(rl::client_key("2001:db8:1:2::1", 32, 128, a), rl::client_key("2001:db8:1:2::2", 32, 128, b));
    EXPECT_EQ(rl::client_key("not an address", 32, 64, a), "not an address");
}

TEST(RateLimitMiddleware, RefusesOverTheLimitWithTheDraftFields) {
    rl::RateLimitMiddleware m(
        {.rules = {{.name = "per-ip", .limit = 2, .period = 10s}}, .headers = true, .directory = ""});
    covet::RequestContext context;
    auto r = request("/a", "198.51.100.7");
    ASSERT_FALSE(m.before(r, context));
    covet::Response ok = covet::Response::text("ok");
    m.after(r, context, ok);
    EXPECT_EQ(header(ok, "RateLimit-Policy"), "\"per-ip\";q=2;w=10");
    EXPECT_EQ(header(ok, "RateLimit"), "\"per-ip\";r=1;t=5");
    ASSERT_FALSE(m.before(r, context));
    const auto refused = m.before(r, context);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status(), 429);
    EXPECT_EQ(header(*refused, "Retry-After"), "5");
    EXPECT_EQ(header(*refused, "RateLimit"), "\"per-ip\";r=0;t=10");
    EXPECT_EQ(header(*refused, "RateLimit-Policy"), "\"per-ip\";q=2;w=10");
    EXPECT_NE(refused->body().find("Too Many Requests"), std::string::npos);
    auto other = request("/a", "198.51.100.8");  // another client is unaffected
    EXPECT_FALSE(m.before(other, context));
    // `after` writes the fields: the app calls it only when they are on.
    EXPECT_EQ(m.hooks(), covet::Middleware::all_hooks);
    rl::RateLimitMiddleware quiet({.rules = {{.name = "per-ip", .limit = 2, .period = 10s}}, .directory = ""});
    EXPECT_EQ(quiet.hooks(), covet::Middleware::before_hook);
}

TEST(RateLimitMiddleware, HeaderRouteAndGlobalKeys) {
    rl::RateLimitMiddleware m(
        {.rules = {{.name = "key", .limit = 1, .period = 100s, .key = rl::KeyKind::header, .header = "X-API-Key"},
                   {.name = "login",
                    .limit = 2,
                    .period = 100s,
                    .key = rl::KeyKind::route,
                    .routes = {"/login", "/users/{id:int}"}}},
         .directory = ""});
    covet::RequestContext context;
    auto k1 = request("/x", "10.0.0.1", {{"X-API-Key", "k1"}});
    auto k2 = request("/x", "10.0.0.1", {{"X-API-Key", "k2"}});
    EXPECT_FALSE(m.before(k1, context));
    EXPECT_TRUE(m.before(k1, context));   // k1 spent
    EXPECT_FALSE(m.before(k2, context));  // k2 has its own, from the same address
    auto bare = request("/x", "10.0.0.9");
    EXPECT_FALSE(m.before(bare, context));  // no key: keyed by address, one per address all the same
    EXPECT_TRUE(m.before(bare, context));
    // The route rule: one budget for the template, whoever asks, whatever the id.
    auto u1 = request("/users/1", "10.1.0.1", {{"X-API-Key", "u1"}});
    auto u2 = request("/users/2", "10.1.0.2", {{"X-API-Key", "u2"}});
    auto u3 = request("/users/3", "10.1.0.3", {{"X-API-Key", "u3"}});
    EXPECT_FALSE(m.before(u1, context));
    EXPECT_FALSE(m.before(u2, context));
    const auto refused = m.before(u3, context);
    ASSERT_TRUE(refused);
    EXPECT_EQ(header(*refused, "RateLimit-Policy"), "\"login\";q=2;w=100");
    auto login = request("/login", "10.1.0.4", {{"X-API-Key", "u4"}});
    EXPECT_FALSE(m.before(login, context));  // another template, another budget
}

TEST(RateLimitMiddleware, BadRulesAreRefusedByName) {
    const auto make = [](rl::RateLimitRule rule) {
        rl::RateLimitMiddleware m({.rules = {std::move(rule)}, .directory = ""});
    };
    EXPECT_THROW(make({.name = "z", .limit = 0}), std::invalid_argument);
    EXPECT_THROW(make({.name = "h", .limit = 1, .key = rl::KeyKind::header}), std::invalid_argument);
    EXPECT_THROW(make({.name = "r", .limit = 1, .key = rl::KeyKind::route}), std::invalid_argument);
    EXPECT_THROW(make({.name = "p", .limit = 1, .ipv4_prefix = 33}), std::invalid_argument);
    EXPECT_THROW(make({.name = "bad\"name", .limit = 1}), std::invalid_argument);
    EXPECT_THROW(make({.name = std::string(65, 'n'), .limit = 1}), std::invalid_argument);
    try {
        make({.name = "mine", .limit = 1, .routes = {"/a/{"}});
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("'mine'"), std::string::npos);
    }
}

// Two middleware on one table: the same rule shares its budgets (as the workers of a group do), different rules
// never mix, whatever their position.
TEST(RateLimitMiddleware, RulesAreKeptApartByWhatTheyAreNotWhereTheyStand) {
    TempDir dir;
    const rl::RateLimitRule a{.name = "a", .limit = 1, .period = 100s};
    const rl::RateLimitRule b{.name = "b", .limit = 1, .period = 100s};
    rl::RateLimitMiddleware one({.rules = {a}, .directory = dir.path}), same({.rules = {a}, .directory = dir.path});
    rl::RateLimitMiddleware other({.rules = {b}, .directory = dir.path});
    covet::RequestContext context;
    auto r = request("/", "192.0.2.50");
    EXPECT_FALSE(one.before(r, context));
    EXPECT_TRUE(same.before(r, context));    // the same rule: the budget is spent
    EXPECT_FALSE(other.before(r, context));  // rule b at the same index: its own budget
}

// The memos of the last address's hash (the exchange slot's, RateLimitMiddleware::before, and the thread's) must
// never let one client spend another's budget nor lose one: addresses of one length (the two-word compare), long
// ones (the byte compare), short and empty ones, prefixes that aggregate, two slots that swap clients, and two
// tables (two seeds) under the same rule.
TEST(RateLimitMiddleware, TheAddressMemoNeverMixesClients) {
    rl::RateLimitMiddleware m({.rules = {{.name = "ip", .limit = 1, .period = 100s}}, .directory = ""});
    covet::RequestContext context;
    const std::vector<std::string> clients = {"198.51.100.17",
                                              "198.51.100.18",
                                              "2001:db8:0:1::1",
                                              "2001:db8:0:2::1",
                                              "2001:db8:0:4::1:1",
                                              "2001:db8:0:5::1:1",
                                              "::1",
                                              "",
                                              "10.0.0.1"};
    for (const std::string& c : clients) {
        auto r = request("/", c);
        EXPECT_FALSE(m.before(r, context)) << c;  // each its own budget, whatever came before
        EXPECT_TRUE(m.before(r, context)) << c;   // and it is spent, seen twice in a row
    }
    for (const std::string& c : clients) {
        auto r = request("/", c);
        EXPECT_TRUE(m.before(r, context)) << c;
    }

    rl::RateLimitMiddleware net(
        {.rules = {{.name = "net", .limit = 1, .period = 100s, .ipv4_prefix = 24}}, .directory = ""});
    auto a = request("/", "203.0.113.5"), b = request("/", "203.0.113.77");
    EXPECT_FALSE(net.before(a, context));
    EXPECT_TRUE(net.before(b, context));  // the same /24

    // Each exchange slot (a connection's) keeps the memo of its last client: two slots that swap clients (a proxy's
    // forwarded addresses, trusted) must each charge the client of the request, not the slot's last one. The
    // requests carry their arrival time, so before()'s inline path (the memo's compare) runs; c1 and c2 differ only
    // in their last byte (the same length and first word).
    rl::RateLimitMiddleware two_slots({.rules = {{.name = "ip", .limit = 2, .period = 100s}}, .directory = ""});
    covet::RequestContext first, second;
    auto c1 = request("/", "198.51.100.1"), c2 = request("/", "198.51.100.2"), c3 = request("/", "198.51.100.3");
    for (covet::Request* r : {&c1, &c2, &c3}) r->set_received_at(covet::io::Clock::now());
    EXPECT_FALSE(two_slots.before(c1, first));
    EXPECT_FALSE(two_slots.before(c2, second));
    EXPECT_FALSE(two_slots.before(c2, first));   // c2's second, on the slot that remembers c1
    EXPECT_TRUE(two_slots.before(c2, second));   // c2 spent (the slot's memo holds c2: the inline path refuses)
    EXPECT_FALSE(two_slots.before(c1, second));  // c1's second
    EXPECT_TRUE(two_slots.before(c1, first));
    EXPECT_TRUE(two_slots.before(c2, first));
    EXPECT_FALSE(two_slots.before(c3, first));
    first.reset();                              // the slot's next exchange: its memo stays, and stays exact
    EXPECT_FALSE(two_slots.before(c3, first));  // c3's second, admitted by the inline path
    EXPECT_TRUE(two_slots.before(c3, first));

    TempDir d1, d2;
    const rl::RateLimitRule rule{.name = "t", .limit = 1, .period = 100s};
    rl::RateLimitMiddleware one({.rules = {rule}, .directory = d1.path}), two({.rules = {rule}, .directory = d2.path});
    auto r = request("/", "192.0.2.60");
    EXPECT_FALSE(one.before(r, context));
    EXPECT_FALSE(two.before(r, context));  // another table: its own budget
    EXPECT_TRUE(one.before(r, context));
    EXPECT_TRUE(two.before(r, context));
}

// The request path's admission (admit, and admit_in_first_slot for a key in its first slot) decides as acquire does
// (threads racing through it: ThreadsRacingOnOneKeyGetExactlyTheBudget).
TEST(SharedTable, AdmitDecidesAsAcquireDoes) {
    rl::SharedTable a("a", 1024, ""), b("b", 1024, "");
    const auto p = rl::GcraPolicy::make(3, 30s);  // burst 3, one every 10 s
    const auto ka = a.hash("k"), kb = b.hash("k");
    EXPECT_FALSE(a.admit_in_first_slot(ka, p, t0));  // not in the table yet: left to admit()
    for (const std::int64_t at : {t0, t0, t0, t0, t0 + 5 * s, t0 + 10 * s, t0 + 10 * s, t0 + 100 * s}) {
        const rl::GcraDecision expected = b.acquire(kb, p, at);
        const rl::SharedTable::Admission got = a.admit(ka, p, at);
        EXPECT_EQ(got.allowed, expected.allowed) << (at - t0) / s;
        const rl::GcraDecision derived = got.allowed ? rl::gcra_allowed(p, got.tat, at) : rl::gcra(p, got.tat, at);
        EXPECT_EQ(derived.tat, expected.tat);
        EXPECT_EQ(derived.remaining, expected.remaining);
        EXPECT_EQ(derived.reset_ns, expected.reset_ns);
        EXPECT_EQ(derived.retry_after_ns, expected.retry_after_ns);
    }
    // In its first slot now: decided inline, and a refusal there records nothing.
    const std::int64_t later = t0 + 1000 * s;
    EXPECT_TRUE(a.admit_in_first_slot(ka, p, later));
    EXPECT_TRUE(a.admit_in_first_slot(ka, p, later));
    EXPECT_TRUE(a.admit_in_first_slot(ka, p, later));
    const std::int64_t tat = a.tat(ka);
    EXPECT_FALSE(a.admit_in_first_slot(ka, p, later));
    EXPECT_EQ(a.tat(ka), tat);
}

// One rule per client address and no fields (the usual configuration) is decided inline once the address is in the
// thread's memo; its answers must be the general loop's: the same budgets, the same 429 and its figures, clients
// kept apart as the memo flips between them.
TEST(RateLimitMiddleware, TheUsualRuleDecidesAsTheGeneralLoop) {
    const rl::RateLimitRule rule{.name = "ip", .limit = 3, .period = 30s};
    rl::RateLimitMiddleware usual({.rules = {rule}, .directory = ""});
    rl::RateLimitMiddleware general({.rules = {rule}, .headers = true, .directory = ""});  // fields: the loop
    covet::RequestContext context;
    const auto at = covet::io::Clock::now();
    const auto arriving = [&](std::string_view client, std::chrono::nanoseconds after) {
        covet::Request r = request("/", client);
        r.set_received_at(at + after);
        return r;
    };
    const std::vector<std::pair<std::string_view, std::chrono::nanoseconds>> sequence = {
        {"192.0.2.1", 0s}, {"192.0.2.1", 0s},   {"192.0.2.2", 0s},   {"192.0.2.1", 0s}, {"192.0.2.1", 0s},
        {"192.0.2.2", 1s}, {"192.0.2.1", 10s},  {"192.0.2.1", 10s},  {"192.0.2.2", 1s}, {"192.0.2.2", 1s},
        {"192.0.2.2", 2s}, {"2001:db8::1", 0s}, {"2001:db8::1", 0s}, {"192.0.2.1", 31s}};
    // Each middleware runs the whole sequence on its own: the memos are keyed by the table, so interleaving
    // the two would flip it on every request and the inline path would never run.
    const auto run = [&](rl::RateLimitMiddleware& m) {
        std::vector<std::string> answers;
        for (const auto& [client, after] : sequence) {
            covet::Request r = arriving(client, after);
            const auto refused = m.before(r, context);
            answers.push_back(refused ? std::to_string(refused->status()) + " " + header(*refused, "Retry-After") +
                                            " " + header(*refused, "RateLimit")
                                      : "200");
        }
        return answers;
    };
    const std::vector<std::string> mine = run(usual), theirs = run(general);
    EXPECT_EQ(mine, theirs);
    std::vector<int> statuses;
    for (const std::string& a : mine) statuses.push_back(std::stoi(a));
    EXPECT_EQ(statuses, (std::vector<int>{200, 200, 200, 200, 429, 200, 200, 429, 200, 429, 429, 200, 200, 200}));
}
