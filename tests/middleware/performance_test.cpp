// PerformanceMiddleware: thresholds per route template, the structured line and the alert of a violation, the
// per-route rate limit, covet_sla_violations_total{http_route} on /_metrics (a real App over real sockets), and
// the options it refuses.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "covet/covet.hpp"
#include "covet/middleware/performance.hpp"
#include "support/http_client.hpp"

using namespace std::chrono_literals;
using covet_test::body_of;
using covet_test::Client;
using covet_test::status_of;

namespace {

// The middleware's log lines, captured: the "covet.performance" logger made here before any middleware is.
std::ostringstream& log_lines() {
    static std::ostringstream out;
    static const bool made = [] {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
        auto logger = std::make_shared<spdlog::logger>("covet.performance", sink);
        logger->set_level(spdlog::level::trace);
        logger->set_pattern("%v");  // the middleware's lines as written (its own logger's pattern)
        spdlog::register_logger(logger);
        return true;
    }();
    (void)made;
    return out;
}

// Before any test makes a middleware (which would make a stderr logger of that name).
const bool log_captured = (log_lines(), true);

std::vector<std::string> lines_with(std::string_view needle) {
    std::vector<std::string> out;
    std::istringstream in(log_lines().str());
    for (std::string line; std::getline(in, line);)
        if (line.find(needle) != std::string::npos) out.push_back(line);
    return out;
}

std::string get(std::uint16_t port, std::string_view target, std::string_view extra = "") {
    Client c(port);
    c.send("GET " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n" + std::string(extra) + "\r\n");
    auto r = c.responses(1);
    return r.empty() ? std::string() : r[0];
}

std::string what_of(const covet::PerformanceOptions& options) {
    try {
        covet::PerformanceMiddleware m(options);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "<accepted>";
}

}  // namespace

TEST(Performance, RefusesThresholdsThatCannotBeMetWithTheFix) {
    const std::string negative = what_of({.sla = -5ms});
    EXPECT_NE(negative.find("default SLA threshold is -5 ms"), std::string::npos) << negative;
    EXPECT_NE(negative.find("give a positive number of milliseconds"), std::string::npos) << negative;

    const std::string zero = what_of({.sla = 100ms, .routes = {{"/slow", 0ms}}});
    EXPECT_NE(zero.find("threshold of route /slow is 0 ms"), std::string::npos) << zero;
    EXPECT_NE(zero.find("leave the route out"), std::string::npos) << zero;
    EXPECT_NE(what_of({.routes = {{"/slow", -1ms}}}).find("must be > 0"), std::string::npos);

    EXPECT_NE(what_of({.routes = {{"slow", 10ms}}}).find("starting with '/'"), std::string::npos);
    EXPECT_NE(what_of({.routes = {{"/a/{x}", 10ms}, {"/a/{x:int}", 20ms}}}).find("listed twice"), std::string::npos);
    EXPECT_NE(what_of({}).find("nothing to check"), std::string::npos);
    EXPECT_NE(what_of({.sla = 1ms, .log_interval = -1ms}).find("log_interval must be >= 0"), std::string::npos);
    EXPECT_EQ(what_of({.sla = 1ms}), "<accepted>");
}

TEST(Performance, ThresholdOfARouteTemplateWithOrWithoutConverters) {
    covet::PerformanceMiddleware m({.sla = 100ms, .routes = {{"/items/{id}", 500ms}, {"/files/{p:path}", 2s}}});
    EXPECT_EQ(m.threshold_of("/items/{id}"), 500ms);
    EXPECT_EQ(m.threshold_of("/items/{id:int}"), 500ms);  // how a typed route reaches the middleware
    EXPECT_EQ(m.threshold_of("/files/{p}"), 2s);
    EXPECT_EQ(m.threshold_of("/other"), 100ms);
    EXPECT_EQ(m.threshold_of(""), 100ms);  // unmatched requests: the default

    covet::PerformanceMiddleware only_listed({.routes = {{"/slow", 5ms}}});
    EXPECT_EQ(only_listed.threshold_of("/fast"), 0us);  // not checked
    EXPECT_EQ(covet::PerformanceMiddleware::normalize_route("/a/{b:int}/c/{d}"), "/a/{b}/c/{d}");
}

TEST(Performance, SlowAnswersAreLoggedRateLimitedCountedAndAlerted) {
    log_lines();
    std::mutex mutex;
    std::vector<covet::SlaViolation> alerts;
    std::vector<std::string> alert_routes;
    covet::App app;
    app.config().ops.endpoints = true;
    app.config().timeouts.shutdown = 3s;
    app.use(std::make_unique<covet::PerformanceMiddleware>(covet::PerformanceOptions{
        .sla = 10s,
        .routes = {{"/perf/slow/{n:int}", 5ms}, {"/perf/fast", 5ms}, {"/perf/stream", 5ms}},
        .log_interval = 60s,
        .alert =
            [&](const covet::SlaViolation& v) {
                std::lock_guard lock(mutex);
                alerts.push_back(v);
                alert_routes.emplace_back(v.route);
            },
    }));
    app.get("/perf/slow/{n:int}", [](covet::Request&) {
        std::this_thread::sleep_for(20ms);
        return covet::Response::text("slow", 201);
    });
    app.get("/perf/fast", [](covet::Request&) { return covet::Response::text("fast"); });
    // A streamed answer is timed to its head (20 ms here), through after_stream.
    app.get("/perf/stream", [](covet::Request&, covet::Responder res) {
        std::this_thread::sleep_for(20ms);
        covet::StreamWriter w = res.stream(covet::Response::text("first "));
        w.write("second");
    });
    app.listen("127.0.0.1", 0).start(1);

    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(status_of(get(app.port(), "/perf/slow/" + std::to_string(i))).substr(9, 3), "201");
    for (int i = 0; i < 3; ++i) EXPECT_EQ(status_of(get(app.port(), "/perf/fast")), "HTTP/1.1 200 OK");
    EXPECT_EQ(status_of(get(app.port(), "/perf/stream")), "HTTP/1.1 200 OK");

    // One line for three violations within the interval; the fast route never violates.
    const auto lines = lines_with("route=\"/perf/slow/{n}\"");
    ASSERT_EQ(lines.size(), 1u) << log_lines().str();
    EXPECT_NE(lines[0].find("[warning] covet.performance: SLA exceeded"), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find(" method=GET status=201 duration_ms="), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find(" threshold_ms=5 suppressed=0"), std::string::npos) << lines[0];
    EXPECT_TRUE(lines_with("/perf/fast").empty()) << log_lines().str();
    {
        std::lock_guard lock(mutex);
        ASSERT_EQ(alerts.size(), 2u);  // the slow route's first violation, then the stream's
        EXPECT_EQ(alert_routes[0], "/perf/slow/{n}");
        EXPECT_EQ(alerts[0].status, 201);
        EXPECT_GE(alerts[0].duration, 20ms);
        EXPECT_EQ(alerts[0].threshold, 5ms);
    }
    // Every violation is counted, logged or not; the label is the template, never the path.
    const std::string body = body_of(get(app.port(), "/_metrics"));
    EXPECT_NE(body.find("# TYPE covet_sla_violations_total counter"), std::string::npos) << body;
    EXPECT_NE(body.find(R"(covet_sla_violations_total{http_route="/perf/slow/{n}"} 3)"), std::string::npos) << body;
    EXPECT_EQ(body.find(R"(covet_sla_violations_total{http_route="/perf/fast"})"), std::string::npos) << body;
    EXPECT_EQ(body.find("/perf/slow/1"), std::string::npos);
    EXPECT_NE(body.find(R"(covet_sla_violations_total{http_route="/perf/stream"} 1)"), std::string::npos) << body;
    EXPECT_EQ(lines_with("route=\"/perf/stream\"").size(), 1u) << log_lines().str();
    app.stop();
    app.wait();
}

TEST(Performance, JsonLinesCarryTheFieldsAndTheHeldBackCount) {
    log_lines();
    covet::App app;
    app.config().timeouts.shutdown = 3s;
    app.use(std::make_unique<covet::PerformanceMiddleware>(
        covet::PerformanceOptions{.sla = 1ms, .log_interval = 150ms, .format = covet::LogFormat::json}));
    app.get("/perf/json", [](covet::Request&) {
        std::this_thread::sleep_for(5ms);
        return covet::Response::text("x");
    });
    app.listen("127.0.0.1", 0).start(1);
    for (int i = 0; i < 3; ++i) get(app.port(), "/perf/json");
    std::this_thread::sleep_for(200ms);  // the interval has passed: the next one is logged with the count
    get(app.port(), "/perf/json");
    // Unmatched requests have the default threshold and the empty route (404s are answered at once: fast).
    EXPECT_EQ(status_of(get(app.port(), "/perf/none")), "HTTP/1.1 404 Not Found");
    app.stop();
    app.wait();
    const auto lines = lines_with(R"("route":"/perf/json")");
    ASSERT_EQ(lines.size(), 2u) << log_lines().str();
    EXPECT_EQ(lines[0].rfind(R"({"time":")", 0), 0u) << lines[0];
    EXPECT_NE(
        lines[0].find(R"("level":"warning","logger":"covet.performance","msg":"SLA exceeded: GET /perf/json took )"),
        std::string::npos)
        << lines[0];
    EXPECT_NE(lines[0].find(R"("method":"GET","status":200,"duration_ms":)"), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find(R"("threshold_ms":1,"suppressed":0})"), std::string::npos) << lines[0];
    EXPECT_NE(lines[1].find(R"("threshold_ms":1,"suppressed":2})"), std::string::npos) << lines[1];
    EXPECT_EQ(lines[0].find("trace_id"), std::string::npos);  // not traced
}
