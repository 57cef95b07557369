// io_uring backend: one ring per worker thread, multishot accept (single-shot on a shared socket), multishot recv into
// a provided buffer ring, vectored sendmsg, everything submitted in one io_uring_submit_and_wait per loop turn. I/O
// only: what to accept, when to linger and when to free a slot is the shared Worker's (worker.hpp).
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "../io/buffer_ring.hpp"
#include "../logging.hpp"
#include "covet/io/errno_text.hpp"
#include "covet/net/socket_send.hpp"
#include "worker.hpp"

namespace covet::net {
namespace {

enum class Op : std::uint8_t { accept = 1, recv, send, wake, timer, cancel, writable, watch };

// user_data: op (8 bits) | slot (24 bits) | generation (32 bits). Stale completions never match a slot.
constexpr std::uint64_t pack(Op op, std::uint32_t slot = 0, std::uint32_t gen = 0) {
    return static_cast<std::uint64_t>(op) | (static_cast<std::uint64_t>(slot & 0xFFFFFF) << 8) |
           (static_cast<std::uint64_t>(gen) << 32);
}
constexpr Op op_of(std::uint64_t ud) { return static_cast<Op>(ud & 0xFF); }
constexpr std::uint32_t slot_of(std::uint64_t ud) { return static_cast<std::uint32_t>((ud >> 8) & 0xFFFFFF); }
constexpr std::uint32_t gen_of(std::uint64_t ud) { return static_cast<std::uint32_t>(ud >> 32); }

constexpr unsigned ring_entries = 1024;
constexpr unsigned cq_entries = 8192;
constexpr unsigned recv_buffers = 1024;  // power of two
constexpr unsigned recv_buffer_size = 8192;
// After this long without a received byte, the worker returns its receive buffers' pages to the kernel.
constexpr std::chrono::seconds recv_buffers_idle_release{2};

// Ring setup with the best flags the kernel takes. A worker that waits in io_uring_enter itself (threads >= 1):
// SINGLE_ISSUER|DEFER_TASKRUN (6.1), then COOP_TASKRUN (5.19), then none. An embedded worker (threads = 0) waits
// in its caller's epoll on the ring's eventfd, and with DEFER_TASKRUN that eventfd is not a prompt signal: on
// Linux 6.18 every request waited 10-26 ms for it at light load (0.3 ms with COOP_TASKRUN; docs/architecture.md,
// "Embedded mode"). It gets SINGLE_ISSUER|COOP_TASKRUN, then COOP_TASKRUN, then none.
int init_ring(io_uring& ring, bool embedded) {
    const unsigned task_run = embedded ? IORING_SETUP_COOP_TASKRUN : IORING_SETUP_DEFER_TASKRUN;
    const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | task_run | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    int rc = -EINVAL;
    for (unsigned flags : flag_sets) {
        io_uring_params p{};
        p.flags = flags | IORING_SETUP_CQSIZE;
        p.cq_entries = cq_entries;
        rc = io_uring_queue_init_params(ring_entries, &ring, &p);
        if (rc == 0) return 0;
        if (rc != -EINVAL) break;
    }
    return rc;
}

class UringWorker final : public Worker {
public:
    UringWorker(unsigned index, const ServerConfig& config, int listen_fd, ProtocolFactory factory)
        : Worker(index, config, listen_fd, std::move(factory)) {}

    ~UringWorker() override {
        for (std::uint32_t i = 0; i < states_.size(); ++i)
            if (slot(i).fd >= 0) ::close(slot(i).fd);  // lingering sockets cut short by the shutdown deadline
        if (ring_ready_) {
            buffers_.reset();
            io_uring_queue_exit(&ring_);
        }
        if (wake_fd_ >= 0) ::close(wake_fd_);
        if (notify_fd_ >= 0) ::close(notify_fd_);
    }

    void run() override {
        enter();
        open(/*embedded=*/false);
        while (turn(/*block=*/true)) {
        }
    }

    // ---- embedded mode ----
    void open_embedded() override {
        enter();
        open(/*embedded=*/true);
        // The ring signals this eventfd when completions are ready, so the caller's epoll-based loop can wait
        // on it (promptly: the ring has no DEFER_TASKRUN, init_ring).
        notify_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (notify_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + io::errno_text(errno));
        if (int rc = io_uring_register_eventfd(&ring_, notify_fd_); rc < 0)
            throw std::runtime_error(std::string("io_uring_register_eventfd: ") + io::errno_text(-rc));
        embedded_ = true;
        // Submit the initial accept/wake/timer entries now: nothing happens until they are in the kernel.
        io_uring_submit(&ring_);
    }
    int poll_fd() const noexcept override { return notify_fd_; }

    bool poll() override {
        enter();
        std::uint64_t signalled;
        [[maybe_unused]] ssize_t n = ::read(notify_fd_, &signalled, sizeof signalled);
        in_turn_ = true;
        struct InTurn {
            bool& flag;
            ~InTurn() { flag = false; }
        } in_turn{in_turn_};
        const bool running = turn(/*block=*/false);
        flush_due_ = true;  // the caller flushes after handling this poll's work
        return running;
    }

    bool flush() override {
        enter();
        flush_due_ = false;
        submit(/*block=*/false);
        return io_uring_cq_ready(&ring_) > 0 || kernel_work_pending();
    }

protected:
    void wake() override {
        const std::uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
    }

    void stop_accepting() override {
        if (accept_armed_) cancel_accept();
    }

    bool open_socket(std::uint32_t slot, int) override {
        state(slot) = State{};
        want_recv(slot);
        return true;
    }

    void close_socket(std::uint32_t slot) override {
        const int fd = this->slot(slot).fd;
        ::shutdown(fd, SHUT_RDWR);  // completes the pending multishot recv (it holds the socket open)
        ::close(fd);
    }

    // Reading resumed (e.g. a handler acknowledged streamed body bytes): the receive is armed at the next
    // submit, which an embedded loop runs only when asked.
    void want_read(std::uint32_t slot) override {
        want_recv(slot);
        schedule_flush();
    }

    // The cancel goes to the kernel at once, not at the turn's end: until then the multishot recv keeps
    // filling the buffers this turn recycles, and a fast client's whole socket buffer (tens of MiB) would
    // reach a connection that asked to stop (a streamed upload's back-pressure).
    void stop_reading(std::uint32_t slot) override {
        if (!state(slot).recv_armed) return;
        io_uring_prep_cancel64(sqe(), pack(Op::recv, slot, this->slot(slot).generation), 0);
        last_sqe_->user_data = pack(Op::cancel);
        io_uring_submit(&ring_);
    }

    void output_queued() override { schedule_flush(); }

    // A descriptor a datagram service reads (DatagramHost): a one-shot POLLIN, re-armed after each callback,
    // so it is level-triggered. Its slot in `watches_` and a generation tell a stale completion apart.
    void watch_readable(int fd, std::function<void()> on_readable) override {
        std::uint32_t i = 0;
        while (i < watches_.size() && watches_[i].fd >= 0) ++i;
        if (i == watches_.size()) watches_.emplace_back();
        Watch& w = watches_[i];
        w.fd = fd;
        w.on_readable = std::move(on_readable);
        ++w.generation;
        arm_watch(i);
        schedule_flush();
    }
    void unwatch(int fd) override {
        for (std::uint32_t i = 0; i < watches_.size(); ++i) {
            Watch& w = watches_[i];
            if (w.fd != fd) continue;
            if (w.armed) {
                io_uring_prep_poll_remove(sqe(), pack(Op::watch, i, w.generation));
                last_sqe_->user_data = pack(Op::cancel);
            }
            const std::uint32_t generation = w.generation;
            w = Watch{};
            w.generation = generation;
        }
    }

    // Work queued for the next submit between an embedded loop's polls (a response completed there, reading
    // turned on or off): ask the caller for a flush(). Within a poll, the caller flushes after it anyway.
    void schedule_flush() {
        if (embedded_ && !in_turn_ && !flush_due_ && output_hook_) {
            flush_due_ = true;
            output_hook_();
        }
    }

    bool send_in_flight(std::uint32_t slot) const override { return states_[slot].send_in_flight; }
    // An accept still armed holds the listening socket in the kernel: the worker finishes once its cancel has
    // completed, so that the port is free when the Server closes its listeners (not whenever the ring's exit
    // work gets to it).
    bool io_in_flight() const override { return sends_in_flight_ > 0 || accept_armed_; }
    void reset_socket_state(std::uint32_t slot) override { states_[slot] = State{}; }

private:
    // True when the kernel holds deferred work for this ring that has not run yet. An embedded ring no longer
    // uses DEFER_TASKRUN (init_ring), so this is a safety net now; the check stays cheap. With DEFER_TASKRUN the
    // kernel runs at most a few dozen deferred items per io_uring_enter (IO_LOCAL_TW_DEFAULT_MAX = 20 since
    // Linux 6.10) and signals the eventfd only when its work list goes from empty to non-empty: a burst of
    // socket events that produce no completion (e.g. the wake-ups of hundreds of lingering shutdowns) can
    // leave work queued, no CQE to report, and no signal to come — an embedded loop that slept then would
    // sleep for good. The ring file's poll reports exactly this state (CQEs ready or local work pending),
    // so the embedded loop asks it before it may sleep. Blocking waits (threads >= 1) need no such check:
    // io_uring_enter keeps running deferred work until a completion arrives.
    bool kernel_work_pending() const {
        pollfd p{ring_.ring_fd, POLLIN, 0};
        return ::poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
    }

    void open(bool embedded) {
        if (int rc = init_ring(ring_, embedded); rc < 0)
            throw std::runtime_error(std::string("io_uring_queue_init: ") + io::errno_text(-rc));
        ring_ready_ = true;
        buffers_ = std::make_unique<io::BufferRing>(ring_, 0, recv_buffers, recv_buffer_size);
        wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wake_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + io::errno_text(errno));
        arm_accept();
        arm_wake();
        update_now();
        arm_timer();
        report_ready();
    }

    // Queues pending sends, recv re-arms and the accept, then enters the kernel: waits for at least one
    // completion (block) or only collects what is ready.
    void submit(bool block) {
        flush_datagrams();
        prepare_sends();
        rearm_recvs();
        if (!accept_armed_ && accept_wanted()) arm_accept();
        const int rc = block ? io_uring_submit_and_wait(&ring_, 1) : io_uring_submit_and_get_events(&ring_);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            throw std::runtime_error(std::string("io_uring_submit: ") + io::errno_text(-rc));
    }

    // One loop turn: submit what is queued, wait for (block) or just collect completions, handle them.
    // Returns false once stopped and drained.
    bool turn(bool block) {
        enforce_shutdown_deadline();
        submit(block);
        update_now();
        // Only the completions ready now: the kernel posts more while they are handled (a syscall runs the
        // recv task work into the buffers they recycle), and a turn that chased them would never end under
        // a fast sender; the rest wait for the next turn.
        const unsigned ready = io_uring_cq_ready(&ring_);
        unsigned head, seen = 0;
        io_uring_cqe* cqe;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            if (seen == ready) break;
            handle(cqe->user_data, cqe->res, cqe->flags);
            ++seen;
        }
        io_uring_cq_advance(&ring_, seen);
        free_released();
        if (release_due_) release_idle_buffers();
        if (!accept_armed_ && accept_wanted()) arm_accept();
        return !finished();
    }

    // The ring's own per-slot state; the socket itself (fd, reading, lingering) is in Worker::Slot.
    struct State {
        bool recv_armed = false, queued_recv = false, send_in_flight = false;
        msghdr msg{};
        iovec iov[io::OutputQueue::max_iovecs]{};
    };

    State& state(std::uint32_t slot) {
        if (slot >= states_.size()) states_.resize(slot + 1);
        return states_[slot];
    }

    io_uring_sqe* sqe() {
        io_uring_sqe* s = io_uring_get_sqe(&ring_);
        if (!s) {  // submission queue full: push what we have and retry
            io_uring_submit(&ring_);
            s = io_uring_get_sqe(&ring_);
        }
        if (!s) throw std::runtime_error("io_uring: no submission queue entry available");
        last_sqe_ = s;
        return s;
    }

    void arm_accept() {
        // A listening socket shared by several worker processes (`covet run --workers N` hands every worker the
        // master's socket) wakes one exclusive waiter per connection, the first in its wait queue. A multishot
        // accept stays first in that queue, so one worker would take every connection; a single-shot accept
        // re-armed after each connection goes to the back of the queue and the workers take turns. An own
        // SO_REUSEPORT socket is balanced by the kernel's hash: multishot there.
        if (shares_listener())
            io_uring_prep_accept(sqe(), listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        else
            io_uring_prep_multishot_accept(sqe(), listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        last_sqe_->user_data = pack(Op::accept);
        accept_armed_ = true;
    }
    void cancel_accept() {
        if (accept_cancel_pending_) return;
        accept_cancel_pending_ = true;
        io_uring_prep_cancel64(sqe(), pack(Op::accept), 0);
        last_sqe_->user_data = pack(Op::cancel);
    }
    void arm_wake() {
        io_uring_prep_read(sqe(), wake_fd_, &wake_value_, sizeof wake_value_, 0);
        last_sqe_->user_data = pack(Op::wake);
    }
    void arm_timer() {
        timer_.tv_sec = 0;
        timer_.tv_nsec = std::chrono::duration_cast<std::chrono::nanoseconds>(sweep_interval).count();
        io_uring_prep_timeout(sqe(), &timer_, 0, 0);
        last_sqe_->user_data = pack(Op::timer);
    }
    void want_recv(std::uint32_t slot) {
        State& st = state(slot);
        if (!st.queued_recv) {
            st.queued_recv = true;
            rearm_.push_back(slot);
        }
    }
    void rearm_recvs() {
        for (std::uint32_t slot : rearm_) {
            State& st = states_[slot];
            st.queued_recv = false;
            const Slot& s = this->slot(slot);
            if (s.fd < 0 || st.recv_armed || !s.reading || s.peer_eof) continue;
            io_uring_prep_recv_multishot(sqe(), s.fd, nullptr, 0, 0);
            last_sqe_->flags |= IOSQE_BUFFER_SELECT;
            last_sqe_->buf_group = buffers_->group();
            last_sqe_->user_data = pack(Op::recv, slot, s.generation);
            st.recv_armed = true;
        }
        rearm_.clear();
    }

    void prepare_sends() {
        // A queue sent synchronously (send_with_file) may drain, and the protocol may queue more at once (the
        // next pipelined response): that send goes in this turn too, not after the next completion.
        do prepare_batch();
        while (has_dirty());
    }
    void prepare_batch() {
        for_each_dirty([this](std::uint32_t slot) {
            State& st = state(slot);
            const Slot& s = this->slot(slot);
            if (s.fd < 0 || st.send_in_flight || !s.connection) return;
            if (s.connection->wire_out().has_file()) return send_with_file(slot);
            const std::size_t n = s.connection->wire_out().prepare_send(st.iov);
            if (n == 0) {
                if (s.connection->closing()) begin_linger(slot);  // close_when_drained
                return;
            }
            st.msg = msghdr{};
            st.msg.msg_iov = st.iov;
            st.msg.msg_iovlen = n;
            io_uring_prep_sendmsg(sqe(), s.fd, &st.msg, MSG_NOSIGNAL);
            last_sqe_->user_data = pack(Op::send, slot, s.generation);
            st.send_in_flight = true;
            ++sends_in_flight_;
        });
    }

    // A queue holding a file body is written from here, synchronously and without blocking: the bytes before
    // the file with sendmsg, the file with sendfile(2) (zero-copy). Simpler than a splice chain through a
    // pipe (IORING_OP_SPLICE file→pipe→socket needs a pipe per connection or careful draining of a shared one
    // after a short write) and as cheap: sendfile moves page-cache pages to the socket in one call, and once
    // the socket is full a POLLOUT poll in the ring says when to go on.
    void send_with_file(std::uint32_t slot) {
        State& st = state(slot);
        const Slot& s = this->slot(slot);
        Connection& c = *s.connection;
        SendOutcome outcome;
        {
            NonBlocking nonblocking(s.fd);
            outcome = send_queue(s.fd, c.wire_out());
        }
        switch (outcome) {
            case SendOutcome::drained: return sent_all(c);
            case SendOutcome::would_block:
                io_uring_prep_poll_add(sqe(), s.fd, POLLOUT);
                last_sqe_->user_data = pack(Op::writable, slot, s.generation);
                st.send_in_flight = true;  // nothing else goes out before the poll says so
                ++sends_in_flight_;
                return;
            case SendOutcome::file_short:
                logging::warn("{}; the connection was closed", io::file_shrank_message);
                [[fallthrough]];
            case SendOutcome::failed: return close(c);
        }
    }

    void on_writable(std::uint64_t ud) {
        const std::uint32_t slot = slot_of(ud);
        states_[slot].send_in_flight = false;
        --sends_in_flight_;
        const Slot& s = this->slot(slot);
        if (s.generation != gen_of(ud) || !s.connection) return;
        Connection* c = find(ConnectionId{slot, gen_of(ud)});
        if (!c) {
            if (s.fd < 0 && !s.lingering) free_later(slot);  // closed while waiting: free now
            return;
        }
        request_send(*c);
    }

    void handle(std::uint64_t ud, int res, unsigned flags) {
        switch (op_of(ud)) {
            case Op::accept: on_accept(res, flags); break;
            case Op::recv: on_recv(ud, res, flags); break;
            case Op::send: on_send(ud, res); break;
            case Op::wake:
                run_posted();
                arm_wake();
                break;
            case Op::timer:
                tick();
                arm_timer();
                release_due_ = buffers_->used() && now() - last_recv_ >= recv_buffers_idle_release;
                break;
            case Op::writable: on_writable(ud); break;
            case Op::watch: on_watch(ud); break;
            case Op::cancel: break;
        }
    }

    void arm_watch(std::uint32_t i) {
        Watch& w = watches_[i];
        io_uring_prep_poll_add(sqe(), w.fd, POLLIN);
        last_sqe_->user_data = pack(Op::watch, i, w.generation);
        w.armed = true;
    }
    void on_watch(std::uint64_t ud) {
        const std::uint32_t i = slot_of(ud);
        if (i >= watches_.size() || watches_[i].generation != gen_of(ud)) return;
        watches_[i].armed = false;
        if (watches_[i].fd < 0) return;
        const std::function<void()> fn = watches_[i].on_readable;  // the callback may unwatch
        fn();
        if (i < watches_.size() && watches_[i].generation == gen_of(ud) && watches_[i].fd >= 0 && !watches_[i].armed)
            arm_watch(i);
    }

    void on_accept(int res, unsigned flags) {
        if (!(flags & IORING_CQE_F_MORE)) accept_armed_ = accept_cancel_pending_ = false;
        if (res == -ECANCELED || res == -EINVAL) return;  // cancelled, or the listener was shut down
        if (res < 0)
            accept_failed(-res);
        else
            accepted(res);
        // Backing off, at the limit, parking, stopping: the multishot accept would keep delivering.
        if (accept_armed_ && !accept_wanted()) cancel_accept();
    }

    // Idle: the buffers' pages go back to the kernel, once no completion is left to handle (a handled batch
    // leaves the rest for the next turn) or overflowed (posted later): those may point into a buffer.
    void release_idle_buffers() {
        release_due_ = false;
        if (io_uring_cq_ready(&ring_) == 0 && !io_uring_cq_has_overflow(&ring_)) buffers_->release_pages();
    }

    void on_recv(std::uint64_t ud, int res, unsigned flags) {
        last_recv_ = now();
        const ConnectionId id{slot_of(ud), gen_of(ud)};
        const bool has_buffer = flags & IORING_CQE_F_BUFFER;
        const unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        if (slot(id.slot).generation != id.generation || id.slot >= states_.size()) {  // a freed slot's
            if (has_buffer) buffers_->recycle(bid);
            return;
        }
        if (!(flags & IORING_CQE_F_MORE)) states_[id.slot].recv_armed = false;
        if (res > 0) {
            received(id, std::span<const char>(buffers_->buffer(bid), static_cast<std::size_t>(res)));
            buffers_->recycle(bid);
        } else {
            if (has_buffer) buffers_->recycle(bid);
            // ENOBUFS (the buffer ring ran dry) and ECANCELED (reading paused) only need a re-arm.
            if (res != -ENOBUFS && res != -ECANCELED) input_ended(id, res == 0);
        }
        if (!states_[id.slot].recv_armed && keeps_reading(id)) want_recv(id.slot);
    }

    void on_send(std::uint64_t ud, int res) {
        const std::uint32_t slot = slot_of(ud);
        states_[slot].send_in_flight = false;
        --sends_in_flight_;
        const Slot& s = this->slot(slot);
        if (s.generation != gen_of(ud) || !s.connection) return;
        Connection* c = find(ConnectionId{slot, gen_of(ud)});
        if (!c) {
            if (s.fd < 0 && !s.lingering) free_later(slot);  // closed while sending: free now
            return;
        }
        if (res < 0) return close(*c);
        io::OutputQueue& q = c->wire_out();
        q.consume(static_cast<std::size_t>(res));
        if (!q.empty()) return request_send(*c);
        sent_all(*c);
    }

    io_uring ring_{};
    bool ring_ready_ = false;
    std::unique_ptr<io::BufferRing> buffers_;
    int wake_fd_ = -1, notify_fd_ = -1;
    bool embedded_ = false, in_turn_ = false, flush_due_ = false, release_due_ = false;
    io::Clock::time_point last_recv_{};  // the loop's time of the last recv completion
    std::uint64_t wake_value_ = 0;
    __kernel_timespec timer_{};
    io_uring_sqe* last_sqe_ = nullptr;
    std::vector<State> states_;
    struct Watch {
        int fd = -1;
        std::uint32_t generation = 0;
        bool armed = false;
        std::function<void()> on_readable;
    };
    std::vector<Watch> watches_;
    std::vector<std::uint32_t> rearm_;
    std::size_t sends_in_flight_ = 0;
    bool accept_armed_ = false, accept_cancel_pending_ = false;
};

}  // namespace

std::unique_ptr<Worker> make_uring_worker(unsigned index, const ServerConfig& config, int listen_fd,
                                          ProtocolFactory factory) {
    return std::make_unique<UringWorker>(index, config, listen_fd, std::move(factory));
}

}  // namespace covet::net
