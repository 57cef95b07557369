// The layer between a socket and a protocol. Plain TCP passes bytes through; TLS (a later issue) decrypts
// what arrives and encrypts what leaves, over memory buffers so that it works on any reactor backend.
#pragma once

#include <functional>
#include <span>

#include "covet/io/loop.hpp"
#include "covet/io/output_queue.hpp"
#include "covet/net/tls_info.hpp"

namespace covet::net {

class Transport {
public:
    static constexpr std::size_t file_refill_bytes = std::size_t{256} * 1024;

    virtual ~Transport() = default;
    // Bytes read from the socket. Calls `deliver` with plaintext zero or more times; returns false when the
    // stream is broken beyond repair (the connection is then closed).
    virtual bool on_receive(std::span<const char> wire, const std::function<void(std::span<const char>)>& deliver) = 0;
    // Where the protocol queues plaintext.
    virtual io::OutputQueue& plaintext_out() = 0;
    // Moves queued plaintext into `wire` (encrypting it if needed); called before every send. A file segment
    // is read and encrypted in bounded pieces (about file_refill_bytes per call), never whole: the rest stays
    // queued and is taken when the wire queue has drained (Connection::refill).
    virtual void flush_to(io::OutputQueue& wire) = 0;
    // Whether plaintext_out() *is* the wire queue (plain TCP): lets the backend skip flush_to and the
    // std::function hop in on_receive.
    virtual bool passthrough() const noexcept { return false; }
    // The TLS session, once the handshake is done; null for plain TCP (and during the handshake).
    virtual const TlsInfo* tls() const noexcept { return nullptr; }
    // The stream is broken (a write failed, a file body shrank): the connection closes after what is queued.
    virtual bool failed() const noexcept { return false; }
    // Periodic check (a few times a second): true when the transport gave up, e.g. a TLS handshake that
    // did not finish in time. The connection is then closed.
    virtual bool expired(io::Clock::time_point) const noexcept { return false; }
};

// Plain TCP: the protocol writes straight into the wire queue.
class PlainTransport final : public Transport {
public:
    explicit PlainTransport(io::OutputQueue& wire) : wire_(wire) {}
    bool on_receive(std::span<const char> wire, const std::function<void(std::span<const char>)>& deliver) override {
        deliver(wire);
        return true;
    }
    io::OutputQueue& plaintext_out() override { return wire_; }
    void flush_to(io::OutputQueue&) override {}
    bool passthrough() const noexcept override { return true; }

private:
    io::OutputQueue& wire_;
};

}  // namespace covet::net
