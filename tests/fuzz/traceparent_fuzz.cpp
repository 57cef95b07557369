// W3C Trace Context headers (include/covet/trace/trace_context.hpp): traceparent parsing and tracestate
// validation, on what any client may send. Input: the header value (the same bytes are tried as both).
// Properties: no crash or sanitizer report; a parsed traceparent has non-zero ids and formats back to a
// value that parses to the same ids and flags; an accepted value is exactly 55 bytes of version 00 (or a
// longer one of a later version); a valid tracestate is within its byte bound and has a member.
#include <cstdint>
#include <cstring>

#include "covet/trace/trace_context.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace trace = covet::trace;
    using covet_fuzz::check;
    const std::string_view header(reinterpret_cast<const char*>(data), size);
    if (const auto parent = trace::parse_traceparent(header)) {
        check(!trace::is_zero(parent->trace_id) && !trace::is_zero(parent->parent_id), "an all-zero id accepted");
        check(header.size() >= trace::traceparent_length, "a short traceparent accepted");
        char buf[trace::traceparent_length];
        const std::string_view formatted =
            trace::format_traceparent(parent->trace_id, parent->parent_id, parent->flags, buf);
        const auto again = trace::parse_traceparent(formatted);
        check(again && again->trace_id == parent->trace_id && again->parent_id == parent->parent_id &&
                  again->flags == parent->flags,
              "a formatted traceparent does not parse back");
    }
    if (trace::valid_tracestate(header)) {
        check(header.size() <= trace::max_tracestate_bytes && header.find('=') != std::string_view::npos,
              "an over-long tracestate, or one without a member, accepted");
    }
    return 0;
}
