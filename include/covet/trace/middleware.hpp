// TracingMiddleware: a server span per request, natively. `before` continues an incoming W3C traceparent
// (or starts a trace: new random 128-bit trace id), gives the request a new 64-bit span id and decides
// sampling; the ids are then on the RequestContext for the access log and Python handlers. `after`
// records a sampled span (route template, status, peer, protocol, method, scheme, times) into the tracer's
// per-worker queue. An unsampled request costs a header scan and three random numbers (no call, no
// thread_local: the exchange slot keeps its own id stream); nothing is formatted for it.
//
// Add it first (outermost) so every other middleware's log lines and answers carry its ids.
#pragma once

#include <memory>

#include "covet/middleware/middleware.hpp"
#include "covet/trace/tracer.hpp"

namespace covet::trace {

class TracingMiddleware final : public Middleware {
public:
    explicit TracingMiddleware(std::shared_ptr<Tracer> tracer);
    std::optional<Response> before(Request& r, RequestContext& c) override;
    void after(const Request& r, const RequestContext& c, Response& resp) override;

    const std::shared_ptr<Tracer>& tracer() const noexcept { return tracer_; }

private:
    // A sampled span into the tracer's queue (out of line: an unsampled request's `after` is a test).
    [[gnu::noinline]] void record(const Request& r, const RequestContext& c, const Response& resp) noexcept;

    std::shared_ptr<Tracer> tracer_;
    // Unix time of the steady clock's epoch, taken once: span times from io::Clock without a second clock
    // read per request.
    std::int64_t steady_to_unix_ns_;
};

}  // namespace covet::trace
