// Writes HTTP/1.1 response heads and bodies straight into a connection's output queue.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "covet/http/fields.hpp"
#include "covet/http/response.hpp"
#include "covet/http/status.hpp"
#include "covet/io/output_queue.hpp"

namespace covet::http1 {

enum class BodyFraming : std::uint8_t { content_length, chunked, until_close };

struct HeadOptions {
    std::string_view date;  // IMF-fixdate
    BodyFraming framing = BodyFraming::content_length;
    std::size_t content_length = 0;  // with BodyFraming::content_length
    bool close = false;              // "Connection: close"
    bool keep_alive_1_0 = false;     // HTTP/1.0 client asked for keep-alive: say "Connection: keep-alive"
};

namespace detail {
inline void append_number(std::string& out, std::uint64_t n, int base = 10) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n, base);
    (void)ec;
    out.append(buf, static_cast<std::size_t>(end - buf));  // (pointer and length: the iterator pair form is slower)
}
}  // namespace detail

// "Name: value\r\n" per field, names as given (Fields checked them on insert and holds them as these lines).
inline void append_fields(std::string& out, const Fields& fields) { out.append(fields.http1()); }

namespace detail {
// Copies `s` to `p` and returns the end. A literal's length is a constant: the copy is inline moves. (An empty view
// may have no data: memcpy must not see it.)
inline char* put(char* p, std::string_view s) noexcept {
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    return p + s.size();
}
}  // namespace detail

// The head is measured first and then written in place: one growth of `out` (its zero-fill is a memset) and a
// copy per piece, instead of an append call per piece (each ~40 instructions of capacity checks besides the copy:
// about 700 per response, docs/benchmarks.md).
inline void write_head(std::string& out, const Response& r, const HeadOptions& o) {
    using namespace std::string_view_literals;
    using detail::put;
    const int status = r.status();
    char status_digits[24], length_digits[24];
    const std::size_t status_size = static_cast<std::size_t>(
        std::to_chars(status_digits, status_digits + sizeof status_digits, static_cast<std::uint64_t>(status)).ptr -
        status_digits);
    const std::string_view reason = http::reason_phrase(status);
    const std::string_view content_type =
        http::status_keeps_content_type(status) ? r.content_type() : std::string_view{};
    const bool body = http::status_allows_body(status);
    const bool length = body && o.framing == BodyFraming::content_length;
    const bool chunked = body && o.framing == BodyFraming::chunked;
    const std::size_t length_size =
        length ? static_cast<std::size_t>(
                     std::to_chars(length_digits, length_digits + sizeof length_digits, o.content_length).ptr -
                     length_digits)
               : 0;
    const std::string_view fields = r.headers().http1();
    // The shared sets (Response::shared_fields), after the response's own.
    const SharedFields* first = r.shared_fields(0);
    const SharedFields* second = first ? r.shared_fields(1) : nullptr;
    const std::string_view first_lines = first ? std::string_view(first->http1) : std::string_view{};
    const std::string_view second_lines = second ? std::string_view(second->http1) : std::string_view{};
    const std::string_view connection = o.close            ? "Connection: close\r\n"sv
                                        : o.keep_alive_1_0 ? "Connection: keep-alive\r\n"sv
                                                           : std::string_view{};
    constexpr std::string_view start = "HTTP/1.1 "sv, server = "\r\nServer: covet\r\nDate: "sv,
                               ct_name = "Content-Type: "sv, cl_name = "Content-Length: "sv,
                               te = "Transfer-Encoding: chunked\r\n"sv, crlf = "\r\n"sv;
    const std::size_t size = start.size() + status_size + 1 + reason.size() + server.size() + o.date.size() +
                             crlf.size() + (content_type.empty() ? 0 : ct_name.size() + content_type.size() + 2) +
                             (length ? cl_name.size() + length_size + 2 : 0) + (chunked ? te.size() : 0) +
                             fields.size() + first_lines.size() + second_lines.size() + connection.size() + 2;
    const std::size_t at = out.size();
    out.resize(at + size);
    char* p = out.data() + at;
    p = put(p, start);
    p = put(p, {status_digits, status_size});
    *p++ = ' ';
    p = put(p, reason);
    p = put(p, server);
    p = put(p, o.date);
    p = put(p, crlf);
    if (!content_type.empty()) {
        p = put(p, ct_name);
        p = put(p, content_type);
        p = put(p, crlf);
    }
    if (length) {
        p = put(p, cl_name);
        p = put(p, {length_digits, length_size});
        p = put(p, crlf);
    } else if (chunked) {
        p = put(p, te);
    }
    p = put(p, fields);
    p = put(p, first_lines);
    p = put(p, second_lines);
    p = put(p, connection);
    put(p, crlf);
}

// A complete response. `head_only`: HEAD request (same headers, no body).
inline void write_response(io::OutputQueue& q, Response&& r, HeadOptions o, bool head_only) {
    o.framing = BodyFraming::content_length;
    o.content_length = r.content_length(head_only);
    std::string& tail = q.tail();
    const std::size_t before = tail.size();
    write_head(tail, r, o);
    const bool send_body = !head_only && http::status_allows_body(r.status()) && r.body_size() != 0;
    if (send_body && r.has_file_body()) {  // head now, the file after it (sendfile, or read by the transport)
        q.note_tail_growth(tail.size() - before);
        q.append(std::move(r.file_body()));
        return;
    }
    if (send_body && r.body().size() < io::OutputQueue::own_segment_threshold) tail.append(r.body());
    q.note_tail_growth(tail.size() - before);
    if (send_body && r.body().size() >= io::OutputQueue::own_segment_threshold) q.append(std::move(r.body()));
}

inline void write_chunk(io::OutputQueue& q, std::string_view data) {
    if (data.empty()) return;
    std::string& tail = q.tail();
    const std::size_t before = tail.size();
    detail::append_number(tail, data.size(), 16);
    tail.append("\r\n");
    tail.append(data);
    tail.append("\r\n");
    q.note_tail_growth(tail.size() - before);
}

inline void write_last_chunk(io::OutputQueue& q) { q.append(std::string_view("0\r\n\r\n")); }

// The last chunk with a trailer section (RFC 9112 §7.1.2).
inline void write_last_chunk(io::OutputQueue& q, const Fields& trailers) {
    std::string& tail = q.tail();
    const std::size_t before = tail.size();
    tail.append("0\r\n");
    append_fields(tail, trailers);
    tail.append("\r\n");
    q.note_tail_growth(tail.size() - before);
}

// A 103 Early Hints response (RFC 8297): an interim head with `fields`, before the final response.
inline void write_early_hints(io::OutputQueue& q, const Fields& fields) {
    std::string& tail = q.tail();
    const std::size_t before = tail.size();
    tail.append("HTTP/1.1 103 Early Hints\r\n");
    append_fields(tail, fields);
    tail.append("\r\n");
    q.note_tail_growth(tail.size() - before);
}

}  // namespace covet::http1
