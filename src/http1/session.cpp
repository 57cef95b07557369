// The HTTP/1.1 session: one connection's exchanges over the request reader (request_reader.hpp).
//
// The reader turns the bytes read into requests; the session decides what happens to them: keep-alive and
// pipelining (one request at a time, responses in order, input that comes meanwhile waits in `pending_`),
// Expect: 100-continue, request bodies received whole or streamed to the handler (body_stream.hpp), streamed
// responses, the header/body/keep-alive timeouts and the body rate floor, back-pressure both ways, the
// graceful shutdown, and handing the connection to another protocol (switch.hpp). Whatever must outlive
// the input buffer (an incomplete head, a request whose handler answers later) is copied into
// per-connection buffers, which keep their capacity: a busy connection stops allocating after its first
// requests.

#include <algorithm>
#include <string>

#include "../logging.hpp"
#include "covet/http/body_pace.hpp"
#include "covet/http/body_stream.hpp"
#include "covet/http/date_cache.hpp"
#include "covet/http/grpc_call.hpp"
#include "covet/http/proxy_headers.hpp"
#include "covet/http1/protocol.hpp"
#include "covet/http1/request_reader.hpp"
#include "covet/http1/serializer.hpp"
#include "covet/http1/switch.hpp"
#include "covet/io/input_buffer.hpp"
#include "covet/metrics/http_metrics.hpp"
#include "covet/net/worker_context.hpp"

namespace covet::http1 {
namespace {

using http::RequestError;
using io::Clock;
using Event = RequestReader::Event;

// Where the connection's current exchange is.
enum class Phase : std::uint8_t {
    idle,        // between requests (keep-alive)
    head,        // some bytes of a request head have arrived
    body,        // head read, body arriving (received whole before dispatch)
    dispatched,  // waiting for the handler's response
    streaming,   // the handler is streaming a response
    closing,     // a final response is queued; everything else is ignored
    switched,    // another protocol has the connection (see switch.hpp); everything is ignored
};

// A request body that streams to its handler (see body_stream.hpp).
enum class Upload : std::uint8_t {
    none,          // not offered (yet), or delivered and ended
    declined,      // offered; the dispatcher declined: the body is received whole (it is not offered again)
    arriving,      // dispatched with the body still arriving: its bytes go to the handler's reader
    held,          // arriving, and reading is stopped: too many delivered bytes are unacknowledged
    ended_unread,  // it ended before the handler installed its reader (on_end is owed)
};

// How a streamed response's chunks are written (fixed by its head).
enum class StreamBody : std::uint8_t {
    chunked,      // HTTP/1.1: chunked coding, a last chunk at the end
    until_close,  // HTTP/1.0: raw bytes; the body ends when the connection closes
    fixed,        // the producer declared the length (Response::set_head_length): Content-Length, raw bytes
    none,         // HEAD, or a status without a body: chunks are dropped
};

class Session final : public net::ProtocolHandler, public ExchangeSink {
public:
    Session(net::Connection& c, net::ConnectionHome& home, RequestDispatcher& d, Switcher* switcher)
        : conn_(c),
          home_(home),
          dispatcher_(d),
          switcher_(switcher),
          limits_(c.config().limits),
          timeouts_(c.config().timeouts),
          reader_(ReaderLimits::from(limits_)) {
        request_.set_client(conn_.peer_address(), conn_.peer_port());
        set_deadline(timeouts_.keep_alive);
    }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    ~Session() override { close_flow(); }  // the connection is gone: a producer that waits must hear it

    // ---- ProtocolHandler ----
    void on_data(std::span<const char> bytes) override {
        const std::string_view data(bytes.data(), bytes.size());
        if (retired()) return;
        // While a streamed body arrives, its bytes are read (and delivered) at once; otherwise input that
        // comes while a response is pending waits its turn (pipelining).
        const bool waiting = (phase_ == Phase::dispatched || phase_ == Phase::streaming) && !uploading();
        if (waiting || !pending_.empty()) {
            pending_.append(data);
            if (waiting) {
                if (pending_.size() > limits_.max_buffered_input) pause_input(true);
                return;
            }
            drain_pending();
        } else {
            const std::size_t used = process(data);
            if (!retired() && used < data.size()) {
                pending_.assign(data.substr(used));
                if (pending_.size() > limits_.max_buffered_input) pause_input(true);
            }
        }
        flush();
    }

    void on_peer_closed() override {
        peer_closed_ = true;
        close_flow();  // the client went away (a half-close reads as a disconnect, as ASGI servers treat it)
        if (uploading()) abort_upload(0, "the client closed the connection before the request body ended");
        if (phase_ == Phase::dispatched || phase_ == Phase::streaming) return;  // answer, then close
        conn_.close_after_flush();
        phase_ = Phase::closing;
    }

    void on_closed() noexcept override { close_flow(); }

    void on_output_drained() override {
        if (flow_) flow_->publish(0);
        if (output_paused_) {
            output_paused_ = false;
            update_reading();
        }
    }

    void on_tick(Clock::time_point now) override {
        if (uploading()) {
            // Once the response has started, the client may be waiting for it before it sends more (full
            // duplex): the body is no longer timed (docs/operations.md, "Limits"); the handler owns the time.
            if (phase_ == Phase::streaming || untimed_upload_) return;  // (and a gRPC call's never is)
            // A streamed body: the same idle timeout, deadline and rate floor as a buffered one, except while
            // the handler holds the connection paused (it has not consumed what it got): not the client's fault.
            if (!reading_) deadline_ = now + timeouts_.body;
            RequestError e = check_body_pace(now);
            if (!e && now >= deadline_) e = {408, "the request body did not arrive in time"};
            if (e) {
                reject(e);
                flush();
            }
            return;
        }
        if (phase_ == Phase::body) {
            if (const RequestError e = check_body_pace(now)) {
                reject(e);
                flush();
                return;
            }
        }
        if (now < deadline_) return;
        switch (phase_) {
            case Phase::idle: conn_.close_now(); return;  // idle keep-alive: close quietly
            case Phase::head: reject({408, "the request head did not arrive in time"}); break;
            case Phase::body: reject({408, "the request body did not arrive in time"}); break;
            default: return;  // the handler owns the time; closing: the backend's close is under way
        }
        flush();
    }

    void on_shutdown() override {
        shutting_down_ = true;
        if (phase_ == Phase::idle && pending_.empty()) {
            // Closing an idle keep-alive connection now races the client's next request, which may already
            // be on the wire (it would see the connection close under it). A fresh connection's first
            // request is on its way too. Keep reading briefly: a request that comes is answered with
            // `Connection: close` (see must_close_after), and the idle deadline closes a silent connection.
            deadline_ = std::min(deadline_, conn_.loop().now() + shutdown_idle_grace);
        }
    }

    bool exchange_outstanding() const noexcept override {
        return phase_ == Phase::dispatched || phase_ == Phase::streaming;
    }

    // ---- ExchangeSink ----
    void complete(std::uint64_t exchange, Response&& response) override {
        if (phase_ != Phase::dispatched || exchange != exchange_) return;
        dispatcher_.finalize(request_, app_state_.get(), response);
        const bool close = must_close_after(response) || uploading();
        write_response(conn_.out(), std::move(response), head_options(close), request_.method() == Method::head);
        finish_exchange(close);
    }

    void stream_begin(std::uint64_t exchange, Response&& head) override {
        if (phase_ != Phase::dispatched || exchange != exchange_) return;
        dispatcher_.finalize_stream(request_, app_state_.get(), head);
        // A declared length frames the body; else HTTP/1.1 uses chunked coding, and HTTP/1.0 (which has none)
        // ends the body by closing the connection.
        const std::optional<std::uint64_t> declared = head.head_length();
        const bool chunked = !declared && request_.version_minor() >= 1;
        // A body still arriving when the response starts may end before it (full duplex); if it has not by the
        // response's end, the connection closes then (finish_exchange).
        const bool close = must_close_after(head) || (!chunked && !declared);
        HeadOptions o = head_options(close);
        o.framing = declared ? BodyFraming::content_length : chunked ? BodyFraming::chunked : BodyFraming::until_close;
        o.content_length = declared.value_or(0);
        std::string first = std::move(head.body());
        std::string& tail = conn_.out().tail();
        const std::size_t before = tail.size();
        write_head(tail, head, o);
        conn_.out().note_tail_growth(tail.size() - before);
        close_after_stream_ = close;
        stream_left_ = declared.value_or(0);
        stream_body_ = request_.method() == Method::head || !http::status_allows_body(head.status()) ? StreamBody::none
                       : declared                                                                    ? StreamBody::fixed
                       : chunked ? StreamBody::chunked
                                 : StreamBody::until_close;
        // HEAD, 204, 304: the answer is complete with its head, and so is the exchange's record (metrics, the
        // access log), though the producer may still run (its chunks are dropped; the next request waits for its
        // end). A client that closes after the head has not aborted anything.
        if (stream_body_ == StreamBody::none) dispatcher_.filter_body(app_state_.get(), {}, true);
        phase_ = Phase::streaming;
        stream_write(exchange, first);
        if (!in_process_) flush();
    }

    void stream_write(std::uint64_t exchange, std::string_view chunk) override {
        if (!append_stream_chunk(exchange, chunk) && flow_ && exchange == exchange_)
            flow_->publish(phase_ == Phase::streaming ? unsent() : 0);  // StreamWriter counted it: take that back
    }

    // False when nothing of `chunk` was queued (a HEAD response, a filter holding it back, the exchange over).
    bool append_stream_chunk(std::uint64_t exchange, std::string_view chunk) {
        if (phase_ != Phase::streaming || exchange != exchange_ || chunk.empty() || stream_body_ == StreamBody::none)
            return false;
        chunk = dispatcher_.filter_body(app_state_.get(), chunk, false);
        if (chunk.empty()) return false;
        switch (stream_body_) {
            case StreamBody::chunked: write_chunk(conn_.out(), chunk); break;
            case StreamBody::until_close: conn_.out().append(chunk); break;
            case StreamBody::fixed:
                if (chunk.size() > stream_left_) {
                    logging::warn(
                        "the response to {} {} has more body than its declared Content-Length ({} bytes "
                        "over): it is cut off (the connection closes); declare the right length, or none",
                        request_.method_name(), request_.target(), chunk.size() - stream_left_);
                    finish_exchange(/*close=*/true);
                    return true;
                }
                stream_left_ -= chunk.size();
                conn_.out().append(chunk);
                break;
            case StreamBody::none: return false;
        }
        if (!in_process_) flush();
        return true;
    }

    void stream_end(std::uint64_t exchange) override { end_stream(exchange, nullptr); }

    void stream_end_trailers(std::uint64_t exchange, const Fields& trailers) override {
        end_stream(exchange, &trailers);
    }

    void early_hint(std::uint64_t exchange, const Fields& fields) override {
        // HTTP/1.0 has no interim responses; once the answer is under way it is too late.
        if (phase_ != Phase::dispatched || exchange != exchange_ || request_.version_minor() < 1) return;
        write_early_hints(conn_.out(), fields);
        if (!in_process_) flush();
    }

    void end_stream(std::uint64_t exchange, const Fields* trailers) {
        if (phase_ != Phase::streaming || exchange != exchange_) return;
        // (An answer with no body ended its record at the head: stream_begin.)
        if (stream_body_ != StreamBody::none) {
            if (const std::string_view tail = dispatcher_.filter_body(app_state_.get(), {}, true); !tail.empty()) {
                if (stream_body_ == StreamBody::chunked) write_chunk(conn_.out(), tail);
                if (stream_body_ == StreamBody::until_close) conn_.out().append(tail);
            }
        }
        if (stream_body_ == StreamBody::fixed && stream_left_ != 0) {
            logging::warn(
                "the response to {} {} ended {} bytes short of its declared Content-Length: it is cut off "
                "(the connection closes); declare the right length, or none",
                request_.method_name(), request_.target(), stream_left_);
            finish_exchange(/*close=*/true);
            return;
        }
        if (stream_body_ == StreamBody::chunked) {
            if (trailers && !trailers->empty())
                write_last_chunk(conn_.out(), *trailers);
            else
                write_last_chunk(conn_.out());
        } else if (trailers && !trailers->empty()) {
            logging::debug("trailers of {} dropped: the response is not chunked", request_.target());
        }
        finish_exchange(close_after_stream_ || shutting_down_);
    }

    void stream_abort(std::uint64_t exchange) override {
        if (phase_ != Phase::streaming || exchange != exchange_) return;
        // What was written still goes out; no last chunk follows, and the close tells the client.
        finish_exchange(/*close=*/true);
    }

    void stream_watch(std::uint64_t exchange, std::shared_ptr<StreamFlow> flow) override {
        if (!flow) return;
        if (exchange != exchange_ || (phase_ != Phase::dispatched && phase_ != Phase::streaming) || peer_closed_) {
            flow->close();  // over already
            return;
        }
        if (flow_ != flow) close_flow();
        flow_ = std::move(flow);
        flow_->publish(phase_ == Phase::streaming ? unsent() : 0);
    }

    // ---- streamed request bodies (body_stream.hpp) ----
    void body_read(std::uint64_t exchange, std::shared_ptr<BodyReader> reader) override {
        if (exchange != exchange_ || !request_.body_streamed() || body_reader_ || !reader) return;
        if (retired() || (!uploading() && upload_ != Upload::ended_unread)) {
            reader->on_error(0, "the request has ended");
            return;
        }
        body_reader_ = reader;  // `reader` keeps it alive while it runs (an answer from it releases body_reader_)
        if (!upload_hold_.empty()) {
            const std::string held = std::exchange(upload_hold_, {});
            reader->on_data(held);
        }
        if (upload_ == Upload::ended_unread && body_reader_) {
            upload_ = Upload::none;
            reader->on_end();
        }
    }

    // The handler keeps the request past dispatch (AsyncHandler, another thread): copy it out of the input
    // buffer now, on this thread, rather than at the end of process() while that thread may read it.
    void keep_request(std::uint64_t exchange) override {
        if (exchange == exchange_ && in_process_) reader_.keep(input_);
    }

    void body_consumed(std::uint64_t exchange, std::size_t bytes) override {
        if (exchange != exchange_ || !request_.body_streamed()) return;
        upload_unacked_ -= std::min<std::uint64_t>(upload_unacked_, bytes);
        if (upload_ == Upload::held && upload_unacked_ <= limits_.max_buffered_input / 2) {
            update_reading();
            if (!in_process_) flush();
        }
    }

private:
    // ---- reading requests ----

    // Reads requests from `buf` and dispatches them. Returns how many bytes were consumed; the rest is an
    // incomplete head (kept by the caller) unless the phase is now dispatched/closing.
    std::size_t process(std::string_view buf) {
        in_process_ = true;
        input_ = buf;
        std::size_t pos = 0;
        while (pos < buf.size() &&
               (phase_ == Phase::idle || phase_ == Phase::head || phase_ == Phase::body || uploading())) {
            if (pos == 0 && phase_ == Phase::idle && exchange_ == 0 && switcher_) {
                // A protocol that starts without a request (HTTP/2 with prior knowledge) may take over.
                SwitchDecision d = switcher_->on_connection_start(conn_, home_, buf);
                if (d.kind == SwitchDecision::Kind::wait) break;  // wait for the rest of its preface
                if (d.kind == SwitchDecision::Kind::take) {
                    switch_to(std::move(d.next), buf);
                    in_process_ = false;
                    return buf.size();
                }
            }
            const std::string_view rest = buf.substr(pos);
            const bool in_body = reader_.reading_body();
            const RequestReader::Result r = reader_.feed(rest);
            pos += r.used;
            if (in_body) {
                set_deadline(timeouts_.body);
                pace_.add(r.used);
            }
            for (const std::string_view piece : r.body) {  // a streamed body: its bytes go to the handler
                if (!uploading()) break;                   // answered (or aborted) meanwhile
                deliver(piece);
            }
            if (retired()) break;  // the handler answered inline, or the upload was refused
            if (r.event == Event::error) {
                reject(reader_.error());
                break;
            }
            if (r.event == Event::more) {  // all of `buf` is used, or the rest is an incomplete head
                if (phase_ == Phase::idle && !reader_.between_requests()) {
                    phase_ = Phase::head;
                    set_deadline(timeouts_.header);
                }
                break;
            }
            if (uploading()) {  // Event::complete: the streamed body has ended
                end_upload();
                continue;
            }
            if (phase_ != Phase::body) begin_request();
            if (r.event == Event::head) {
                read_body_next(r.used == rest.size());
                continue;
            }
            dispatch();
            if (switch_) {
                // A switch was accepted: what followed the request belongs to the next protocol.
                switch_to(std::move(switch_), buf.substr(pos));
                in_process_ = false;
                return buf.size();
            }
        }
        // A body without a length (chunked) still open once the input read so far is used up streams from
        // here (the handler may answer before it ends: full duplex); one that ended within it came whole.
        if (phase_ == Phase::body && upload_ == Upload::none && !reader_.declared_length() && accept_upload())
            start_upload();
        // A request still being read or answered later must not point into `buf` any more.
        if (phase_ == Phase::body || phase_ == Phase::dispatched || phase_ == Phase::streaming) reader_.keep(buf);
        in_process_ = false;
        return retired() ? buf.size() : pos;
    }

    void drain_pending() {
        const std::size_t used = process(pending_.view());
        if (retired())
            pending_.clear();
        else
            pending_.consume(used);
        update_reading();
    }

    // A request head was read: what the reader does not know about it.
    void begin_request() {
        request_.set_received_at(conn_.loop().now());
        request_.set_tls(conn_.tls());
        // The previous request may have taken another client (X-Forwarded-For), and a PROXY header read after the
        // session began may have replaced the peer.
        request_.set_client(conn_.peer_address(), conn_.peer_port());
        if (conn_.proxy_trusted()) http::apply_proxy_headers(request_, conn_.config().proxy_headers.trusted);
        upload_ = Upload::none;
    }

    // The head was read and a body follows: it is received whole (phase body), or streams to the handler if
    // its declared length is large and the route accepts that. `no_body_bytes_yet`: none came with the head.
    void read_body_next(bool no_body_bytes_yet) {
        phase_ = Phase::body;
        set_deadline(timeouts_.body);
        pace_.start(conn_.loop().now());
        const std::optional<std::uint64_t> length = reader_.declared_length();
        if (length) {  // over the route's own limit: refused now, before a 100 Continue or a byte of the body
            const std::uint64_t route_limit = dispatcher_.route_body_limit(request_);
            if (route_limit != 0 && *length > route_limit) {
                reject(http::body_over_route_limit);
                return;
            }
        }
        const bool offer = length && *length > limits_.stream_body_threshold;
        const bool stream = offer && accept_upload();
        if (!offer && reader_.over_body_limit()) reject(http::body_too_large);
        if (retired()) return;
        maybe_continue(no_body_bytes_yet);
        if (retired()) return;
        if (stream) start_upload();
    }

    // The whole-body deadline and the minimum data rate, checked by the periodic sweep.
    RequestError check_body_pace(Clock::time_point now) {
        std::string why = pace_.violation(timeouts_, now, reading_);
        if (why.empty()) return {};
        reason_text_ = std::move(why);
        return {408, reason_text_.c_str()};
    }

    // Expect: 100-continue → tell the client to send the body (only if it hasn't started already).
    void maybe_continue(bool no_body_bytes_yet) {
        const auto expect = request_.header("expect");
        if (!expect) return;
        if (!iequals(*expect, "100-continue")) {
            reject({417, "the only supported expectation is 100-continue"});
            return;
        }
        if (no_body_bytes_yet && request_.version_minor() >= 1)
            conn_.out().append(std::string_view("HTTP/1.1 100 Continue\r\n\r\n"));
    }

    // ---- dispatch and responses ----
    void dispatch() {
        if (switcher_ && request_.header("upgrade")) {
            // The request asks to switch protocols: the switcher decides (see switch.hpp).
            SwitchDecision d = switcher_->on_upgrade_request(conn_, home_, request_);
            if (d.kind == SwitchDecision::Kind::take) {
                switch_ = std::move(d.next);  // performed once the request's bytes are consumed (process())
                return;
            }
            if (d.kind == SwitchDecision::Kind::refuse) {
                refuse_upgrade(std::move(d.refusal));
                return;
            }
        }
        phase_ = Phase::dispatched;
        ++exchange_;
        net::WorkerContext::current().stats.count_request();
        dispatcher_.dispatch(request_, app_state(), responder());
    }

    Responder responder(bool streamed_body = false) {
        return Responder(net::ConnectionRef(home_.link(), conn_.id(), conn_.protocol_epoch()), this, exchange_,
                         streamed_body);
    }

    // An upgrade the switcher refused (an invalid WebSocket handshake, ...): answered, then the connection
    // closes.
    void refuse_upgrade(Response refusal) {
        refusal.close_connection();
        phase_ = Phase::dispatched;
        ++exchange_;
        responder().send(std::move(refusal));
    }

    // Hands the connection to the next protocol with the bytes it must see first. This handler is retired:
    // it ignores everything from now on (Phase::switched) and never touches the connection again.
    void switch_to(std::unique_ptr<PendingSwitch> next, std::string_view rest) {
        phase_ = Phase::switched;
        next->install(std::span<const char>(rest.data(), rest.size()));
    }

    ExchangeState* app_state() {
        if (!app_state_) app_state_ = dispatcher_.make_exchange_state();
        return app_state_.get();
    }

    bool must_close_after(const Response& r) const {
        // After the client half-closed, only requests it already sent in full are still answered.
        const bool last_from_closed_peer = peer_closed_ && !RequestReader::holds_complete_head(pending_.view());
        return !request_.keep_alive() || r.closes_connection() || shutting_down_ || last_from_closed_peer;
    }

    HeadOptions head_options(bool close) const {
        HeadOptions o;
        o.date = http::DateCache::thread_local_instance().get();
        o.close = close;
        o.keep_alive_1_0 = !close && request_.version_minor() == 0;
        return o;
    }

    void finish_exchange(bool close) {
        close_flow();
        if (uploading()) {  // the response is complete before the body: the rest of it is not read (lingering close)
            close = true;
            abort_upload(0, "the response was sent before the request body ended");
        }
        body_reader_.reset();
        upload_hold_.clear();
        upload_unacked_ = 0;
        upload_ = Upload::none;
        if (close) {
            phase_ = Phase::closing;
            pending_.clear();
            conn_.close_after_flush();
            return;
        }
        phase_ = Phase::idle;
        set_deadline(timeouts_.keep_alive);
        if (!in_process_) {
            // Answered later: continue with pipelined requests that waited, then send everything at once.
            if (!pending_.empty())
                drain_pending();
            else
                update_reading();
            // The client has finished sending: once every complete request it sent is answered, close.
            if (peer_closed_ && (phase_ == Phase::idle || phase_ == Phase::head)) {
                phase_ = Phase::closing;
                conn_.close_after_flush();
                return;
            }
            flush();
        }
    }

    // Final error response, then close.
    void reject(RequestError e) {
        if (retired()) return;
        if (uploading()) abort_upload(e.status, e.reason);
        if (phase_ == Phase::streaming) {  // the handler's response has started: cut it off
            phase_ = Phase::closing;
            pending_.clear();
            conn_.close_after_flush();
            return;
        }
        if (conn_.config().ops.record_metrics) metrics::protocol_refusal(e.status);
        std::string body = std::to_string(e.status);
        body.append(" ").append(http::reason_phrase(e.status)).append(": ").append(e.reason).append("\n");
        Response resp = Response::text(std::move(body), e.status);
        if (e.status == 405 || e.status == 501)
            resp.add_header("Allow", "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
        write_response(conn_.out(), std::move(resp), head_options(true), false);
        phase_ = Phase::closing;
        pending_.clear();
        close_flow();
        conn_.close_after_flush();
    }

    void flush() {
        if (phase_ == Phase::switched) return;  // the connection belongs to the next protocol now
        if (conn_.out().size() > limits_.output_high_water && !output_paused_) {
            output_paused_ = true;
            update_reading();
        }
        conn_.flush();
        if (flow_ && phase_ == Phase::streaming) flow_->publish(unsent());
    }

    // Output not yet written to the socket (a TLS connection also holds encrypted bytes apart).
    std::size_t unsent() noexcept {
        io::OutputQueue& out = conn_.out();
        return &out == &conn_.wire_out() ? out.size() : out.size() + conn_.wire_out().size();
    }
    void close_flow() noexcept {
        if (std::shared_ptr<StreamFlow> f = std::move(flow_)) f->close();
    }

    void pause_input(bool paused) {
        input_paused_ = paused;
        update_reading();
    }
    void update_reading() {
        if (input_paused_ && pending_.size() <= limits_.max_buffered_input / 2) input_paused_ = false;
        if (upload_ == Upload::held && upload_unacked_ <= limits_.max_buffered_input / 2) upload_ = Upload::arriving;
        const bool want = !input_paused_ && !output_paused_ && upload_ != Upload::held;
        if (want != reading_) {
            reading_ = want;
            conn_.set_reading(want);
        }
    }

    bool uploading() const noexcept { return upload_ == Upload::arriving || upload_ == Upload::held; }
    // A final response is queued, or another protocol took the connection: nothing more is read.
    bool retired() const noexcept { return phase_ == Phase::closing || phase_ == Phase::switched; }

    void set_deadline(std::chrono::milliseconds d) { deadline_ = conn_.loop().now() + d; }

    // ---- streamed request bodies ----

    // Offers the request, whose body is large and still arriving, to the dispatcher for streaming. False:
    // the body is received whole (or was refused: 413 when it cannot fit).
    bool accept_upload() {
        upload_ = Upload::declined;
        bool accepted = false;
        try {
            accepted = dispatcher_.stream_body(request_);
        } catch (const std::exception& e) {
            logging::error("stream_body for {} failed: {}", request_.target(), e.what());
        }
        if (!accepted) {
            if (reader_.over_body_limit()) reject(http::body_too_large);
            return false;
        }
        if (request_.body().size() > ReaderLimits::from(limits_).stream_limit()) {
            reject(http::streamed_body_too_large);
            return false;
        }
        return true;
    }

    // Dispatches the request now; what arrived of its body so far is the first data its reader gets.
    void start_upload() {
        upload_ = Upload::arriving;
        untimed_upload_ = http::is_grpc_call(request_);
        upload_hold_.assign(request_.body());
        upload_unacked_ = upload_hold_.size();
        reader_.stream_body();
        net::WorkerContext::current().stats.count_request();
        phase_ = Phase::dispatched;
        ++exchange_;
        dispatcher_.dispatch(request_, app_state(), responder(/*streamed_body=*/true));
        check_upload_window();
    }

    // Body bytes of a streamed request: to the reader, or held until it is installed.
    void deliver(std::string_view chunk) {
        upload_unacked_ += chunk.size();
        if (body_reader_ && upload_hold_.empty())
            std::shared_ptr<BodyReader>(body_reader_)->on_data(chunk);  // it may answer: keep it
        else
            upload_hold_.append(chunk);
        check_upload_window();
    }

    void check_upload_window() {
        if (upload_ == Upload::arriving && upload_unacked_ > limits_.max_buffered_input) {
            upload_ = Upload::held;
            update_reading();
        }
    }

    // The streamed body arrived in full (the reader stopped at its end: the next request waits its turn).
    void end_upload() {
        upload_ = Upload::none;
        update_reading();
        if (std::shared_ptr<BodyReader> r = body_reader_)
            r->on_end();  // kept: an answer from it releases body_reader_
        else
            upload_ = Upload::ended_unread;
    }

    void abort_upload(int status, std::string_view reason) {
        upload_ = Upload::none;
        upload_hold_.clear();
        if (std::shared_ptr<BodyReader> r = std::move(body_reader_)) r->on_error(status, reason);
    }

    net::Connection& conn_;
    net::ConnectionHome& home_;
    RequestDispatcher& dispatcher_;
    Switcher* switcher_;  // null: no switching (HTTP/1.1 only)
    const net::Limits& limits_;
    const net::Timeouts& timeouts_;
    RequestReader reader_;
    Request& request_ = reader_.request();      // the current request (the reader's)
    std::unique_ptr<ExchangeState> app_state_;  // the dispatcher's, for every exchange of this connection
    Phase phase_ = Phase::idle;
    Upload upload_ = Upload::none;
    bool untimed_upload_ = false;  // a gRPC call's upload: not timed (covet/http/grpc_call.hpp)
    StreamBody stream_body_ = StreamBody::chunked;
    std::uint64_t stream_left_ = 0;  // StreamBody::fixed: declared bytes not written yet
    std::uint64_t exchange_ = 0;
    std::shared_ptr<StreamFlow> flow_;  // the exchange's flow control, when its producer watches (stream_watch)
    Clock::time_point deadline_{};
    http::BodyPace pace_;                    // the current body against body_deadline and min_body_rate
    std::string reason_text_;                // the text of a rejection that names numbers
    io::InputBuffer pending_;                // unread input (incomplete head, or pipelined requests waiting their turn)
    std::string_view input_;                 // the buffer process() reads (valid while in_process_)
    std::unique_ptr<PendingSwitch> switch_;  // accepted: performed once the request's bytes are consumed
    std::shared_ptr<BodyReader> body_reader_;  // the handler's reader of a streamed body
    std::string upload_hold_;                  // streamed body bytes that came before the reader
    std::uint64_t upload_unacked_ = 0;         // delivered or held, not yet acknowledged by the reader
    // How long an idle connection still waits for a request once the server stops (see on_shutdown).
    static constexpr std::chrono::milliseconds shutdown_idle_grace{1000};
    // Independent facts, not phases (each may hold in several phases):
    bool in_process_ = false;          // inside process(): a response completed inline waits for its flush
    bool close_after_stream_ = false;  // the streamed response's head said Connection: close
    bool shutting_down_ = false;       // the server is stopping: the next response closes the connection
    bool peer_closed_ = false;         // the client half-closed: complete requests are answered, then close
    bool input_paused_ = false;        // reading stopped: too much pipelined input waits (pending_)
    bool output_paused_ = false;       // reading stopped: too much output is unsent
    bool reading_ = true;              // what the connection was last told (set_reading)
};

}  // namespace

std::unique_ptr<net::ProtocolHandler> make_protocol(net::Connection& connection, net::ConnectionHome& home,
                                                    RequestDispatcher& dispatcher, Switcher* switcher) {
    return std::make_unique<Session>(connection, home, dispatcher, switcher);
}

}  // namespace covet::http1
