// Assembling a covet::Request from a protocol's parsed pieces, with the limits and refusals that HTTP/1.1
// (http1::RequestReader) and HTTP/2 share: the method (501), the header-field count (431), and a declared
// body length against the buffered and streamed body limits (413). The path/query split of the target is
// Request::set_target's. Each protocol keeps what is its own: HTTP/1.1 the request line, Host and framing
// rules; HTTP/2 its pseudo-headers, CONNECT and the header list size.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>

#include "covet/http/request.hpp"
#include "covet/net/server_config.hpp"

namespace covet::http {

// Why a request is refused: the status to answer with and a reason that names the cause.
struct RequestError {
    int status = 0;
    const char* reason = "";
    explicit constexpr operator bool() const noexcept { return status != 0; }
};

inline constexpr RequestError method_not_implemented{501, "the request method is not implemented"};
inline constexpr RequestError too_many_headers{431, "the request has more header fields than the limit"};
inline constexpr RequestError body_too_large{413, "the request body is larger than the body size limit"};
inline constexpr RequestError body_over_route_limit{
    413, "the request body is larger than this route's limit (RouteLimits::max_body_bytes, max_body_size= in Python)"};
inline constexpr RequestError streamed_body_too_large{
    413, "the request body is larger than the streamed body size limit (max_stream_body_bytes)"};

// The part of net::Limits that shapes a request, whatever protocol carries it.
struct RequestLimits {
    std::size_t max_headers = 100;
    std::uint64_t max_body_bytes = std::uint64_t{1024} * 1024;
    std::uint64_t stream_body_threshold = std::uint64_t{64} * 1024;
    std::uint64_t max_stream_body_bytes = std::uint64_t{1} << 30;  // 0: no limit

    static RequestLimits from(const net::Limits& l) noexcept {
        return {l.max_headers, l.max_body_bytes, l.stream_body_threshold, l.max_stream_body_bytes};
    }
    std::uint64_t stream_limit() const noexcept { return max_stream_body_bytes ? max_stream_body_bytes : UINT64_MAX; }
    // 431 once a request already has `count` >= max_headers fields.
    RequestError header_room(std::size_t count) const noexcept {
        return count >= max_headers ? too_many_headers : RequestError{};
    }
};

// A Content-Length value: decimal digits only (no sign, no whitespace, not empty); nullopt when it is not
// one or does not fit in 64 bits. One parse for every protocol and the app, so they agree on what a length is.
inline std::optional<std::uint64_t> parse_content_length(std::string_view value) noexcept {
    std::uint64_t n = 0;
    // from_chars into an unsigned type takes no '+' or '-' and no leading space, and reports overflow.
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc{} || end != value.data() + value.size()) return std::nullopt;
    return n;
}

// What a declared body length (Content-Length) allows.
enum class DeclaredBody : std::uint8_t {
    fits,         // within max_body_bytes: received whole (or streamed, if the route asks)
    stream_only,  // over max_body_bytes, within the streamed limit: 413 unless the route streams it
    too_large,    // over every limit: 413 now
};

// Fills one Request. Cheap to make (two references): HTTP/2 makes one per header block, the HTTP/1.1
// reader keeps one.
class RequestBuilder {
public:
    RequestBuilder(Request& request, const RequestLimits& limits) noexcept : request_(request), limits_(limits) {}

    Request& request() noexcept { return request_; }
    const RequestLimits& limits() const noexcept { return limits_; }

    // A new request: everything of the previous one is forgotten (the client and TLS session stay).
    void start() noexcept { request_.reset(); }

    RequestError method(std::string_view name) noexcept {
        const auto m = parse_method(name);
        if (!m) return method_not_implemented;
        request_.set_method(*m);
        return {};
    }

    // The raw request-target; the request splits it into path and query (Request::set_target).
    void target(std::string_view t) noexcept { request_.set_target(t); }

    // Adds a field (431 when the request has max_headers already). `value` may come later: header_value().
    RequestError header(std::string_view name, std::string_view value = {}) {
        if (const RequestError e = limits_.header_room(request_.header_count())) return e;
        request_.add_header(name, value);
        return {};
    }
    void header_value(std::string_view value) noexcept { request_.set_last_header_value(value); }

    DeclaredBody declared_length(std::uint64_t n) const noexcept {
        if (n <= limits_.max_body_bytes) return DeclaredBody::fits;
        // A route that streams the body has its own limit, if streaming can take a body this large at all.
        if (n > limits_.stream_limit() || limits_.stream_body_threshold >= limits_.max_body_bytes)
            return DeclaredBody::too_large;
        return DeclaredBody::stream_only;
    }

private:
    Request& request_;
    const RequestLimits& limits_;
};

}  // namespace covet::http
