// What both reactor backends share: the connection table, cross-thread task posting, the timeout sweep
// and graceful shutdown. A worker runs on one thread with one listener; nothing here is locked except the
// posted-task queue.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "covet/net/connection.hpp"
#include "covet/net/connection_ref.hpp"
#include "covet/net/server.hpp"
#include "covet/net/server_config.hpp"
#include "covet/net/tls_context.hpp"

namespace covet::net {

class Worker : public ConnectionDriver, public ConnectionHome, public io::Loop {
public:
    Worker(unsigned index, const ServerConfig& config, int listen_fd, ProtocolFactory factory);
    virtual ~Worker();

    // Runs the loop on the calling thread until stopped and drained.
    virtual void run() = 0;

    // ---- Embedded mode: the caller's event loop drives the worker instead of run() ----
    // Sets the loop up on the calling thread, which becomes its home thread. Throws if unsupported.
    virtual void open_embedded();
    // Turns readable when poll() has work: register it with the caller's loop (level-triggered).
    virtual int poll_fd() const noexcept { return -1; }
    // Runs whatever is ready, without blocking; false once stopped and drained.
    virtual bool poll() { return false; }
    // Submits output queued since the last poll() (responses completed by the caller). Call it after
    // handling what a poll() produced. True when more work is ready: poll() again soon.
    virtual bool flush() { return false; }
    // Called on the home thread, between polls, when output is queued and no flush is due yet; the caller
    // schedules a flush() (e.g. on its loop's next iteration).
    void on_output(std::function<void()> hook) { output_hook_ = std::move(hook); }
    // Thread-safe: stop accepting, finish in-flight requests, close idle connections, then return from run().
    void request_stop();

    // ---- io::Loop ----
    void post(std::function<void()> task) override;
    bool on_loop_thread() const noexcept override { return current_ == this; }
    io::Clock::time_point now() const noexcept override { return now_; }

    // ---- ConnectionHome ----
    void with_connection(ConnectionId id, std::function<void(Connection&)> fn, bool final) override;
    Connection* find(ConnectionId id) noexcept override;
    void exchange_finished(ConnectionId id) noexcept override;
    const std::shared_ptr<HomeLink>& link() const noexcept override { return link_; }
    bool on_home_thread() const noexcept { return current_ == this; }

    // ---- ConnectionDriver (the rest is per backend) ----
    io::Loop& loop() noexcept override { return *this; }
    const ServerConfig& config() const noexcept override { return config_; }

    std::size_t live_connections() const noexcept { return live_; }
    // TLS listener: every accepted connection gets a transport from `ctx` (owned by the Server, which
    // outlives its workers). Set before run()/open_embedded().
    void set_tls(TlsContext* ctx) noexcept { tls_ = ctx; }
    // Called by the backend once its loop is set up and can take posted work.
    void on_ready(std::function<void()> fn) { ready_ = std::move(fn); }

protected:
    // Backend hooks.
    virtual void wake() = 0;                  // make the loop run posted tasks soon (any thread)
    virtual void stop_accepting() = 0;        // shutdown has begun
    virtual void on_released(std::uint32_t slot) { (void)slot; }

    // Registers an accepted socket; returns null when the connection could not be set up.
    Connection* adopt(int fd);
    // Frees a closed connection's slot (its generation moves on, so stale ids never match).
    void release(std::uint32_t slot);
    void run_posted();
    void sweep();                              // timeouts; call a few times a second
    void begin_shutdown();
    // Closed connections whose exchange is still pending are waited for until the shutdown deadline.
    bool drained() const noexcept {
        return stopping_ && live_ == 0 && (kept_for_exchange_.empty() || now_ >= shutdown_deadline_);
    }
    bool shutdown_deadline_passed() const noexcept { return stopping_ && now_ >= shutdown_deadline_; }
    bool stopping() const noexcept { return stopping_; }
    bool at_connection_limit() const noexcept { return live_ >= max_connections_; }
    void set_current() noexcept {
        current_ = this;
        ConnectionHome::current() = this;
    }
    void report_ready() {
        if (ready_) std::exchange(ready_, nullptr)();
    }
    void update_now() noexcept { now_ = io::Clock::now(); }
    template <class Fn>
    void for_each_connection(Fn&& fn) {
        for (Slot& s : slots_)
            if (s.connection && !s.closed) fn(*s.connection);
    }

    struct Slot {
        std::unique_ptr<Connection> connection;
        std::uint32_t generation = 1;
        bool closed = false;
    };
    Slot& slot(std::uint32_t i) noexcept { return slots_[i]; }
    // Marks a connection closed (its fd is closed by the backend); find() stops returning it.
    void mark_closed(Connection& c) noexcept;

    const unsigned index_;
    const ServerConfig& config_;
    const int listen_fd_;
    std::function<void()> output_hook_;

private:
    ProtocolFactory factory_;
    TlsContext* tls_ = nullptr;
    std::function<void()> ready_;
    std::shared_ptr<HomeLink> link_;
    std::vector<Slot> slots_;
    std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> kept_for_exchange_;  // by slot<<32|gen
    std::vector<std::uint32_t> free_slots_;
    std::size_t live_ = 0, max_connections_;
    io::Clock::time_point now_ = io::Clock::now(), shutdown_deadline_{};
    bool stopping_ = false;

    std::mutex posted_mutex_;
    std::vector<std::function<void()>> posted_, running_;
    std::atomic<bool> wake_pending_{false};

    static thread_local Worker* current_;
};

// Factories for the two backends (defined in uring_worker.cpp / asio_worker.cpp).
std::unique_ptr<Worker> make_uring_worker(unsigned index, const ServerConfig& config, int listen_fd, ProtocolFactory factory);
std::unique_ptr<Worker> make_asio_worker(unsigned index, const ServerConfig& config, int listen_fd, ProtocolFactory factory);

}  // namespace covet::net
