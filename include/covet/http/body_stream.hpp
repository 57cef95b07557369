// A request body that streams to its handler (uploads larger than memory), with back-pressure.
//
// A large body is offered to the dispatcher when its head has been parsed (RequestDispatcher::stream_body,
// see exchange.hpp); a body without a declared length (HTTP/1.1 chunked, HTTP/2 without content-length) when
// it is still open once the bytes of a read are used up, so that the handler gets its first bytes at once and
// may answer before it ends (full duplex: gRPC bidirectional streams). Accepted, the request is dispatched at once with
// `Request::body_streamed()` set and a RequestBody handle; the consumer installs a BodyReader and acknowledges the
// bytes it has consumed. The connection stops reading while more than `Limits::max_buffered_input` delivered bytes are
// unacknowledged (HTTP/2: the stream's flow-control window opens only as bytes are acknowledged) and resumes below half
// of that. The consumer decides how much it holds, as in Boost.Beast: the engine never buffers a whole
// streamed body.
//
// Once the response has started, the rest of the body is not timed (Timeouts::body, min_body_rate,
// body_deadline): the client may wait for the reply before it sends more. If the response completes before
// the body has ended, the rest of the upload is refused: HTTP/1.1 closes the connection after the response
// (lingering), HTTP/2 resets the stream with NO_ERROR after it (RFC 9113 §8.1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "covet/http/exchange.hpp"

namespace covet {

// Receives a streamed body. Called on the connection's thread, in order; `chunk` is valid during the
// call only. Implementations must not throw.
class BodyReader {
public:
    virtual ~BodyReader() = default;
    virtual void on_data(std::string_view chunk) noexcept = 0;
    // The body ended; nothing follows.
    virtual void on_end() noexcept = 0;
    // The body will not complete. `status` > 0: the server refused it (413 over max_stream_body_bytes, 408
    // too slow, 400 malformed) and answers the client itself unless a response has started; 0: the client
    // went away, or the exchange ended (response sent) before the body did. Nothing follows.
    virtual void on_error(int status, std::string_view reason) noexcept = 0;
};

// The handler's side of a streamed body. Move-only; any thread. Empty when the body came whole.
class RequestBody {
public:
    RequestBody() = default;
    RequestBody(net::ConnectionRef ref, ExchangeSink* sink, std::uint64_t exchange)
        : ref_(std::move(ref)), sink_(sink), exchange_(exchange) {}
    RequestBody(RequestBody&&) noexcept = default;
    RequestBody& operator=(RequestBody&&) noexcept = default;
    RequestBody(const RequestBody&) = delete;
    RequestBody& operator=(const RequestBody&) = delete;

    // Installs the reader (once). Bytes that arrived before are delivered first.
    void read(std::shared_ptr<BodyReader> reader) {
        if (!sink_ || !reader) return;
        const std::uint64_t ex = exchange_;
        detail::on_exchange(ref_, sink_, false,
                            [ex, r = std::move(reader)](ExchangeSink* s) mutable { s->body_read(ex, std::move(r)); });
    }
    // `bytes` delivered to the reader are consumed: they no longer count against the window. Cheap on the
    // connection's thread; from another thread, acknowledge in batches (each call posts a task).
    void consume(std::size_t bytes) {
        if (!sink_ || bytes == 0) return;
        const std::uint64_t ex = exchange_;
        if (ref_.on_home_thread()) {
            if (ref_.get()) sink_->body_consumed(ex, bytes);
            return;
        }
        detail::on_exchange(ref_, sink_, false, [ex, bytes](ExchangeSink* s) { s->body_consumed(ex, bytes); });
    }
    explicit operator bool() const noexcept { return sink_ != nullptr; }

private:
    net::ConnectionRef ref_;
    ExchangeSink* sink_ = nullptr;
    std::uint64_t exchange_ = 0;
};

namespace detail {

// A protocol's ExchangeSink::body_read for one of its streams (`stream`: null when the exchange is gone). The
// stream type has `reader`, `upload_hold` (bytes that came before the reader), `upload` (still arriving),
// `upload_ended` (ended before the reader came) and `request`. The held bytes go first, then the end if it came.
template <class Stream>
void install_body_reader(Stream* stream, std::shared_ptr<BodyReader> reader) {
    if (!reader || (stream && stream->reader)) return;
    if (!stream || !stream->request.body_streamed() || (!stream->upload && !stream->upload_ended)) {
        reader->on_error(0, "the request has ended");
        return;
    }
    stream->reader = reader;  // `reader` keeps it alive while it runs
    if (!stream->upload_hold.empty()) {
        const std::string held = std::exchange(stream->upload_hold, {});
        reader->on_data(held);
    }
    if (stream->upload_ended && stream->reader) {
        stream->upload_ended = false;
        reader->on_end();
    }
}

}  // namespace detail

inline RequestBody Responder::body() const {
    if (!sink_ || !streamed_) return {};
    return RequestBody(ref_, sink_, exchange_);
}

}  // namespace covet
