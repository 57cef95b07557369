// How a handler answers: a Responder completes one request-response exchange, now or later, from any
// thread. Protocols implement ExchangeSink; the app implements RequestDispatcher.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "covet/http/request.hpp"
#include "covet/http/response.hpp"
#include "covet/net/connection_ref.hpp"

namespace covet {

struct Upgrade;
class BodyReader;
class RequestBody;

// Flow control of one streamed response, shared by its producer (any thread) and the protocol (the
// connection's thread), as WebSockets' send limit: how many bytes the producer wrote that the client has
// not taken yet, and whether the exchange is still open. A producer that finds buffered() over its limit
// calls arm() and waits for `notify`, which the protocol runs (on the connection's thread) once the
// buffered bytes fall to the low-water mark (limit / 2) or the exchange closes (ended, the client went
// away, the stream was reset, the connection timed out). Watching is opt-in: Responder::watch, or
// Responder::stream with a flow. A handler that only waits for the exchange to end (a disconnect) calls
// arm_close() instead: `notify` then runs once it closes, with no timer and nothing polled.
struct StreamFlow {
    explicit StreamFlow(std::size_t send_limit, std::function<void(StreamFlow&)> on_ready = {})
        : limit(send_limit), notify(std::move(on_ready)) {}

    // Bytes written and not yet taken: posted from other threads and not yet on the connection, plus what
    // the protocol last saw unsent for this exchange (approximate off the connection's thread).
    std::size_t buffered() const noexcept {
        return posted.load(std::memory_order_relaxed) + queued.load(std::memory_order_relaxed);
    }
    bool is_open() const noexcept { return open.load(std::memory_order_acquire); }
    bool over_limit() const noexcept { return buffered() > limit; }
    // Producer: true when it must wait for `notify` (over the limit and still open); then `notify` runs once.
    bool arm() noexcept {
        armed.store(true, std::memory_order_seq_cst);
        if (is_open() && buffered() > limit / 2) return true;
        // Ready already (or closed): take the arming back, unless the protocol just took it to notify.
        return !armed.exchange(false, std::memory_order_seq_cst);
    }

    // Watcher of the exchange's end (a handler waiting for the client to go away, with no timer): true when
    // it must wait for `notify`, which runs once the exchange closes; false when it is closed already.
    // Needs the flow watched by the protocol (Responder::watch or stream), else nothing ever closes it.
    bool arm_close() noexcept {
        close_armed.store(true, std::memory_order_seq_cst);
        if (open.load(std::memory_order_seq_cst)) return true;
        return !close_armed.exchange(false, std::memory_order_seq_cst);  // else the protocol notifies now
    }

    // Protocol side (the connection's thread).
    void publish(std::size_t unsent) noexcept {
        queued.store(unsent, std::memory_order_relaxed);
        if (buffered() <= limit / 2) wake();
    }
    void close() noexcept {
        open.store(false, std::memory_order_seq_cst);
        wake(close_armed.load(std::memory_order_seq_cst) && close_armed.exchange(false, std::memory_order_seq_cst));
    }

    std::atomic<std::size_t> posted{0};
    std::atomic<std::size_t> queued{0};
    std::atomic<bool> open{true};
    std::atomic<bool> armed{false};
    std::atomic<bool> close_armed{false};  // arm_close(): notify on close only
    const std::size_t limit;
    const std::function<void(StreamFlow&)> notify;  // any thread but the producer's: keep it short

private:
    void wake(bool closing = false) noexcept {
        const bool send_armed =
            armed.load(std::memory_order_seq_cst) && armed.exchange(false, std::memory_order_seq_cst);
        if ((!send_armed && !closing) || !notify) return;
        try {
            notify(*this);
        } catch (...) {
        }
    }
};

// Implemented by protocols (HTTP/1.1 today, HTTP/2 streams later). Called on the connection's thread.
class ExchangeSink {
public:
    virtual void complete(std::uint64_t exchange, Response&& response) = 0;
    virtual void stream_begin(std::uint64_t exchange, Response&& head) = 0;
    virtual void stream_write(std::uint64_t exchange, std::string_view chunk) = 0;
    virtual void stream_end(std::uint64_t exchange) = 0;
    // Ends the stream with trailer fields: HTTP/2 a trailing HEADERS frame, HTTP/1.1 the chunked trailer
    // section. Protocols (or framings) that cannot carry them end the stream without them.
    virtual void stream_end_trailers(std::uint64_t exchange, const Fields& /*trailers*/) { stream_end(exchange); }
    // A 103 Early Hints response with `fields` before the final one (RFC 8297), while the exchange is not
    // answered yet; dropped where it cannot be sent (an HTTP/1.0 client) or once the answer has started.
    virtual void early_hint(std::uint64_t /*exchange*/, const Fields& /*fields*/) {}
    // The body could not be completed (the producer failed): the client must see an incomplete response,
    // never a short one that looks whole. HTTP/1.1 closes the connection without the last chunk.
    virtual void stream_abort(std::uint64_t exchange) = 0;
    // Keep `flow` up to date for this exchange (see StreamFlow) until it ends; protocols that do not
    // leave it open with nothing buffered.
    // NOLINTNEXTLINE(performance-unnecessary-value-param): overrides keep the flow
    virtual void stream_watch(std::uint64_t /*exchange*/, std::shared_ptr<StreamFlow> /*flow*/) {}
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
    StreamWriter(net::ConnectionRef ref, ExchangeSink* sink, std::uint64_t exchange,
                 std::shared_ptr<StreamFlow> flow = {})
        : ref_(std::move(ref)), sink_(sink), exchange_(exchange), flow_(std::move(flow)) {}
    StreamWriter(StreamWriter&& o) noexcept { *this = std::move(o); }
    StreamWriter& operator=(StreamWriter&& o) noexcept {
        if (this != &o) {
            end();
            ref_ = o.ref_, sink_ = std::exchange(o.sink_, nullptr), exchange_ = o.exchange_;
            flow_ = std::move(o.flow_);
        }
        return *this;
    }
    ~StreamWriter() { end(); }

    void write(std::string_view chunk);  // any thread; empty chunks are ignored
    void end();                          // any thread; idempotent
    // Ends the stream with trailer fields (ExchangeSink::stream_end_trailers). Any thread.
    void end(Fields trailers);
    void abort();  // any thread: cut the response off (see ExchangeSink::stream_abort)
    explicit operator bool() const noexcept { return sink_ != nullptr; }
    // The flow this stream was started with (Responder::stream), or null.
    const std::shared_ptr<StreamFlow>& flow() const noexcept { return flow_; }

private:
    net::ConnectionRef ref_;
    ExchangeSink* sink_ = nullptr;
    std::uint64_t exchange_ = 0;
    std::shared_ptr<StreamFlow> flow_;
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
    // With a `flow`, the protocol keeps it up to date (see StreamFlow): the writer's bytes count in it.
    StreamWriter stream(Response head, std::shared_ptr<StreamFlow> flow = {});
    // Has the protocol keep `flow` up to date from now on (its `open` turns false when the client goes away
    // before the answer): for a handler that wants to notice a disconnect. Any thread.
    void watch(std::shared_ptr<StreamFlow> flow) const;
    // Sends a 103 Early Hints response with `fields` (Link: ...), before send() or stream(); several may
    // go. Dropped for an HTTP/1.0 client. Any thread.
    void early_hint(Fields fields) const;
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
    // The protocol is done with the exchange of `state`'s slot (its stream closed and the application let go of
    // it) and pools the slot: an exchange whose answer never completed (the client reset the stream) is over now,
    // not when the slot is reused. Nothing for one that completed.
    virtual void exchange_over(ExchangeState* /*state*/) noexcept {}
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
    // The route's own body limit for a request whose head has arrived and whose body has not (0: the server's
    // Limits::max_body_bytes): a declared length over it is refused (413) before any of the body is read or a
    // 100 Continue is sent. Called on the connection's thread; the application answers the rest at dispatch.
    virtual std::uint64_t route_body_limit(Request& /*request*/) { return 0; }
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

namespace detail {
// A flow on its way to the protocol: closed if it never arrives (the connection went first, and the task
// that carried it was dropped), so that its producer does not wait for news that cannot come.
struct FlowHandoff {
    explicit FlowHandoff(std::shared_ptr<StreamFlow> f) : flow(std::move(f)) {}
    FlowHandoff(const FlowHandoff&) = delete;
    FlowHandoff& operator=(const FlowHandoff&) = delete;
    ~FlowHandoff() {
        if (flow && !delivered) flow->close();
    }
    std::shared_ptr<StreamFlow> flow;
    bool delivered = false;
};
}  // namespace detail

inline StreamWriter Responder::stream(Response head, std::shared_ptr<StreamFlow> flow) {
    ExchangeSink* sink = std::exchange(sink_, nullptr);
    if (!sink) return {};
    const std::uint64_t ex = exchange_;
    std::shared_ptr<detail::FlowHandoff> handoff;
    if (flow) handoff = std::make_shared<detail::FlowHandoff>(flow);
    detail::on_exchange(ref_, sink, false, [ex, r = std::move(head), handoff](ExchangeSink* s) mutable {
        if (handoff) {
            handoff->delivered = true;
            s->stream_watch(ex, handoff->flow);
        }
        s->stream_begin(ex, std::move(r));
    });
    return StreamWriter(ref_, sink, ex, std::move(flow));
}

inline void Responder::watch(std::shared_ptr<StreamFlow> flow) const {
    if (!sink_ || !flow) return;
    const std::uint64_t ex = exchange_;
    detail::on_exchange(ref_, sink_, false,
                        [ex, h = std::make_shared<detail::FlowHandoff>(std::move(flow))](ExchangeSink* s) {
                            h->delivered = true;
                            s->stream_watch(ex, h->flow);
                        });
}

inline void Responder::early_hint(Fields fields) const {
    if (!sink_) return;
    const std::uint64_t ex = exchange_;
    detail::on_exchange(ref_, sink_, false, [ex, f = std::move(fields)](ExchangeSink* s) { s->early_hint(ex, f); });
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
        if (!ref_.get()) return;
        // Counted as unsent at once: the protocol publishes the true figure when it next flushes, and a
        // producer writing in a loop on this thread must see its bytes before that (StreamFlow::over_limit).
        if (flow_) flow_->queued.fetch_add(chunk.size(), std::memory_order_relaxed);
        sink_->stream_write(ex, chunk);
        return;
    }
    if (flow_) {
        // Counted until the connection's thread has it (then the protocol counts it as unsent output).
        flow_->posted.fetch_add(chunk.size(), std::memory_order_relaxed);
        detail::on_exchange(ref_, sink_, false, [ex, data = std::string(chunk), f = flow_](ExchangeSink* s) {
            f->posted.fetch_sub(data.size(), std::memory_order_relaxed);
            s->stream_write(ex, data);
        });
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

inline void StreamWriter::end(Fields trailers) {
    ExchangeSink* sink = std::exchange(sink_, nullptr);
    if (!sink) return;
    const std::uint64_t ex = exchange_;
    detail::on_exchange(ref_, sink, true,
                        [ex, t = std::move(trailers)](ExchangeSink* s) { s->stream_end_trailers(ex, t); });
}

inline void StreamWriter::abort() {
    ExchangeSink* sink = std::exchange(sink_, nullptr);
    if (!sink) return;
    const std::uint64_t ex = exchange_;
    detail::on_exchange(ref_, sink, true, [ex](ExchangeSink* s) { s->stream_abort(ex); });
}

}  // namespace covet
