// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` and `tracestate` request
// headers, parsed strictly. A header that breaks a rule is ignored as a whole (the request then starts a new
// trace): it is never used in part nor sent on.
//
//   traceparent: version "-" trace-id "-" parent-id "-" trace-flags, lowercase hex only.
//   Version 00: exactly 55 characters. A higher version (not ff) may append fields after a '-' at offset
//   55; its first four fields are read as version 00's (the spec's forward compatibility). All-zero
//   trace-id or parent-id: invalid.
//   tracestate: at most 32 list members and 512 bytes, keys and values by the spec's grammar, no duplicate
//   keys; otherwise dropped (the traceparent still counts).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "covet/trace/ids.hpp"

namespace covet::trace {

inline constexpr std::uint8_t flag_sampled = 0x01;
inline constexpr std::size_t traceparent_length = 55;  // version 00
inline constexpr std::size_t max_tracestate_members = 32;
inline constexpr std::size_t max_tracestate_bytes = 512;

struct TraceParent {
    TraceId trace_id{};
    SpanId parent_id{};
    std::uint8_t flags = 0;
    bool sampled() const noexcept { return flags & flag_sampled; }
};

std::optional<TraceParent> parse_traceparent(std::string_view header) noexcept;

// Whether `header` (one field, or several joined with ',') is a valid tracestate within the bounds above.
bool valid_tracestate(std::string_view header) noexcept;

// "00-<trace id>-<span id>-<flags>" into out[0 .. 55): what a request sent on carries.
std::string_view format_traceparent(const TraceId& trace_id, const SpanId& span_id, std::uint8_t flags,
                                    char (&out)[traceparent_length]) noexcept;

}  // namespace covet::trace
