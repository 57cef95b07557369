// One finished server span as the engine records it: fixed size (no allocation per span; long strings are
// cut), so a per-worker queue of them is a preallocated array. Times are nanoseconds since the Unix epoch.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>

#include "covet/trace/ids.hpp"

namespace covet::trace {

// Bounded text copied into a span record.
template <std::size_t N>
struct FixedText {
    char data[N];
    std::uint16_t size = 0;
    void assign(std::string_view s) noexcept {
        size = static_cast<std::uint16_t>(std::min(s.size(), N));
        std::copy_n(s.data(), size, data);
    }
    std::string_view view() const noexcept { return {data, size}; }
    // A route pattern as users write it: "/items/{id:int}" -> "/items/{id}" (OpenTelemetry's http.route).
    void assign_route(std::string_view pattern) noexcept {
        size = 0;
        bool in_param = false, in_converter = false;
        for (char c : pattern) {
            if (c == '{') in_param = true;
            if (c == '}') in_param = in_converter = false;
            if (in_param && c == ':') in_converter = true;
            if (in_converter) continue;
            if (size == N) break;
            data[size++] = c;
        }
    }
};

struct SpanRecord {
    TraceId trace_id{};
    SpanId span_id{};
    SpanId parent_span_id{};  // all zeros: a root span
    std::uint8_t flags = 0;
    bool parent_remote = false;
    std::uint16_t status = 0;  // the response's
    std::int64_t start_unix_ns = 0;
    std::int64_t end_unix_ns = 0;
    std::string_view method;            // a static name (covet::to_string(Method))
    std::string_view protocol_version;  // "1.0", "1.1", "2"
    bool https = false;
    FixedText<128> route;  // the route template; empty when no route matched
    FixedText<128> path;   // the request's path (url.path)
    FixedText<64> peer;    // client address
    FixedText<64> request_id;
};

}  // namespace covet::trace
