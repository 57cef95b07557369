// covet::ws::WebSocket: the application's handle to one WebSocket connection, usable from any thread
// (like covet::Responder): on the connection's thread calls act inline; elsewhere they are posted to it.
//
// Backpressure: send_text/send_binary return false, and drop the message, when the connection is
// closing/closed or when the bytes not yet written to the socket (plus sends still on their way from
// other threads) would exceed Options::max_send_buffer. A message is always accepted when nothing is
// buffered, however large, and so is a reply sent from inside Handlers::on_message on the connection's
// thread: then reading pauses until the client has read enough, so the client is what waits. After a
// refusal, Handlers::on_drain runs once everything queued has been written: send again from there.
// Control frames (ping, close) are not limited.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "covet/http/fields.hpp"
#include "covet/http/response.hpp"
#include "covet/net/connection_ref.hpp"

namespace covet::ws {

class WebSocket;
class PreparedMessage;

// Shared by every connection of a route. Each runs on the connection's thread; exceptions they throw
// close the connection with 1011.
struct Handlers {
    std::function<void(WebSocket)> on_open;
    std::function<void(WebSocket, std::string_view data, bool binary)> on_message;  // data valid during the call
    // Once per connection: the code the client sent (1005 if its close frame had none), the one we sent
    // when we failed the connection (1002, 1007, 1009, 1011, 1001 on idle timeout or shutdown), or 1006
    // when the TCP connection ended without a close frame.
    std::function<void(WebSocket, std::uint16_t code, std::string_view reason)> on_close;
    // Everything queued has been written after a send() returned false.
    std::function<void(WebSocket)> on_drain;
};

namespace detail {

// Per connection, shared by its handles: what other threads may read without posting.
struct Shared {
    explicit Shared(std::size_t send_limit) : limit(send_limit) {}
    std::atomic<bool> open{true};        // false once a close frame was sent or the connection ended
    std::atomic<std::size_t> posted{0};  // bytes of sends posted from other threads, not yet queued
    std::atomic<std::size_t> queued{0};  // unsent bytes on the connection, as last seen on its thread
    std::atomic<bool> refused{false};    // a send was refused: call on_drain when the queue empties
    const std::size_t limit;
    // Set before the first handle exists; a deferred accept() with a subprotocol sets it on the caller's thread.
    std::string subprotocol;
    std::string path;
};

// Implemented by the protocol handler; called on the connection's thread only, while it is installed.
class Session {
public:
    // `admitted`: already counted against the limit by another thread (WebSocket::send).
    virtual bool send_message(std::string_view data, bool binary, bool admitted) = 0;
    virtual bool send_prepared(PreparedMessage& message) = 0;  // Hub fan-out
    virtual bool send_ping(std::string_view payload) = 0;
    virtual void close(std::uint16_t code, std::string_view reason) = 0;
    // A connection whose route defers the accept (Options::defer_accept): the 101 with `subprotocol` (empty:
    // the one negotiated from Options::subprotocols, if any) and `headers`, then frames; or `response` instead
    // (then the connection closes). Either is a no-op once the connection is accepted, denied or gone.
    virtual void accept(std::string_view subprotocol, const Fields& headers) = 0;
    virtual void deny(Response&& response) = 0;

protected:
    ~Session() = default;
};

}  // namespace detail

class WebSocket {
public:
    WebSocket() = default;
    WebSocket(net::ConnectionRef ref, detail::Session* session, std::shared_ptr<detail::Shared> shared)
        : ref_(std::move(ref)), session_(session), shared_(std::move(shared)) {}

    // A text message (`text` must be UTF-8: not checked), or a binary one. See the backpressure note above.
    bool send_text(std::string_view text) const { return send(text, false); }
    bool send_binary(std::string_view bytes) const { return send(bytes, true); }
    bool send(std::string_view data, bool binary) const;
    // A ping with up to 125 bytes of payload (longer is cut). False if closing or closed.
    bool ping(std::string_view payload = {}) const;
    // Starts the closing handshake. Codes that may not be sent (RFC 6455 §7.4) become 1000; the reason
    // is cut to 123 bytes. Idempotent.
    void close(std::uint16_t code = 1000, std::string_view reason = {}) const;

    // Only for a route with Options::defer_accept, whose on_open runs before the handshake is answered:
    // accept() sends the 101 (with `subprotocol`, or the one negotiated from Options::subprotocols when empty,
    // and the extra `headers`) and starts the frames; deny() sends `response` instead (an HTTP/1.1 response,
    // `Connection: close`), then the connection closes and on_close runs with 1006. close() before accept()
    // denies with 403. Sends before accept() are refused (false). The first decision counts; any thread.
    // `subprotocol`, when given, is what subprotocol() reports from then on (read it on this thread).
    void accept(std::string subprotocol = {}, Fields headers = {}) const;
    void deny(Response response) const;

    // Until our close frame was sent or the connection ended.
    bool is_open() const noexcept { return shared_ && shared_->open.load(std::memory_order_acquire); }
    // Bytes not yet written to the socket (approximate off the connection's thread).
    std::size_t buffered_amount() const noexcept {
        return shared_
                   ? shared_->queued.load(std::memory_order_relaxed) + shared_->posted.load(std::memory_order_relaxed)
                   : 0;
    }
    std::string_view subprotocol() const noexcept {
        return shared_ ? std::string_view(shared_->subprotocol) : std::string_view();
    }
    std::string_view path() const noexcept { return shared_ ? std::string_view(shared_->path) : std::string_view(); }

    explicit operator bool() const noexcept { return shared_ != nullptr; }
    // Handles to the same connection compare equal.
    friend bool operator==(const WebSocket& a, const WebSocket& b) noexcept { return a.shared_ == b.shared_; }

    // ---- for Hub (connection thread only) ----
    detail::Session* session_if_live() const noexcept {
        return is_open() && ref_.on_home_thread() && ref_.get() ? session_ : nullptr;
    }
    const net::ConnectionRef& ref() const noexcept { return ref_; }

private:
    net::ConnectionRef ref_;
    detail::Session* session_ = nullptr;
    std::shared_ptr<detail::Shared> shared_;
};

// ---- inline bodies ----

inline bool WebSocket::send(std::string_view data, bool binary) const {
    if (!is_open()) return false;
    if (ref_.on_home_thread()) return ref_.get() ? session_->send_message(data, binary, false) : false;
    // Another thread: admit against the limit now (the caller gets its answer), queue on arrival.
    const std::size_t buffered = buffered_amount();
    if (buffered > 0 && buffered + data.size() > shared_->limit) {
        shared_->refused.store(true, std::memory_order_relaxed);
        return false;
    }
    shared_->posted.fetch_add(data.size(), std::memory_order_relaxed);
    ref_.run(
        [s = session_, sh = shared_, d = std::string(data), binary](net::Connection&) {
            sh->posted.fetch_sub(d.size(), std::memory_order_relaxed);
            s->send_message(d, binary, true);
        },
        false);
    return true;
}

inline bool WebSocket::ping(std::string_view payload) const {
    if (!is_open()) return false;
    if (ref_.on_home_thread()) return ref_.get() ? session_->send_ping(payload) : false;
    ref_.run([s = session_, p = std::string(payload.substr(0, 125))](net::Connection&) { s->send_ping(p); }, false);
    return true;
}

inline void WebSocket::close(std::uint16_t code, std::string_view reason) const {
    if (!is_open()) return;
    if (ref_.on_home_thread()) {
        if (ref_.get()) session_->close(code, reason);
        return;
    }
    ref_.run([s = session_, code, r = std::string(reason)](net::Connection&) { s->close(code, r); }, false);
}

inline void WebSocket::accept(std::string subprotocol, Fields headers) const {
    if (!shared_) return;
    if (!subprotocol.empty()) shared_->subprotocol = subprotocol;
    if (ref_.on_home_thread()) {
        if (ref_.get()) session_->accept(subprotocol, headers);
        return;
    }
    ref_.run([s = session_, p = std::move(subprotocol), h = std::move(headers)](net::Connection&) { s->accept(p, h); },
             false);
}

inline void WebSocket::deny(Response response) const {
    if (!shared_) return;
    if (ref_.on_home_thread()) {
        if (ref_.get()) session_->deny(std::move(response));
        return;
    }
    ref_.run([s = session_, r = std::move(response)](net::Connection&) mutable { s->deny(std::move(r)); }, false);
}

}  // namespace covet::ws
