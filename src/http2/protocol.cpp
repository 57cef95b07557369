// HTTP/2 protocol handler over an nghttp2 server session.
//
// nghttp2 parses frames (mem_recv) and serializes them (mem_send, copied straight into the connection's
// output queue). Requests are dispatched on END_STREAM to the same RequestDispatcher as HTTP/1.1, with
// the stream id as the exchange id. Responses complete from the connection's thread, possibly while
// nghttp2 is inside mem_recv (a handler answering inline): frames are then only submitted, and sent when
// the outer call returns, because nghttp2 must not be re-entered.
//
// nghttp2 callbacks never throw: each trampoline catches and returns NGHTTP2_ERR_CALLBACK_FAILURE, which
// ends this connection only.
#include "covet/http2/protocol.hpp"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "../logging.hpp"
#include "covet/http/date_cache.hpp"
#include "covet/http/grpc_call.hpp"
#include "covet/http/proxy_headers.hpp"
#include "covet/http/request_builder.hpp"
#include "covet/http/status.hpp"
#include "covet/metrics/http_metrics.hpp"
#include "covet/net/worker_context.hpp"
#include "fields.hpp"
#include "preface_settings.hpp"
#include "reset_budget.hpp"
#include "stream.hpp"
#include "stream_ids.hpp"

namespace covet::http2 {
namespace {

using detail::FieldBlock;
using detail::Stream;
using detail::StreamState;
using io::Clock;

struct SessionDeleter {
    void operator()(nghttp2_session* s) const noexcept { nghttp2_session_del(s); }
};
struct CallbacksDeleter {
    void operator()(nghttp2_session_callbacks* c) const noexcept { nghttp2_session_callbacks_del(c); }
};
struct OptionDeleter {
    void operator()(nghttp2_option* o) const noexcept { nghttp2_option_del(o); }
};
using SessionPtr = std::unique_ptr<nghttp2_session, SessionDeleter>;

class Http2Protocol final : public net::ProtocolHandler, public ExchangeSink {
public:
    Http2Protocol(net::Connection& c, net::ConnectionHome& home, RequestDispatcher& d)
        : conn_(c),
          home_(home),
          dispatcher_(d),
          limits_(c.config().limits),
          h2_(c.config().http2_limits),
          timeouts_(c.config().timeouts) {
        idle_since_ = progress_at_ = heard_at_ = conn_.loop().now();
    }
    Http2Protocol(const Http2Protocol&) = delete;
    Http2Protocol& operator=(const Http2Protocol&) = delete;
    ~Http2Protocol() override {
        // The connection is gone: producers that wait must hear it.
        for (const auto& s : live_) s->close_flow();
    }

    // False when nghttp2 could not be set up (out of memory): the caller falls back or closes.
    bool init() {
        nghttp2_session_callbacks* raw_cb = nullptr;
        if (nghttp2_session_callbacks_new(&raw_cb) != 0) return false;
        std::unique_ptr<nghttp2_session_callbacks, CallbacksDeleter> cb(raw_cb);
        nghttp2_session_callbacks_set_on_begin_frame_callback(raw_cb, &on_begin_frame);
        nghttp2_session_callbacks_set_on_begin_headers_callback(raw_cb, &on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(raw_cb, &on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(raw_cb, &on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(raw_cb, &on_data_chunk_recv);
        nghttp2_session_callbacks_set_on_stream_close_callback(raw_cb, &on_stream_close);
        nghttp2_session_callbacks_set_on_frame_send_callback(raw_cb, &on_frame_send);

        nghttp2_option* raw_opt = nullptr;
        if (nghttp2_option_new(&raw_opt) != 0) return false;
        std::unique_ptr<nghttp2_option, OptionDeleter> opt(raw_opt);
        // Abuse limits: SETTINGS entries per frame, queued PING/SETTINGS acks (floods), RST_STREAM rate
        // (rapid reset, CVE-2023-44487) and CONTINUATION frames per header block.
        nghttp2_option_set_max_settings(raw_opt, 32);
        nghttp2_option_set_max_outbound_ack(raw_opt, 1000);
        // Our own token bucket (on_frame_recv, loop time) answers a reset flood with ENHANCE_YOUR_CALM;
        // nghttp2's (wall time, ending the session with INTERNAL_ERROR) is a looser backstop.
        const std::uint64_t resets = std::max<std::uint32_t>(h2_.max_resets_per_second, 1);
        nghttp2_option_set_stream_reset_rate_limit(raw_opt, 10 * resets, 2 * resets);
        resets_ = detail::ResetBudget(h2_.max_resets_per_second);
        nghttp2_option_set_max_continuations(raw_opt, h2_.max_continuations);
        // Flow control is ours: DATA is returned to the connection window at once, and to its stream's
        // window at once too unless the body streams to the application, whose acknowledgements open it
        // (back-pressure per stream; other streams keep going). Padding and ignored DATA nghttp2 counts itself.
        nghttp2_option_set_no_auto_window_update(raw_opt, 1);
        // nghttp2_option_set_no_http_messaging stays off: nghttp2 checks pseudo-headers, content-length
        // against DATA, forbidden fields.

        nghttp2_session* raw = nullptr;
        if (nghttp2_session_server_new2(&raw, raw_cb, this, raw_opt) != 0) return false;
        session_.reset(raw);

        const std::uint32_t frame = std::clamp<std::uint32_t>(h2_.max_frame_size, 16384, 16777215);
        std::array<nghttp2_settings_entry, 3> iv{{
            {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
             std::min<std::uint32_t>(h2_.initial_window_size, NGHTTP2_MAX_WINDOW_SIZE)},
            {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, h2_.max_header_list_bytes},
            {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, frame},
        }};
        // SETTINGS_MAX_CONCURRENT_STREAMS joins this frame on its way out (send_pending, preface_settings.hpp):
        // nghttp2 does not know the limit, on_begin_headers enforces it stream by stream.
        if (nghttp2_submit_settings(raw, NGHTTP2_FLAG_NONE, iv.data(), iv.size()) != 0) return false;
        // The connection window: large enough that one stream's window is usable.
        const std::int32_t conn_window =
            static_cast<std::int32_t>(std::min<std::uint32_t>(h2_.initial_window_size, NGHTTP2_MAX_WINDOW_SIZE));
        if (conn_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE)
            nghttp2_session_set_local_window_size(raw, NGHTTP2_FLAG_NONE, 0, conn_window);
        return true;
    }

    // h2c upgrade: stream 1 carries the HTTP/1.1 request (copied). False if the settings are invalid.
    bool init_upgrade(std::string_view settings_header, const Request& r) {
        std::string payload;
        if (!detail::decode_base64url(settings_header, payload)) return false;
        std::unique_ptr<Stream> s = pool_.acquire(1);
        Stream* st = s.get();
        const int rv = nghttp2_session_upgrade2(session_.get(), reinterpret_cast<const std::uint8_t*>(payload.data()),
                                                payload.size(), r.method() == Method::head, st);
        if (rv != 0) return false;
        live_.push_back(std::move(s));
        ++open_streams_;
        // Copy the request: it views into the HTTP/1.1 handler's buffers, which go away.
        st->has_method = st->has_path = true;
        st->method = add_bytes(*st, r.method_name());
        st->path = add_bytes(*st, r.target());
        for (const Header& h : r.headers()) {
            if (iequals(h.name, "connection") || iequals(h.name, "upgrade") || iequals(h.name, "http2-settings") ||
                iequals(h.name, "keep-alive") || iequals(h.name, "proxy-connection") || iequals(h.name, "te") ||
                iequals(h.name, "transfer-encoding"))
                continue;
            Stream::Field f = add_bytes(*st, h.name);
            const Stream::Field v = add_bytes(*st, h.value);
            f.value_off = v.name_off, f.value_len = v.name_len;
            st->fields.push_back(f);
        }
        st->body.assign(r.body());
        upgrade_stream_ = st;
        return true;
    }

    // ---- ProtocolHandler ----
    void on_data(std::span<const char> bytes) override {
        if (closing_) return;
        progress_at_ = heard_at_ = conn_.loop().now();
        ping_sent_ = false;  // the peer is alive
        if (upgrade_stream_) {
            // The upgraded request is dispatched once this handler is installed (its ConnectionRef
            // carries the new protocol epoch).
            Stream* s = std::exchange(upgrade_stream_, nullptr);
            build_request(*s);
            in_session_ = true;
            if (s->reject_status)
                reject(*s);
            else
                dispatch(*s);
            in_session_ = false;
        }
        if (!bytes.empty()) {
            in_session_ = true;
            const ssize_t rv = nghttp2_session_mem_recv(
                session_.get(), reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
            in_session_ = false;
            if (open_bodies_ && rv >= 0) stream_open_bodies();
            if (rv < 0) {
                // Bad preface, flood, or a callback failure: nghttp2 may not have queued a GOAWAY itself.
                nghttp2_session_terminate_session(
                    session_.get(), rv == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
                fatal_ = true;
            }
        }
        send_and_flush();
    }

    void on_closed() noexcept override {
        for (const auto& s : live_) s->close_flow();
    }

    void on_peer_closed() override {
        peer_closed_ = true;
        for (const auto& s : live_) s->close_flow();  // the client went away
        send_and_flush();
    }

    void on_output_drained() override {
        progress_at_ = conn_.loop().now();
        for (const auto& s : live_)
            if (s->flow) publish_flow(*s);
        if (!output_blocked_) return;
        output_blocked_ = false;
        conn_.set_reading(true);
        send_and_flush();
    }

    void on_tick(Clock::time_point now) override {
        if (closing_) return;
        expire_requests(now);
        if (closing_) return;
        if (shutdown_notice_sent_ && !final_goaway_sent_) {
            submit_final_goaway();
            send_and_flush();
            return;
        }
        if (live_.empty() && now - idle_since_ >= timeouts_.keep_alive) {
            // Idle keep-alive: say goodbye (NO_ERROR, nothing was processed in vain), then close.
            nghttp2_submit_goaway(session_.get(), NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(session_.get()), NGHTTP2_NO_ERROR, nullptr,
                                  0);
            send_pending();
            close();
            return;
        }
        if (!live_.empty() && keepalive_ping(now)) return;
        if (!live_.empty() && outstanding_ == 0 && now - progress_at_ >= timeouts_.keep_alive) {
            // Every stream is answered, but the client has neither sent a byte (WINDOW_UPDATE) nor read
            // one for the keep-alive time: it holds its flow-control window shut, or stopped reading.
            // Responses must not wait on it forever (a slow-read attack would keep their memory).
            nghttp2_submit_goaway(session_.get(), NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(session_.get()), NGHTTP2_NO_ERROR, nullptr,
                                  0);
            send_pending();
            close();
        }
    }

    // Sends a keep-alive PING once the client has been silent for ping_interval; true when the connection
    // closed because the last one went unanswered for ping_timeout.
    bool keepalive_ping(Clock::time_point now) {
        if (h2_.ping_interval.count() <= 0) return false;
        if (output_blocked_) {
            // Not reading (too much unsent output): a client busy taking a long download is not silent, its
            // answer just waits unread. A dead link shows as output that never drains, which TCP ends itself.
            if (ping_sent_) ping_sent_at_ = now;
            return false;
        }
        if (ping_sent_) {
            if (now - ping_sent_at_ < h2_.ping_timeout) return false;
            logging::debug("http2: {} did not answer a keep-alive PING within {} ms: closing its connection",
                           conn_.peer_address(), h2_.ping_timeout.count());
            nghttp2_submit_goaway(session_.get(), NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(session_.get()), NGHTTP2_NO_ERROR, nullptr,
                                  0);
            send_pending();
            close();
            conn_.close_now();  // the peer is gone: output still queued for it would keep the socket for minutes
            return true;
        }
        if (now - heard_at_ < h2_.ping_interval) return false;
        if (nghttp2_submit_ping(session_.get(), NGHTTP2_FLAG_NONE, nullptr) == 0) {
            ping_sent_ = true;
            ping_sent_at_ = now;
            send_and_flush();
        }
        return false;
    }

    void on_shutdown() override {
        if (closing_ || shutting_down_) return;
        shutting_down_ = true;
        if (live_.empty()) {
            submit_final_goaway();
        } else {
            // Graceful (RFC 9113 §6.8): announce, let requests already in flight arrive, then the final
            // GOAWAY (next tick) names the last stream that will be processed.
            nghttp2_submit_shutdown_notice(session_.get());
            shutdown_notice_sent_ = true;
        }
        send_and_flush();
    }

    bool exchange_outstanding() const noexcept override { return outstanding_ > 0; }
    // Closed with streams still in the application: each one's final completion lands here instead.
    bool exchange_released() noexcept override {
        if (outstanding_ > 0) --outstanding_;
        return outstanding_ == 0;
    }

    // ---- ExchangeSink ----
    void complete(std::uint64_t exchange, Response&& response) override {
        Stream* s = find_owned(exchange);
        if (!s) return;
        finish_app(*s);
        if (s->upload) {  // the rest of the body is refused: RST_STREAM(NO_ERROR) after the response
            s->reset_after_response = true;
            abort_upload(*s, 0, "the response was sent before the request body ended");
        }
        if (s->session_open && s->state == StreamState::dispatched && !closing_) {
            dispatcher_.finalize(s->request, s->app_state.get(), response);
            s->response = std::move(response);
            s->sent = 0;
            submit_head(*s, /*streaming=*/false);
        }
        settle(*s);
        send_and_flush();
    }

    void stream_begin(std::uint64_t exchange, Response&& head) override {
        Stream* s = find_owned(exchange);
        if (!s || s->state != StreamState::dispatched) return;
        if (!s->session_open || closing_) {
            s->state = StreamState::streaming;  // writes are dropped; stream_end releases it
            return;
        }
        dispatcher_.finalize_stream(s->request, s->app_state.get(), head);
        if (s->upload) s->reset_after_response = true;  // a body still arriving when the response ends is cut off
        s->response = std::move(head);
        std::string& first = s->response.body();
        const std::string_view out =
            first.empty() ? std::string_view{} : dispatcher_.filter_body(s->app_state.get(), first, false);
        if (out.data() == first.data() && out.size() == first.size())
            s->pending = std::move(first);  // unfiltered: no copy
        else
            s->pending.assign(out);
        s->response.body().clear();
        s->sent = 0;
        submit_head(*s, /*streaming=*/true);
        if (const std::optional<std::uint64_t> declared = s->response.head_length();
            declared && s->state == StreamState::streaming && !s->head_only) {
            s->response_left = *declared;
            if (!owe(*s, s->pending.size())) return;
        }
        send_and_flush();
    }

    void stream_write(std::uint64_t exchange, std::string_view chunk) override {
        Stream* s = find_owned(exchange);
        if (!s) return;
        if (s->state != StreamState::streaming || !s->session_open || s->head_only) {
            if (s->flow) publish_flow(*s);  // dropped: the producer's StreamWriter counted it as unsent
            return;
        }
        const std::string_view out = dispatcher_.filter_body(s->app_state.get(), chunk, false);
        if (!owe(*s, out.size())) return;
        s->pending.append(out);
        resume(*s);
        send_and_flush();
    }

    // A stream with a declared Content-Length takes `bytes` more: false (and the stream is reset) past it.
    bool owe(Stream& s, std::size_t bytes) {
        if (s.response_left == UINT64_MAX) return true;
        if (bytes <= s.response_left) {
            s.response_left -= bytes;
            return true;
        }
        logging::warn(
            "the response to {} {} has more body than its declared Content-Length ({} bytes over): the "
            "stream is reset; declare the right length, or none",
            s.request.method_name(), s.request.target(), bytes - s.response_left);
        cut_off(s);
        return false;
    }

    // The client must see the response cut off, not a short body that looks whole.
    void cut_off(Stream& s) {
        s.response_left = UINT64_MAX;
        if (s.session_open && !closing_ && s.state != StreamState::done) {
            nghttp2_submit_rst_stream(session_.get(), NGHTTP2_FLAG_NONE, s.id, NGHTTP2_INTERNAL_ERROR);
            s.state = StreamState::done;
        }
        send_and_flush();
    }

    void stream_end(std::uint64_t exchange) override {
        Stream* s = find_owned(exchange);
        if (!s) return;
        finish_app(*s);
        if (s->upload) abort_upload(*s, 0, "the response was sent before the request body ended");
        if (s->state == StreamState::streaming && s->session_open && !s->head_only && !s->stream_ended)
            s->pending.append(dispatcher_.filter_body(s->app_state.get(), {}, true));
        if (s->response_left != UINT64_MAX && s->response_left != 0 && s->state == StreamState::streaming) {
            logging::warn(
                "the response to {} {} ended {} bytes short of its declared Content-Length: the stream is "
                "reset; declare the right length, or none",
                s->request.method_name(), s->request.target(), s->response_left);
            cut_off(*s);
        }
        s->stream_ended = true;
        if (s->state == StreamState::streaming && s->session_open) resume(*s);
        settle(*s);
        send_and_flush();
    }

    void stream_end_trailers(std::uint64_t exchange, const Fields& trailers) override {
        Stream* s = find_owned(exchange);
        if (!s) return;
        // read_body sends the head's trailers after the last DATA (NO_END_STREAM, then HEADERS with END_STREAM).
        if (s->state == StreamState::streaming && s->session_open && !s->head_only && !s->stream_ended)
            for (const Fields::Field f : trailers) s->response.trailer(f.name, f.value);
        stream_end(exchange);
    }

    void early_hint(std::uint64_t exchange, const Fields& fields) override {
        Stream* s = find_owned(exchange);
        if (!s || s->state != StreamState::dispatched || !s->session_open || closing_) return;
        fields_.clear();
        fields_.add(":status", "103");
        fields_.add(fields);
        const auto& nv = fields_.nv();
        // A non-final HEADERS frame (no END_STREAM); the final response follows on the same stream.
        if (nghttp2_submit_headers(session_.get(), NGHTTP2_FLAG_NONE, s->id, nullptr, nv.data(), nv.size(), nullptr) <
            0)
            return;
        send_and_flush();
    }

    void stream_watch(std::uint64_t exchange, std::shared_ptr<StreamFlow> flow) override {
        if (!flow) return;
        Stream* s = find_owned(exchange);
        if (!s || !s->session_open || closing_ || peer_closed_ ||
            (s->state != StreamState::dispatched && s->state != StreamState::streaming)) {
            flow->close();  // over already
            return;
        }
        if (s->flow != flow) s->close_flow();
        s->flow = std::move(flow);
        publish_flow(*s);
    }

    void stream_abort(std::uint64_t exchange) override {
        Stream* s = find_owned(exchange);
        if (!s) return;
        finish_app(*s);
        if (s->upload) abort_upload(*s, 0, "the response was aborted");
        if (s->session_open && !closing_) {
            // The client must see the response cut off, not a short body that looks whole.
            nghttp2_submit_rst_stream(session_.get(), NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
            s->state = StreamState::done;
        }
        settle(*s);
        send_and_flush();
    }

    // ---- streamed request bodies (body_stream.hpp) ----
    void body_read(std::uint64_t exchange, std::shared_ptr<BodyReader> reader) override {
        covet::detail::install_body_reader(find_stream(exchange), std::move(reader));
    }

    void body_consumed(std::uint64_t exchange, std::size_t bytes) override {
        Stream* s = find_stream(exchange);
        if (!s) return;
        const std::uint64_t n = std::min<std::uint64_t>(s->upload_unacked, bytes);
        s->upload_unacked -= n;
        upload_unacked_ -= n;
        const std::uint64_t pre = std::min(s->upload_preconsumed, n);
        s->upload_preconsumed -= pre;
        if (!s->session_open || closing_) return;
        const bool stream_window = s->upload && n > pre;
        if (stream_window) nghttp2_session_consume_stream(session_.get(), s->id, static_cast<std::size_t>(n - pre));
        if (reopen_connection_window() || stream_window)
            send_and_flush();  // the WINDOW_UPDATE, when nghttp2 decided one is due
    }

private:
    // ---- nghttp2 callbacks ----
    static Http2Protocol& self(void* p) { return *static_cast<Http2Protocol*>(p); }

    static Stream* stream_of(nghttp2_session* session, std::int32_t id) {
        return static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, id));
    }

    // HEADERS that would open a stream id the client already skipped: a connection error (see StreamIds).
    static int on_begin_frame(nghttp2_session* session, const nghttp2_frame_hd* hd, void* user) noexcept {
        if (hd->type == NGHTTP2_HEADERS && self(user).stream_ids_.skipped(hd->stream_id) &&
            !nghttp2_session_find_stream(session, hd->stream_id))
            nghttp2_session_terminate_session(session, NGHTTP2_PROTOCOL_ERROR);
        return 0;
    }

    static int on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame, void* user) noexcept {
        if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
        self(user).stream_ids_.opened(frame->hd.stream_id);
        // Over SETTINGS_MAX_CONCURRENT_STREAMS, before or after the client acknowledged it: this stream is refused,
        // the connection goes on (RFC 9113 §5.1.2; nghttp2 does not know the limit, see preface_settings.hpp).
        if (self(user).open_streams_ >= self(user).h2_.max_concurrent_streams) {
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
            return 0;
        }
        if (self(user).conn_.config().ops.record_metrics) metrics::http2_stream();
        // The client (its address, over all of its connections) is at ClientLimits::max_streams_per_ip: the
        // stream is refused before anything of it is kept; its header block is decoded (HPACK state) and dropped.
        if (!self(user).conn_.admit_stream()) {
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
            return 0;
        }
        try {
            Http2Protocol& h = self(user);
            std::unique_ptr<Stream> s = h.pool_.acquire(frame->hd.stream_id);
            s->client_counted = true;
            s->deadline = h.conn_.loop().now() + h.timeouts_.header;
            if (nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s.get()) != 0)
                return NGHTTP2_ERR_CALLBACK_FAILURE;
            h.live_.push_back(std::move(s));
            ++h.open_streams_;
            return 0;
        } catch (...) {
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
    }

    static int on_header(nghttp2_session* session, const nghttp2_frame* frame, const std::uint8_t* name,
                         std::size_t namelen, const std::uint8_t* value, std::size_t valuelen, std::uint8_t,
                         void* user) noexcept {
        Stream* s = stream_of(session, frame->hd.stream_id);
        // Trailers (a second HEADERS) are accepted and ignored; so is everything of a refused request.
        if (!s || s->reject_status || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
        try {
            return self(user).add_field(*s, {reinterpret_cast<const char*>(name), namelen},
                                        {reinterpret_cast<const char*>(value), valuelen});
        } catch (...) {
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
    }

    static int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user) noexcept {
        if (frame->hd.type == NGHTTP2_RST_STREAM) {
            Http2Protocol& h = self(user);
            if (h.conn_.config().ops.record_metrics) metrics::http2_reset(/*by_client=*/true);
            if (!h.resets_.take(h.conn_.loop().now()))  // rapid reset (CVE-2023-44487)
                nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
            return 0;
        }
        if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
        Stream* s = stream_of(session, frame->hd.stream_id);
        if (!s) return 0;
        try {
            Http2Protocol& h = self(user);
            const bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
            if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
                h.headers_complete(*s, end_stream);
            if (end_stream && s->upload) {
                end_upload(*s);
            } else if (end_stream && s->state == StreamState::receiving) {
                if (s->reject_status)
                    h.reject(*s);
                else
                    h.dispatch(*s);
            }
            return 0;
        } catch (...) {
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
    }

    static int on_data_chunk_recv(nghttp2_session* session, std::uint8_t, std::int32_t stream_id,
                                  const std::uint8_t* data, std::size_t len, void* user) noexcept {
        Stream* s = stream_of(session, stream_id);
        // Flow control (see init): the connection window reopens at once, unless streamed bodies hold more
        // than their budget unacknowledged (then it reopens as readers acknowledge: reopen_connection_window);
        // the stream's too, unless the body streams to a reader, whose acknowledgements reopen it.
        self(user).consume_connection(len);
        if (!s || !s->upload) nghttp2_session_consume_stream(session, stream_id, len);
        if (s && s->upload) return self(user).deliver(*s, {reinterpret_cast<const char*>(data), len});
        if (!s || s->state != StreamState::receiving || s->reject_status) return 0;
        try {
            Http2Protocol& h = self(user);
            // A body without a (small enough) declared length that grows large: offered for streaming now.
            if (!s->upload_offered && s->body.size() + len > h.limits_.stream_body_threshold && h.accept_upload(*s)) {
                s->upload_preconsumed = s->body.size() + len;  // returned to the stream's window as it came
                h.start_upload(*s);
                return h.deliver(*s, {reinterpret_cast<const char*>(data), len});
            }
            if (s->body.size() + len > h.limits_.max_body_bytes) {
                s->reject_status = 413;
                s->reject_reason = "the request body is larger than the body size limit";
            } else if (h.receiving_bytes_ + len > h.limits_.max_body_bytes + h.limits_.max_buffered_input) {
                // Many streams each below the body limit must not add up to unbounded memory.
                s->reject_status = 503;
                s->reject_reason = "too much request data is in flight on this connection";
            }
            if (s->reject_status) {
                h.reject(*s);  // answer now; the rest of the body is discarded as it comes
                std::string().swap(s->body);
                return 0;
            }
            s->body.append(reinterpret_cast<const char*>(data), len);
            s->buffered += len;
            s->pace.add(len);
            h.receiving_bytes_ += len;
            s->deadline = h.conn_.loop().now() + h.timeouts_.body;
            return 0;
        } catch (...) {
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
    }

    // A response that went out before the request body ended (408, 413, ...): once its last frame is
    // sent, RST_STREAM(NO_ERROR) asks the client to stop sending the body (RFC 9113 §8.1). Without it a
    // trickling client would hold the stream, and its concurrency slot, open for as long as it likes.
    static int on_frame_send(nghttp2_session* session, const nghttp2_frame* frame, void* user) noexcept {
        if (frame->hd.type == NGHTTP2_RST_STREAM && self(user).conn_.config().ops.record_metrics)
            metrics::http2_reset(/*by_client=*/false);
        if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) ||
            (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS))
            return 0;
        const Stream* s = stream_of(session, frame->hd.stream_id);
        if (s && s->reset_after_response && nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id) == 0)
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
        return 0;
    }

    static int on_stream_close(nghttp2_session* session, std::int32_t stream_id, std::uint32_t, void* user) noexcept {
        Stream* s = stream_of(session, stream_id);
        if (!s) return 0;
        nghttp2_session_set_stream_user_data(session, stream_id, nullptr);
        s->session_open = false;
        --self(user).open_streams_;
        if (std::exchange(s->client_counted, false)) self(user).conn_.release_stream();
        s->close_flow();  // reset by the client, or ended
        if (s->upload) self(user).abort_upload(*s, 0, "the client reset the stream before the request body ended");
        // A stream the application still answers stays (its Request views into it); the completion,
        // when it comes, is dropped and frees it.
        self(user).settle(*s);
        return 0;
    }

    static ssize_t read_body(nghttp2_session* session, std::int32_t stream_id, std::uint8_t* buf, std::size_t length,
                             std::uint32_t* data_flags, nghttp2_data_source* source, void* user) noexcept {
        Stream& s = *static_cast<Stream*>(source->ptr);
        try {
            // The source is fixed at submit time: the state may change (abort) while DATA is still queued.
            std::size_t n = 0;
            bool all_sent = false;
            if (!s.streamed && s.response.has_file_body()) {
                // A file body: read straight into nghttp2's frame buffer, one DATA frame at a time (bounded by
                // the flow-control window, never the whole file in memory).
                const io::FileRegion& file = s.response.file_body();
                if (s.sent < file.length()) {
                    const ssize_t got = file.read_at(s.sent, reinterpret_cast<char*>(buf), length);
                    if (got <= 0) {  // the file shrank (or failed): the stream cannot end as announced
                        if (got == 0)
                            logging::warn("HTTP/2: {} (the stream was reset)", io::file_shrank_message);
                        else
                            logging::warn("HTTP/2: reading a file body failed (the stream was reset)");
                        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
                    }
                    n = static_cast<std::size_t>(got);
                    s.sent += n;
                }
                all_sent = s.sent >= file.length();
            } else {
                std::string& src = s.streamed ? s.pending : s.response.body();
                n = s.sent < src.size() ? std::min(length, src.size() - s.sent) : 0;
                // NOLINTNEXTLINE(bugprone-not-null-terminated-result): DATA bytes, not a C string
                std::memcpy(buf, src.data() + s.sent, n);
                s.sent += n;
                if (s.streamed && s.sent == s.pending.size()) {
                    s.pending.clear();  // keeps its capacity for the next chunks
                    s.sent = 0;
                }
                all_sent = s.streamed ? s.pending.empty() && s.stream_ended : s.sent >= src.size();
            }
            if (!all_sent) {
                if (n == 0) {
                    s.deferred = true;
                    return NGHTTP2_ERR_DEFERRED;
                }
                return static_cast<ssize_t>(n);
            }
            *data_flags |= NGHTTP2_DATA_FLAG_EOF;
            if (!s.response.trailers().empty()) {
                *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
                FieldBlock& f = self(user).fields_;
                f.clear();
                f.add(s.response.trailers());
                const auto& nv = f.nv();
                if (nghttp2_submit_trailer(session, stream_id, nv.data(), nv.size()) != 0)
                    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
            }
            return static_cast<ssize_t>(n);
        } catch (...) {
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
    }

    // ---- requests ----
    static Stream::Field add_bytes(Stream& s, std::string_view bytes) {
        Stream::Field f;
        f.name_off = static_cast<std::uint32_t>(s.head.size());
        f.name_len = static_cast<std::uint32_t>(bytes.size());
        s.head.append(bytes);
        return f;
    }

    int add_field(Stream& s, std::string_view name, std::string_view value) {
        // HPACK bombs: count the decoded size and stop storing as soon as it is over the limit.
        s.header_bytes += name.size() + value.size() + 32;
        if (s.header_bytes > h2_.max_header_list_bytes) {
            return refuse_head(s, 431, "the request headers are larger than the header list size limit");
        }
        if (!name.empty() && name.front() == ':') {
            Stream::Field f = add_bytes(s, value);
            if (name == ":method")
                s.method = f, s.has_method = true;
            else if (name == ":path")
                s.path = f, s.has_path = true;
            else if (name == ":authority")
                s.authority = f, s.has_authority = true;
            return 0;  // :scheme (and :protocol) need nothing here; nghttp2 validated them
        }
        if (const http::RequestError e = request_limits().header_room(s.fields.size()))
            return refuse_head(s, e.status, e.reason);
        Stream::Field f = add_bytes(s, name);
        const Stream::Field v = add_bytes(s, value);
        f.value_off = v.name_off, f.value_len = v.name_len;
        s.fields.push_back(f);
        return 0;
    }

    static int refuse_head(Stream& s, int status, const char* why) {
        s.reject_status = status;
        s.reject_reason = why;
        s.head.clear();
        s.fields.clear();
        return 0;
    }

    void headers_complete(Stream& s, bool end_stream) {
        s.headers_done = true;
        s.deadline = conn_.loop().now() + timeouts_.body;
        s.pace.start(conn_.loop().now());
        if (s.reject_status) {
            reject(s);  // answer now, without waiting for (or buffering) a body
            return;
        }
        build_request(s);
        if (s.reject_status) {
            reject(s);
            return;
        }
        // A body without a declared length: if it is still open once this read is used up, it streams
        // (stream_open_bodies); one that ends within the read comes whole.
        if (!end_stream && s.content_length == UINT64_MAX) open_bodies_ = true;
        // A declared length over the streaming threshold: offered for streaming before the body comes.
        if (!end_stream && s.content_length != UINT64_MAX && s.content_length > limits_.stream_body_threshold) {
            if (accept_upload(s))
                start_upload(s);
            else if (s.over_body_limit) {
                s.reject_status = 413;
                s.reject_reason = "the request body is larger than the body size limit";
                reject(s);
            }
        }
    }

    // ---- streamed request bodies ----

    // After a read: request bodies without a declared length that are still open are offered for streaming
    // now, with what came so far (none, maybe) as their first data, so that the handler sees the first
    // bytes at once and may answer before the body ends (full duplex: gRPC bidirectional streams).
    void stream_open_bodies() {
        open_bodies_ = false;
        // By index: dispatching may answer inline and release a stream (swap-and-pop); a stream moved into an
        // index already passed is either offered already or not waiting.
        for (std::size_t i = 0; i < live_.size(); ++i) {  // NOLINT(modernize-loop-convert)
            Stream& s = *live_[i];
            if (s.state != StreamState::receiving || !s.headers_done || s.reject_status || s.upload_offered ||
                s.content_length != UINT64_MAX || !s.session_open ||
                nghttp2_session_get_stream_remote_close(session_.get(), s.id) != 0)
                continue;
            if (!accept_upload(s)) continue;
            s.upload_preconsumed = s.body.size();  // already returned to the stream's window as it came
            start_upload(s);
        }
    }

    std::uint64_t stream_limit() const noexcept { return request_limits().stream_limit(); }
    http::RequestLimits request_limits() const noexcept { return http::RequestLimits::from(limits_); }

    // Asks the dispatcher whether the request's large body streams to it (once per stream).
    bool accept_upload(Stream& s) {
        s.upload_offered = true;
        try {
            return dispatcher_.stream_body(s.request) && s.body.size() <= stream_limit();
        } catch (...) {
            return false;
        }
    }

    void start_upload(Stream& s) {
        unbuffer(s);
        s.upload = true;
        s.untimed = http::is_grpc_call(s.request);
        s.upload_hold = std::move(s.body);
        s.body.clear();
        s.upload_bytes = s.upload_unacked = s.upload_hold.size();
        upload_unacked_ += s.upload_unacked;
        dispatch(s, /*streamed=*/true);
    }

    // DATA of a streamed body (inside nghttp2_session_mem_recv).
    int deliver(Stream& s, std::string_view chunk) noexcept {
        try {
            s.upload_bytes += chunk.size();
            if (s.upload_bytes > stream_limit()) {
                nghttp2_session_consume_stream(session_.get(), s.id, chunk.size());
                fail_upload(s, 413,
                            "the request body is larger than the streamed body size limit (max_stream_body_bytes)");
                return 0;
            }
            s.pace.add(chunk.size());
            s.deadline = conn_.loop().now() + timeouts_.body;
            s.upload_unacked += chunk.size();
            upload_unacked_ += chunk.size();
            if (s.reader && s.upload_hold.empty())
                std::shared_ptr<BodyReader>(s.reader)->on_data(chunk);  // it may answer
            else
                s.upload_hold.append(chunk);
            return 0;
        } catch (...) {
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
    }

    static void end_upload(Stream& s) {
        s.upload = false;
        if (std::shared_ptr<BodyReader> r = s.reader)
            r->on_end();
        else
            s.upload_ended = true;
    }

    void abort_upload(Stream& s, int status, std::string_view why) {
        s.upload = false;
        s.upload_hold.clear();
        forget_unacked(s);  // nobody acknowledges them any more
        if (std::shared_ptr<BodyReader> r = std::move(s.reader)) r->on_error(status, why);
    }

    // The server refuses the rest of a streamed body (limit, too slow): the reader hears why, and the
    // client gets the error response if the application has not started one, else a reset.
    void fail_upload(Stream& s, int status, std::string_view why) {
        abort_upload(s, status, why);
        if (!s.session_open || closing_) return;
        if (s.state == StreamState::dispatched) {
            std::string body = std::to_string(status);
            body.append(" ").append(http::reason_phrase(status)).append(": ").append(why).append("\n");
            s.response = Response::text(std::move(body), status);
            s.reset_after_response = true;
            s.head_only = false;
            submit_head(s, false);  // the application's answer, when it comes, is dropped
        } else if (s.state != StreamState::done) {
            nghttp2_submit_rst_stream(session_.get(), NGHTTP2_FLAG_NONE, s.id, NGHTTP2_CANCEL);
            s.state = StreamState::done;
        }
    }

    // Makes the Request views; the header bytes are complete and will not move any more.
    void build_request(Stream& s) {
        detail::join_cookies(s);
        Request& r = s.request;
        const http::RequestLimits limits = request_limits();
        http::RequestBuilder b(r, limits);
        if (s.has_method) {
            const http::RequestError e = b.method(s.view(s.method.name_off, s.method.name_len));
            if (e || r.method() == Method::connect) {  // CONNECT tunnels are not offered
                s.reject_status = e ? e.status : 501;
                s.reject_reason = e ? e.reason : "CONNECT is not supported";
                return;
            }
        }
        s.head_only = r.method() == Method::head;
        b.target(s.has_path ? s.view(s.path.name_off, s.path.name_len) : std::string_view("/"));
        r.reserve_headers(s.fields.size() + 1);
        bool host = false;
        for (const Stream::Field& f : s.fields) {  // as many as the limit (add_field): header() cannot refuse
            const std::string_view name = s.view(f.name_off, f.name_len);
            host = host || name == "host";
            (void)b.header(name, s.view(f.value_off, f.value_len));
        }
        // HTTP/2 carries the authority as a pseudo-header; applications look for Host (not counted as a field).
        if (!host && s.has_authority) r.add_header("host", s.view(s.authority.name_off, s.authority.name_len));
        if (const auto cl = r.header("content-length")) {
            if (const std::optional<std::uint64_t> n = http::parse_content_length(*cl)) {
                s.content_length = *n;
                switch (b.declared_length(*n)) {
                    case http::DeclaredBody::fits: break;
                    case http::DeclaredBody::stream_only: s.over_body_limit = true; break;  // 413 unless streamed
                    case http::DeclaredBody::too_large:
                        s.reject_status = http::body_too_large.status;
                        s.reject_reason = http::body_too_large.reason;
                        return;
                }
            }
        }
        r.set_version(2, 0);
        r.set_keep_alive(true);
        r.set_client(conn_.peer_address(), conn_.peer_port());
        r.set_received_at(conn_.loop().now());
        r.set_tls(conn_.tls());
        if (conn_.proxy_trusted()) http::apply_proxy_headers(r, conn_.config().proxy_headers.trusted);
    }

    // Slow senders: a request whose header block or body stalls past Timeouts::header/body, or whose body
    // takes longer than Timeouts::body_deadline or arrives slower than Timeouts::min_body_rate. A stalled
    // header block blocks the whole connection (CONTINUATION must follow at once): GOAWAY. A slow body
    // gets 408 on its stream only (then RST_STREAM(NO_ERROR): see on_frame_send); other streams go on.
    void expire_requests(Clock::time_point now) {
        bool stalled_headers = false, answered = false;
        // By index: answering a stream may release one (swap-and-pop), which would invalidate iterators.
        for (std::size_t i = 0; i < live_.size(); ++i) {  // NOLINT(modernize-loop-convert)
            Stream& s = *live_[i];
            if (s.upload && s.session_open) {
                // Once the response has started, the client may wait for it before it sends more (full
                // duplex): the body is no longer timed (docs/operations.md, "Limits").
                if (s.state != StreamState::dispatched || s.untimed) continue;  // (and a gRPC call's never is)
                // As for a buffered body, except while the client waits for window the application has not
                // given back yet (it is slow to consume, not the client to send).
                const bool held = nghttp2_session_get_stream_local_window_size(session_.get(), s.id) < 16384;
                if (held || output_blocked_) s.deadline = now + timeouts_.body;
                std::string why = s.pace.violation(timeouts_, now, !held && !output_blocked_);
                if (why.empty() && now >= s.deadline) why = "the request body did not arrive in time";
                if (!why.empty()) {
                    fail_upload(s, 408, why);
                    answered = true;
                }
                continue;
            }
            if (s.state != StreamState::receiving) continue;
            if (s.headers_done && !s.reject_status) {
                if (const std::string why = s.pace.violation(timeouts_, now, /*reading=*/!output_blocked_);
                    !why.empty()) {
                    s.reject_status = 408;
                    s.reject_reason = "the request body was too slow";
                    reject(s, why);
                    answered = true;
                    continue;
                }
            }
            if (now < s.deadline) continue;
            if (!s.headers_done) {
                stalled_headers = true;
                continue;
            }
            s.reject_status = 408;
            s.reject_reason = "the request body did not arrive in time";
            reject(s);
            answered = true;
        }
        if (stalled_headers) {
            nghttp2_session_terminate_session(session_.get(), NGHTTP2_PROTOCOL_ERROR);
            fatal_ = true;
        }
        if (answered || stalled_headers) send_and_flush();
    }

    // ---- the connection window against streamed bodies (Http2Limits::max_unacked_upload_bytes) ----
    // Each streamed body may hold a stream window of unacknowledged bytes; many of them on one connection
    // must not add up to that many windows. While they hold more than the budget in total, DATA is not
    // returned to the connection window, so the client can send at most one connection window more.
    void consume_connection(std::size_t len) {
        if (upload_unacked_ > h2_.max_unacked_upload_bytes)
            window_owed_ += len;
        else
            nghttp2_session_consume_connection(session_.get(), len);
    }

    // Returns DATA held back from the connection window once the streamed bodies are under the budget
    // again. True if it did (a WINDOW_UPDATE may be due).
    bool reopen_connection_window() {
        if (window_owed_ == 0 || upload_unacked_ > h2_.max_unacked_upload_bytes) return false;
        nghttp2_session_consume_connection(session_.get(), std::exchange(window_owed_, 0));
        return true;
    }

    // A stream's unacknowledged bytes no longer count (its body was aborted, or it is freed).
    void forget_unacked(Stream& s) noexcept {
        upload_unacked_ -= std::min(upload_unacked_, s.upload_unacked);
        s.upload_unacked = s.upload_preconsumed = 0;
        if (session_ && !closing_) reopen_connection_window();
    }

    // The stream's body no longer counts as in flight (dispatched, answered, or gone).
    void unbuffer(Stream& s) noexcept {
        receiving_bytes_ -= s.buffered;
        s.buffered = 0;
    }

    void dispatch(Stream& s, bool streamed = false) {
        unbuffer(s);
        s.state = StreamState::dispatched;
        s.app_owned = true;
        ++outstanding_;
        net::WorkerContext::current().stats.count_request();
        s.request.set_body(streamed ? std::string_view{} : std::string_view(s.body));
        s.request.set_body_streamed(streamed);
        const auto id = static_cast<std::uint64_t>(s.id);
        try {
            if (!s.app_state) s.app_state = dispatcher_.make_exchange_state();  // kept while the stream is pooled
            dispatcher_.dispatch(
                s.request, s.app_state.get(),
                Responder(net::ConnectionRef(home_.link(), conn_.id(), conn_.protocol_epoch()), this, id, streamed));
        } catch (...) {
            // The Responder was destroyed unanswered on the way out: the client got a 500.
        }
    }

    // Final error response, like HTTP/1.1's (status, reason, why); the connection stays usable. A body
    // still arriving is then cut off with RST_STREAM(NO_ERROR) (see on_frame_send).
    void reject(Stream& s) { reject(s, s.reject_reason); }
    void reject(Stream& s, std::string_view why) {
        if (s.state != StreamState::receiving) return;
        unbuffer(s);
        s.reset_after_response = true;
        if (conn_.config().ops.record_metrics) metrics::protocol_refusal(s.reject_status);
        std::string body = std::to_string(s.reject_status);
        body.append(" ").append(http::reason_phrase(s.reject_status)).append(": ").append(why).append("\n");
        s.response = Response::text(std::move(body), s.reject_status);
        if (s.reject_status == 405 || s.reject_status == 501)
            s.response.add_header("Allow", "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
        s.head_only = false;
        s.sent = 0;
        s.state = StreamState::dispatched;  // submit_head moves it on
        submit_head(s, false);
    }

    // ---- responses ----
    Stream* find_owned(std::uint64_t exchange) noexcept {
        const auto id = static_cast<std::int32_t>(exchange);
        if (Stream* s = stream_of(session_.get(), id); s && s->app_owned) return s;
        for (const auto& p : live_)  // a stream the client reset, still owned by the application
            if (p->id == id && p->app_owned) return p.get();
        return nullptr;
    }

    // The stream of an exchange, whoever owns it now.
    Stream* find_stream(std::uint64_t exchange) noexcept {
        const auto id = static_cast<std::int32_t>(exchange);
        if (Stream* s = stream_of(session_.get(), id)) return s;
        for (const auto& p : live_)
            if (p->id == id) return p.get();
        return nullptr;
    }

    void finish_app(Stream& s) {
        s.close_flow();
        if (!s.app_owned) return;
        s.app_owned = false;
        --outstanding_;
    }

    void submit_head(Stream& s, bool streaming) {
        const Response& r = s.response;
        const bool body_allowed = http::status_allows_body(r.status());
        build_head(r, body_allowed, streaming, s.head_only);
        const bool has_data = !s.head_only && body_allowed && (streaming || r.body_size() != 0);
        const bool needs_provider = has_data || !r.trailers().empty();
        if (!has_data) {
            // HEAD, 204, 304: only fields (and trailers) go out; Content-Length was taken above.
            s.response.body().clear();
            s.response.file_body().reset();
            s.pending.clear();
        }
        s.streamed = streaming;
        s.sent = 0;
        nghttp2_data_provider provider{};
        provider.source.ptr = &s;
        provider.read_callback = &read_body;
        const auto& nv = fields_.nv();
        const int rv =
            nghttp2_submit_response(session_.get(), s.id, nv.data(), nv.size(), needs_provider ? &provider : nullptr);
        if (rv != 0) {
            nghttp2_submit_rst_stream(session_.get(), NGHTTP2_FLAG_NONE, s.id, NGHTTP2_INTERNAL_ERROR);
            s.state = StreamState::done;
            return;
        }
        s.state = streaming ? StreamState::streaming : StreamState::responding;
        if (streaming && !has_data) {
            s.head_only = true;  // what the application writes next is dropped
            // The answer is complete with its head (HEAD, 204, 304): so is the exchange's record (metrics, the
            // access log), which stream_end would not reach once the stream has closed.
            dispatcher_.filter_body(s.app_state.get(), {}, true);
        }
    }

    void resume(Stream& s) {
        if (!s.deferred) return;
        s.deferred = false;
        nghttp2_session_resume_data(session_.get(), s.id);
    }

    // Frees a stream nobody needs any more: nghttp2 closed it and the application has answered.
    void settle(Stream& s) {
        if (s.session_open || s.app_owned) return;
        unbuffer(s);
        forget_unacked(s);
        if (upgrade_stream_ == &s) upgrade_stream_ = nullptr;
        for (auto it = live_.begin(); it != live_.end(); ++it) {
            if (it->get() != &s) continue;
            std::unique_ptr<Stream> owned = std::move(*it);
            *it = std::move(live_.back());
            live_.pop_back();
            // An exchange the client reset ends now (aborted), not when the pooled slot is next used.
            if (owned->app_state) dispatcher_.exchange_over(owned->app_state.get());
            pool_.release(std::move(owned));
            break;
        }
        if (live_.empty()) idle_since_ = conn_.loop().now();
    }

    // The response head: ":status", Server, Date, Content-Type/Length as HTTP/1.1 sends them, then the
    // application's fields.
    void build_head(const Response& r, bool body_allowed, bool streaming, bool head_only) {
        fields_.clear();
        char num[24];
        fields_.add(":status", std::string_view(num, static_cast<std::size_t>(
                                                         std::to_chars(num, num + sizeof num, r.status()).ptr - num)));
        fields_.add("server", "covet");
        fields_.add("date", http::DateCache::thread_local_instance().get());
        if (http::status_keeps_content_type(r.status()) && !r.content_type().empty())
            fields_.add("content-type", r.content_type());
        if (body_allowed) {
            if (!streaming) {
                const char* end = std::to_chars(num, num + sizeof num, r.content_length(head_only)).ptr;
                fields_.add("content-length", std::string_view(num, static_cast<std::size_t>(end - num)));
            } else if (const std::optional<std::uint64_t> declared = r.head_length()) {  // the producer's
                const char* end = std::to_chars(num, num + sizeof num, *declared).ptr;
                fields_.add("content-length", std::string_view(num, static_cast<std::size_t>(end - num)));
            }
        }
        fields_.add(r.headers());
        for (std::size_t i = 0; const SharedFields* shared = r.shared_fields(i); ++i) fields_.add(shared->fields);
    }

    // ---- output ----
    void send_pending() {
        if (in_session_ || !session_) return;
        in_session_ = true;
        while (conn_.out().size() <= limits_.output_high_water) {
            const std::uint8_t* data = nullptr;
            const ssize_t n = nghttp2_session_mem_send(session_.get(), &data);
            if (n < 0) {
                fatal_ = true;
                break;
            }
            if (n == 0) break;
            const std::string_view out(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
            if (!preface_sent_) {  // nghttp2's first output is the server's SETTINGS frame: the limit joins it
                preface_sent_ = true;
                std::string preface = detail::with_extra_setting(out, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                                                 h2_.max_concurrent_streams);
                if (!preface.empty()) {
                    conn_.out().append(std::move(preface));
                    continue;
                }
            }
            conn_.out().append(out);
        }
        in_session_ = false;
        if (conn_.out().size() > limits_.output_high_water && !output_blocked_) {
            // The peer reads slowly: stop producing (and reading) until the queue drains.
            output_blocked_ = true;
            conn_.set_reading(false);
        }
    }

    void send_and_flush() {
        if (in_session_ || closing_) return;
        send_pending();
        const bool want = nghttp2_session_want_read(session_.get()) || nghttp2_session_want_write(session_.get());
        if (fatal_ || !want || (peer_closed_ && outstanding_ == 0 && !nghttp2_session_want_write(session_.get())) ||
            (shutting_down_ && final_goaway_sent_ && live_.empty())) {
            close();
            return;
        }
        conn_.flush();
        for (const auto& s : live_)
            if (s->flow) publish_flow(*s);
    }

    // A watched stream's unsent bytes: its own (waiting for the flow-control window) and the connection's.
    void publish_flow(Stream& s) noexcept {
        const std::size_t own = s.streamed && s.pending.size() > s.sent ? s.pending.size() - s.sent : 0;
        io::OutputQueue& out = conn_.out();
        const std::size_t conn = &out == &conn_.wire_out() ? out.size() : out.size() + conn_.wire_out().size();
        s.flow->publish(own + conn);
    }

    void submit_final_goaway() {
        nghttp2_submit_goaway(session_.get(), NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(session_.get()), NGHTTP2_NO_ERROR, nullptr, 0);
        final_goaway_sent_ = true;
    }

    void close() {
        if (closing_) return;
        closing_ = true;
        for (const auto& s : live_) s->close_flow();
        conn_.close_after_flush();
    }

    net::Connection& conn_;
    net::ConnectionHome& home_;
    RequestDispatcher& dispatcher_;
    const net::Limits& limits_;
    const net::Http2Limits& h2_;
    const net::Timeouts& timeouts_;
    detail::StreamPool pool_;
    std::vector<std::unique_ptr<Stream>> live_;  // every stream nghttp2 or the application still needs
    Stream* upgrade_stream_ = nullptr;           // h2c: stream 1, dispatched on the first on_data
    FieldBlock fields_;                          // reused for every response head and trailer block
    // Declared last, destroyed first: nghttp2 must be gone before the streams its data providers name.
    SessionPtr session_;
    Clock::time_point idle_since_{};
    Clock::time_point progress_at_{};  // last byte from the client, or our output fully written
    Clock::time_point heard_at_{};     // last byte from the client
    Clock::time_point ping_sent_at_{};
    bool ping_sent_ = false;          // a keep-alive PING is unanswered (keepalive_ping)
    std::size_t outstanding_ = 0;     // dispatched streams not yet answered
    std::uint32_t open_streams_ = 0;  // streams nghttp2 keeps open: SETTINGS_MAX_CONCURRENT_STREAMS counts these
    StreamIds stream_ids_;
    std::size_t receiving_bytes_ = 0;   // request bodies still arriving, all streams
    std::uint64_t upload_unacked_ = 0;  // streamed bodies' bytes delivered or held, not yet acknowledged
    std::size_t window_owed_ = 0;       // DATA not yet returned to the connection window (see consume_connection)
    detail::ResetBudget resets_{1};     // RST_STREAMs the client may send
    bool open_bodies_ = false;          // a stream may have a body without a length still open (stream_open_bodies)
    bool in_session_ = false, closing_ = false, fatal_ = false, peer_closed_ = false, output_blocked_ = false;
    bool shutting_down_ = false, shutdown_notice_sent_ = false, final_goaway_sent_ = false;
    bool preface_sent_ = false;  // the first SETTINGS frame went out (send_pending)
};

}  // namespace

std::unique_ptr<net::ProtocolHandler> make_protocol(net::Connection& connection, net::ConnectionHome& home,
                                                    RequestDispatcher& dispatcher) {
    auto p = std::make_unique<Http2Protocol>(connection, home, dispatcher);
    if (!p->init()) return nullptr;
    return p;
}

std::unique_ptr<net::ProtocolHandler> make_upgraded_protocol(net::Connection& connection, net::ConnectionHome& home,
                                                             RequestDispatcher& dispatcher,
                                                             std::string_view settings_header, const Request& request) {
    auto p = std::make_unique<Http2Protocol>(connection, home, dispatcher);
    if (!p->init() || !p->init_upgrade(settings_header, request)) return nullptr;
    return p;
}

}  // namespace covet::http2
