#include "covet/trace/middleware.hpp"

#include <chrono>

#include "covet/http/ascii.hpp"

namespace covet::trace {
namespace {

std::int64_t ns(io::Clock::time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::string_view protocol_version(const Request& r) noexcept {
    if (r.version_major() == 2) return "2";
    if (r.version_major() == 1) return r.version_minor() == 0 ? "1.0" : "1.1";
    return r.version_major() == 3 ? "3" : "";
}

}  // namespace

TracingMiddleware::TracingMiddleware(std::shared_ptr<Tracer> tracer)
    : tracer_(tracer ? std::move(tracer) : std::make_shared<Tracer>()),
      steady_to_unix_ns_(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
              .count() -
          ns(io::Clock::now())) {}

namespace {

// A new trace (no valid traceparent): random ids from the slot's own stream, sampled by the id's low bits.
inline void start_trace(SpanState& s, const Sampler& sampler) noexcept {
    if (s.id_stream == 0) [[unlikely]]
        s.id_stream = new_id_seed();
    const std::uint64_t trace_hi = wyrand_next(s.id_stream);
    std::uint64_t trace_lo = wyrand_next(s.id_stream), span = wyrand_next(s.id_stream);
    while ((trace_hi | trace_lo) == 0) [[unlikely]]
        trace_lo = wyrand_next(s.id_stream);
    while (span == 0) [[unlikely]]
        span = wyrand_next(s.id_stream);
    s.has_parent = false;
    put_id64(s.trace_id.data(), trace_hi);
    put_id64(s.trace_id.data() + 8, trace_lo);
    put_id64(s.span_id.data(), span);
    s.parent_span_id = {};
    s.flags = sampler.sample_root(trace_lo) ? flag_sampled : 0;
}

// A request that carries traceparent or tracestate fields (kept out of the common path): one pass over the
// headers; two traceparent fields make it invalid (the spec); tracestate fields join.
[[gnu::noinline]] void continue_trace(const Request& r, SpanState& s, const Sampler& sampler) noexcept {
    std::string_view parent_header;
    int parents = 0;
    std::string_view state_header;
    int states = 0;
    for (const Header& h : r.headers()) {
        if (h.name.size() == 11 && iequals(h.name, "traceparent")) {
            parent_header = h.value;
            ++parents;
        } else if (h.name.size() == 10 && iequals(h.name, "tracestate")) {
            if (states++ == 0) {
                state_header = h.value;
            } else {  // rare: join into the context's reused buffer
                try {
                    if (states == 2) s.tracestate.assign(state_header);
                    s.tracestate.append(",").append(h.value);
                } catch (...) {  // out of memory: the tracestate is dropped
                    s.tracestate.clear();
                    states = -1000;
                }
            }
        }
    }
    const std::optional<TraceParent> parent = parents == 1 ? parse_traceparent(parent_header) : std::nullopt;
    if (!parent) {
        s.tracestate.clear();  // a tracestate without a valid traceparent is ignored
        start_trace(s, sampler);
        return;
    }
    s.has_parent = true;
    s.trace_id = parent->trace_id;
    s.parent_span_id = parent->parent_id;
    try {
        if (states == 1) s.tracestate.assign(state_header);
    } catch (...) {
        s.tracestate.clear();
    }
    if (!s.tracestate.empty() && !valid_tracestate(s.tracestate)) s.tracestate.clear();
    if (s.id_stream == 0) [[unlikely]]
        s.id_stream = new_id_seed();
    std::uint64_t span = wyrand_next(s.id_stream);
    while (span == 0) [[unlikely]]
        span = wyrand_next(s.id_stream);
    put_id64(s.span_id.data(), span);
    s.flags = sampler.sample(s.trace_id, parent->sampled()) ? flag_sampled : 0;
}

bool names_trace_field(std::string_view name) noexcept {
    return (name.size() == 11 || name.size() == 10) && (name[0] | 0x20) == 't' &&
           (iequals(name, "traceparent") || iequals(name, "tracestate"));
}

}  // namespace

std::optional<Response> TracingMiddleware::before(Request& r, RequestContext& c) {
    SpanState& s = c.span();
    s.active = true;
    for (const Header& h : r.headers()) {
        if (names_trace_field(h.name)) [[unlikely]] {
            continue_trace(r, s, tracer_->sampler());
            return std::nullopt;
        }
    }
    // The common case: a new trace. An unsampled one costs this header scan and three random numbers; nothing
    // is formatted or recorded for it.
    start_trace(s, tracer_->sampler());
    return std::nullopt;
}

void TracingMiddleware::after(const Request& r, const RequestContext& c, Response& resp) {
    const SpanState& s = c.span();
    if (s.active && s.sampled()) [[unlikely]]
        record(r, c, resp);
}

void TracingMiddleware::record(const Request& r, const RequestContext& c, const Response& resp) noexcept {
    const SpanState& s = c.span();
    SpanRecord span;
    span.trace_id = s.trace_id;
    span.span_id = s.span_id;
    span.parent_span_id = s.has_parent ? s.parent_span_id : SpanId{};
    span.parent_remote = s.has_parent;
    span.flags = s.flags;
    span.status = static_cast<std::uint16_t>(resp.status());
    span.start_unix_ns = steady_to_unix_ns_ + ns(r.received_at());
    span.end_unix_ns = steady_to_unix_ns_ + ns(io::Clock::now());
    span.method = r.method_name();
    span.protocol_version = protocol_version(r);
    span.https = r.scheme() == "https";
    span.route.assign_route(c.route());
    span.path.assign(r.path());
    span.peer.assign(r.client_address());
    span.request_id.assign(c.request_id());
    tracer_->push(span);
}

}  // namespace covet::trace
