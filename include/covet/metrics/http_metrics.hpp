// The engine's own metrics (OpenTelemetry HTTP semantic conventions, Prometheus names), with label values
// bounded by construction: a method outside the known set is `_OTHER`, http.route is a registered route
// template (or empty: unmatched requests and hosted apps' catch-all are one value), a status code outside
// 100..599 is `_OTHER`, the protocol version one of three. Recorded on the thread of the connection, in
// that thread's registry cell (see registry.hpp): no lock, no allocation once a label set was seen.
#pragma once

#include <cstdint>
#include <string_view>

#include "covet/metrics/registry.hpp"

namespace covet::metrics {

// The families of the engine, declared in the global registry on first use.
struct EngineFamilies {
    FamilyId request_duration, active_requests, request_body_size, response_body_size;
    FamilyId connections_open, connections_accepted, connections_refused;
    FamilyId tls_handshakes, http2_streams, http2_resets;
    FamilyId websocket_open, websocket_messages;
    FamilyId protocol_refusals, worker_restarts, workers_ready;
    static const EngineFamilies& get();
};

// The route label of a template: a small number, stable for the process (0: no route). A catch-all whose
// parameter is named `covet_unmatched` or `covet_asgi` (hosted apps, covet's unmatched handler, an app behind
// pure ASGI middleware) is 0: its http_route is empty, never the path.
std::uint16_t route_id(std::string_view pattern);
// The template of a route id ("" for 0 or an unknown id).
std::string route_template(std::uint16_t id);

enum class ErrorType : std::uint8_t { none, status, aborted };

// One finished exchange, as the app layer saw it.
struct HttpExchange {
    std::uint8_t method = 0;  // covet::Method's value; method_other for anything else
    bool https = false;
    std::uint8_t version = 1;  // 0: HTTP/1.0, 1: HTTP/1.1, 2: HTTP/2
    std::uint16_t route = 0;
    int status = 0;
    ErrorType error = ErrorType::none;
};
inline constexpr std::uint8_t method_other = 15;

// http.server.active_requests (+1 at dispatch, -1 at the end, on the same thread).
void active_request(std::uint8_t method, bool https, int delta) noexcept;
// http.server.request.duration and both body sizes.
void finished_request(const HttpExchange& exchange, double seconds, std::uint64_t request_bytes,
                      std::uint64_t response_bytes) noexcept;

// The label key of an exchange (as finished_request encodes it).
constexpr std::uint64_t exchange_key(const HttpExchange& x) noexcept {
    const std::uint64_t status = x.status >= 100 && x.status <= 599 ? static_cast<std::uint64_t>(x.status) : 0;
    return (x.method & 0xFu) | (std::uint64_t{x.https} << 4) | (std::uint64_t{x.version & 3u} << 5) |
           (std::uint64_t(x.error) << 7) | (status << 10) | (std::uint64_t{x.route} << 20);
}

// The same two, for one connection's exchanges (covet::RequestContext keeps one): the series of the last label
// sets are kept, so that the exchanges of a keep-alive connection, which mostly repeat them, record with a
// compare and a few stores instead of table lookups. Valid on one thread (the cells are per thread): a call
// from another thread looks the series up again.
class HttpSeriesCache {
public:
    void active(std::uint8_t method, bool https, int delta) noexcept {
        const std::uint64_t key = (method & 0xFu) | (std::uint64_t{https} << 4);
        if (key != active_key_ || thread_tag() != thread_) refresh_active(key);
        if (active_) active_.gauge_add(delta);
    }
    void finished(const HttpExchange& x, double seconds, std::uint64_t request_bytes,
                  std::uint64_t response_bytes) noexcept {
        const std::uint64_t key = exchange_key(x);
        if (key != key_ || thread_tag() != thread_) refresh(key);
        if (!duration_ || !request_body_ || !response_body_) {
            finished_request(x, seconds, request_bytes, response_bytes);  // a full table: counted as dropped
            return;
        }
        duration_.observe(bucket(duration_bounds_, seconds), seconds);
        const auto req = static_cast<double>(request_bytes), resp = static_cast<double>(response_bytes);
        request_body_.observe(bucket(size_bounds_, req), req);
        response_body_.observe(bucket(size_bounds_, resp), resp);
    }

private:
    static const void* thread_tag() noexcept {
        thread_local const char tag = 0;
        return &tag;
    }
    static std::size_t bucket(const double* bounds, double v) noexcept {
        std::size_t b = 0;
        while (bounds[b] < v) ++b;  // the bounds end with +infinity
        return b;
    }
    void refresh(std::uint64_t key) noexcept;
    void refresh_active(std::uint64_t key) noexcept;

    const void* thread_ = nullptr;
    std::uint64_t key_ = ~std::uint64_t{0};
    std::uint64_t active_key_ = ~std::uint64_t{0};
    SeriesRef duration_, request_body_, response_body_, active_;
    const double* duration_bounds_ = nullptr;
    const double* size_bounds_ = nullptr;
};

// Connection-level events (the net and protocol layers).
void connection_opened() noexcept;  // accepted and open
void connection_closed() noexcept;
enum class RefusedReason : std::uint8_t { limit, tls };
void connection_refused(RefusedReason reason) noexcept;
void tls_handshake(bool ok) noexcept;
void http2_stream() noexcept;
void http2_reset(bool by_client) noexcept;
void websocket_opened() noexcept;
void websocket_closed() noexcept;
void websocket_message(bool received) noexcept;
// A request refused by the protocol before reaching the app (400, 408, 413, 414, 431, 501, ...).
void protocol_refusal(int status) noexcept;
// The supervisor's: a worker process restarted (cause: "crash", "signal", "reload", "max_requests", ...;
// bounded by the caller), and how many are ready.
void worker_restart(std::string_view cause) noexcept;
void set_workers_ready(std::int64_t n) noexcept;

}  // namespace covet::metrics
