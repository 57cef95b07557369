// The engine's metric families and their label encodings: each label set packs into a 64-bit key whose
// label text is written once, when the series is first seen on a thread.
#include "covet/metrics/http_metrics.hpp"

#include <array>
#include <cmath>
#include <deque>
#include <limits>
#include <mutex>
#include <string>

namespace covet::metrics {
namespace {

// The buckets OpenTelemetry advises for http.server.request.duration (seconds).
constexpr std::array<double, 14> duration_bounds = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,
                                                    0.5,   0.75, 1,     2.5,  5,     7.5, 10};
// Body sizes (bytes): powers of four from 64 B to 1 GiB.
constexpr std::array<double, 13> size_bounds = {64,      256,     1024,     4096,     16384,     65536,     262144,
                                                1048576, 4194304, 16777216, 67108864, 268435456, 1073741824};

// HttpSeriesCache's integer thresholds are these bounds.
template <std::size_t N, std::size_t M>
constexpr bool same_bounds(const std::array<double, N>& bounds, const std::uint64_t (&thresholds)[M], double unit) {
    static_assert(M == N + 1);
    for (std::size_t i = 0; i < N; ++i)
        // Positive values only, and std::lround is not constexpr before C++23.
        // NOLINTNEXTLINE(bugprone-incorrect-roundings)
        if (static_cast<std::uint64_t>(bounds[i] * unit + 0.5) != thresholds[i]) return false;
    return thresholds[N] == std::numeric_limits<std::uint64_t>::max();
}
static_assert(same_bounds(duration_bounds, duration_thresholds_ns, 1e9));
static_assert(same_bounds(size_bounds, size_thresholds, 1));

constexpr std::array<std::string_view, 9> method_names = {"GET",   "HEAD",    "POST",    "PUT",  "DELETE",
                                                          "PATCH", "OPTIONS", "CONNECT", "TRACE"};
constexpr std::array<std::string_view, 3> version_names = {"1.0", "1.1", "2"};

std::string_view method_label(std::uint8_t m) { return m < method_names.size() ? method_names[m] : "_OTHER"; }

struct Routes {
    std::mutex mutex;
    std::deque<std::string> names{""};
};
Routes& routes() {
    static Routes* const r = new Routes();  // NOLINT: lives for the process (recorded from any thread at exit)
    return *r;
}

EngineFamilies declare() {
    Registry& r = Registry::global();
    EngineFamilies f{};
    f.request_duration = r.family("http_server_request_duration_seconds", "Duration of HTTP server requests.",
                                  Kind::histogram, duration_bounds, false, 1e9);
    f.active_requests = r.family("http_server_active_requests", "Number of active HTTP server requests.", Kind::gauge);
    f.request_body_size = r.family("http_server_request_body_size_bytes", "Size of HTTP server request bodies.",
                                   Kind::histogram, size_bounds, false, 1);
    f.response_body_size = r.family("http_server_response_body_size_bytes", "Size of HTTP server response bodies.",
                                    Kind::histogram, size_bounds, false, 1);
    f.connections_open = r.family("covet_connections_open", "Client connections open.", Kind::gauge);
    f.connections_accepted = r.family("covet_connections_accepted", "Client connections accepted.", Kind::counter);
    f.connections_refused =
        r.family("covet_connections_refused", "Client connections refused (reason: limit, tls, per_ip, per_ip_rate).",
                 Kind::counter);
    f.tls_handshakes = r.family("covet_tls_handshakes", "TLS handshakes by result (ok, failed).", Kind::counter);
    f.http2_streams = r.family("covet_http2_streams", "HTTP/2 streams opened by clients.", Kind::counter);
    f.http2_resets = r.family("covet_http2_resets", "HTTP/2 streams reset (side: client, server).", Kind::counter);
    f.websocket_open = r.family("covet_websocket_connections_open", "WebSocket connections open.", Kind::gauge);
    f.websocket_messages =
        r.family("covet_websocket_messages", "WebSocket messages (direction: received, sent).", Kind::counter);
    f.protocol_refusals = r.family("covet_protocol_refusals",
                                   "Requests refused by the protocol before the app, by status.", Kind::counter);
    f.worker_restarts = r.family("covet_worker_restarts", "Worker processes restarted, by cause.", Kind::counter);
    f.workers_ready = r.family("covet_workers_ready", "Worker processes serving.", Kind::gauge);
    return f;
}

// Label writers: the key carries everything they need.
void write_request_labels(const void* context, std::string& out) {
    const std::uint64_t key = *static_cast<const std::uint64_t*>(context);
    const auto method = static_cast<std::uint8_t>(key & 0xF);
    const bool https = (key >> 4) & 1;
    const auto version = static_cast<std::uint8_t>((key >> 5) & 3);
    const auto error = static_cast<ErrorType>((key >> 7) & 7);
    const auto status = static_cast<int>((key >> 10) & 0x3FF);
    const auto route = static_cast<std::uint16_t>((key >> 20) & 0xFFFF);
    append_label(out, "http_request_method", method_label(method));
    append_label(out, "url_scheme", https ? "https" : "http");
    append_label(out, "http_route", route_template(route));
    const std::string code = status >= 100 && status <= 599 ? std::to_string(status) : std::string("_OTHER");
    append_label(out, "http_response_status_code", code);
    append_label(out, "network_protocol_version", version_names[version < 3 ? version : 1]);
    if (error == ErrorType::status) append_label(out, "error_type", code);
    if (error == ErrorType::aborted) append_label(out, "error_type", "aborted");
}

void write_active_labels(const void* context, std::string& out) {
    const std::uint64_t key = *static_cast<const std::uint64_t*>(context);
    append_label(out, "http_request_method", method_label(static_cast<std::uint8_t>(key & 0xF)));
    append_label(out, "url_scheme", (key >> 4) & 1 ? "https" : "http");
}

void write_no_labels(const void*, std::string&) {}

struct OneLabel {
    std::string_view name, value;
};
void write_one_label(const void* context, std::string& out) {
    const auto* l = static_cast<const OneLabel*>(context);
    append_label(out, l->name, l->value);
}

void bump(FamilyId family, std::int64_t n = 1) noexcept {
    if (SeriesRef s = Registry::global().series(family, 0, write_no_labels, nullptr)) s.gauge_add(n);
}
void bump(FamilyId family, std::uint64_t key, std::string_view name, std::string_view value) noexcept {
    const OneLabel label{name, value};
    if (SeriesRef s = Registry::global().series(family, key, write_one_label, &label)) s.add();
}

std::size_t bucket_index(const std::uint64_t* thresholds, std::uint64_t v) noexcept {
    std::size_t b = 0;
    while (thresholds[b] < v) ++b;
    return b;
}

}  // namespace

const EngineFamilies& EngineFamilies::get() {
    static const EngineFamilies families = declare();
    return families;
}

std::uint16_t route_id(std::string_view pattern) {
    if (pattern.empty() || pattern.find("{covet_unmatched") != std::string_view::npos ||
        pattern.find("{covet_asgi") != std::string_view::npos)
        return 0;
    // The template as the app declared it: parameter converters dropped ("/items/{id:int}" -> "/items/{id}"),
    // so that a typed route and its untyped fallback are one label.
    std::string label;
    label.reserve(pattern.size());
    bool in_param = false, in_converter = false;
    for (const char c : pattern) {
        if (c == '{') in_param = true;
        if (c == ':' && in_param) in_converter = true;
        if (c == '}') in_param = in_converter = false;
        if (!in_converter) label.push_back(c);
    }
    Routes& r = routes();
    std::lock_guard lock(r.mutex);
    for (std::size_t i = 1; i < r.names.size(); ++i)
        if (r.names[i] == label) return static_cast<std::uint16_t>(i);
    if (r.names.size() >= 0xFFFF) return 0;  // bounded: later routes share the empty label
    r.names.push_back(std::move(label));
    return static_cast<std::uint16_t>(r.names.size() - 1);
}

std::string route_template(std::uint16_t id) {
    Routes& r = routes();
    std::lock_guard lock(r.mutex);
    return id < r.names.size() ? r.names[id] : std::string();
}

void active_request(std::uint8_t method, bool https, int delta) noexcept {
    const std::uint64_t key = (method & 0xFu) | (std::uint64_t{https} << 4);
    if (SeriesRef s = Registry::global().series(EngineFamilies::get().active_requests, key, write_active_labels, &key))
        s.gauge_add(delta);
}

void finished_request(const HttpExchange& exchange, double seconds, std::uint64_t request_bytes,
                      std::uint64_t response_bytes) noexcept {
    const double ns = std::isfinite(seconds) && seconds > 0 ? std::round(seconds * 1e9) : 0;
    finished_request_ns(exchange, ns < 1.8e19 ? static_cast<std::uint64_t>(ns) : ~std::uint64_t{0}, request_bytes,
                        response_bytes);
}

void finished_request_ns(const HttpExchange& exchange, std::uint64_t nanoseconds, std::uint64_t request_bytes,
                         std::uint64_t response_bytes) noexcept {
    const EngineFamilies& f = EngineFamilies::get();
    Registry& r = Registry::global();
    const std::uint64_t key = exchange_key(exchange);
    if (SeriesRef s = r.series(f.request_duration, key, write_request_labels, &key))
        s.observe_units(bucket_index(duration_thresholds_ns, nanoseconds), nanoseconds);
    if (SeriesRef s = r.series(f.request_body_size, key, write_request_labels, &key))
        s.observe_units(bucket_index(size_thresholds, request_bytes), request_bytes);
    if (SeriesRef s = r.series(f.response_body_size, key, write_request_labels, &key))
        s.observe_units(bucket_index(size_thresholds, response_bytes), response_bytes);
}

void HttpSeriesCache::begin_slow(std::uint64_t active, const void* tag) noexcept {
    if (tag != thread_) {  // another thread's cell: every series is looked up again there
        thread_ = tag;
        key_ = ~std::uint64_t{0};
        owner_ = nullptr;
    }
    active_key_ = active;
    const SeriesRef s =
        Registry::global().series(EngineFamilies::get().active_requests, active, write_active_labels, &active);
    active_slot_ = s.slot;
    active_owner_ = s && s.exclusive ? tag : nullptr;
    if (s) s.gauge_add(1);
}

void HttpSeriesCache::end_slow(std::uint64_t key, std::uint64_t nanoseconds, std::uint64_t request_bytes,
                               std::uint64_t response_bytes, int status, ErrorType error) noexcept {
    const EngineFamilies& f = EngineFamilies::get();
    Registry& r = Registry::global();
    const void* tag = thread_tag();
    if (tag != thread_) {
        thread_ = tag;  // the active series (the start's, on the other thread) is looked up again at the next start
        active_key_ = ~std::uint64_t{0};
        active_owner_ = nullptr;
        active_slot_ = nullptr;
        key_ = ~std::uint64_t{0};
        owner_ = nullptr;
    }
    if (key != key_) {
        key_ = key;
        const SeriesRef duration = r.series(f.request_duration, key, write_request_labels, &key);
        const SeriesRef request_body = r.series(f.request_body_size, key, write_request_labels, &key);
        const SeriesRef response_body = r.series(f.response_body_size, key, write_request_labels, &key);
        duration_ = duration.slot;
        request_body_ = request_body.slot;
        response_body_ = response_body.slot;
        const bool exclusive = duration && request_body && response_body && duration.exclusive &&
                               request_body.exclusive && response_body.exclusive;
        owner_ = exclusive ? tag : nullptr;
        // The next exchange takes the fast path with the same start labels and status, unless this one was aborted
        // (its key holds the error, which the fast path does not look at).
        owner_base_ = base_;
        owner_status_ = error == ErrorType::none ? status : -1;
        if (exclusive) {
            plain_observe(*duration_, bucket(duration_thresholds_ns, nanoseconds), nanoseconds);
            plain_observe(*request_body_, bucket(size_thresholds, request_bytes), request_bytes);
            plain_observe(*response_body_, bucket(size_thresholds, response_bytes), response_bytes);
            return;
        }
    }
    // The shared cell (atomic adds), or a full table (the missing series are counted as dropped).
    if (duration_) SeriesRef{duration_, false}.observe_units(bucket(duration_thresholds_ns, nanoseconds), nanoseconds);
    if (request_body_)
        SeriesRef{request_body_, false}.observe_units(bucket(size_thresholds, request_bytes), request_bytes);
    if (response_body_)
        SeriesRef{response_body_, false}.observe_units(bucket(size_thresholds, response_bytes), response_bytes);
}

void connection_opened() noexcept {
    const EngineFamilies& f = EngineFamilies::get();
    bump(f.connections_accepted);
    bump(f.connections_open);
}
void connection_closed() noexcept { bump(EngineFamilies::get().connections_open, -1); }
void connection_refused(RefusedReason reason) noexcept {
    static constexpr std::string_view names[] = {"limit", "tls", "per_ip", "per_ip_rate"};
    bump(EngineFamilies::get().connections_refused, static_cast<std::uint64_t>(reason), "reason",
         names[static_cast<std::size_t>(reason)]);
}
void tls_handshake(bool ok) noexcept {
    bump(EngineFamilies::get().tls_handshakes, ok, "result", ok ? "ok" : "failed");
    if (!ok) connection_refused(RefusedReason::tls);  // the connection closes unserved
}
void http2_stream() noexcept { bump(EngineFamilies::get().http2_streams); }
void http2_reset(bool by_client) noexcept {
    bump(EngineFamilies::get().http2_resets, by_client, "side", by_client ? "client" : "server");
}
void websocket_opened() noexcept { bump(EngineFamilies::get().websocket_open); }
void websocket_closed() noexcept { bump(EngineFamilies::get().websocket_open, -1); }
void websocket_message(bool received) noexcept {
    bump(EngineFamilies::get().websocket_messages, received, "direction", received ? "received" : "sent");
}
void protocol_refusal(int status) noexcept {
    const int code = status >= 100 && status <= 599 ? status : 0;
    const auto write = [](const void* context, std::string& out) {
        const int c = *static_cast<const int*>(context);
        append_label(out, "status", c ? std::to_string(c) : std::string("_OTHER"));
    };
    if (SeriesRef s = Registry::global().series(EngineFamilies::get().protocol_refusals,
                                                static_cast<std::uint64_t>(code), write, &code))
        s.add();
}

void worker_restart(std::string_view cause) noexcept {
    static constexpr std::array<std::string_view, 8> causes = {"crash",          "signal", "reload",  "max_requests",
                                                               "startup_failed", "killed", "max_rss", "lifetime"};
    std::uint64_t key = causes.size();
    for (std::size_t i = 0; i < causes.size(); ++i)
        if (causes[i] == cause) key = i;
    bump(EngineFamilies::get().worker_restarts, key, "cause", key < causes.size() ? causes[key] : "_OTHER");
}
void set_workers_ready(std::int64_t n) noexcept {
    if (SeriesRef s =
            Registry::global().shared_series(EngineFamilies::get().workers_ready, 0, write_no_labels, nullptr))
        s.gauge_set(n);
}

}  // namespace covet::metrics
