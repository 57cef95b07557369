// Per-stream state of the HTTP/2 handler (private to src/http2).
//
// A Stream holds one request's decoded header bytes and body, and the response being sent. The Request
// handed to the application views into `head` and `body`; `head` is only appended to while the header
// block is decoded and views are made once it is complete, so they never move. Streams are recycled by
// a StreamPool (covet/http/stream_pool.hpp): a busy connection stops allocating once its buffers have grown.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "covet/http/body_pace.hpp"
#include "covet/http/body_stream.hpp"
#include "covet/http/exchange.hpp"
#include "covet/http/request.hpp"
#include "covet/http/response.hpp"
#include "covet/http/stream_pool.hpp"
#include "covet/io/loop.hpp"

namespace covet::http2::detail {

enum class StreamState : std::uint8_t {
    receiving,   // header block or body arriving
    dispatched,  // the application owns the exchange
    responding,  // a complete response was submitted to nghttp2
    streaming,   // the application is streaming the body
    done,        // the final frame was submitted (or the stream was reset)
};

struct Stream {
    // A decoded field, as offsets into `head` (views are made once the block is complete).
    struct Field {
        std::uint32_t name_off = 0, name_len = 0, value_off = 0, value_len = 0;
    };

    std::int32_t id = 0;
    StreamState state = StreamState::receiving;
    Request request;
    std::unique_ptr<ExchangeState> app_state;  // the dispatcher's (made once, kept while the stream is pooled)
    std::string head;                          // decoded header names and values
    std::vector<Field> fields;                 // regular header fields
    Field method{}, path{}, authority{};
    bool has_method = false, has_path = false, has_authority = false;
    std::size_t header_bytes = 0;  // decoded size as RFC 9113 §6.5.2 counts it (name + value + 32)
    std::string body;
    std::size_t buffered = 0;          // body bytes counted in the connection's in-flight budget
    bool headers_done = false;         // the request's header block is complete
    io::Clock::time_point deadline{};  // while receiving: the next header/body byte is due by then
    http::BodyPace pace;               // the body against Timeouts::body_deadline and min_body_rate

    int reject_status = 0;  // set: answer with this status instead of dispatching
    const char* reject_reason = "";

    bool app_owned = false;                    // dispatched; the final completion has not arrived yet
    bool session_open = true;                  // nghttp2 still knows the stream (on_stream_close not yet called)
    bool head_only = false;                    // HEAD: no body is sent
    bool deferred = false;                     // the data provider returned NGHTTP2_ERR_DEFERRED
    bool stream_ended = false;                 // streaming: stream_end arrived
    bool streamed = false;                     // the body comes from `pending` (fixed when the head is submitted)
    bool reset_after_response = false;         // answered early: RST_STREAM(NO_ERROR) once the response has ended
    bool client_counted = false;               // counted in its client's streams (Connection::admit_stream)
    Response response;                         // complete(): the response; streaming: the head (for its trailers)
    std::string pending;                       // streaming: chunks not yet handed to nghttp2
    std::size_t sent = 0;                      // bytes of the body (or of `pending`) already handed to nghttp2
    std::shared_ptr<StreamFlow> flow;          // the producer's flow control, when it watches (stream_watch)
    std::uint64_t response_left = UINT64_MAX;  // streaming with a declared Content-Length: bytes still owed

    // A body that streams to the application (see covet/http/body_stream.hpp).
    std::uint64_t content_length = UINT64_MAX;  // declared, if any
    bool over_body_limit = false;               // declared over max_body_bytes: 413 unless streamed
    bool upload_offered = false;                // the dispatcher was asked (once)
    bool upload = false;                        // dispatched with its body still arriving
    bool untimed = false;                       // a gRPC call's upload: not timed (covet/http/grpc_call.hpp)
    bool upload_ended = false;                  // ended before the reader was installed
    std::shared_ptr<BodyReader> reader;
    std::string upload_hold;               // bytes that came before the reader
    std::uint64_t upload_bytes = 0;        // received so far (against max_stream_body_bytes)
    std::uint64_t upload_unacked = 0;      // delivered or held, not yet acknowledged by the reader
    std::uint64_t upload_preconsumed = 0;  // of those, already returned to the stream's window (buffered first)

    std::string_view view(std::uint32_t off, std::uint32_t len) const noexcept {
        return std::string_view(head).substr(off, len);
    }

    void close_flow() noexcept {
        if (std::shared_ptr<StreamFlow> f = std::move(flow)) f->close();
    }

    void reset(std::int32_t stream_id) {
        close_flow();
        id = stream_id;
        state = StreamState::receiving;
        request.reset();
        head.clear();
        fields.clear();
        method = path = authority = {};
        has_method = has_path = has_authority = false;
        header_bytes = 0;
        body.clear();
        headers_done = false;
        buffered = 0;
        deadline = {};
        pace.reset();
        reset_after_response = false;
        client_counted = false;
        reject_status = 0;
        reject_reason = "";
        app_owned = false;
        session_open = true;
        head_only = false;
        deferred = false;
        stream_ended = false;
        streamed = false;
        response = Response();
        pending.clear();
        sent = 0;
        response_left = UINT64_MAX;
        content_length = UINT64_MAX;
        over_body_limit = upload_offered = upload = upload_ended = false;
        reader.reset();
        upload_hold.clear();
        upload_bytes = upload_unacked = upload_preconsumed = 0;
    }
    // Into the pool: big buffers, the response body and the reader go now.
    void retire(std::size_t max_kept_bytes) {
        if (body.capacity() > max_kept_bytes) std::string().swap(body);
        if (pending.capacity() > max_kept_bytes) std::string().swap(pending);
        if (upload_hold.capacity() > max_kept_bytes) std::string().swap(upload_hold);
        reader.reset();
        response = Response();
    }
};

// HTTP/2 may split Cookie into one field per crumb (RFC 9113 §8.2.3); applications expect one
// header, as HTTP/1.1 sends it. Done before any view is made: the header bytes may move.
inline void join_cookies(Stream& s) {
    std::size_t count = 0;
    for (const Stream::Field& f : s.fields) count += s.view(f.name_off, f.name_len) == "cookie";
    if (count < 2) return;
    std::size_t first = s.fields.size();
    const auto value_off = static_cast<std::uint32_t>(s.head.size());
    for (std::size_t i = 0; i < s.fields.size(); ++i) {
        const Stream::Field f = s.fields[i];
        if (s.view(f.name_off, f.name_len) != "cookie") continue;
        if (first == s.fields.size())
            first = i;
        else
            s.head.append("; ");
        s.head.append(s.head, f.value_off, f.value_len);
    }
    s.fields[first].value_off = value_off;
    s.fields[first].value_len = static_cast<std::uint32_t>(s.head.size() - value_off);
    std::size_t out = first + 1;
    for (std::size_t i = first + 1; i < s.fields.size(); ++i)
        if (s.view(s.fields[i].name_off, s.fields[i].name_len) != "cookie") s.fields[out++] = s.fields[i];
    s.fields.resize(out);
}

using StreamPool = covet::detail::StreamPool<Stream>;

}  // namespace covet::http2::detail
