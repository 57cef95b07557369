// The trace position of one exchange, kept in its RequestContext: set by TracingMiddleware's `before`,
// read by the access log, the Python bindings (the handler's current OpenTelemetry context) and the
// middleware's `after`, which records the span when it is sampled.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "covet/trace/ids.hpp"
#include "covet/trace/trace_context.hpp"

namespace covet::trace {

struct SpanState {
    bool active = false;      // ids set (tracing is on for this exchange)
    bool has_parent = false;  // continues an incoming traceparent
    std::uint8_t flags = 0;   // what is sent on: flag_sampled when the span is recorded
    TraceId trace_id{};
    SpanId span_id{};
    SpanId parent_span_id{};
    std::string tracestate;       // the incoming one when valid (its capacity is reused by the slot's next exchanges)
    std::uint64_t id_stream = 0;  // this slot's wyrand state for new ids (seeded on first use; kept by reset)

    bool sampled() const noexcept { return flags & flag_sampled; }
    void reset() noexcept {
        active = false;
        has_parent = false;
        flags = 0;
        tracestate.clear();
    }
};

}  // namespace covet::trace
