// A server: N worker threads (one per core by default), each with its own reactor loop and listener.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "covet/io/backend.hpp"
#include "covet/net/connection.hpp"
#include "covet/net/connection_ref.hpp"
#include "covet/net/datagram.hpp"
#include "covet/net/server_config.hpp"

namespace covet::net {

// Creates the protocol handler for each new connection (HTTP/1.1 for now).
using ProtocolFactory = std::function<std::unique_ptr<ProtocolHandler>(Connection&, ConnectionHome&)>;

// Creates each worker's datagram service (HTTP/3), given the TCP listener's bound port.
using PortDatagramFactory = std::function<std::unique_ptr<DatagramService>(DatagramHost&, std::uint16_t tcp_port)>;

class Server {
public:
    Server(ServerConfig config, ProtocolFactory factory);
    ~Server();  // stops (gracefully, up to the shutdown timeout) and joins
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds the listeners and starts the workers; returns once all workers run. Throws if the address
    // can't be bound or no backend can start; then nothing is left bound or running, and start() may be retried.
    void start();
    // A datagram service on every worker (HTTP/3: covet/http3/server.hpp), made as each worker's loop starts.
    // Set before start(); a service that cannot start (its UDP port taken) fails start() with the reason.
    void set_datagram_factory(PortDatagramFactory factory);
    // Runs `fn` with the bound port once the listeners are bound, before any worker runs (a port-0 server learns
    // its port here). Set before start().
    void on_bound(std::function<void(std::uint16_t)> fn);
    // Runs `fn` after each successful reload_tls() (HTTP/3's own certificates); what it throws, reload_tls throws.
    void on_reload_tls(std::function<void()> fn);
    // Graceful stop: stop accepting, finish in-flight requests up to the shutdown timeout, close idle
    // keep-alive connections. Thread-safe and non-blocking; wait() blocks until the workers are done.
    void stop();
    void wait();

    // Embedded mode, instead of start(): one worker driven by the caller's event loop, no threads
    // (io_uring backend only; throws otherwise). The calling thread becomes the worker's home: call
    // poll() and flush() only from it. Register poll_fd() with the loop (level-triggered readable);
    // when it is readable call poll(), handle what it queued, then flush(). `on_output` is called when
    // a response completes between polls, to schedule a flush(). poll() returns false once stopped and
    // drained; flush() returns true when more work is already waiting (poll again soon).
    void start_embedded();
    bool embedded() const noexcept;
    int poll_fd() const noexcept;
    bool poll();
    bool flush();
    void on_output(std::function<void()> hook);

    // Reloads the TLS certificate and key files (e.g. on SIGHUP); any thread. New connections use the new
    // certificates, established ones keep their session. Throws std::runtime_error if TLS is not configured
    // or a file cannot be loaded (the previous certificates then stay in use).
    void reload_tls();

    // How long the least recently turning worker loop has gone without running its sweep timer (every 250 ms
    // while it turns): a loop blocked by a handler shows here. Zero before start(). Any thread.
    std::chrono::milliseconds longest_stall() const noexcept;

    std::uint16_t port() const noexcept;
    io::Backend backend() const noexcept;
    unsigned threads() const noexcept;
    const ServerConfig& config() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Blocks SIGINT/SIGTERM/SIGHUP in the calling thread (threads started later inherit it), so that a signal
// that arrives before wait_for_termination_signal is kept pending instead of killing the process. SIGHUP
// is App::run's: it reloads the TLS certificates (and is ignored without TLS).
void block_termination_signals();

// Blocks SIGINT/SIGTERM in the calling thread, then waits until one arrives or `stop_requested` returns
// true; returns the signal number (0 if stopped another way).
int wait_for_termination_signal(const std::function<bool()>& stop_requested);

}  // namespace covet::net
