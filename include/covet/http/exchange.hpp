// How a handler answers: a Responder completes one request-response exchange, now or later, from any
// thread. Protocols implement ExchangeSink; the app implements RequestDispatcher.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "covet/http/request.hpp"
#include "covet/http/response.hpp"
#include "covet/net/connection_ref.hpp"

namespace covet {

struct Upgrade;
class BodyReader;
class RequestBody;

// Implemented by protocols (HTTP/1.1 today, HTTP/2 streams later). Called on the connection's thread.
class ExchangeSink {
public:
    virtual void complete(std::uint64_t exchange, Response&& response) = 0;
    virtual void stream_begin(std::uint64_t exchange, Response&& head) = 0;
    virtual void stream_write(std::uint64_t exchange, std::string_view chunk) = 0;
    virtual void stream_end(std::uint64_t exchange) = 0;
    // The body could not be completed (the producer failed): the client must see an incomplete response,
    // never a short one that looks whole. HTTP/1.1 closes the connection without the last chunk.
    virtual void stream_abort(std::uint64_t exchange) = 0;
    // A streamed request body (see body_stream.hpp): install its reader; bytes the reader consumed.
    // NOLINTNEXTLINE(performance-unnecessary-value-param): overrides keep the reader (by value, then moved)
    virtual void body_read(std::uint64_t /*exchange*/, std::shared_ptr<BodyReader> /*reader*/) {}
    virtual void body_consumed(std::uint64_t /*exchange*/, std::size_t /*bytes*/) {}
    // The request will be read after dispatch returns, possibly from another thread: whatever of it still
    // views into the connection's input buffer is copied out now, so the protocol never rewrites it later.
    // Called on the connection's thread, during dispatch; a no-op for protocols whose requests own their bytes.
    virtual void keep_request(std::uint64_t /*exchange*/) {}

protected:
    ~ExchangeSink() = default;
};

// Writes a streamed (chunked) response body. Move-only; ends the stream when destroyed.
class StreamWriter {
public:
    StreamWriter() = default;
    StreamWriter(net::ConnectionRef ref, ExchangeSink* sink, std::uint64_t exchange)
        : ref_(std::move(ref)), sink_(sink), exchange_(exchange) {}
    StreamWriter(StreamWriter&& o) noexcept { *this = std::move(o); }
    StreamWriter& operator=(StreamWriter&& o) noexcept {
        if (this != &o) {
            end();
            ref_ = o.ref_, sink_ = std::exchange(o.sink_, nullptr), exchange_ = o.exchange_;
        }
        return *this;
    }
    ~StreamWriter() { end(); }

    void write(std::string_view chunk);  // any thread; empty chunks are ignored
    void end();                          // any thread; idempotent
    void abort();                        // any thread: cut the response off (see ExchangeSink::stream_abort)
    explicit operator bool() const noexcept { return sink_ != nullptr; }

private:
    net::ConnectionRef ref_;
    ExchangeSink* sink_ = nullptr;
    std::uint64_t exchange_ = 0;
};

// Completes one exchange exactly once. Move-only; if destroyed unanswered, the client gets a 500.
class Responder {
public:
    Responder() = default;
    Responder(net::ConnectionRef ref, ExchangeSink* sink, std::uint64_t exchange, bool streamed_body = false)
        : ref_(std::move(ref)), sink_(sink), exchange_(exchange), streamed_(streamed_body) {}
    Responder(Responder&& o) noexcept { *this = std::move(o); }
    Responder& operator=(Responder&& o) noexcept {
        if (this != &o) {
            abandon();
            ref_ = o.ref_, sink_ = std::exchange(o.sink_, nullptr), exchange_ = o.exchange_, streamed_ = o.streamed_;
        }
        return *this;
    }
    ~Responder() { abandon(); }

    // Sends the response. Any thread; inline (no allocation) on the connection's own thread.
    void send(Response response);
    // Starts a chunked response with `head`'s status and headers (its body, if any, is the first chunk).
    StreamWriter stream(Response head);
    bool pending() const noexcept { return sink_ != nullptr; }
    // Declares that the request is used after the dispatch call returns (a deferred handler, another
    // thread): its bytes are made stable now. Call on the connection's thread, during dispatch, before the
    // request is handed on. Inline handlers need not call it (no copy is made for them).
    void keep_request() const {
        if (sink_) sink_->keep_request(exchange_);
    }
    // The request's streamed body (include covet/http/body_stream.hpp), or an empty handle when the body
    // came whole (Request::body_streamed() false). Take it before answering.
    RequestBody body() const;

private:
    void abandon() noexcept;

    net::ConnectionRef ref_;
    ExchangeSink* sink_ = nullptr;
    std::uint64_t exchange_ = 0;
    bool streamed_ = false;
};

// The dispatcher's own state for one exchange, kept apart from the protocol's Request (covet::App keeps
// a RequestContext: the request id and which middleware ran). A protocol holds one per exchange slot (an
// HTTP/1.1 connection, a pooled HTTP/2 stream), made by RequestDispatcher::make_exchange_state when the
// slot first dispatches and reused for its later exchanges, so there is no allocation per request. The
// protocol passes it to dispatch and finalize and never looks inside.
class ExchangeState {
public:
    virtual ~ExchangeState() = default;
};

// Routes a parsed request to application code. Implemented by covet::App.
class RequestDispatcher {
public:
    virtual ~RequestDispatcher() = default;
    // A new slot's ExchangeState, or null when the dispatcher keeps none (then `state` is null below).
    virtual std::unique_ptr<ExchangeState> make_exchange_state() { return nullptr; }
    // Must eventually complete `responder` (or let it go, which answers 500). `request` stays valid until then.
    // `state` is this exchange's (the slot's, from make_exchange_state): the dispatcher resets it here.
    virtual void dispatch(Request& request, ExchangeState* state, Responder responder) = 0;
    // Runs on the connection's thread right before a response head is written (middleware after-hooks),
    // with the `state` dispatch had.
    virtual void finalize(const Request& /*request*/, ExchangeState* /*state*/, Response& /*response*/) noexcept {}
    // The same for the head of a streamed response (its body is the first chunk, which then goes through
    // filter_body like the others).
    virtual void finalize_stream(const Request& request, ExchangeState* state, Response& head) noexcept {
        finalize(request, state, head);
    }
    // Each chunk of a streamed response body on its way out, on the connection's thread (`last`: once at
    // the end, with an empty chunk): what to send instead. The view stays valid until the next call.
    virtual std::string_view filter_body(ExchangeState* /*state*/, std::string_view chunk, bool /*last*/) noexcept {
        return chunk;
    }
    // A request that asks to switch to a protocol the application routes (`upgrade.protocol`: a WebSocket
    // today; see covet/http/upgrade.hpp): true, with `upgrade` filled, when the application takes it; false
    // answers it as a plain request. Path parameters are set on `request` as for dispatch(). Protocols the
    // server alone decides (h2c) never come here: covet/app/protocol_switch.hpp decides every switch.
    virtual bool upgrade(Request& /*request*/, Upgrade& /*upgrade*/) { return false; }
    // A request whose body is large (Limits::stream_body_threshold) and still arriving: true dispatches it
    // now with a streamed body (Responder::body()); false (the default) receives the body whole first,
    // within Limits::max_body_bytes. Called on the connection's thread; `request` has no body yet.
    virtual bool stream_body(Request& /*request*/) { return false; }
};

// ---- inline bodies ----

namespace detail {
// Runs fn(sink) on the exchange's thread if the connection and its protocol are still there. `final`
// marks the message that ends the exchange (a closed connection kept for it may then go).
template <class Fn>
void on_exchange(const net::ConnectionRef& ref, ExchangeSink* sink, bool final, Fn&& fn) {
    if (ref.on_home_thread()) {
        if (ref.get())
            fn(sink);
        else if (final)
            ref.finished();
        return;
    }
    ref.run([sink, fn = std::forward<Fn>(fn)](net::Connection&) mutable { fn(sink); }, final);
}
}  // namespace detail

inline void Responder::send(Response response) {
    ExchangeSink* sink = std::exchange(sink_, nullptr);
    if (!sink) return;
    const std::uint64_t ex = exchange_;
    detail::on_exchange(ref_, sink, true,
                        [ex, r = std::move(response)](ExchangeSink* s) mutable { s->complete(ex, std::move(r)); });
}

inline StreamWriter Responder::stream(Response head) {
    ExchangeSink* sink = std::exchange(sink_, nullptr);
    if (!sink) return {};
    const std::uint64_t ex = exchange_;
    detail::on_exchange(ref_, sink, false,
                        [ex, r = std::move(head)](ExchangeSink* s) mutable { s->stream_begin(ex, std::move(r)); });
    return StreamWriter(ref_, sink, ex);
}

inline void Responder::abandon() noexcept {
    if (!sink_) return;
    try {
        send(Response::text("Internal Server Error: the handler finished without sending a response\n", 500));
    } catch (...) {
        sink_ = nullptr;  // out of memory while posting: the connection's timeouts will reclaim it
    }
}

inline void StreamWriter::write(std::string_view chunk) {
    if (!sink_ || chunk.empty()) return;
    const std::uint64_t ex = exchange_;
    if (ref_.on_home_thread()) {
        if (ref_.get()) sink_->stream_write(ex, chunk);
        return;
    }
    detail::on_exchange(ref_, sink_, false,
                        [ex, data = std::string(chunk)](ExchangeSink* s) { s->stream_write(ex, data); });
}

inline void StreamWriter::end() {
    ExchangeSink* sink = std::exchange(sink_, nullptr);
    if (!sink) return;
    const std::uint64_t ex = exchange_;
    try {
        detail::on_exchange(ref_, sink, true, [ex](ExchangeSink* s) { s->stream_end(ex); });
    } catch (...) {
    }
}

inline void StreamWriter::abort() {
    ExchangeSink* sink = std::exchange(sink_, nullptr);
    if (!sink) return;
    const std::uint64_t ex = exchange_;
    detail::on_exchange(ref_, sink, true, [ex](ExchangeSink* s) { s->stream_abort(ex); });
}

}  // namespace covet
