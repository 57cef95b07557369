// A worker: one reactor thread (see worker_context.hpp for the names: a worker is a thread, never a
// process). This class is the part both reactor backends share, and all of the policy: the connection
// table, cross-thread task posting, the timeout sweep, graceful shutdown, the lingering close, the accept
// back-off, parking past the connection limit, and the batch of connections with output to send. The
// io_uring (uring_worker.cpp) and Asio (asio_worker.cpp) backends only do I/O: they arm accepts, reads and
// sends, report what completed through the calls in "Policy, called by the backend", and implement the
// hooks in "What a backend implements".
//
// A worker runs on one thread with one listener; nothing here is locked except the posted-task queue.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

#include "covet/io/timer_queue.hpp"
#include "covet/net/connection.hpp"
#include "covet/net/connection_ref.hpp"
#include "covet/net/datagram.hpp"
#include "covet/net/server.hpp"
#include "covet/net/server_config.hpp"
#include "covet/net/tls_context.hpp"
#include "covet/net/worker_context.hpp"

namespace covet::net {

class Worker : public ConnectionDriver, public ConnectionHome, public io::Loop, public DatagramHost {
public:
    // How often the backend calls tick(): connection timeouts, lingering deadlines, and how long accepts
    // pause after the listener failed (out of descriptors or memory).
    static constexpr std::chrono::milliseconds sweep_interval{250};
    // A tick this much later than the previous one finds the worker stalled (below, tick()).
    static constexpr std::chrono::milliseconds stalled_after{4 * sweep_interval};
    // How long a lingering close keeps draining the peer's input before it closes anyway.
    static constexpr std::chrono::seconds linger_time{2};
    // A failing accept is logged at most this often.
    static constexpr std::chrono::seconds accept_warning_interval{1};

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
    // Where the sweep timer stamps the time each time it runs (steady clock): a loop that stops turning (a handler
    // that never returns) stops stamping. The Server owns the stamps (GET /_health reads them from another
    // thread); set before run()/open_embedded().
    void set_tick_stamp(std::atomic<io::Clock::rep>* stamp) noexcept { tick_stamp_ = stamp; }

    // ---- io::Loop ----
    void post(std::function<void()> task) override;
    io::TimerId post_at(io::Clock::time_point when, std::function<void()> task) override;
    void cancel(io::TimerId id) override;
    bool on_loop_thread() const noexcept override { return WorkerContext::installed() == &context_; }
    io::Clock::time_point now() const noexcept override { return now_; }

    // ---- ConnectionHome ----
    void with_connection(ConnectionId id, std::function<void(Connection&)> fn, bool final) override;
    Connection* find(ConnectionId id) noexcept override;
    void exchange_finished(ConnectionId id) noexcept override;
    const std::shared_ptr<HomeLink>& link() const noexcept override { return link_; }
    bool on_home_thread() const noexcept { return on_loop_thread(); }

    // ---- ConnectionDriver: policy here, I/O through the backend hooks ----
    // Marks the connection for the next send batch (see for_each_dirty).
    void request_send(Connection& c) final;
    // Nothing left to send is a send batch too: it finds the queue empty and lingers (see sent_all).
    void close_when_drained(Connection& c) final { request_send(c); }
    void set_reading(Connection& c, bool enabled) final;
    void close(Connection& c) final;
    io::Loop& loop() noexcept final { return *this; }
    const ServerConfig& config() const noexcept final { return config_; }
    // The listening socket is inherited (ServerConfig::inherited_listener): shared with other worker processes,
    // not this worker's to shut, and woken for one waiter per connection.
    bool shares_listener() const noexcept { return config_.inherited_listener >= 0; }

    std::size_t live_connections() const noexcept { return live_; }
    WorkerContext& context() noexcept { return context_; }
    // TLS listener: every accepted connection gets a transport from `ctx` (owned by the Server, which
    // outlives its workers). Set before run()/open_embedded().
    void set_tls(TlsContext* ctx) noexcept { tls_ = ctx; }
    // Per-client limits (ServerConfig::client_limits), shared by the server's workers and owned by the
    // Server, which outlives them. Null: none. Set before run()/open_embedded().
    void set_client_limiter(ClientLimiter* limiter) noexcept { limiter_ = limiter; }
    bool admit_client(Connection& c) final;
    // Called by the backend once its loop is set up and can take posted work.
    void on_ready(std::function<void()> fn) { ready_ = std::move(fn); }
    // A datagram service (HTTP/3) for this worker, made once the loop is set up. Set before run()/open_embedded().
    void set_datagram_factory(DatagramFactory factory) { datagram_factory_ = std::move(factory); }

    // ---- DatagramHost (the backends implement watch_readable / unwatch) ----
    Connection* adopt_datagram(ConnectionDriver& driver, std::string_view peer_address, std::uint16_t peer_port,
                               const std::function<std::unique_ptr<ProtocolHandler>(Connection&)>& make) final;
    void close_datagram(Connection& c) final;
    void datagram_output() final { output_queued(); }
    ConnectionHome& home() noexcept final { return *this; }
    io::Loop& host_loop() noexcept final { return *this; }
    unsigned worker_index() const noexcept final { return index_; }

protected:
    // ---- What a backend implements: I/O only ----
    virtual void wake() = 0;            // make the loop run posted tasks soon (any thread)
    virtual void stop_accepting() = 0;  // shutdown has begun: disarm the accept
    // A connection was set up on `fd` (slot `slot`): prepare the slot's I/O state and start reading.
    // False when the socket cannot be used (the worker then closes the connection).
    virtual bool open_socket(std::uint32_t slot, int fd) = 0;
    // Close the slot's socket now; reads and sends still armed on it end.
    virtual void close_socket(std::uint32_t slot) = 0;
    // Arm a read on the slot if none is armed (the backend skips it while reading is off or after EOF).
    virtual void want_read(std::uint32_t slot) = 0;
    // Reading was turned off: a backend whose armed read keeps going (multishot) cancels it.
    virtual void stop_reading(std::uint32_t slot) { (void)slot; }
    // request_send marked a connection (whether or not it already was).
    virtual void output_queued() {}
    // The kernel may still read the slot's output: the slot is not freed yet.
    virtual bool send_in_flight(std::uint32_t slot) const {
        (void)slot;
        return false;
    }
    // I/O the backend must see completed before run() may return.
    virtual bool io_in_flight() const { return false; }
    // The slot is about to be freed: reset its I/O state.
    virtual void reset_socket_state(std::uint32_t slot) { (void)slot; }
    // The flags the backend's own accepts give a socket (accept4's SOCK_*), for the accepts the policy makes
    // itself (the listen queue's drain at shutdown): io_uring works on blocking sockets, Asio on non-blocking.
    virtual int accepted_socket_flags() const noexcept { return SOCK_CLOEXEC; }

    // ---- Policy, called by the backend ----
    // Makes this worker's context the calling thread's (see WorkerContext::install).
    void enter() noexcept { WorkerContext::install(&context_); }
    // The loop is set up and its timer armed (at now(): the backend refreshes it first).
    void report_ready() {
        last_tick_ = now_;  // the timer's first period starts here (tick() judges a late tick against it)
        if (datagram_factory_ && !datagrams_) make_datagram_service();
        if (ready_) std::exchange(ready_, nullptr)();
    }
    // Once per loop turn, before the backend submits its I/O: the datagram service sends what its connections
    // queued.
    void flush_datagrams() {
        if (datagrams_) datagrams_->flush();
    }
    // The loop's time (now()), refreshed once per turn; tests pass their own.
    void update_now(io::Clock::time_point t = io::Clock::now()) noexcept { now_ = t; }
    void run_posted();

    // Accepting. `accepted` takes a socket from the listener: parked at the connection limit (a multishot
    // batch can deliver more than the limit allows), else set up; once stopping too (a connection the kernel
    // completed before the stop may already carry a request: it is answered, with `Connection: close`).
    void accepted(int fd);
    // The listener failed with `error` (errno): accepts pause for a sweep interval, and say so at most
    // once a second.
    void accept_failed(int error);
    // Whether an accept should be armed now: not stopping, below the limit, nothing parked, not backing off.
    bool accept_wanted() const noexcept {
        return !stopping_ && !at_connection_limit() && parked_.empty() && now() >= accept_backoff_until_;
    }

    // Reading. Bytes read from `id`'s socket go to its connection (discarded while lingering or once it
    // has gone). input_ended: EOF (`eof`) or an error on the socket.
    void received(ConnectionId id, std::span<const char> data) {
        if (Connection* c = find(id); c && !c->receive(data)) close(*c);
    }
    void input_ended(ConnectionId id, bool eof);
    // Whether the backend should keep a read armed on `id`'s socket: live, or draining a lingering close.
    bool keeps_reading(ConnectionId id) noexcept {
        return find(id) || (slots_[id.slot].generation == id.generation && slots_[id.slot].lingering);
    }

    // Sending. Each connection marked by request_send since the last batch, once, in order; the mark is
    // cleared as `fn` reaches it, so a send that queues more output marks it for the next batch.
    template <class Fn>
    void for_each_dirty(Fn&& fn) {
        sending_.swap(dirty_);
        for (std::uint32_t slot : sending_) {
            slots_[slot].dirty = false;
            fn(slot);
        }
        sending_.clear();
    }
    bool has_dirty() const noexcept { return !dirty_.empty(); }
    // The connection's output queue is empty after a send: a closing connection begins its lingering
    // close, others hear that their output drained.
    void sent_all(Connection& c) {
        if (c.refill()) return;  // more of a file body went into the queue (TLS)
        if (c.closing()) return begin_linger(c.id().slot);
        c.output_drained();
    }

    // Lingering close: after a final response, stop sending (half-close) and keep reading, discarding,
    // until the peer closes or linger_time passes, so that request bytes we never read don't turn the
    // close into a reset that destroys the response before the client reads it.
    void begin_linger(std::uint32_t i);
    void finish_linger(std::uint32_t i);

    // The timer, every sweep_interval: connection timeouts, then lingering closes past their deadline. A tick more
    // than `stalled_after` after the previous one means this thread did not run (a handler that blocked it, a
    // debugger, the host pausing the machine) while input may be waiting in its sockets, unread: that tick passes
    // no connection deadline, so the input is read first and the next tick judges (nginx too handles events before
    // timers). Never two ticks in a row, so a worker that is always late still enforces its timeouts.
    void tick();
    // Once per loop turn, before I/O: past the shutdown deadline every connection closes.
    void enforce_shutdown_deadline();
    // After a batch of completions: free the slots of closed connections (never while a callback may
    // still be on the stack, nor while the kernel may still read a send buffer), then set up parked
    // connections that now fit.
    void free_released();
    // Stopped and drained: run() returns.
    bool finished() const noexcept {
        return stopping_ && live_ == 0 && parked_.empty() &&
               (kept_for_exchange_.empty() || now_ >= shutdown_deadline_) && lingering_ == 0 && !io_in_flight();
    }
    bool stopping() const noexcept { return stopping_; }

    struct Slot {
        std::unique_ptr<Connection> connection;
        std::uint32_t generation = 1;
        bool closed = false;  // find() no longer returns it (closed, or lingering)
        // Socket state the policy keeps; the backend keeps its own beside it.
        int fd = -1;            // -1 once the socket is closed
        bool reading = true;    // the connection wants input (flow control)
        bool peer_eof = false;  // the peer half-closed
        bool dirty = false;     // in the next send batch
        bool lingering = false;
        bool datagram = false;  // a datagram service's connection (adopt_datagram): no socket
        io::Clock::time_point linger_until{};
    };
    const Slot& slot(std::uint32_t i) const noexcept { return slots_[i]; }
    Slot& slot(std::uint32_t i) noexcept { return slots_[i]; }
    // Schedules a closed slot for free_released (a backend whose send completed after the close).
    void free_later(std::uint32_t slot) { to_free_.push_back(slot); }

    const unsigned index_;
    const ServerConfig& config_;
    const int listen_fd_;
    std::function<void()> output_hook_;

private:
    void start_connection(int fd);
    // Counts a new connection from `address` against the limiter: false (logged at most once a second per
    // address, counted in covet_connections_refused) when it is over a limit. `key` is set when counted.
    bool admit_address(std::string_view address, std::optional<ClientKey>& key);
    // Registers an accepted socket; returns null when the connection could not be set up.
    Connection* adopt(int fd);
    // Ends the slot's socket now (a lingering one too) and schedules the slot to be freed.
    void close_slot(std::uint32_t i);
    // Marks a connection closed; find() stops returning it.
    void mark_closed(Slot& s) noexcept;
    // Frees a closed connection's slot (its generation moves on, so stale ids never match).
    void release(std::uint32_t index);
    void adopt_parked();
    void begin_shutdown();
    // At shutdown: takes every connection waiting in the listen queue (accepted before the stop, so their
    // requests were sent before it) instead of letting the queue be reset when the listener closes.
    void drain_listen_queue();
    bool at_connection_limit() const noexcept { return live_ >= max_connections_; }

    // Makes the datagram service; throws ServiceStartError when it cannot start (its port is taken).
    void make_datagram_service();
    // Takes a free slot (or a new one) for a connection.
    std::uint32_t take_slot();

    ProtocolFactory factory_;
    DatagramFactory datagram_factory_;
    // Before the table: its connections (a service's) are destroyed first, while the service still exists.
    std::unique_ptr<DatagramService> datagrams_;
    TlsContext* tls_ = nullptr;
    ClientLimiter* limiter_ = nullptr;
    std::function<void()> ready_;
    std::shared_ptr<HomeLink> link_;
    WorkerContext context_;
    std::vector<Slot> slots_;
    std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> kept_for_exchange_;  // by slot<<32|gen
    std::vector<std::uint32_t> free_slots_, dirty_, sending_, to_free_;
    std::deque<int> parked_;  // accepted past the limit, unread, as they would wait in the kernel backlog
    std::size_t live_ = 0, max_connections_, lingering_ = 0;
    io::Clock::time_point now_ = io::Clock::now(), shutdown_deadline_{};
    io::Clock::time_point accept_backoff_until_{}, next_accept_warning_{};
    io::Clock::time_point last_tick_{};  // or the loop's start (report_ready); the epoch before it
    bool last_tick_skipped_ = false;
    bool stopping_ = false;

    std::mutex posted_mutex_;
    std::vector<std::function<void()>> posted_, running_;
    io::TimerQueue timers_;  // post_at's tasks (the loop's thread), run by tick()
    std::atomic<bool> wake_pending_{false};
    std::atomic<io::Clock::rep>* tick_stamp_ = nullptr;
};

// A worker's datagram service (HTTP/3) could not start: not the backend's failure, so no other backend is tried.
struct ServiceStartError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Factories for the two backends (defined in uring_worker.cpp / asio_worker.cpp).
std::unique_ptr<Worker> make_uring_worker(unsigned index, const ServerConfig& config, int listen_fd,
                                          ProtocolFactory factory);
std::unique_ptr<Worker> make_asio_worker(unsigned index, const ServerConfig& config, int listen_fd,
                                         ProtocolFactory factory);

}  // namespace covet::net
