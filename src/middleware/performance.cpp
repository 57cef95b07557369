#include "covet/middleware/performance.hpp"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "../logging.hpp"
#include "covet/metrics/registry.hpp"
#include "covet/trace/ids.hpp"

namespace covet {
namespace {

using Micros = std::chrono::microseconds;

struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

std::string millis_text(Micros d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(d.count()) / 1000.0);
    std::string s(buf);
    while (s.back() == '0') s.pop_back();  // "612.300" -> "612.3", "500.000" -> "500"
    if (s.back() == '.') s.pop_back();
    return s;
}

void json_string(std::string& out, std::string_view s) {
    out += '"';
    for (const char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += c;
        }
    }
    out += '"';
}

// UTC, milliseconds: "2026-01-02T03:04:05.678Z" (the JSON logs' shape) or "2026-01-02 03:04:05.678" (text).
void append_time(std::string& out, bool iso) {
    const auto now = std::chrono::system_clock::now();
    const std::time_t secs = std::chrono::system_clock::to_time_t(now);
    const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[40];
    const std::size_t n = std::strftime(buf, sizeof buf, iso ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, iso ? ".%03dZ" : ".%03d", static_cast<int>(millis));
    out += buf;
}

// `route` with its parameter converters dropped ("/items/{id:int}" -> "/items/{id}"), as the metrics'
// http_route label has it, into `out` (cleared first).
void normalize_into(std::string& out, std::string_view route) {
    out.clear();
    bool in_param = false, in_converter = false;
    for (const char c : route) {
        if (c == '{') in_param = true;
        if (c == ':' && in_param) in_converter = true;
        if (c == '}') in_param = in_converter = false;
        if (!in_converter) out.push_back(c);
    }
}

void write_route_label(const void* context, std::string& out) {
    metrics::append_label(out, "http_route", *static_cast<const std::string*>(context));
}

}  // namespace

struct PerformanceMiddleware::Impl {
    struct RouteState {
        std::int64_t last_logged = std::numeric_limits<std::int64_t>::min();  // steady-clock nanoseconds
        std::uint64_t suppressed = 0;
    };

    // Tells this middleware's per-thread remembered route apart from another's (addresses are reused).
    std::uint64_t id = next_id.fetch_add(1, std::memory_order_relaxed);
    static inline std::atomic<std::uint64_t> next_id{1};
    PerformanceOptions options;
    StringMap<Micros> thresholds;  // normalized template -> threshold; read-only once made
    std::mutex mutex;              // `states`: touched by violations only
    StringMap<std::unique_ptr<RouteState>> states;

    // The state of `route` (normalized), made on its first violation. Under `mutex`.
    RouteState& state(std::string_view route) {
        auto it = states.find(route);
        if (it == states.end()) {
            it = states.emplace(std::string(route), std::make_unique<RouteState>()).first;
        }
        return *it->second;
    }

    void violated(const Request& request, const RequestContext& context, int status, std::string_view route,
                  Micros duration, Micros threshold) {
        std::uint64_t suppressed = 0;
        bool log = false;
        {
            std::lock_guard lock(mutex);
            RouteState& s = state(route);
            const std::int64_t now =
                std::chrono::duration_cast<std::chrono::nanoseconds>(io::Clock::now().time_since_epoch()).count();
            const std::int64_t interval = std::chrono::nanoseconds(options.log_interval).count();
            if (interval == 0 || s.last_logged == std::numeric_limits<std::int64_t>::min() ||
                now - s.last_logged >= interval) {
                log = true;
                s.last_logged = now;
                suppressed = s.suppressed;
                s.suppressed = 0;
            } else {
                ++s.suppressed;
            }
        }
        count_violation(route);
        if (!log) return;
        char trace_hex[33]{};
        const trace::SpanState& span = context.span();
        const std::string_view trace_id = span.active ? trace::to_hex(span.trace_id, trace_hex) : std::string_view{};
        const SlaViolation v{.route = route,
                             .method = request.method_name(),
                             .status = status,
                             .duration = duration,
                             .threshold = threshold,
                             .trace_id = trace_id,
                             .suppressed = suppressed};
        if (logging::performance_warnings_enabled()) logging::write_performance_warning(line(v));
        if (options.alert) {
            try {
                options.alert(v);
            } catch (const std::exception& e) {
                logging::error("PerformanceMiddleware alert callback threw: {}", e.what());
            }
        }
    }

    std::string line(const SlaViolation& v) const {
        std::string out;
        out.reserve(256);
        const std::string duration = millis_text(v.duration), threshold = millis_text(v.threshold);
        if (options.format == LogFormat::json) {
            // The shape of covet.observability's JSON records (time, level, logger, msg), plus the fields.
            out += R"({"time":")";
            append_time(out, true);
            out += R"(","level":"warning","logger":"covet.performance","msg":)";
            std::string msg = "SLA exceeded: ";
            msg.append(v.method).append(" ").append(v.route.empty() ? "(no route)" : v.route);
            msg.append(" took ").append(duration).append(" ms > ").append(threshold).append(" ms");
            json_string(out, msg);
            out += R"(,"route":)";
            json_string(out, v.route);
            out += R"(,"method":)";
            json_string(out, v.method);
            out.append(R"(,"status":)").append(std::to_string(v.status));
            out.append(R"(,"duration_ms":)").append(duration);
            out.append(R"(,"threshold_ms":)").append(threshold);
            if (!v.trace_id.empty()) out.append(R"(,"trace_id":")").append(v.trace_id).append("\"");
            out.append(R"(,"suppressed":)").append(std::to_string(v.suppressed)).append("}");
        } else {
            out += '[';
            append_time(out, false);
            out += "] [warning] covet.performance: SLA exceeded route=";
            json_string(out, v.route);  // quoted: a template may hold spaces
            out.append(" method=").append(v.method);
            out.append(" status=").append(std::to_string(v.status));
            out.append(" duration_ms=").append(duration);
            out.append(" threshold_ms=").append(threshold);
            if (!v.trace_id.empty()) out.append(" trace_id=").append(v.trace_id);
            out.append(" suppressed=").append(std::to_string(v.suppressed));
        }
        return out;
    }
};

void PerformanceMiddleware::count_violation(std::string_view route, std::uint64_t n) {
    // Each route's series key: a number of its own (the family is this file's), under a lock (violations only).
    static const metrics::FamilyId family = metrics::Registry::global().family(
        "covet_sla_violations", "Answers slower than their route's SLA threshold (PerformanceMiddleware).",
        metrics::Kind::counter);
    static std::mutex mutex;
    static StringMap<std::uint64_t> keys;
    if (n == 0) return;
    std::uint64_t key = 0;
    const std::string* label = nullptr;
    {
        std::lock_guard lock(mutex);
        auto it = keys.find(route);
        if (it == keys.end()) it = keys.emplace(std::string(route), keys.size() + 1).first;
        key = it->second;
        label = &it->first;  // node-based map: stable
    }
    if (metrics::SeriesRef series = metrics::Registry::global().series(family, key, write_route_label, label))
        series.add(n);
}

std::string PerformanceMiddleware::normalize_route(std::string_view route) {
    std::string out;
    normalize_into(out, route);
    return out;
}

PerformanceMiddleware::PerformanceMiddleware(PerformanceOptions options) : impl_(std::make_unique<Impl>()) {
    const auto* const fix = " (give a positive number of milliseconds, e.g. sla_ms=250)";
    if (options.sla.count() < 0)
        throw std::invalid_argument("PerformanceMiddleware: the default SLA threshold is " + millis_text(options.sla) +
                                    " ms; it must be > 0" + fix + ", or 0/None to check only the listed routes");
    for (const auto& [route, threshold] : options.routes) {
        if (route.empty() || route[0] != '/')
            throw std::invalid_argument("PerformanceMiddleware: route '" + route +
                                        "' is not a route template: give the path as the route declares it, "
                                        "starting with '/' (e.g. \"/items/{item_id}\")");
        if (threshold.count() <= 0)
            throw std::invalid_argument("PerformanceMiddleware: the SLA threshold of route " + route + " is " +
                                        millis_text(threshold) + " ms; it must be > 0" + fix +
                                        ", or leave the route out to use the default");
        if (!impl_->thresholds.emplace(normalize_route(route), threshold).second)
            throw std::invalid_argument("PerformanceMiddleware: route " + route +
                                        " is listed twice (with or without a converter); give it once");
    }
    if (options.sla.count() == 0 && options.routes.empty())
        throw std::invalid_argument(
            "PerformanceMiddleware: nothing to check: give a default threshold (sla_ms=...) or route thresholds "
            "(routes={\"/path\": ms})");
    if (options.log_interval.count() < 0)
        throw std::invalid_argument("PerformanceMiddleware: log_interval must be >= 0 (0 logs every violation)");
    count_violation({}, 0);  // declares the family: listed on /_metrics from the start
    // The logger is made by its first use: now, not on a connection's thread during the first violation.
    (void)logging::performance_warnings_enabled();
    impl_->options = std::move(options);
}

PerformanceMiddleware::~PerformanceMiddleware() = default;

std::chrono::microseconds PerformanceMiddleware::threshold_of(std::string_view route) const noexcept {
    const auto& thresholds = impl_->thresholds;
    if (!thresholds.empty()) {
        auto it = thresholds.end();
        if (route.find(':') == std::string_view::npos) {
            it = thresholds.find(route);
        } else {
            thread_local std::string normalized;  // reused: no allocation once grown
            normalize_into(normalized, route);
            it = thresholds.find(std::string_view(normalized));
        }
        if (it != thresholds.end()) return it->second;
    }
    return impl_->options.sla;
}

void PerformanceMiddleware::after(const Request& request, const RequestContext& context, Response& response) {
    const std::string_view route = context.route();
    // The route's threshold, remembered per thread for the last route seen: the engine's route views point into
    // the router's patterns, fixed while the app lives, and keep-alive connections mostly repeat a route.
    struct Last {
        std::uint64_t owner = 0;
        const char* data = nullptr;
        std::size_t size = 0;
        Micros threshold{};
    };
    thread_local Last last;
    Micros threshold;
    if (last.owner == impl_->id && last.data == route.data() && last.size == route.size()) {
        threshold = last.threshold;
    } else {
        threshold = threshold_of(route);
        last = {impl_->id, route.data(), route.size(), threshold};
    }
    if (threshold.count() <= 0) return;
    const auto duration = std::chrono::duration_cast<Micros>(io::Clock::now() - request.received_at());
    if (duration <= threshold) return;
    impl_->violated(request, context, response.status(),
                    route.find(':') == std::string_view::npos ? std::string(route) : normalize_route(route), duration,
                    threshold);
}

}  // namespace covet
