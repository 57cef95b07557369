// Per-route response-time objectives (the design doc's `performance` middleware): each answer's duration,
// from the end of its request head to its response head (a streamed answer: its first bytes), is compared
// with the threshold of its route template (or the default one). An answer over it counts in
// covet_sla_violations_total{http_route} and logs one structured line through spdlog's "covet.performance"
// logger (warning level: route, method, status, duration, threshold, trace id), at most one per route per
// `log_interval` (the lines held back are counted in the next one). Answers within their threshold cost a
// clock read and a table lookup; nothing is allocated per request.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "covet/middleware/access_log.hpp"
#include "covet/middleware/middleware.hpp"

namespace covet {

// What a violation reports (to the log line and to PerformanceOptions::alert).
struct SlaViolation {
    std::string_view route;  // the route template, converters dropped ("/items/{id}"); "" when none matched
    std::string_view method;
    int status = 0;
    std::chrono::microseconds duration{};
    std::chrono::microseconds threshold{};
    std::string_view trace_id;     // 32 hex digits when the request is traced, else ""
    std::uint64_t suppressed = 0;  // violations of this route not logged since its previous line
};

struct PerformanceOptions {
    // The threshold of every route not listed in `routes` (and of unmatched requests); zero: only the listed
    // routes are checked.
    std::chrono::microseconds sla{0};
    // Route templates as declared ("/items/{id}"; a converter, "{id:int}", may be written or not) and their
    // thresholds.
    std::vector<std::pair<std::string, std::chrono::microseconds>> routes{};
    // At most one line (and alert) per route in this interval; zero logs every violation.
    std::chrono::milliseconds log_interval{1000};
    LogFormat format = LogFormat::text;
    // Called with each violation that is logged (same rate limit), on the connection's thread: keep it short
    // and never let it throw.
    std::function<void(const SlaViolation&)> alert{};
};

class PerformanceMiddleware final : public Middleware {
public:
    // Throws std::invalid_argument naming the fix for a threshold <= 0 (the default or a route's), a route
    // that does not start with '/', a route listed twice, a negative log_interval, or nothing to check.
    explicit PerformanceMiddleware(PerformanceOptions options);
    ~PerformanceMiddleware() override;

    void after(const Request& request, const RequestContext& context, Response& response) override;

    // The threshold applying to a route template (as RequestContext::route gives it); zero: not checked.
    std::chrono::microseconds threshold_of(std::string_view route) const noexcept;

    // Adds `n` to covet_sla_violations_total{http_route=route} (any thread; the Python fallback of the
    // middleware counts through it). `route`: normalized.
    static void count_violation(std::string_view route, std::uint64_t n = 1);

    // The route template as labels and options name it: parameter converters dropped.
    static std::string normalize_route(std::string_view route);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace covet
