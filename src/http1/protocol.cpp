// HTTP/1.1 protocol handler over llhttp.
//
// Parsing strategy: a request head is handed to llhttp only once it is complete (its blank line found),
// so every token llhttp reports is one contiguous view into the input and the request is built without
// copying. Body bytes stream through llhttp as they come. Whatever must outlive the input buffer (an
// incomplete request, or a request whose handler answers later) is copied into per-connection buffers,
// which keep their capacity: a busy connection stops allocating after its first requests.
#include "covet/http1/protocol.hpp"

#include <llhttp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "covet/http/body_pace.hpp"
#include "covet/http/body_stream.hpp"
#include "covet/http/date_cache.hpp"
#include "covet/http1/serializer.hpp"
#include "covet/http1/switch.hpp"
#include "covet/net/worker_context.hpp"

namespace covet::http1 {
namespace {

using io::Clock;

enum class Phase : std::uint8_t {
    idle,        // between requests (keep-alive)
    head,        // some bytes of a request head have arrived
    body,        // head parsed, body arriving
    dispatched,  // waiting for the handler's response
    streaming,   // the handler is streaming a chunked response
    closing,     // a final response is queued; everything else is ignored
    switched,    // another protocol has the connection (see switch.hpp); everything is ignored
};

// A request body that streams to its handler (see body_stream.hpp).
enum class Upload : std::uint8_t {
    none,          // the body (if any) comes whole, or has been delivered and ended
    arriving,      // dispatched with the body still arriving: its bytes go to the handler's reader
    ended_unread,  // it ended before the handler installed its reader (on_end is owed)
};

// Why a request was refused: status + a message that names the cause.
struct Rejection {
    int status = 0;
    const char* reason = "";
};

// Position just past the blank line that ends a head, or npos. Accepts a bare-LF blank line too, so that
// llhttp (strict) can reject it with 400 rather than the request hanging until a timeout.
std::size_t find_head_end(std::string_view buf, std::size_t from) {
    for (std::size_t i = buf.find('\n', from); i != std::string_view::npos; i = buf.find('\n', i + 1)) {
        if (i + 1 < buf.size() && buf[i + 1] == '\n') return i + 2;
        if (i + 2 < buf.size() && buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
    }
    return std::string_view::npos;
}

// Empty lines (CRLF or bare LF) before a request line are ignored (RFC 9112 §2.2): how many bytes of
// them start `buf`. A lone trailing CR may be the start of one and is left for the next read.
std::size_t empty_line_prefix(std::string_view buf) {
    std::size_t i = 0;
    while (i < buf.size()) {
        if (buf[i] == '\n')
            ++i;
        else if (buf[i] == '\r' && i + 1 < buf.size() && buf[i + 1] == '\n')
            i += 2;
        else
            break;
    }
    return i;
}

// True when `buf` holds a complete request head after any empty lines.
bool holds_complete_head(std::string_view buf) {
    buf.remove_prefix(empty_line_prefix(buf));
    return !buf.empty() && find_head_end(buf, 0) != std::string_view::npos;
}

class Http1Protocol final : public net::ProtocolHandler, public ExchangeSink {
public:
    Http1Protocol(net::Connection& c, net::ConnectionHome& home, RequestDispatcher& d, Switcher* switcher)
        : conn_(c),
          home_(home),
          dispatcher_(d),
          switcher_(switcher),
          limits_(c.config().limits),
          timeouts_(c.config().timeouts) {
        llhttp_settings_init(&settings_);
        settings_.on_method = &on_method;
        settings_.on_url = &on_url;
        settings_.on_header_field = &on_header_field;
        settings_.on_header_value = &on_header_value;
        settings_.on_headers_complete = &on_headers_complete;
        settings_.on_body = &on_body;
        settings_.on_message_complete = &on_message_complete;
        settings_.on_chunk_header = &on_chunk_header;
        settings_.on_chunk_complete = &on_chunk_complete;
        llhttp_init(&parser_, HTTP_REQUEST, &settings_);
        parser_.data = this;
        request_.reserve_headers(std::min<std::size_t>(limits_.max_headers, 32));
        request_.set_client(conn_.peer_address(), conn_.peer_port());
        set_deadline(timeouts_.keep_alive);
    }

    // ---- ProtocolHandler ----
    void on_data(std::span<const char> bytes) override {
        const std::string_view data(bytes.data(), bytes.size());
        if (retired()) return;
        // While a streamed body arrives, its bytes are parsed (and delivered) at once; otherwise input that
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
        if (uploading()) abort_upload(0, "the client closed the connection before the request body ended");
        if (phase_ == Phase::dispatched || phase_ == Phase::streaming) return;  // answer, then close
        conn_.close_after_flush();
        phase_ = Phase::closing;
    }

    void on_output_drained() override {
        if (output_paused_) {
            output_paused_ = false;
            update_reading();
        }
    }

    void on_tick(Clock::time_point now) override {
        if (uploading()) {
            // A streamed body: the same idle timeout, deadline and rate floor as a buffered one, except while
            // the handler holds the connection paused (it has not consumed what it got): not the client's fault.
            if (!reading_) deadline_ = now + timeouts_.body;
            Rejection r = check_body_pace(now);
            if (!r.status && now >= deadline_) r = {408, "the request body did not arrive in time"};
            if (r.status) {
                reject(r);
                flush();
            }
            return;
        }
        if (phase_ == Phase::body) {
            if (const Rejection r = check_body_pace(now); r.status) {
                reject(r);
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
        dispatcher_.finalize(request_, app_state_.get(), head);
        // HTTP/1.0 has no chunked coding: the body then ends when the connection closes.
        chunked_ = request_.version_minor() >= 1;
        // A body still arriving when the response starts may not end before it: the connection closes after.
        const bool close = must_close_after(head) || !chunked_ || uploading();
        HeadOptions o = head_options(close);
        o.framing = chunked_ ? BodyFraming::chunked : BodyFraming::until_close;
        std::string first = std::move(head.body());
        std::string& tail = conn_.out().tail();
        const std::size_t before = tail.size();
        write_head(tail, head, o);
        conn_.out().note_tail_growth(tail.size() - before);
        stream_close_ = close;
        stream_body_ = request_.method() != Method::head && http::status_allows_body(head.status());
        phase_ = Phase::streaming;
        stream_write(exchange, first);
        if (!in_process_) flush();
    }

    void stream_write(std::uint64_t exchange, std::string_view chunk) override {
        if (phase_ != Phase::streaming || exchange != exchange_ || chunk.empty()) return;
        if (!stream_body_) return;
        if (chunked_)
            write_chunk(conn_.out(), chunk);
        else
            conn_.out().append(chunk);
        if (!in_process_) flush();
    }

    void stream_end(std::uint64_t exchange) override {
        if (phase_ != Phase::streaming || exchange != exchange_) return;
        if (chunked_ && stream_body_) write_last_chunk(conn_.out());
        finish_exchange(stream_close_ || shutting_down_);
    }

    void stream_abort(std::uint64_t exchange) override {
        if (phase_ != Phase::streaming || exchange != exchange_) return;
        // What was written still goes out; no last chunk follows, and the close tells the client.
        finish_exchange(/*close=*/true);
    }

    // ---- streamed request bodies (body_stream.hpp) ----
    void body_read(std::uint64_t exchange, std::shared_ptr<BodyReader> reader) override {
        if (exchange != exchange_ || !request_.body_streamed() || reader_ || !reader) return;
        if (retired() || upload_ == Upload::none) {
            reader->on_error(0, "the request has ended");
            return;
        }
        reader_ = reader;  // `reader` keeps it alive while it runs (an answer from it releases reader_)
        if (!upload_hold_.empty()) {
            const std::string held = std::exchange(upload_hold_, {});
            reader->on_data(held);
        }
        if (upload_ == Upload::ended_unread && reader_) {
            upload_ = Upload::none;
            reader->on_end();
        }
    }

    // The handler keeps the request past dispatch (AsyncHandler, another thread): copy it out of the input
    // buffer now, on this thread, rather than at the end of process() while that thread may read it.
    void keep_request(std::uint64_t exchange) override {
        if (exchange == exchange_ && in_process_) detach(input_);
    }

    void body_consumed(std::uint64_t exchange, std::size_t bytes) override {
        if (exchange != exchange_ || !request_.body_streamed()) return;
        upload_unacked_ -= std::min<std::uint64_t>(upload_unacked_, bytes);
        if (upload_paused_ && upload_unacked_ <= limits_.max_buffered_input / 2) {
            update_reading();
            if (!in_process_) flush();
        }
    }

private:
    // ---- parsing ----

    // Parses requests from `buf` and dispatches them. Returns how many bytes were consumed; the rest is an
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
            if (phase_ == Phase::idle) {
                // Stray empty lines between requests (or a client's extra CRLF after a body) are not a
                // request: skipped, they leave the connection idle, so EOF and shutdown close it as such.
                pos += empty_line_prefix(buf.substr(pos));
                if (pos == buf.size()) break;
            }
            if (uploading()) {  // a streamed body: its bytes go to the handler
                pos += parse_body(buf.substr(pos));
                if (message_complete_) end_upload();
                continue;
            }
            if (phase_ != Phase::body) {
                const std::size_t used = parse_head(buf.substr(pos));
                if (used == 0) break;  // incomplete (or rejected)
                pos += used;
                if (uploading()) continue;  // dispatched at its head, the body streams
            }
            if (phase_ == Phase::body) {
                pos += parse_body(buf.substr(pos));
                // A body without a length (chunked) that grows large is offered for streaming there.
                if (phase_ == Phase::body && !message_complete_ && !upload_offered_ &&
                    request_.body().size() > limits_.stream_body_threshold) {
                    if (accept_upload()) start_upload();
                    if (uploading()) continue;
                }
            }
            if (message_complete_) dispatch();
            if (switch_) {
                // A switch was accepted: what followed the request belongs to the next protocol.
                switch_to(std::move(switch_), buf.substr(pos));
                in_process_ = false;
                return buf.size();
            }
        }
        // A request still being read or answered later must not point into `buf` any more.
        if (phase_ == Phase::body || phase_ == Phase::dispatched || phase_ == Phase::streaming) detach(buf);
        in_process_ = false;
        return retired() ? buf.size() : pos;
    }

    void drain_pending() {
        const std::size_t used = process(pending_);
        if (retired())
            pending_.clear();
        else
            pending_.erase(0, used);
        update_reading();
    }

    // Returns bytes consumed (0 when the head is incomplete or was rejected).
    std::size_t parse_head(std::string_view buf) {
        if (phase_ == Phase::idle) {
            phase_ = Phase::head;
            head_scan_ = 0;
            set_deadline(timeouts_.header);
        }
        const std::size_t end = find_head_end(buf, head_scan_ > 2 ? head_scan_ - 2 : 0);
        if (end == std::string_view::npos) {
            if (const Rejection r = check_incomplete_head(buf); r.status)
                reject(r);
            else
                head_scan_ = buf.size();
            return 0;
        }
        if (end > limits_.max_header_bytes) {
            reject(request_line_length(buf) > limits_.max_url_bytes + 16
                       ? Rejection{414, "the request line is longer than the URL limit"}
                       : Rejection{431, "the request head is larger than the header size limit"});
            return 0;
        }
        request_.reset();
        request_.set_received_at(conn_.loop().now());
        request_.set_tls(conn_.tls());
        body_owned_ = false;
        body_buf_.clear();
        upload_offered_ = over_body_limit_ = false;
        head_base_ = buf.data();
        head_len_ = end;
        head_detached_ = false;
        message_complete_ = false;
        rejection_ = {};
        in_trailers_ = false;
        value_started_ = false;
        if (parser_.upgrade) llhttp_reset(&parser_);  // a declined Upgrade: parse what follows as HTTP again
        const llhttp_errno_t err = llhttp_execute(&parser_, buf.data(), end);
        if (!settle(err, buf.substr(0, end))) return 0;
        if (!message_complete_) {
            phase_ = Phase::body;
            set_deadline(timeouts_.body);
            pace_.start(conn_.loop().now());
            // A declared length over the streaming threshold: offered for streaming now, before the body.
            const bool offer =
                (parser_.flags & F_CONTENT_LENGTH) && parser_.content_length > limits_.stream_body_threshold;
            const bool stream = offer && accept_upload();
            if (!offer && over_body_limit_) reject({413, "the request body is larger than the body size limit"});
            if (retired()) return 0;
            maybe_continue(buf.size() == end);
            if (retired()) return 0;
            if (stream) start_upload();
        }
        return end;
    }

    std::size_t parse_body(std::string_view buf) {
        if (buf.empty()) return 0;
        set_deadline(timeouts_.body);
        if (crlf_left_ > 0) crlf_from_ = buf.data();  // the rest of a chunk's CRLF starts this buffer
        const llhttp_errno_t err = llhttp_execute(&parser_, buf.data(), buf.size());
        const std::size_t used =
            err == HPE_PAUSED ? static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - buf.data()) : buf.size();
        // A chunk's CRLF split across reads: check the part llhttp consumed from this buffer now.
        if (err == HPE_OK && crlf_left_ > 0 && !check_chunk_crlf(buf.data() + buf.size())) {
            reject({400, "chunk data is not followed by CRLF"});
            return buf.size();
        }
        if (!settle(err, buf)) return buf.size();
        pace_.add(used);
        return used;
    }

    // The whole-body deadline and the minimum data rate, checked by the periodic sweep.
    Rejection check_body_pace(Clock::time_point now) {
        std::string why = pace_.violation(timeouts_, now, reading_);
        if (why.empty()) return {};
        reason_text_ = std::move(why);
        return {408, reason_text_.c_str()};
    }

    // Handles llhttp's verdict; false when the request was rejected.
    bool settle(llhttp_errno_t err, std::string_view input) {
        if (err == HPE_OK) return true;
        if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
            // Upgrade (WebSocket/h2c) is not spoken yet: the request is answered as a plain request.
            if (err == HPE_PAUSED)
                llhttp_resume(&parser_);
            else
                llhttp_resume_after_upgrade(&parser_);
            return true;
        }
        reject(rejection_.status ? rejection_ : classify(err, input));
        return false;
    }

    // Maps a parse error to a status that names the cause.
    Rejection classify(llhttp_errno_t err, std::string_view input) const {
        switch (err) {
            case HPE_INVALID_METHOD: {
                // A well-formed token we don't know is "not implemented"; garbage is a bad request.
                const std::size_t sp = input.find(' ');
                const bool token =
                    sp != std::string_view::npos && sp > 0 &&
                    std::all_of(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(sp), is_tchar);
                return token ? Rejection{501, "the request method is not implemented"}
                             : Rejection{400, "the request line is malformed"};
            }
            case HPE_INVALID_VERSION: {
                const std::size_t nl = input.find('\n');
                const std::string_view line = input.substr(0, nl);
                return line.find(" HTTP/") != std::string_view::npos
                           ? Rejection{505, "only HTTP/1.0 and HTTP/1.1 are supported on this connection"}
                           : Rejection{400, "the request line is malformed"};
            }
            case HPE_UNEXPECTED_CONTENT_LENGTH:
                return {400, "Content-Length is repeated or sent together with Transfer-Encoding"};
            case HPE_INVALID_CONTENT_LENGTH: return {400, "Content-Length is not a valid number"};
            case HPE_INVALID_TRANSFER_ENCODING: return {400, "Transfer-Encoding is invalid (chunked must be last)"};
            case HPE_INVALID_CHUNK_SIZE: return {400, "a chunk size is not valid hexadecimal"};
            case HPE_INVALID_HEADER_TOKEN: return {400, "a header line is malformed"};
            case HPE_CR_EXPECTED:
            case HPE_LF_EXPECTED: return {400, "line endings must be CRLF"};
            case HPE_INVALID_URL: return {400, "the request target is malformed"};
            default: return {400, llhttp_errno_name(err)};
        }
    }

    Rejection check_incomplete_head(std::string_view buf) const {
        // A request starts with a method token. Anything else (a TLS ClientHello on the plain port, binary
        // garbage) is refused now rather than after the header timeout.
        if (!buf.empty() && !is_tchar(buf.front()) && buf.front() != '\r' && buf.front() != '\n')
            return {400, "this is not an HTTP/1.x request (TLS or binary data sent to a plain HTTP port?)"};
        const std::size_t line = request_line_length(buf);
        if (line > limits_.max_url_bytes + 16) return {414, "the request line is longer than the URL limit"};
        if (buf.size() > limits_.max_header_bytes)
            return {431, "the request head is larger than the header size limit"};
        return {};
    }

    static std::size_t request_line_length(std::string_view buf) {
        const std::size_t nl = buf.find('\n');
        return nl == std::string_view::npos ? buf.size() : nl;
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

    // ---- llhttp callbacks (the head is contiguous, so each token arrives in one piece) ----
    static Http1Protocol& self(llhttp_t* p) { return *static_cast<Http1Protocol*>(p->data); }

    static int on_method(llhttp_t* p, const char* at, std::size_t len) {
        const std::string_view name(at, len);
        auto m = parse_method(name);
        if (!m && name == "PRI")
            return self(p).fail({505, "HTTP/2 is not enabled on this port (got the HTTP/2 connection preface)"});
        if (!m) return self(p).fail({501, "the request method is not implemented"});
        self(p).request_.set_method(*m);
        return 0;
    }
    static int on_url(llhttp_t* p, const char* at, std::size_t len) {
        Http1Protocol& s = self(p);
        if (len > s.limits_.max_url_bytes) return s.fail({414, "the request target is longer than the URL limit"});
        s.request_.set_target(std::string_view(at, len));
        return 0;
    }
    static int on_header_field(llhttp_t* p, const char* at, std::size_t len) {
        Http1Protocol& s = self(p);
        if (s.in_trailers_) return 0;  // trailers are not headers (RFC 9110 §6.5.1), and may be split across reads
        s.value_started_ = false;
        if (s.request_.header_count() >= s.limits_.max_headers)
            return s.fail({431, "the request has more header fields than the limit"});
        // RFC 9112 §5.1: whitespace between a field name and its colon must be rejected (llhttp 8 lets it
        // through). The head is contiguous, so the byte after the name is readable.
        if (len == 0 || at[len] != ':' || at[len - 1] == ' ' || at[len - 1] == '\t')
            return s.fail({400, "a header name is followed by whitespace before ':'"});
        s.request_.add_header(std::string_view(at, len), {});
        return 0;
    }
    static int on_header_value(llhttp_t* p, const char* at, std::size_t len) {
        // Optional whitespace around a value is not part of it (RFC 9110 §5.5); llhttp keeps trailing OWS.
        Http1Protocol& s = self(p);
        if (s.in_trailers_) return 0;
        // A second value piece for one field is an obs-fold continuation (RFC 9112 §5.2).
        if (s.value_started_) return s.fail({400, "obsolete line folding is not allowed"});
        s.value_started_ = true;
        while (len > 0 && (at[len - 1] == ' ' || at[len - 1] == '\t')) --len;
        s.request_.set_last_header_value(std::string_view(at, len));
        return 0;
    }
    static int on_headers_complete(llhttp_t* p) {
        Http1Protocol& s = self(p);
        Request& r = s.request_;
        s.in_trailers_ = true;
        r.set_version(p->http_major, p->http_minor);
        if (p->http_major != 1) return s.fail({505, "only HTTP/1.0 and HTTP/1.1 are supported on this connection"});
        r.set_keep_alive(llhttp_should_keep_alive(p) != 0);
        if (p->http_minor >= 1) {
            int hosts = 0;
            for (const Header& h : r.headers()) hosts += iequals(h.name, "host");
            if (hosts != 1)
                return s.fail({400, hosts ? "the Host header is repeated" : "HTTP/1.1 requires a Host header"});
        }
        if ((p->flags & F_CONTENT_LENGTH) && p->content_length > s.limits_.max_body_bytes) {
            // Over the limit for a buffered body; a route that streams it has its own limit (parse_head asks).
            if (p->content_length > s.stream_limit() || s.limits_.stream_body_threshold >= s.limits_.max_body_bytes)
                return s.fail({413, "the request body is larger than the body size limit"});
            s.over_body_limit_ = true;
        }
        return 0;
    }
    static int on_body(llhttp_t* p, const char* at, std::size_t len) {
        Http1Protocol& s = self(p);
        const std::string_view chunk(at, len);
        if (s.retired()) return s.fail({});  // answered inline meanwhile: nothing more to read
        if (p->flags & F_CHUNKED) {
            s.chunk_left_ -= std::min<std::uint64_t>(s.chunk_left_, len);
            if (s.chunk_left_ == 0) s.crlf_left_ = 2, s.crlf_from_ = at + len;
        }
        if (s.uploading()) {
            s.upload_bytes_ += len;
            if (s.upload_bytes_ > s.stream_limit())
                return s.fail(
                    {413, "the request body is larger than the streamed body size limit (max_stream_body_bytes)"});
            s.deliver(chunk);
            return 0;
        }
        const std::size_t total = s.request_.body().size() + len;
        if (total > s.limits_.max_body_bytes)
            return s.fail({413, "the request body is larger than the body size limit"});
        if (s.request_.body().empty() && !s.body_owned_) {
            s.request_.set_body(chunk);  // zero-copy: the common single-piece body
        } else {
            if (!s.body_owned_) s.body_buf_.assign(s.request_.body()), s.body_owned_ = true;
            s.body_buf_.append(chunk);
            s.request_.set_body(s.body_buf_);
        }
        return 0;
    }
    // llhttp 8 skips the two bytes after chunk data without checking that they are CRLF (RFC 9112 §7.1):
    // a smuggling vector behind stricter proxies. Track where they are and check them ourselves.
    static int on_chunk_header(llhttp_t* p) {
        Http1Protocol& s = self(p);
        s.chunk_left_ = p->content_length;
        s.crlf_left_ = 0;
        return 0;
    }
    static int on_chunk_complete(llhttp_t* p) {
        Http1Protocol& s = self(p);
        if (s.crlf_left_ > 0 && !s.check_chunk_crlf(s.crlf_from_ + s.crlf_left_))
            return s.fail({400, "chunk data is not followed by CRLF"});
        return 0;
    }
    // Checks the expected CRLF bytes in [crlf_from_, end); false on a mismatch.
    bool check_chunk_crlf(const char* end) {
        while (crlf_left_ > 0 && crlf_from_ < end) {
            if (*crlf_from_ != (crlf_left_ == 2 ? '\r' : '\n')) return false;
            ++crlf_from_;
            --crlf_left_;
        }
        return true;
    }

    static int on_message_complete(llhttp_t* p) {
        self(p).message_complete_ = true;
        return HPE_PAUSED;  // one request at a time: responses must go out in order
    }

    int fail(Rejection r) {
        rejection_ = r;
        return HPE_USER;
    }

    // ---- dispatch and responses ----
    void dispatch() {
        message_complete_ = false;
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
        dispatcher_.dispatch(
            request_, app_state(),
            Responder(net::ConnectionRef(home_.link(), conn_.id(), conn_.protocol_epoch()), this, exchange_));
    }

    // An upgrade the switcher refused (an invalid WebSocket handshake, ...): answered, then the connection
    // closes.
    void refuse_upgrade(Response refusal) {
        refusal.close_connection();
        phase_ = Phase::dispatched;
        ++exchange_;
        Responder(net::ConnectionRef(home_.link(), conn_.id(), conn_.protocol_epoch()), this, exchange_)
            .send(std::move(refusal));
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
        const bool last_from_closed_peer = peer_closed_ && !holds_complete_head(pending_);
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
        head_detached_ = false;
        body_owned_ = false;
        if (uploading()) {  // the response is complete before the body: the rest of it is not read (lingering close)
            close = true;
            abort_upload(0, "the response was sent before the request body ended");
        }
        reader_.reset();
        upload_hold_.clear();
        upload_unacked_ = 0;
        upload_ = Upload::none;
        upload_paused_ = false;
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
    void reject(Rejection r) {
        if (retired()) return;
        if (uploading()) abort_upload(r.status, r.reason);
        if (phase_ == Phase::streaming) {  // the handler's response has started: cut it off
            phase_ = Phase::closing;
            pending_.clear();
            conn_.close_after_flush();
            return;
        }
        std::string body = std::to_string(r.status);
        body.append(" ").append(http::reason_phrase(r.status)).append(": ").append(r.reason).append("\n");
        Response resp = Response::text(std::move(body), r.status);
        if (r.status == 405 || r.status == 501)
            resp.add_header("Allow", "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
        write_response(conn_.out(), std::move(resp), head_options(true), false);
        phase_ = Phase::closing;
        pending_.clear();
        conn_.close_after_flush();
    }

    // Copy the current request's bytes out of an input buffer that is about to be reused.
    void detach(std::string_view buf) {
        const char* lo = buf.data();
        const char* hi = buf.data() + buf.size();
        if (!head_detached_ && head_base_ >= lo && head_base_ < hi) {
            head_buf_.assign(head_base_, head_len_);
            request_.rebase_head(head_base_, head_len_, head_buf_.data());
            head_base_ = head_buf_.data();
            head_detached_ = true;
        }
        const std::string_view body = request_.body();
        if (!body_owned_ && !body.empty() && body.data() >= lo && body.data() < hi) {
            body_buf_.assign(body);
            body_owned_ = true;
            request_.set_body(body_buf_);
        }
    }

    void flush() {
        if (phase_ == Phase::switched) return;  // the connection belongs to the next protocol now
        if (conn_.out().size() > limits_.output_high_water && !output_paused_) {
            output_paused_ = true;
            update_reading();
        }
        conn_.flush();
    }

    void pause_input(bool paused) {
        input_paused_ = paused;
        update_reading();
    }
    void update_reading() {
        if (input_paused_ && pending_.size() <= limits_.max_buffered_input / 2) input_paused_ = false;
        if (upload_paused_ && upload_unacked_ <= limits_.max_buffered_input / 2) upload_paused_ = false;
        const bool want = !input_paused_ && !output_paused_ && !upload_paused_;
        if (want != reading_) {
            reading_ = want;
            conn_.set_reading(want);
        }
    }

    // A final response is queued, or another protocol took the connection: nothing more is read.
    bool uploading() const noexcept { return upload_ == Upload::arriving; }
    bool retired() const noexcept { return phase_ == Phase::closing || phase_ == Phase::switched; }

    void set_deadline(std::chrono::milliseconds d) { deadline_ = conn_.loop().now() + d; }

    // ---- streamed request bodies ----
    std::uint64_t stream_limit() const noexcept {
        return limits_.max_stream_body_bytes ? limits_.max_stream_body_bytes : UINT64_MAX;
    }

    // Offers the request, whose body is large and still arriving, to the dispatcher for streaming. False:
    // the body is received whole (or was refused: 413 when it cannot fit).
    bool accept_upload() {
        upload_offered_ = true;
        bool accepted = false;
        try {
            accepted = dispatcher_.stream_body(request_);
        } catch (const std::exception& e) {
            spdlog::error("stream_body for {} failed: {}", request_.target(), e.what());
        }
        if (!accepted) {
            if (over_body_limit_) reject({413, "the request body is larger than the body size limit"});
            return false;
        }
        if (request_.body().size() > stream_limit()) {
            reject({413, "the request body is larger than the streamed body size limit (max_stream_body_bytes)"});
            return false;
        }
        return true;
    }

    // Dispatches the request now; what arrived of its body so far is the first data its reader gets.
    void start_upload() {
        upload_ = Upload::arriving;
        upload_paused_ = false;
        upload_hold_.assign(request_.body());
        upload_bytes_ = upload_unacked_ = upload_hold_.size();
        request_.set_body({});
        body_owned_ = false;
        request_.set_body_streamed(true);
        net::WorkerContext::current().stats.count_request();
        phase_ = Phase::dispatched;
        ++exchange_;
        dispatcher_.dispatch(request_, app_state(),
                             Responder(net::ConnectionRef(home_.link(), conn_.id(), conn_.protocol_epoch()), this,
                                       exchange_, /*streamed_body=*/true));
        check_upload_window();
    }

    // Body bytes of a streamed request: to the reader, or held until it is installed.
    void deliver(std::string_view chunk) {
        upload_unacked_ += chunk.size();
        if (reader_ && upload_hold_.empty())
            std::shared_ptr<BodyReader>(reader_)->on_data(chunk);  // it may answer: keep it
        else
            upload_hold_.append(chunk);
        check_upload_window();
    }

    void check_upload_window() {
        if (uploading() && !upload_paused_ && upload_unacked_ > limits_.max_buffered_input) {
            upload_paused_ = true;
            update_reading();
        }
    }

    // The streamed body arrived in full (llhttp paused at its end: the next request waits its turn).
    void end_upload() {
        message_complete_ = false;
        upload_ = Upload::none;
        upload_paused_ = false;
        update_reading();
        if (std::shared_ptr<BodyReader> r = reader_)
            r->on_end();  // kept: an answer from it releases reader_
        else
            upload_ = Upload::ended_unread;
    }

    void abort_upload(int status, std::string_view reason) {
        upload_ = Upload::none;
        upload_paused_ = false;
        upload_hold_.clear();
        if (std::shared_ptr<BodyReader> r = std::move(reader_)) r->on_error(status, reason);
    }

    net::Connection& conn_;
    net::ConnectionHome& home_;
    RequestDispatcher& dispatcher_;
    Switcher* switcher_;  // null: no switching (HTTP/1.1 only)
    const net::Limits& limits_;
    const net::Timeouts& timeouts_;
    llhttp_settings_t settings_{};
    llhttp_t parser_{};
    Request request_;
    std::unique_ptr<ExchangeState> app_state_;  // the dispatcher's, for every exchange of this connection
    Phase phase_ = Phase::idle;
    Rejection rejection_;
    std::uint64_t exchange_ = 0;
    Clock::time_point deadline_{};
    http::BodyPace pace_;      // the current body against body_deadline and min_body_rate
    std::string reason_text_;  // the text of a rejection that names numbers
    std::string pending_;      // unparsed input (incomplete head, or pipelined requests waiting their turn)
    std::string head_buf_;     // the current head, once it must outlive the input buffer
    std::string body_buf_;     // the current body, when it arrived in pieces or must outlive the input
    std::string_view input_;   // the buffer process() parses (valid while in_process_)
    const char* head_base_ = nullptr;
    std::size_t head_len_ = 0, head_scan_ = 0;
    bool head_detached_ = false, body_owned_ = false, message_complete_ = false, in_process_ = false;
    bool chunked_ = true, stream_close_ = false, shutting_down_ = false, peer_closed_ = false;
    // How long an idle connection still waits for a request once the server stops (see on_shutdown).
    static constexpr std::chrono::milliseconds shutdown_idle_grace{1000};
    bool stream_body_ = true, in_trailers_ = false, value_started_ = false;
    std::uint64_t chunk_left_ = 0;  // data bytes left in the current chunk
    int crlf_left_ = 0;             // CRLF bytes after chunk data still to check
    const char* crlf_from_ = nullptr;
    bool input_paused_ = false, output_paused_ = false, reading_ = true;
    std::unique_ptr<PendingSwitch> switch_;  // accepted: performed once the request's bytes are consumed
    // The current request's body streams to its handler (see body_stream.hpp).
    Upload upload_ = Upload::none;
    bool upload_offered_ = false;   // the dispatcher was asked (once per request)
    bool upload_paused_ = false;    // reading stopped: too many delivered bytes are unacknowledged
    bool over_body_limit_ = false;  // Content-Length over max_body_bytes: 413 unless streamed
    std::shared_ptr<BodyReader> reader_;
    std::string upload_hold_;  // body bytes that came before the reader
    std::uint64_t upload_bytes_ = 0, upload_unacked_ = 0;
};

}  // namespace

std::unique_ptr<net::ProtocolHandler> make_protocol(net::Connection& connection, net::ConnectionHome& home,
                                                    RequestDispatcher& dispatcher, Switcher* switcher) {
    return std::make_unique<Http1Protocol>(connection, home, dispatcher, switcher);
}

}  // namespace covet::http1
