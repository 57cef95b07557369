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
// http.server.request.duration and both body sizes (in the calling thread's cell, looked up).
void finished_request(const HttpExchange& exchange, double seconds, std::uint64_t request_bytes,
                      std::uint64_t response_bytes) noexcept;
void finished_request_ns(const HttpExchange& exchange, std::uint64_t nanoseconds, std::uint64_t request_bytes,
                         std::uint64_t response_bytes) noexcept;

// The label key of an exchange (as finished_request encodes it).
constexpr std::uint64_t exchange_key(const HttpExchange& x) noexcept {
    const std::uint64_t status = x.status >= 100 && x.status <= 599 ? static_cast<std::uint64_t>(x.status) : 0;
    return (x.method & 0xFu) | (std::uint64_t{x.https} << 4) | (std::uint64_t{x.version & 3u} << 5) |
           (std::uint64_t(x.error) << 7) | (status << 10) | (std::uint64_t{x.route} << 20);
}

// The engine's histogram bounds as integers (nanoseconds, bytes), the maximum last: a value's bucket is the first
// threshold >= it, found with integer compares. (http_metrics.cpp checks them against the declared bounds.)
inline constexpr std::uint64_t duration_thresholds_ns[15] = {
    5'000'000,     10'000'000,    25'000'000,    50'000'000,     75'000'000,
    100'000'000,   250'000'000,   500'000'000,   750'000'000,    1'000'000'000,
    2'500'000'000, 5'000'000'000, 7'500'000'000, 10'000'000'000, ~std::uint64_t{0}};
inline constexpr std::uint64_t size_thresholds[14] = {
    64,      256,     1024,     4096,     16384,     65536,      262144,
    1048576, 4194304, 16777216, 67108864, 268435456, 1073741824, ~std::uint64_t{0}};

// The engine's recording for one exchange slot (covet::RequestContext keeps one): the series of the last label
// sets are kept, so that the exchanges of a keep-alive connection, which mostly repeat them, record with a compare
// and plain stores instead of table lookups. The hot path is integer only: durations in nanoseconds and sizes in
// bytes go to their buckets by integer compares and to integer sums (the families scale them on scrape), and a
// histogram's count is not stored (the scrape sums its buckets). Valid on one thread (the cells are per thread): a
// call from another thread looks the series up again.
class HttpSeriesCache {
public:
    // The exchange's start: its first labels, and http.server.active_requests +1.
    void begin(std::uint8_t method, bool https, std::uint8_t version) noexcept {
        const std::uint64_t active = (method & 0xFu) | (std::uint64_t{https} << 4);
        base_ = active | (std::uint64_t{version & 3u} << 5);
        const void* tag = thread_tag();
        if (active != active_key_ || tag != active_owner_) [[unlikely]] {
            begin_slow(active, tag);
            return;
        }
        plain_add(active_slot_->value, 1);
    }
    // The route label (covet::metrics::route_id), once routed.
    void route(std::uint16_t id) noexcept { base_ |= std::uint64_t{id} << 20; }
    // The exchange's end: active -1 on the series the start incremented, one observation in each histogram.
    // `error`: none unless aborted (a 5xx status is recorded as error_type = the status).
    void end(int status, ErrorType error, std::uint64_t nanoseconds, std::uint64_t request_bytes,
             std::uint64_t response_bytes) noexcept {
        const void* tag = thread_tag();
        if (tag == active_owner_) [[likely]]
            plain_add(active_slot_->value, ~std::uint64_t{0});
        else if (active_slot_)
            active_slot_->value.fetch_sub(1, std::memory_order_relaxed);
        // The labels of the last exchange again (same start labels, same status, not aborted), in this thread's own
        // cell: its key is key_, not computed again.
        if (status != owner_status_ || base_ != owner_base_ || error != ErrorType::none || tag != owner_) [[unlikely]] {
            end_slow(key_of(status, error), nanoseconds, request_bytes, response_bytes, status, error);
            return;
        }
        plain_observe(*duration_, bucket(duration_thresholds_ns, nanoseconds), nanoseconds);
        if (request_bytes == 0)  // most requests have no body: its bucket, and nothing to add to the sum
            plain_add(request_body_->buckets[0], 1);
        else
            plain_observe(*request_body_, bucket(size_thresholds, request_bytes), request_bytes);
        plain_observe(*response_body_, bucket(size_thresholds, response_bytes), response_bytes);
    }

private:
    static const void* thread_tag() noexcept {
        thread_local const char tag = 0;
        return &tag;
    }
    std::uint64_t key_of(int status, ErrorType error) const noexcept {
        const std::uint64_t code = static_cast<unsigned>(status - 100) < 500u ? static_cast<unsigned>(status) : 0;
        if (error == ErrorType::none && status >= 500) error = ErrorType::status;
        return base_ | (std::uint64_t(error) << 7) | (code << 10);
    }
    static std::size_t bucket(const std::uint64_t* thresholds, std::uint64_t v) noexcept {
        std::size_t b = 0;
        while (thresholds[b] < v) ++b;  // the thresholds end with the maximum
        return b;
    }
    // The owner thread's writes to its own cell: a relaxed load and store, no locked instruction.
    static void plain_add(std::atomic<std::uint64_t>& a, std::uint64_t n) noexcept {
        a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    static void plain_observe(SeriesSlot& s, std::size_t bucket, std::uint64_t value) noexcept {
        plain_add(s.buckets[bucket], 1);
        plain_add(s.sum, value);
    }
    void begin_slow(std::uint64_t active, const void* tag) noexcept;
    void end_slow(std::uint64_t key, std::uint64_t nanoseconds, std::uint64_t request_bytes,
                  std::uint64_t response_bytes, int status, ErrorType error) noexcept;

    std::uint64_t base_ = 0;  // the labels known at the start (and the route)
    std::uint64_t key_ = ~std::uint64_t{0};
    std::uint64_t active_key_ = ~std::uint64_t{0};
    const void* thread_ = nullptr;  // the thread whose cell holds the series below (the same for all: one compare)
    SeriesSlot* duration_ = nullptr;
    SeriesSlot* request_body_ = nullptr;
    SeriesSlot* response_body_ = nullptr;
    SeriesSlot* active_slot_ = nullptr;
    // The fast paths' conditions, one compare each: thread_ while the series are in its own cell (null otherwise),
    // and the start labels and status that key_ was made of (an aborted exchange's key is never reused).
    const void* owner_ = nullptr;         // the three histograms' series
    const void* active_owner_ = nullptr;  // active_slot_
    std::uint64_t owner_base_ = ~std::uint64_t{0};
    int owner_status_ = -1;
};

// Connection-level events (the net and protocol layers).
void connection_opened() noexcept;  // accepted and open
void connection_closed() noexcept;
// limit: past Limits::max_connections (parked); tls: handshake failed; per_ip / per_ip_rate: a client over
// ClientLimits::max_connections_per_ip / new_connections_per_ip (closed at once).
enum class RefusedReason : std::uint8_t { limit, tls, per_ip, per_ip_rate };
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
