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

std::optional<Response> TracingMiddleware::before(Request& r, RequestContext& c) {
    SpanState& s = c.span();
    // One pass over the headers. Two traceparent fields make it invalid (the spec); tracestate fields join.
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
                if (states == 2) s.tracestate.assign(state_header);
                s.tracestate.append(",").append(h.value);
            }
        }
    }
    std::optional<TraceParent> parent;
    if (parents == 1) parent = parse_traceparent(parent_header);
    s.active = true;
    s.has_parent = parent.has_value();
    if (parent) {
        s.trace_id = parent->trace_id;
        s.parent_span_id = parent->parent_id;
        if (states == 1) s.tracestate.assign(state_header);
        if (!s.tracestate.empty() && !valid_tracestate(s.tracestate)) s.tracestate.clear();
    } else {
        s.trace_id = new_trace_id();
        s.parent_span_id = {};
        s.tracestate.clear();  // a tracestate without a valid traceparent is ignored
    }
    s.span_id = new_span_id();
    const bool sampled =
        tracer_->sampler().sample(s.trace_id, parent ? std::optional<bool>(parent->sampled()) : std::optional<bool>());
    s.flags = sampled ? flag_sampled : 0;
    return std::nullopt;
}

void TracingMiddleware::after(const Request& r, const RequestContext& c, Response& resp) {
    const SpanState& s = c.span();
    if (!s.active || !s.sampled()) return;
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
