// W3C Trace Context parsing (each rule of the spec, valid and invalid forms, random input never crashes),
// the samplers, the per-worker span queue, and TracingMiddleware on a request: continued and new traces,
// ids on the context, the recorded span.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "covet/covet.hpp"
#include "support/http_client.hpp"

namespace {

using namespace covet::trace;

constexpr std::string_view valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

std::string hex(const TraceId& id) {
    char buf[32];
    return std::string(to_hex(id, buf));
}
std::string hex(const SpanId& id) {
    char buf[16];
    return std::string(to_hex(id, buf));
}

TEST(TraceParent, ParsesVersion00) {
    auto p = parse_traceparent(valid);
    ASSERT_TRUE(p);
    EXPECT_EQ(hex(p->trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_EQ(hex(p->parent_id), "00f067aa0ba902b7");
    EXPECT_TRUE(p->sampled());
    auto unsampled = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    ASSERT_TRUE(unsampled);
    EXPECT_FALSE(unsampled->sampled());
    // Flags this version does not define are carried (and ignored), not an error.
    auto other_flags = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03");
    ASSERT_TRUE(other_flags);
    EXPECT_TRUE(other_flags->sampled());
}

TEST(TraceParent, RefusesEachInvalidForm) {
    const char* invalid[] = {
        "",
        "00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",     // short flags
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",   // version 00 with an extra char
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  // version 00 with an extra field
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    // uppercase trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",    // uppercase parent id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",    // uppercase flags
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // uppercase version
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    // all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // all-zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // version ff is invalid
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",    // a dash misplaced
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // wrong separator
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",    // flags not hex
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",    // trace id not hex
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // leading space
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",   // trailing space
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",   // a later version: more only after '-'
        "g0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // version not hex
    };
    for (const char* h : invalid) EXPECT_FALSE(parse_traceparent(h)) << h;
}

TEST(TraceParent, ReadsLaterVersionsForwardCompatibly) {
    auto p = parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds");
    ASSERT_TRUE(p);
    EXPECT_EQ(hex(p->trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_TRUE(p->sampled());
    EXPECT_TRUE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
}

TEST(TraceParent, FormatsWhatItParses) {
    auto p = parse_traceparent(valid);
    ASSERT_TRUE(p);
    char out[traceparent_length];
    EXPECT_EQ(format_traceparent(p->trace_id, p->parent_id, p->flags, out), valid);
}

TEST(TraceParent, RandomInputNeverCrashesAndNearMissesFail) {
    std::mt19937_64 rng(12345);
    const std::string alphabet = "0123456789abcdefABCDEF-xz \t\x01\xff";
    int accepted = 0;
    for (int i = 0; i < 200000; ++i) {
        std::string s(rng() % 80, '\0');
        for (char& c : s) c = alphabet[rng() % alphabet.size()];
        if (parse_traceparent(s)) ++accepted;
        (void)valid_tracestate(s);
    }
    EXPECT_LT(accepted, 5);  // random strings are (almost) never valid
    // Every single-character change of a valid header is either still valid or refused; never a crash.
    for (std::size_t pos = 0; pos < valid.size(); ++pos) {
        for (int c = 0; c < 256; ++c) {
            std::string s(valid);
            s[pos] = static_cast<char>(c);
            auto p = parse_traceparent(s);
            if (p) {
                EXPECT_EQ(s.find_first_of("ABCDEF"), std::string::npos) << s;
            }
        }
    }
}

TEST(TraceState, ValidAndInvalid) {
    EXPECT_TRUE(valid_tracestate("rojo=00f067aa0ba902b7"));
    EXPECT_TRUE(valid_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    EXPECT_TRUE(valid_tracestate("rojo=1 , ,congo=2"));  // OWS and empty members
    EXPECT_TRUE(valid_tracestate("tenant1@vendor=x"));
    EXPECT_TRUE(valid_tracestate("a/b*c_d-e=with space inside"));
    EXPECT_FALSE(valid_tracestate(""));
    EXPECT_FALSE(valid_tracestate("Rojo=1"));            // uppercase key
    EXPECT_FALSE(valid_tracestate("rojo"));              // no value
    EXPECT_FALSE(valid_tracestate("rojo="));             // empty value
    EXPECT_FALSE(valid_tracestate("rojo=a=b"));          // '=' in the value
    EXPECT_TRUE(valid_tracestate("rojo=trailing "));     // the space is OWS around the member
    EXPECT_FALSE(valid_tracestate("rojo=caf\xc3\xa9"));  // not printable ASCII
    EXPECT_FALSE(valid_tracestate("rojo=1,rojo=2"));     // duplicate key
    EXPECT_FALSE(valid_tracestate("t@toolongsystemid=1"));
    EXPECT_FALSE(valid_tracestate("rojo=\x01"));
    std::string members;
    for (int i = 0; i < 32; ++i) members += (i ? ",k" : "k") + std::to_string(i) + "=v";
    EXPECT_TRUE(valid_tracestate(members));
    EXPECT_FALSE(valid_tracestate(members + ",k32=v"));  // 33 members
    std::string big = "k=" + std::string(250, 'v') + ",l=" + std::string(250, 'v');
    EXPECT_TRUE(valid_tracestate(big));                                  // 505 bytes
    EXPECT_FALSE(valid_tracestate(big + ",m=" + std::string(10, 'v')));  // over 512 bytes
}

TEST(Span, RouteTemplateDropsConverters) {
    FixedText<128> t;
    t.assign_route("/items/{id:int}/files/{path:path}");
    EXPECT_EQ(t.view(), "/items/{id}/files/{path}");
    t.assign_route("/plain");
    EXPECT_EQ(t.view(), "/plain");
    FixedText<4> small;
    small.assign_route("/abcdef");
    EXPECT_EQ(small.view(), "/abc");
}

TEST(Ids, NewIdsAreRandomAndNonZero) {
    std::vector<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        TraceId t = new_trace_id();
        EXPECT_FALSE(is_zero(t));
        seen.push_back(hex(t));
        EXPECT_FALSE(is_zero(new_span_id()));
    }
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end());
}

TEST(Sampler, NamesRatioAndParent) {
    EXPECT_THROW(Sampler::from_name("sometimes"), std::invalid_argument);
    EXPECT_THROW(Sampler::from_name("traceidratio", 1.5), std::invalid_argument);
    const auto off = Sampler::from_name("always_off");
    const auto on = Sampler::from_name("always_on");
    int kept = 0;
    const auto quarter = Sampler::from_name("traceidratio", 0.25);
    for (int i = 0; i < 20000; ++i) {
        TraceId t = new_trace_id();
        EXPECT_FALSE(off.sample(t, true));  // not parent-based: ignores the parent
        EXPECT_TRUE(on.sample(t, false));
        kept += quarter.sample(t, std::nullopt);
    }
    EXPECT_NEAR(kept / 20000.0, 0.25, 0.03);
    const auto parent = Sampler::from_name("parentbased_traceidratio", 0.0);
    const TraceId t = new_trace_id();
    EXPECT_TRUE(parent.sample(t, true));
    EXPECT_FALSE(parent.sample(t, false));
    EXPECT_FALSE(parent.sample(t, std::nullopt));  // root: ratio 0
    // The same trace id gets the same decision (every service with this ratio keeps the same traces).
    TraceId low{};
    low[15] = 1;
    EXPECT_TRUE(quarter.sample(low, std::nullopt));
    TraceId high{};
    high[8] = 0xff;
    EXPECT_FALSE(quarter.sample(high, std::nullopt));
}

TEST(Tracer, QueuesPerThreadBoundedAndCountsDrops) {
    Tracer tracer({Sampler{}, 4});
    SpanRecord span;
    for (int i = 0; i < 6; ++i) tracer.push(span);
    std::thread other([&] {
        for (int i = 0; i < 3; ++i) tracer.push(span);
    });
    other.join();
    EXPECT_EQ(tracer.dropped(), 2u);
    std::vector<SpanRecord> out;
    EXPECT_EQ(tracer.drain(out), 7u);
    EXPECT_EQ(tracer.drain(out), 0u);
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(tracer.push(span));  // room again after the drain
}

covet::Request request(std::initializer_list<std::pair<std::string_view, std::string_view>> headers) {
    covet::Request r;
    r.set_method(covet::Method::get);
    r.set_target("/users/7");
    for (const auto& [name, value] : headers) r.add_header(name, value);
    return r;
}

TEST(TracingMiddleware, ContinuesAnIncomingTraceAndRecordsTheSpan) {
    auto tracer = std::make_shared<Tracer>(TracerOptions{Sampler::from_name("parentbased_always_off"), 16});
    TracingMiddleware m(tracer);
    covet::RequestContext c;
    covet::Request r = request({{"traceparent", valid}, {"tracestate", "rojo=1"}, {"TraceState", "congo=2"}});
    EXPECT_FALSE(m.before(r, c));
    const SpanState& s = c.span();
    ASSERT_TRUE(s.active);
    EXPECT_TRUE(s.has_parent);
    EXPECT_EQ(hex(s.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_EQ(hex(s.parent_span_id), "00f067aa0ba902b7");
    EXPECT_NE(hex(s.span_id), "00f067aa0ba902b7");
    EXPECT_TRUE(s.sampled());  // the parent's decision
    EXPECT_EQ(s.tracestate, "rojo=1,congo=2");
    covet::Response resp = covet::Response::text("ok", 201);
    m.after(r, c, resp);
    std::vector<SpanRecord> spans;
    ASSERT_EQ(tracer->drain(spans), 1u);
    EXPECT_EQ(hex(spans[0].trace_id), hex(s.trace_id));
    EXPECT_EQ(hex(spans[0].span_id), hex(s.span_id));
    EXPECT_EQ(hex(spans[0].parent_span_id), "00f067aa0ba902b7");
    EXPECT_EQ(spans[0].status, 201);
    EXPECT_EQ(spans[0].method, "GET");
    EXPECT_EQ(spans[0].path.view(), "/users/7");
    EXPECT_LE(spans[0].start_unix_ns, spans[0].end_unix_ns);
    EXPECT_GT(spans[0].start_unix_ns, 1'700'000'000'000'000'000);
}

TEST(TracingMiddleware, IgnoresMalformedOrDuplicateTraceparent) {
    auto tracer = std::make_shared<Tracer>(TracerOptions{Sampler::from_name("parentbased_always_off"), 16});
    TracingMiddleware m(tracer);
    for (auto headers :
         {std::vector<std::pair<std::string_view, std::string_view>>{
              {"traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"}, {"tracestate", "rojo=1"}},
          std::vector<std::pair<std::string_view, std::string_view>>{{"traceparent", valid}, {"traceparent", valid}}}) {
        covet::RequestContext c;
        covet::Request r;
        r.set_method(covet::Method::get);
        r.set_target("/");
        for (const auto& [n, v] : headers) r.add_header(n, v);
        m.before(r, c);
        EXPECT_TRUE(c.span().active);
        EXPECT_FALSE(c.span().has_parent);
        EXPECT_NE(hex(c.span().trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        EXPECT_TRUE(c.span().tracestate.empty());  // tracestate without a valid traceparent is dropped
        EXPECT_FALSE(c.span().sampled());          // a new root under always_off
        covet::Response resp = covet::Response::text("ok");
        m.after(r, c, resp);
    }
    std::vector<SpanRecord> spans;
    EXPECT_EQ(tracer->drain(spans), 0u);  // unsampled: nothing recorded
}

TEST(TracingMiddleware, ServedRequestHasIdsInItsContextAndSpan) {
    auto tracer = std::make_shared<Tracer>(TracerOptions{Sampler::from_name("always_on"), 16});
    covet::App app;
    app.use(std::make_unique<TracingMiddleware>(tracer));
    std::string seen;
    app.get("/items/{id}", [&](covet::Request&) {
        const covet::RequestContext* c = covet::RequestContext::current();
        seen = c ? std::string(c->route()) + " " + hex(c->span().trace_id) : "none";
        return covet::Response::text("x");
    });
    app.listen("127.0.0.1", 0).start(1);
    covet_test::Client client(app.port());
    client.send("GET /items/3 HTTP/1.1\r\nHost: t\r\ntraceparent: " + std::string(valid) +
                "\r\nConnection: close\r\n\r\n");
    const std::string raw = client.read_to_end();
    EXPECT_NE(raw.find("200 OK"), std::string::npos) << raw;
    EXPECT_EQ(raw.find("traceparent"), std::string::npos);  // nothing echoed
    app.stop();
    app.wait();
    EXPECT_EQ(seen, "/items/{id} 4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_EQ(covet::RequestContext::current(), nullptr);
    std::vector<SpanRecord> spans;
    ASSERT_EQ(tracer->drain(spans), 1u);
    EXPECT_EQ(spans[0].route.view(), "/items/{id}");
}

}  // namespace
