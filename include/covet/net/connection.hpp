// One accepted TCP connection: socket state owned by a reactor backend, a transport, and the protocol
// handler that speaks on it. Lives on its worker's thread only; other threads reach it through
// ConnectionRef (connection_ref.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "covet/io/loop.hpp"
#include "covet/io/output_queue.hpp"
#include "covet/net/client_limits.hpp"
#include "covet/net/protocol_handler.hpp"
#include "covet/net/server_config.hpp"
#include "covet/net/transport.hpp"

namespace covet::net {

// Slot index + generation: a stale id (connection closed, slot reused) never matches.
struct ConnectionId {
    std::uint32_t slot = 0;
    std::uint32_t generation = 0;
    friend bool operator==(ConnectionId, ConnectionId) = default;
};

class Connection;

// What the worker does for a connection: implemented once by net::Worker (src/net/worker.hpp), which
// keeps the policy (send batches, lingering close) and leaves the I/O to its reactor backend.
class ConnectionDriver {
public:
    virtual void request_send(Connection& c) = 0;  // batched: sent at the end of the loop turn
    virtual void set_reading(Connection& c, bool enabled) = 0;
    virtual void close(Connection& c) = 0;  // now; unsent output is dropped
    // Closing with nothing left to send: backends half-close and drain the input briefly (lingering
    // close), so that bytes the peer already sent don't turn the close into a reset.
    virtual void close_when_drained(Connection& c) { close(c); }
    virtual io::Loop& loop() noexcept = 0;
    virtual const ServerConfig& config() const noexcept = 0;
    // The client named by a PROXY header was read: count it against ServerConfig::client_limits (and
    // Connection::count_client it). False: over a limit, the connection closes (the driver logged why).
    virtual bool admit_client(Connection& c) {
        (void)c;
        return true;
    }

protected:
    ~ConnectionDriver() = default;
};

class Connection {
public:
    Connection(ConnectionDriver& driver, int fd, ConnectionId id, std::string peer_address, std::uint16_t peer_port)
        : driver_(driver),
          fd_(fd),
          id_(id),
          peer_address_(std::move(peer_address)),
          peer_port_(peer_port),
          transport_(std::make_unique<PlainTransport>(wire_out_)),
          proxy_trusted_(driver.config().proxy_headers.trusts(peer_address_)),
          proxy_header_pending_(driver.config().proxy_protocol.enabled &&
                                driver.config().proxy_protocol.trusted.contains(peer_address_)) {
        // The PROXY header's client replaces the address in place: views of it (the protocol's request) stay valid.
        if (proxy_header_pending_) peer_address_.reserve(64);
    }

    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() { uncount_client(); }

    // ---- for protocol handlers ----
    io::OutputQueue& out() noexcept { return transport_->plaintext_out(); }
    // Queue what was written for sending (one batched send per loop turn).
    void flush() {
        if (!transport_->passthrough()) {
            transport_->flush_to(wire_out_);
            if (transport_->failed()) close_after_flush_ = true;  // what is queued goes, then the close
        }
        if (!wire_out_.empty())
            driver_.request_send(*this);
        else if (close_after_flush_)
            driver_.close_when_drained(*this);
    }
    // Close once everything queued has been sent; further input is ignored.
    void close_after_flush() {
        close_after_flush_ = true;
        flush();
    }
    void close_now() { driver_.close(*this); }
    void set_reading(bool enabled) { driver_.set_reading(*this, enabled); }

    // Replaces the protocol (HTTP Upgrade, h2c). The old handler is destroyed after the current callback
    // returns; pending completions addressed to it are dropped (the epoch changes).
    void switch_protocol(std::unique_ptr<ProtocolHandler> next) {
        retired_ = std::move(protocol_);
        protocol_ = std::move(next);
        ++protocol_epoch_;
    }
    void set_protocol(std::unique_ptr<ProtocolHandler> p) { protocol_ = std::move(p); }

    io::Loop& loop() noexcept { return driver_.loop(); }
    const ServerConfig& config() const noexcept { return driver_.config(); }
    ConnectionId id() const noexcept { return id_; }
    std::uint32_t protocol_epoch() const noexcept { return protocol_epoch_; }
    ProtocolHandler* protocol() noexcept { return protocol_.get(); }
    std::string_view peer_address() const noexcept { return peer_address_; }
    std::uint16_t peer_port() const noexcept { return peer_port_; }
    // The peer is a trusted proxy (ServerConfig::proxy_headers, checked once at accept): the protocols apply
    // its X-Forwarded-* headers to each request (covet/http/proxy_headers.hpp).
    bool proxy_trusted() const noexcept { return proxy_trusted_; }
    bool closing() const noexcept { return close_after_flush_; }
    // The TLS session (null on plain TCP). ALPN picks the protocol: see tls->alpn. On a TLS connection
    // it is set before the first on_data (plaintext only flows once the handshake is done).
    const TlsInfo* tls() const noexcept { return transport_->tls(); }

    // ---- per-client limits (client_limits.hpp) ----
    // HTTP/2: a stream opens on this connection. False when its client is at max_streams_per_ip (the
    // protocol refuses the stream); true for a connection that is not counted.
    bool admit_stream() noexcept {
        if (!client_limiter_) return true;
        if (!client_limiter_->admit_stream(client_key_)) return false;
        ++client_streams_;
        return true;
    }
    // A stream admitted by admit_stream ended (no-op once the connection itself is no longer counted).
    void release_stream() noexcept {
        if (!client_limiter_ || client_streams_ == 0) return;
        --client_streams_;
        client_limiter_->release_stream(client_key_);
    }
    // The worker admitted this connection's client into `limiter`: counted until uncount_client.
    void count_client(ClientLimiter& limiter, ClientKey key) noexcept {
        client_limiter_ = &limiter;
        client_key_ = key;
    }
    // The connection closed (or lingers): its client's connection and streams are free again.
    void uncount_client() noexcept {
        if (!client_limiter_) return;
        for (; client_streams_ > 0; --client_streams_) client_limiter_->release_stream(client_key_);
        client_limiter_->release_connection(client_key_);
        client_limiter_ = nullptr;
    }
    // A PROXY header is still expected: the client is not known (nor counted) yet.
    bool proxy_header_pending() const noexcept { return proxy_header_pending_; }

    // ---- for the backend ----
    int fd() const noexcept { return fd_; }
    // Installs the transport (TLS) before any byte is received; plain TCP otherwise.
    void set_transport(std::unique_ptr<Transport> t) { transport_ = std::move(t); }
    io::OutputQueue& wire_out() noexcept { return wire_out_; }
    // Bytes from the socket → (PROXY header) → transport → protocol. Returns false when the connection must
    // close: a transport failure, or a connection from a PROXY-protocol peer without a valid PROXY header.
    bool receive(std::span<const char> wire) {
        if (close_after_flush_) return true;  // closing: drop further input
        if (proxy_header_pending_) [[unlikely]] {
            // A trusted load balancer's PROXY header comes first, before TLS or HTTP (proxy_protocol.hpp).
            if (!take_proxy_header(wire)) return false;  // malformed or missing: refused
            if (wire.empty()) return true;               // (the rest of) the header is still to come
            const bool ok = deliver(wire);
            proxy_buffer_ = {};  // `wire` may have pointed into it (a header split across reads)
            return ok;
        }
        return deliver(wire);
    }

private:
    bool deliver(std::span<const char> wire) {
        bool ok = true;
        if (transport_->passthrough()) {
            protocol_->on_data(wire);
        } else {
            ok = transport_->on_receive(wire, [this](std::span<const char> plain) {
                if (!close_after_flush_) protocol_->on_data(plain);
            });
            // Handshake records and alerts are written even when the protocol wrote nothing.
            if (!ok) close_after_flush_ = true;
            transport_->flush_to(wire_out_);
            if (!wire_out_.empty())
                driver_.request_send(*this);
            else if (!ok)
                driver_.close(*this);
            ok = true;  // a failed transport closes after its alert is sent, not at once
        }
        retired_.reset();
        return ok;
    }
    // Reads the PROXY header off the front of `wire` (buffering a header split across reads) and takes its
    // client as the peer; `wire` becomes the bytes after it (empty while it is incomplete). False: refused
    // (logged with the reason). src/net/connection.cpp.
    bool take_proxy_header(std::span<const char>& wire);

public:
    void peer_closed() {
        protocol_->on_peer_closed();
        retired_.reset();
    }
    // The wire queue was sent: a transport holding more of a file body (TLS) queues its next piece. True
    // when it did (a send follows) or the connection is closing because of it.
    bool refill() {
        if (transport_->passthrough() || !transport_->plaintext_out().has_file()) return false;
        flush();
        return !wire_out_.empty() || close_after_flush_;
    }
    void output_drained() {
        if (close_after_flush_) return;
        protocol_->on_output_drained();
    }
    void tick(io::Clock::time_point now) {
        if (transport_->expired(now)) return close_now();
        protocol_->on_tick(now);
    }
    void shutdown() { protocol_->on_shutdown(); }

private:
    ConnectionDriver& driver_;
    int fd_;
    ConnectionId id_;
    std::string peer_address_;
    std::uint16_t peer_port_;
    io::OutputQueue wire_out_;
    std::unique_ptr<Transport> transport_;
    std::unique_ptr<ProtocolHandler> protocol_, retired_;
    std::uint32_t protocol_epoch_ = 0;
    bool proxy_trusted_;
    bool proxy_header_pending_;  // a PROXY header is expected and not read yet
    std::string proxy_buffer_;   // the part of a PROXY header received so far (when split across reads)
    bool close_after_flush_ = false;
    ClientLimiter* client_limiter_ = nullptr;  // set: counted against it (client_limits.hpp)
    ClientKey client_key_{};
    std::uint32_t client_streams_ = 0;  // HTTP/2 streams of this connection counted for its client
};

}  // namespace covet::net
