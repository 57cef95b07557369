// covet::RequestContext: what the app keeps about one exchange besides the protocol's Request: the
// request id (set by RequestIdMiddleware, read by the access log), the trace ids (TracingMiddleware), how
// many middleware `before` hooks ran, and the exchange as metrics and tracing see it at its end (when it
// started, the route template it matched, its status). Middleware hooks receive it next to the Request.
//
// The protocol holds one per exchange slot (an HTTP/1.1 connection, a pooled HTTP/2 stream) as an opaque
// ExchangeState made by App::make_exchange_state, and reuses it for the slot's next exchanges: no
// allocation per request. App::dispatch clears it at the start of every exchange.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "covet/http/exchange.hpp"
#include "covet/io/loop.hpp"
#include "covet/metrics/http_metrics.hpp"
#include "covet/net/worker_context.hpp"
#include "covet/trace/span_state.hpp"

namespace covet {

class App;

// Rewrites a streamed response's body on its way out (compression): installed on the exchange's context
// by a middleware's after_stream hook, then fed every chunk on the connection's thread. `last` marks the
// call at the end of the stream (with an empty chunk), which returns whatever the filter still holds.
// The view returned stays valid until the next call.
class BodyFilter {
public:
    virtual ~BodyFilter() = default;
    virtual std::string_view filter(std::string_view chunk, bool last) noexcept = 0;
};

class RequestContext;

// Told when a streamed response is over, for a middleware whose record needs the whole answer (the access log's
// bytes and duration): installed on the exchange's context by its after_stream hook, run once on the connection's
// thread. `body_bytes`: the body as sent, after any BodyFilter. `completed`: false when the exchange ended without
// the stream's last chunk (the client went away, the stream was reset); the call then comes when the protocol is
// done with the exchange (RequestDispatcher::exchange_over), or the connection closes.
class StreamEndHook {
public:
    virtual ~StreamEndHook() = default;
    virtual void stream_end(const RequestContext& context, std::uint64_t body_bytes, bool completed) noexcept = 0;
};

class RequestContext final : public ExchangeState {
public:
    static constexpr std::size_t max_request_id = 64;

    // A short id for logs and the X-Request-ID header; empty unless a middleware set one.
    std::string_view request_id() const noexcept { return {request_id_, request_id_len_}; }
    // Keeps at most max_request_id bytes.
    void set_request_id(std::string_view id) noexcept {
        request_id_len_ = std::min(id.size(), sizeof request_id_);
        std::copy_n(id.data(), request_id_len_, request_id_);
    }

    // Per-request secrets a handler puts in its page (SecurityHeadersMiddleware's CSP nonce, CsrfMiddleware's
    // token when it sets a new cookie); empty unless the middleware made one for this exchange.
    static constexpr std::size_t max_token = 96;
    std::string_view csp_nonce() const noexcept { return {csp_nonce_, csp_nonce_len_}; }
    void set_csp_nonce(std::string_view nonce) noexcept {
        csp_nonce_len_ = std::min(nonce.size(), sizeof csp_nonce_);
        std::copy_n(nonce.data(), csp_nonce_len_, csp_nonce_);
    }
    std::string_view csrf_token() const noexcept { return {csrf_token_, csrf_token_len_}; }
    void set_csrf_token(std::string_view token) noexcept {
        csrf_token_len_ = std::min(token.size(), sizeof csrf_token_);
        std::copy_n(token.data(), csrf_token_len_, csrf_token_);
    }
    // CsrfMiddleware made csrf_token() for this exchange: its after hook sets the cookie.
    bool csrf_cookie_new = false;

    // The filter a streamed response's body goes through (one per exchange; a later one replaces it).
    void set_body_filter(std::unique_ptr<BodyFilter> filter) noexcept { body_filter_ = std::move(filter); }
    BodyFilter* body_filter() const noexcept { return body_filter_.get(); }
    // Adds a hook told when the streamed response ends (the slot keeps its list's storage between exchanges).
    void add_stream_end_hook(std::unique_ptr<StreamEndHook> hook) { stream_end_hooks_.push_back(std::move(hook)); }

    // The exchange's trace ids (TracingMiddleware; inactive without it).
    trace::SpanState& span() noexcept { return span_; }
    const trace::SpanState& span() const noexcept { return span_; }

    // When the exchange's request arrived (its head was read): the start of its duration.
    io::Clock::time_point started_at() const noexcept { return started_at_; }
    // The route template the request matched ("/users/{id:int}"), never the raw path; empty when no route
    // matched, before routing, and for a hosted app's catch-all. Valid while the app lives.
    std::string_view route() const noexcept { return route_; }
    // What the rate limiter decided for this exchange, for its RateLimit response fields (covet/ratelimit/
    // middleware.hpp; 0: nothing to report). Opaque to everyone else.
    std::uint64_t rate_limit_note() const noexcept { return rate_limit_note_; }
    void set_rate_limit_note(std::uint64_t note) noexcept { rate_limit_note_ = note; }
    // The rate limiter's memo of the last client address it keyed on this slot, and that key's hash. The slot is
    // its connection's (or HTTP/2 stream slot's) for all its exchanges and reset() leaves the memo, so a keep-alive
    // client's next request finds its key here, with no thread-local lookup. Opaque to everyone else.
    struct RateLimitMemo {
        std::uint64_t tag = 0, hash = 0;  // tag 0: empty
        std::size_t size = 0;
        std::uint64_t head = 0, tail = 0;  // an address of 8 to 16 bytes as two overlapping words
    };
    RateLimitMemo& rate_limit_memo() noexcept { return rate_limit_memo_; }
    // The answer's status, once its head is written (0 before).
    int status() const noexcept { return status_; }

    // The context of the exchange whose handler runs on this thread right now (App::dispatch sets it around
    // the handler call), for code that gets only the Request (the Python bindings); null elsewhere.
    static const RequestContext* current() noexcept { return current_; }

    // Back to the state of a new exchange. An exchange still open (its answer never completed: the client
    // went away, the stream was reset) is recorded as aborted first.
    void reset() noexcept {
        end_unfinished();
        span_.reset();
        request_id_len_ = 0;
        csp_nonce_len_ = 0;
        csrf_token_len_ = 0;
        csrf_cookie_new = false;
        middleware_depth_ = 0;
        body_filter_.reset();
        route_ = {};
        status_ = 0;
        rate_limit_note_ = 0;
        response_bytes_ = 0;
        count_body_ = true;
    }
    ~RequestContext() override { end_unfinished(); }

private:
    friend class App;
    // An exchange still open ends here: its metrics as aborted, then its stream-end hooks told it did not complete.
    // Nothing for one that ended. Metrics first, as at a completed end (App::filter_body): a scrape made after a
    // streamed exchange's access log line (a stream-end hook) counts that exchange.
    void end_unfinished() noexcept {
        end_exchange(metrics::ErrorType::aborted);
        end_stream(false);
    }
    // Metrics of the exchange: counted active from begin_exchange to end_exchange (once).
    void end_exchange(metrics::ErrorType error) noexcept {
        if (!open_) return;
        open_ = false;
        // The loop's clock (read once per turn on io_uring, per handler on asio, like the request's arrival time): no
        // clock read per request.
        const net::WorkerContext* worker = net::WorkerContext::installed();
        const io::Clock::time_point now = worker && worker->loop ? worker->loop->now() : io::Clock::now();
        const auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(now - started_at_).count();
        series_.end(status_, error, elapsed > 0 ? static_cast<std::uint64_t>(elapsed) : 0, request_bytes_,
                    response_bytes_);
    }

    // Runs the stream-end hooks once, in the order they were added.
    void end_stream(bool completed) noexcept {
        if (stream_end_hooks_.empty()) return;
        for (const auto& hook : stream_end_hooks_) hook->stream_end(*this, response_bytes_, completed);
        stream_end_hooks_.clear();
    }

    io::Clock::time_point started_at_{};
    std::string_view route_;
    int status_ = 0;
    bool open_ = false;
    metrics::HttpSeriesCache series_;  // this slot's last label sets (keep-alive exchanges repeat them)
    std::uint64_t request_bytes_ = 0;
    std::uint64_t response_bytes_ = 0;
    bool count_body_ = true;  // false for a streamed answer to HEAD: filter_body counts none of its chunks
    char request_id_[max_request_id]{};
    std::size_t request_id_len_ = 0;
    char csp_nonce_[32]{};
    std::size_t csp_nonce_len_ = 0;
    char csrf_token_[max_token]{};
    std::size_t csrf_token_len_ = 0;
    std::size_t middleware_depth_ = 0;  // `before` hooks that ran; their `after` hooks run in reverse
    std::uint64_t rate_limit_note_ = 0;
    RateLimitMemo rate_limit_memo_;
    std::unique_ptr<BodyFilter> body_filter_;
    std::vector<std::unique_ptr<StreamEndHook>> stream_end_hooks_;
    trace::SpanState span_;
    static inline thread_local const RequestContext* current_ = nullptr;
};

}  // namespace covet
