// The HTTP/1.x request reader: bytes in, requests out (sans-I/O, llhttp underneath). It knows nothing of
// sockets, timers, responses or the application: the session (src/http1/session.cpp) feeds it what the
// connection read and acts on what it reports. Usable on its own, as tests/http1/request_reader_test.cpp does.
//
// feed(input) reads from the start of `input` and stops at the first event:
//   more      everything usable is consumed (`used`); the rest (an incomplete head) must be fed again,
//             first, with the bytes that follow it
//   head      a request head was read (request() is ready) and a body follows: feed on to read it
//   complete  the request was read whole (request().body() holds the body unless it streams)
//   error     the request is refused: error() names the status and the cause; the reader reads no more
// A request head is parsed only once it is complete in `input`, so the Request views into `input` without
// copying; keep(input) copies the current request out before `input` is reused. Between requests, stray
// empty lines are skipped (RFC 9112 §2.2).
//
// The rules it enforces, beyond llhttp's strict mode: the limits (ReaderLimits: 414, 431, 413), a Host
// header in HTTP/1.1 (exactly one), no whitespace before a field's colon, no obsolete line folding, bare LF
// refused, CRLF after chunk data, Content-Length with Transfer-Encoding or repeated refused, a TLS or binary
// preamble refused at once, 501 for an unknown method token and 505 for other versions (and the h2 preface).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "covet/http/request.hpp"
#include "covet/http/request_builder.hpp"
#include "covet/net/server_config.hpp"

namespace covet::http1 {

struct ReaderLimits : http::RequestLimits {
    std::size_t max_url_bytes = std::size_t{8} * 1024;     // a longer request line or target → 414
    std::size_t max_header_bytes = std::size_t{8} * 1024;  // request line + headers → 431

    static ReaderLimits from(const net::Limits& l) noexcept {
        ReaderLimits r;
        static_cast<http::RequestLimits&>(r) = http::RequestLimits::from(l);
        r.max_url_bytes = l.max_url_bytes;
        r.max_header_bytes = l.max_header_bytes;
        return r;
    }
};

class RequestReader {
public:
    enum class Event : std::uint8_t { more, head, complete, error };
    struct Result {
        Event event = Event::more;
        std::size_t used = 0;  // bytes of the input consumed
        // Body bytes read by this call while the body streams (stream_body()): views into the input, in order,
        // valid until the next feed. Empty otherwise (a body received whole is in request().body()).
        std::span<const std::string_view> body;
    };

    explicit RequestReader(const ReaderLimits& limits);
    ~RequestReader();
    RequestReader(const RequestReader&) = delete;
    RequestReader& operator=(const RequestReader&) = delete;

    Result feed(std::string_view input);

    Request& request() noexcept { return request_; }
    const Request& request() const noexcept { return request_; }
    http::RequestError error() const noexcept { return error_; }

    // No byte of the next request has been consumed (between requests; stray empty lines do not count).
    bool between_requests() const noexcept { return state_ == State::between; }
    // The head was read and the body is arriving.
    bool reading_body() const noexcept { return state_ == State::body || state_ == State::streamed_body; }
    // The current request's Content-Length, if it has one.
    std::optional<std::uint64_t> declared_length() const noexcept { return declared_; }
    // Its Content-Length is over max_body_bytes but within the streamed limit: 413 unless the body streams.
    bool over_body_limit() const noexcept { return declared_body_ == http::DeclaredBody::stream_only; }

    // The rest of the current body streams: from now on its bytes come in Result::body instead of
    // request().body() (which is emptied: take what it held first), against max_stream_body_bytes.
    void stream_body();

    // Copies the current request's bytes out of `input` (a buffer about to be reused), if it views into it.
    void keep(std::string_view input);

    // True when `buf` holds a complete request head after any empty lines.
    static bool holds_complete_head(std::string_view buf) noexcept;

private:
    enum class State : std::uint8_t {
        between,        // before a request (empty lines are skipped here)
        head,           // some of a head has arrived; it is parsed once its blank line is in the input
        body,           // head read; the body is collected in request().body()
        streamed_body,  // head read; the body's bytes are returned as they are read
        failed,         // refused: error_ says why
    };
    // Where llhttp is in the field lines of a head (and in a chunked body's trailers).
    enum class Fields : std::uint8_t {
        between,   // before a field, or after a field's value
        name,      // a field name was read, its value not yet
        trailers,  // the head is done: fields now are chunked trailers, which are not headers (RFC 9110 §6.5.1)
    };

    struct Parser;     // llhttp's state (request_reader.cpp: llhttp stays out of the public headers)
    struct Callbacks;  // llhttp's callbacks

    Result read_head(std::string_view buf);
    Result read_body(std::string_view buf);
    // llhttp's verdict (an llhttp_errno_t) on `input`; false (state failed) when the request is refused.
    bool settle(int err, std::string_view input);
    static http::RequestError classify(int err, std::string_view input);
    http::RequestError check_incomplete_head(std::string_view buf) const;
    bool check_chunk_crlf(const char* end);
    int fail(http::RequestError e);

    ReaderLimits limits_;
    std::unique_ptr<Parser> parser_;
    Request request_;
    http::RequestBuilder builder_{request_, limits_};
    State state_ = State::between;
    Fields fields_ = Fields::between;
    http::RequestError error_;
    std::size_t head_scan_ = 0;  // how far an incomplete head was searched for its end
    const char* head_base_ = nullptr;
    std::size_t head_len_ = 0;
    std::string head_buf_;     // the current head, once it must outlive the input (keep)
    std::string body_buf_;     // the current body, when it arrived in pieces or must outlive the input
    bool body_owned_ = false;  // request().body() views body_buf_ (not the input)
    std::optional<std::uint64_t> declared_;
    http::DeclaredBody declared_body_ = http::DeclaredBody::fits;
    std::uint64_t streamed_bytes_ = 0;      // of a streamed body, against max_stream_body_bytes
    std::vector<std::string_view> pieces_;  // Result::body of the current feed
    std::uint64_t chunk_left_ = 0;          // data bytes left in the current chunk
    int crlf_left_ = 0;                     // CRLF bytes after chunk data still to check
    const char* crlf_from_ = nullptr;
};

}  // namespace covet::http1
