// The WebSocket protocol handler: frames in, messages to the application, frames out.
//
// Input: the frame parser reads headers; payload bytes are copied once, into the reused message buffer
// (or a scratch buffer when compressed), and unmasked there. Text is validated as it arrives, so a bad
// byte fails the connection at once rather than after the whole message. A message delivered, the
// buffer is cleared but keeps its capacity (up to a bound): steady state allocates nothing per message.
#include "covet/ws/protocol.hpp"

#include <algorithm>
#include <cstring>
#include <optional>

#include "../logging.hpp"
#include "covet/http/date_cache.hpp"
#include "covet/http1/serializer.hpp"
#include "covet/metrics/http_metrics.hpp"
#include "covet/ws/deflate.hpp"
#include "covet/ws/frame.hpp"
#include "covet/ws/hub.hpp"
#include "covet/ws/utf8.hpp"

namespace covet::ws {
namespace {

using io::Clock;

constexpr std::size_t keep_capacity = std::size_t{64} * 1024;  // larger message buffers are released after use
// Bytes a client sends before a deferred accept is decided (it should send none): held; above this, reading
// pauses until the decision.
constexpr std::size_t early_input_limit = std::size_t{64} * 1024;

class WsProtocol final : public net::ProtocolHandler, public detail::Session {
public:
    WsProtocol(net::Connection& c, net::ConnectionHome& home, std::shared_ptr<const Handlers> handlers, Options options,
               const Accepted& accepted, std::string_view path)
        : conn_(c),
          home_(home),
          handlers_(std::move(handlers)),
          options_(std::move(options)),
          deflate_(accepted.deflate),
          parser_(accepted.deflate.enabled),
          shared_(std::make_shared<detail::Shared>(options_.max_send_buffer)),
          pending_(options_.defer_accept) {
        shared_->subprotocol = accepted.subprotocol;
        if (pending_) {
            deferred_ = std::make_unique<Accepted>(accepted);
            accept_deadline_ = c.loop().now() + c.config().timeouts.header;
        }
        shared_->path = path;
        if (deflate_.enabled) {
            deflater_.emplace(deflate_, options_.deflate);
            inflater_.emplace(deflate_);
        }
        last_rx_ = last_ping_ = c.loop().now();
    }

    // ---- ProtocolHandler ----
    ~WsProtocol() override { count_open(false); }  // touches no connection state when already counted out

    void on_data(std::span<const char> bytes) override {
        open();
        if (closed_) return;
        if (pending_) {  // not accepted yet: a client should wait for the 101; hold what it sends anyway
            try {
                early_.append(bytes.data(), bytes.size());
            } catch (...) {
                conn_.close_now();
                return;
            }
            if (early_.size() > early_input_limit && !early_paused_) {
                early_paused_ = true;
                conn_.set_reading(false);
            }
            return;
        }
        last_rx_ = conn_.loop().now();
        try {
            consume(bytes);
        } catch (...) {  // out of memory, or a handler threw: never past the reactor
            fail(close_code::internal_error, "internal error");
        }
        after_io();
    }

    void on_peer_closed() override {
        open();
        if (closed_) return;
        // EOF without a close frame (or before our close was answered): abnormal closure.
        end(close_code::abnormal, {}, false);
    }

    void on_output_drained() override {
        shared_->queued.store(0, std::memory_order_relaxed);
        if (reading_paused_) {
            reading_paused_ = false;
            conn_.set_reading(true);
        }
        if (!closed_ && shared_->refused.exchange(false, std::memory_order_relaxed)) call(handlers_->on_drain, self_);
    }

    void on_tick(Clock::time_point now) override {
        open();
        if (closed_) {
            // Closing after flush, but the client does not read what is left: stop waiting.
            if (now >= linger_deadline_) conn_.close_now();
            return;
        }
        if (pending_) {
            if (now >= accept_deadline_)
                refuse(503, "the application did not accept or deny the WebSocket connection in time\n",
                       "accept timeout");
            return;
        }
        try {
            if (close_sent_) {
                if (now >= close_deadline_) end(close_code::abnormal, "close timeout", true);
                return;
            }
            const auto quiet = now - last_rx_;
            if (options_.idle_timeout.count() > 0 && quiet >= options_.idle_timeout) {
                fail(close_code::going_away, "idle timeout");
                return;
            }
            if (options_.ping_interval.count() > 0 && quiet >= options_.ping_interval &&
                now - last_ping_ >= options_.ping_interval) {
                last_ping_ = now;
                write_frame(conn_.out(), Opcode::ping, {});
                conn_.flush();
            }
        } catch (...) {
            conn_.close_now();
        }
        after_io();
    }

    void on_shutdown() override {
        open();
        if (closed_ || close_sent_) return;
        if (pending_) {
            refuse(503, "the server is shutting down\n", "going away");
            return;
        }
        try {
            close(close_code::going_away, "going away");
        } catch (...) {
            conn_.close_now();
        }
    }

    // ---- detail::Session (connection thread) ----
    bool send_message(std::string_view data, bool binary, bool admitted) override {
        if (close_sent_ || closed_ || pending_) return false;
        if (!admitted && !answering_ && over_limit(data.size())) return false;
        const Opcode op = binary ? Opcode::binary : Opcode::text;
        if (deflater_ && data.size() >= options_.deflate.min_compress_bytes) {
            compressed_out_.clear();
            // Once compressed, it must be sent compressed: with context takeover our window now holds it.
            if (!deflater_->compress(data, compressed_out_)) {
                fail(close_code::internal_error, "compression failed");
                return false;
            }
            write_frame(conn_.out(), op, compressed_out_, true);
            if (compressed_out_.capacity() > keep_capacity) std::string().swap(compressed_out_);
        } else {
            write_frame(conn_.out(), op, data);
        }
        conn_.flush();
        note_queued();
        if (conn_.config().ops.record_metrics) metrics::websocket_message(/*received=*/false);
        return true;
    }

    // covet_websocket_connections_open: +1 at open, -1 at the end (or when the handler goes without one).
    void count_open(bool open) noexcept {
        if (open == counted_open_ || (open && !conn_.config().ops.record_metrics)) return;
        counted_open_ = open;
        if (open)
            metrics::websocket_opened();
        else
            metrics::websocket_closed();
    }

    bool send_prepared(PreparedMessage& m) override {
        if (close_sent_ || closed_ || pending_) return false;
        if (over_limit(m.frame().size())) return false;
        if (deflater_ && m.payload().size() >= options_.deflate.min_compress_bytes) {
            if (deflate_.server_no_context_takeover) {
                const std::string* frame = m.compressed_frame(deflate_, options_.deflate);
                if (!frame) return false;
                conn_.out().append(std::string_view(*frame));
                conn_.flush();
                note_queued();
                return true;
            }
            return send_message(m.payload(), m.binary(), true);  // our own window: compress here
        }
        conn_.out().append(m.frame());
        conn_.flush();
        note_queued();
        return true;
    }

    bool send_ping(std::string_view payload) override {
        if (close_sent_ || closed_ || pending_) return false;
        write_frame(conn_.out(), Opcode::ping, payload.substr(0, 125));
        conn_.flush();
        note_queued();
        return true;
    }

    void close(std::uint16_t code, std::string_view reason) override {
        if (close_sent_ || closed_) return;
        if (pending_) {  // before the accept: the handshake is refused (as ASGI servers answer it)
            deny(Response(403));
            return;
        }
        if (!valid_close_code(code)) code = close_code::normal;
        send_close(code, reason);
        close_deadline_ = conn_.loop().now() + options_.close_timeout;
        conn_.flush();
    }

    void accept(std::string_view subprotocol, const Fields& headers) override {
        if (!pending_ || closed_) return;
        try {
            const std::unique_ptr<Accepted> a = std::move(deferred_);
            conn_.out().append(
                std::string_view(handshake_head(*a, subprotocol.empty() ? a->subprotocol : subprotocol, headers)));
            pending_ = false;
            last_rx_ = last_ping_ = conn_.loop().now();
            conn_.flush();
            if (early_paused_) {
                early_paused_ = false;
                conn_.set_reading(true);
            }
            if (!early_.empty()) {
                const std::string early = std::exchange(early_, {});
                consume(early);
            }
        } catch (...) {  // out of memory, or a handler threw: never past the reactor
            if (pending_) {
                pending_ = false;
                end(close_code::abnormal, "internal error", true);
                return;
            }
            fail(close_code::internal_error, "internal error");
        }
        after_io();
    }

    void deny(Response&& response) override { decline(std::move(response), "denied"); }

private:
    // The deferred handshake is refused with `response`; on_close gets 1006 and `why`.
    void decline(Response&& response, std::string_view why) {
        if (!pending_ || closed_) return;
        try {
            http1::HeadOptions o;
            o.date = http::DateCache::thread_local_instance().get();
            o.close = true;
            http1::write_response(conn_.out(), std::move(response), o, false);
        } catch (...) {
            conn_.close_now();  // out of memory: no answer, but never past the reactor
        }
        pending_ = false;
        deferred_.reset();
        early_.clear();
        end(close_code::abnormal, why, false);
    }

    // A deferred handshake the application left undecided (timeout, shutdown): `status`, then close.
    void refuse(int status, std::string_view body, std::string_view why) {
        Response r(status);
        try {
            r = Response::text(std::string(body), status);
        } catch (...) {
        }
        decline(std::move(r), why);
    }

    // Creates the handle and runs on_open, on the first callback after the switch (new epoch).
    void open() {
        if (opened_) return;
        opened_ = true;
        count_open(true);
        self_ = WebSocket(net::ConnectionRef(home_.link(), conn_.id(), conn_.protocol_epoch()), this, shared_);
        call(handlers_->on_open, self_);
    }

    template <class Fn, class... Args>
    void call(const Fn& fn, Args&&... args) {
        if (!fn) return;
        try {
            fn(std::forward<Args>(args)...);
        } catch (const std::exception& e) {
            logging::warn("websocket handler threw: {}", e.what());
            fail(close_code::internal_error, "internal error");
        } catch (...) {
            fail(close_code::internal_error, "internal error");
        }
    }

    // ---- input ----
    void consume(std::span<const char> bytes) {
        std::size_t pos = 0;
        while (!closed_) {
            if (!in_payload_) {
                pos += parser_.parse(bytes.subspan(pos));
                if (parser_.failed()) return fail(close_code::protocol_error, parser_.error());
                if (!parser_.ready()) return;
                frame_ = parser_.header();
                offset_ = 0;
                in_payload_ = true;
                if (!begin_frame()) return;
            }
            const std::size_t take =
                static_cast<std::size_t>(std::min<std::uint64_t>(frame_.length - offset_, bytes.size() - pos));
            if (take > 0 && !payload(bytes.data() + pos, take)) return;
            pos += take;
            offset_ += take;
            if (offset_ < frame_.length) return;  // the rest of this frame comes later
            in_payload_ = false;
            parser_.next();
            end_frame();
            if (pos == bytes.size()) return;
        }
    }

    bool begin_frame() {
        if (is_control(frame_.opcode)) {
            control_len_ = 0;
            return true;
        }
        if (frame_.opcode != Opcode::continuation) {  // a new message
            binary_ = frame_.opcode == Opcode::binary;
            compressed_ = frame_.rsv1;
            message_.clear();
            compressed_in_ = 0;
            utf8_.reset();
        }
        const std::size_t max = options_.max_message_bytes;
        if (!compressed_ && message_.size() + frame_.length > max)
            return fail(close_code::message_too_big, "message too big"), false;
        // Compressed input is bounded too (deflate barely expands incompressible data).
        compressed_in_ += frame_.length;
        if (compressed_ && compressed_in_ > max + max / 8 + 1024)
            return fail(close_code::message_too_big, "message too big"), false;
        return true;
    }

    bool payload(const char* data, std::size_t n) {
        if (is_control(frame_.opcode)) {
            std::memcpy(control_ + control_len_, data, n);
            unmask(control_ + control_len_, n, frame_.mask, offset_);
            control_len_ += n;
            return true;
        }
        const std::size_t before = message_.size();
        if (compressed_ && inflater_) {  // the parser refuses RSV1 unless deflate was negotiated
            scratch_.assign(data, n);
            unmask(scratch_.data(), n, frame_.mask, offset_);
            if (!inflate(inflater_->feed(scratch_, message_, options_.max_message_bytes))) return false;
        } else {
            message_.append(data, n);
            unmask(message_.data() + before, n, frame_.mask, offset_);
        }
        return check_text(before);
    }

    bool inflate(Inflater::Status s) {
        if (s == Inflater::Status::too_big) return fail(close_code::message_too_big, "message too big"), false;
        if (s == Inflater::Status::corrupt) return fail(close_code::invalid_payload, "invalid compressed data"), false;
        return true;
    }

    bool check_text(std::size_t from) {
        if (binary_ || utf8_.feed(std::string_view(message_).substr(from))) return true;
        fail(close_code::invalid_payload, "invalid UTF-8 in a text message");
        return false;
    }

    void end_frame() {
        switch (frame_.opcode) {
            case Opcode::ping:
                if (!close_sent_) {
                    write_frame(conn_.out(), Opcode::pong, std::string_view(control_, control_len_));
                    conn_.flush();
                }
                return;
            case Opcode::pong: return;  // any input already counts as life (last_rx_)
            case Opcode::close: return on_close_frame();
            default: break;
        }
        if (!frame_.fin) return;
        if (compressed_ && inflater_) {
            const std::size_t before = message_.size();
            if (!inflate(inflater_->finish(message_, options_.max_message_bytes)) || !check_text(before)) return;
            if (scratch_.capacity() > keep_capacity) std::string().swap(scratch_);
        }
        if (!binary_ && !utf8_.complete()) return fail(close_code::invalid_payload, "invalid UTF-8 in a text message");
        if (!close_sent_) {
            // Replies sent from inside on_message are always queued: the client waits instead (reading
            // pauses above the send limit, see after_io), so an echo-style handler loses nothing.
            answering_ = true;
            if (conn_.config().ops.record_metrics) metrics::websocket_message(/*received=*/true);
            call(handlers_->on_message, self_, std::string_view(message_), binary_);
            answering_ = false;
        }
        if (message_.capacity() > keep_capacity)
            std::string().swap(message_);
        else
            message_.clear();
    }

    void on_close_frame() {
        std::uint16_t code = close_code::no_status;
        std::string_view reason;
        if (control_len_ == 1) return fail(close_code::protocol_error, "close frame with a 1-byte payload");
        if (control_len_ >= 2) {
            code = static_cast<std::uint16_t>((static_cast<unsigned char>(control_[0]) << 8) |
                                              static_cast<unsigned char>(control_[1]));
            if (!valid_close_code(code)) return fail(close_code::protocol_error, "invalid close code");
            reason = std::string_view(control_ + 2, control_len_ - 2);
            if (!Utf8Validator::valid(reason))
                return fail(close_code::invalid_payload, "invalid UTF-8 in the close reason");
        }
        // Answer with the same code (none if it sent none), unless we started the closing handshake.
        if (!close_sent_) send_close(code == close_code::no_status ? 0 : code, {});
        end(code, reason, false);
    }

    // ---- output ----
    std::size_t queued_bytes() noexcept {
        io::OutputQueue& out = conn_.out();
        return &out == &conn_.wire_out() ? out.size() : out.size() + conn_.wire_out().size();
    }
    void note_queued() noexcept { shared_->queued.store(queued_bytes(), std::memory_order_relaxed); }

    bool over_limit(std::size_t n) noexcept {
        const std::size_t buffered = queued_bytes() + shared_->posted.load(std::memory_order_relaxed);
        if (buffered == 0 || buffered + n <= options_.max_send_buffer) return false;
        shared_->refused.store(true, std::memory_order_relaxed);
        return true;
    }

    void send_close(std::uint16_t code, std::string_view reason) {
        write_close(conn_.out(), code, reason);
        close_sent_ = true;
        shared_->open.store(false, std::memory_order_release);
    }

    // Fails the connection (RFC 6455 §7.1.7): our close frame, then the TCP connection closes.
    void fail(std::uint16_t code, std::string_view reason) {
        if (closed_) return;
        if (!close_sent_) send_close(code, reason);
        end(code, reason, false);
    }

    // The connection is over: report once, then close after what is queued has been sent.
    void end(std::uint16_t code, std::string_view reason, bool now) {
        if (closed_) return;
        closed_ = true;
        count_open(false);
        shared_->open.store(false, std::memory_order_release);
        linger_deadline_ = conn_.loop().now() + options_.close_timeout;
        // Copy: the reason may point into buffers the handler is about to reuse.
        char why[123];
        const std::size_t n = std::min(reason.size(), sizeof why);
        if (n > 0) std::memcpy(why, reason.data(), n);
        if (handlers_->on_close) {
            try {
                handlers_->on_close(self_, code, std::string_view(why, n));
            } catch (...) {
                logging::warn("websocket on_close threw");
            }
        }
        if (now)
            conn_.close_now();
        else
            conn_.close_after_flush();
    }

    // After input or a tick: publish the queue size; stop reading while the client does not read.
    void after_io() {
        note_queued();
        if (!closed_ && !reading_paused_ && queued_bytes() > options_.max_send_buffer) {
            reading_paused_ = true;
            conn_.set_reading(false);
        }
    }

    net::Connection& conn_;
    net::ConnectionHome& home_;
    std::shared_ptr<const Handlers> handlers_;
    Options options_;
    DeflateParams deflate_;
    FrameParser parser_;
    std::shared_ptr<detail::Shared> shared_;
    WebSocket self_;
    std::optional<Deflater> deflater_;
    std::optional<Inflater> inflater_;

    bool answering_ = false;  // inside on_message
    FrameHeader frame_;
    std::uint64_t offset_ = 0;  // payload bytes of the current frame read so far
    bool in_payload_ = false;
    char control_[125];
    std::size_t control_len_ = 0;

    std::string message_;         // the message being reassembled (decompressed), reused
    std::string scratch_;         // a compressed payload chunk, unmasked
    std::string compressed_out_;  // our compressed message, reused
    std::uint64_t compressed_in_ = 0;
    Utf8Validator utf8_;
    bool binary_ = false;
    bool compressed_ = false;

    Clock::time_point last_rx_{}, last_ping_{}, close_deadline_{}, linger_deadline_{}, accept_deadline_{};
    // A deferred accept (Options::defer_accept) not yet decided: its handshake, and what the client sent.
    bool pending_ = false;
    bool early_paused_ = false;
    std::unique_ptr<Accepted> deferred_;
    std::string early_;
    bool opened_ = false;
    bool close_sent_ = false;    // our close frame is queued: no more data from us
    bool counted_open_ = false;  // counted in covet_websocket_connections_open
    bool closed_ = false;        // reported to on_close; the socket closes after the flush
    bool reading_paused_ = false;
};

}  // namespace

std::unique_ptr<net::ProtocolHandler> make_protocol(net::Connection& connection, net::ConnectionHome& home,
                                                    std::shared_ptr<const Handlers> handlers, Options options,
                                                    const Accepted& accepted, std::string_view path) {
    return std::make_unique<WsProtocol>(connection, home, std::move(handlers), std::move(options), accepted, path);
}

void switch_to_websocket(net::Connection& connection, net::ConnectionHome& home,
                         std::shared_ptr<const Handlers> handlers, Options options, const Accepted& accepted,
                         std::string_view path, std::span<const char> rest) {
    if (!options.defer_accept) connection.out().append(std::string_view(accepted.head));
    connection.switch_protocol(
        make_protocol(connection, home, std::move(handlers), std::move(options), accepted, path));
    connection.protocol()->on_data(rest);
    connection.flush();
}

}  // namespace covet::ws
