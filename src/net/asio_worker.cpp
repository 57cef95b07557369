// Boost.Asio backend (epoll): the portable fallback when io_uring is unavailable. Reactor style: Asio
// reports readiness, and the worker reads into one per-thread buffer and writes with sendmsg itself, so a
// connection holds no receive buffer of its own and pipelined responses leave in one vectored send. I/O
// only: what to accept, when to linger and when to free a slot is the shared Worker's (worker.hpp).
#include <utility>  // Boost 1.74's Asio headers need it first under g++ 12 / C++20

#include <sys/socket.h>
#include <unistd.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cerrno>
#include <cstring>
#include <list>
#include <optional>

#include "../logging.hpp"
#include "accept_turns.hpp"
#include "covet/net/socket_send.hpp"
#include "worker.hpp"

namespace covet::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr std::size_t read_buffer_size = std::size_t{64} * 1024;
constexpr int reads_per_wakeup = 4;  // fairness between busy connections
constexpr int accepts_per_wakeup = 64;

class AsioWorker final : public Worker {
public:
    AsioWorker(unsigned index, const ServerConfig& config, int listen_fd, ProtocolFactory factory)
        : Worker(index, config, listen_fd, std::move(factory)),
          ctx_(1),
          acceptor_(ctx_),
          timer_(ctx_),
          read_buffer_(std::make_unique<char[]>(read_buffer_size)) {}

    ~AsioWorker() override {
        for (Watch& w : watches_) w.descriptor.release();  // the service owns its descriptors
        for (State& st : states_)
            if (st.socket) close_asio_socket(st);
        boost::system::error_code ec;
        if (acceptor_.is_open()) acceptor_.release(ec);  // the Server owns the listening fd
    }

    // Asio runs handlers after its own wait; a per-turn clock would lag. The vDSO read is cheap.
    io::Clock::time_point now() const noexcept override { return io::Clock::now(); }

    void run() override {
        enter();
        if (shares_listener()) {
            turns_.emplace(listen_fd_, [this] { asio::post(ctx_, [this] { on_accept_turn(); }); });
        } else {
            boost::system::error_code ec;
            acceptor_.assign(tcp::v6(), listen_fd_, ec);  // the protocol tag only matters for Asio's bookkeeping
            if (ec) throw std::runtime_error("asio: cannot adopt the listening socket: " + ec.message());
        }
        arm_accept();
        update_now();
        arm_timer();
        report_ready();
        while (!finished()) {
            ctx_.run_one();
            update_now();
            after_handler();
        }
    }

protected:
    void wake() override {
        asio::post(ctx_, [this] { run_posted(); });
    }
    void stop_accepting() override {
        if (turns_) {
            turns_->stop();
            return;
        }
        boost::system::error_code ec;
        acceptor_.cancel(ec);
    }

    int accepted_socket_flags() const noexcept override { return SOCK_NONBLOCK | SOCK_CLOEXEC; }

    bool open_socket(std::uint32_t slot, int fd) override {
        if (slot >= states_.size()) states_.resize(slot + 1);
        State& st = states_[slot];
        st = State{};
        boost::system::error_code ec;
        st.socket.emplace(ctx_);
        st.socket->assign(tcp::v6(), fd, ec);
        if (ec) {
            st.socket.reset();  // close_socket closes the bare fd
            return false;
        }
        arm_read(slot);
        return true;
    }

    void close_socket(std::uint32_t slot) override {
        State& st = states_[slot];
        if (st.socket)
            close_asio_socket(st);
        else
            ::close(this->slot(slot).fd);
    }

    void want_read(std::uint32_t slot) override { arm_read(slot); }

    // A descriptor a datagram service reads (DatagramHost): Asio's readiness wait, re-armed after each callback.
    void watch_readable(int fd, std::function<void()> on_readable) override {
        Watch& w = watches_.emplace_back(ctx_);
        w.descriptor.assign(fd);
        w.on_readable = std::move(on_readable);
        arm_watch(w);
    }
    void unwatch(int fd) override {
        for (auto it = watches_.begin(); it != watches_.end(); ++it) {
            if (it->descriptor.native_handle() != fd) continue;
            *it->alive = false;
            boost::system::error_code ec;
            it->descriptor.cancel(ec);
            it->descriptor.release();
            watches_.erase(it);
            return;
        }
    }
    void reset_socket_state(std::uint32_t slot) override { states_[slot] = State{}; }

private:
    // Asio's per-slot state; the socket's policy state (reading, lingering) is in Worker::Slot.
    struct State {
        std::optional<tcp::socket> socket;
        bool read_armed = false, write_armed = false;
    };
    struct Watch {
        explicit Watch(asio::io_context& ctx) : descriptor(ctx) {}
        asio::posix::stream_descriptor descriptor;
        std::function<void()> on_readable;
        std::shared_ptr<bool> alive = std::make_shared<bool>(true);  // false once unwatched
    };

    void arm_watch(Watch& w) {
        w.descriptor.async_wait(asio::posix::stream_descriptor::wait_read,
                                [this, &w, alive = w.alive](const boost::system::error_code& ec) {
                                    if (ec || !*alive) return;
                                    const std::function<void()> fn = w.on_readable;  // the callback may unwatch
                                    fn();
                                    if (*alive) arm_watch(w);
                                });
    }

    void after_handler() {
        enforce_shutdown_deadline();
        flush_datagrams();
        while (has_dirty()) for_each_dirty([this](std::uint32_t slot) { write_some(slot); });
        free_released();
        if (finished()) {
            timer_.cancel();
            ctx_.stop();
        }
        if (!accept_armed_ && accept_wanted()) arm_accept();
    }

    // An own listener: Asio's epoll reports it readable. A shared one: this worker's turn (accept_turns.hpp).
    void arm_accept() {
        accept_armed_ = true;
        if (turns_) {
            if (!turns_->arm()) {
                accept_armed_ = false;
                accept_failed(errno);  // accepts pause for a sweep interval, and the log says why
            }
            return;
        }
        acceptor_.async_wait(tcp::acceptor::wait_read, [this](const boost::system::error_code& ec) {
            accept_armed_ = false;
            if (ec || stopping()) return;
            accept_ready();
        });
    }

    void on_accept_turn() {
        update_now();
        accept_armed_ = false;
        if (!stopping()) accept_ready();
    }

    // At the limit further connections wait in the kernel's backlog (the accept is re-armed when one
    // closes), so nothing is parked here.
    void accept_ready() {
        for (int i = 0; i < accepts_per_wakeup && accept_wanted(); ++i) {
            const int fd = ::accept4(listen_fd_, nullptr, nullptr, accepted_socket_flags());
            if (fd >= 0) {
                accepted(fd);
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                accept_failed(errno);
            return;
        }
    }

    void arm_read(std::uint32_t slot) {
        State& st = states_[slot];
        const Slot& s = this->slot(slot);
        if (!st.socket || st.read_armed || !s.reading || s.peer_eof) return;
        st.read_armed = true;
        const std::uint32_t gen = s.generation;
        st.socket->async_wait(tcp::socket::wait_read, [this, slot, gen](const boost::system::error_code& ec) {
            if (this->slot(slot).generation != gen) return;
            states_[slot].read_armed = false;
            if (ec) return;
            on_readable(ConnectionId{slot, gen});
        });
    }

    void on_readable(ConnectionId id) {
        State& st = states_[id.slot];
        if (!st.socket) return;
        const int fd = st.socket->native_handle();
        for (int i = 0; i < reads_per_wakeup; ++i) {
            const ssize_t n = ::recv(fd, read_buffer_.get(), read_buffer_size, 0);
            if (n > 0) {
                if (!find(id)) continue;  // draining a lingering close
                received(id, std::span<const char>(read_buffer_.get(), static_cast<std::size_t>(n)));
                if (!slot(id.slot).reading || !find(id)) return;
                if (static_cast<std::size_t>(n) < read_buffer_size) break;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            if (n < 0 && errno == EINTR) continue;
            input_ended(id, n == 0);
            return;
        }
        if (keeps_reading(id)) arm_read(id.slot);
    }

    void write_some(std::uint32_t slot) {
        if (slot >= states_.size()) return;
        State& st = states_[slot];
        Slot& s = this->slot(slot);
        if (!st.socket || st.write_armed || !s.connection) return;
        Connection& c = *s.connection;
        switch (send_queue(st.socket->native_handle(), c.wire_out())) {
            case SendOutcome::drained: break;
            case SendOutcome::would_block: return arm_write(slot);
            case SendOutcome::file_short:
                logging::warn("{}; the connection was closed", io::file_shrank_message);
                [[fallthrough]];
            case SendOutcome::failed:
                if (!s.lingering) close(c);
                return;
        }
        sent_all(c);
    }

    void arm_write(std::uint32_t slot) {
        State& st = states_[slot];
        if (!st.socket) return;  // closed since the write was wanted
        st.write_armed = true;
        const std::uint32_t gen = this->slot(slot).generation;
        st.socket->async_wait(tcp::socket::wait_write, [this, slot, gen](const boost::system::error_code& ec) {
            if (this->slot(slot).generation != gen) return;
            states_[slot].write_armed = false;
            if (!ec) write_some(slot);
        });
    }

    static void close_asio_socket(State& st) {
        if (!st.socket) return;
        boost::system::error_code ec;
        st.socket->cancel(ec);
        st.socket->close(ec);
        st.socket.reset();
    }

    void arm_timer() {
        timer_.expires_after(sweep_interval);
        timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec) return;
            tick();
            arm_timer();
        });
    }

    asio::io_context ctx_;
    tcp::acceptor acceptor_;
    asio::steady_timer timer_;
    std::unique_ptr<char[]> read_buffer_;
    std::list<Watch> watches_;  // a list: handlers hold references to their Watch
    std::vector<State> states_;
    bool accept_armed_ = false;
    std::optional<AcceptTurns> turns_;  // after ctx_: its thread is joined before the loop it posts to goes
};

}  // namespace

std::unique_ptr<Worker> make_asio_worker(unsigned index, const ServerConfig& config, int listen_fd,
                                         ProtocolFactory factory) {
    return std::make_unique<AsioWorker>(index, config, listen_fd, std::move(factory));
}

}  // namespace covet::net
