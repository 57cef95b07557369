// Writes HTTP/1.1 response heads and bodies straight into a connection's output queue.
#pragma once

#include <charconv>
#include <cstdint>
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

inline void write_head(std::string& out, const Response& r, const HeadOptions& o) {
    using namespace std::string_view_literals;  // literals appended with their length: no strlen call each
    const int status = r.status();
    out.append("HTTP/1.1 "sv);
    detail::append_number(out, static_cast<std::uint64_t>(status));
    out.push_back(' ');
    out.append(http::reason_phrase(status));
    out.append("\r\nServer: covet\r\nDate: "sv);
    out.append(o.date);
    out.append("\r\n"sv);
    if (http::status_keeps_content_type(status) && !r.content_type().empty())
        out.append("Content-Type: "sv).append(r.content_type()).append("\r\n"sv);
    if (http::status_allows_body(status)) {
        if (o.framing == BodyFraming::content_length) {
            out.append("Content-Length: "sv);
            detail::append_number(out, o.content_length);
            out.append("\r\n"sv);
        } else if (o.framing == BodyFraming::chunked) {
            out.append("Transfer-Encoding: chunked\r\n"sv);
        }
    }
    append_fields(out, r.headers());
    if (const SharedFields* shared = r.shared_fields()) out.append(shared->http1);
    if (o.close)
        out.append("Connection: close\r\n"sv);
    else if (o.keep_alive_1_0)
        out.append("Connection: keep-alive\r\n"sv);
    out.append("\r\n"sv);
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
