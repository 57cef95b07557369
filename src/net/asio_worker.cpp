// Boost.Asio backend (epoll): the portable fallback when io_uring is unavailable. Reactor style: Asio
// reports readiness, and the worker reads into one per-thread buffer and writes with sendmsg itself, so a
// connection holds no receive buffer of its own and pipelined responses leave in one vectored send.
#include <utility>  // Boost 1.74's Asio headers need it first under g++ 12 / C++20

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "worker.hpp"

namespace covet::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr std::size_t read_buffer_size = 64 * 1024;
constexpr int reads_per_wakeup = 4;  // fairness between busy connections
constexpr auto sweep_interval = std::chrono::milliseconds(250);
constexpr auto linger_time = std::chrono::seconds(2);

class AsioWorker final : public Worker {
public:
    AsioWorker(unsigned index, const ServerConfig& config, int listen_fd, ProtocolFactory factory)
        : Worker(index, config, listen_fd, std::move(factory)), ctx_(1), acceptor_(ctx_), timer_(ctx_),
          read_buffer_(std::make_unique<char[]>(read_buffer_size)) {}

    ~AsioWorker() override {
        for (State& st : states_)
            if (st.socket) close_socket(st);
        boost::system::error_code ec;
        if (acceptor_.is_open()) acceptor_.release(ec);  // the Server owns the listening fd
    }

    // Asio runs handlers after its own wait; a per-turn clock would lag. The vDSO read is cheap.
    io::Clock::time_point now() const noexcept override { return io::Clock::now(); }

    void run() override {
        set_current();
        boost::system::error_code ec;
        acceptor_.assign(tcp::v6(), listen_fd_, ec);  // the protocol tag only matters for Asio's bookkeeping
        if (ec) throw std::runtime_error("asio: cannot adopt the listening socket: " + ec.message());
        arm_accept();
        arm_timer();
        report_ready();
        while (!finished()) {
            ctx_.run_one();
            update_now();
            after_handler();
        }
    }

    // ---- ConnectionDriver ----
    void request_send(Connection& c) override {
        State& st = states_[c.id().slot];
        if (!st.dirty) {
            st.dirty = true;
            dirty_.push_back(c.id().slot);
        }
    }

    void close_when_drained(Connection& c) override { request_send(c); }  // write_some lingers when empty

    void set_reading(Connection& c, bool enabled) override {
        State& st = states_[c.id().slot];
        st.reading = enabled;
        if (enabled) arm_read(c.id().slot);
    }

    void close(Connection& c) override {
        State& st = states_[c.id().slot];
        if (!st.socket) return;
        mark_closed(c);
        close_socket(st);
        to_free_.push_back(c.id().slot);
    }

protected:
    void wake() override {
        asio::post(ctx_, [this] { run_posted(); });
    }
    void stop_accepting() override {
        accepting_ = false;
        boost::system::error_code ec;
        acceptor_.cancel(ec);
    }

private:
    struct State {
        std::optional<tcp::socket> socket;
        bool reading = true, read_armed = false, write_armed = false, dirty = false, peer_eof = false;
        bool lingering = false;
        io::Clock::time_point linger_until{};
    };

    bool finished() const { return drained() && lingering_ == 0; }

    void after_handler() {
        if (shutdown_deadline_passed()) force_close_all();
        flush_dirty();
        free_released();
        if (accepting_ && !accept_armed_ && !stopping() && !at_connection_limit() && now() >= accept_backoff_until_)
            arm_accept();
    }

    void arm_accept() {
        accept_armed_ = true;
        acceptor_.async_wait(tcp::acceptor::wait_read, [this](const boost::system::error_code& ec) {
            accept_armed_ = false;
            if (ec || stopping()) return;
            accept_ready();
        });
    }

    void accept_ready() {
        for (int i = 0; i < 64 && !at_connection_limit(); ++i) {
            const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) return;
                // Out of descriptors or memory: back off instead of spinning on the same error.
                accept_backoff_until_ = now() + sweep_interval;
                if (now() >= next_accept_warning_) {
                    spdlog::warn("worker {}: accept failed: {} (pausing accepts briefly; raise `ulimit -n`?)", index_,
                                 std::strerror(errno));
                    next_accept_warning_ = now() + std::chrono::seconds(1);
                }
                return;
            }
            Connection* c = adopt(fd);
            if (!c) {
                ::close(fd);
                continue;
            }
            const std::uint32_t slot = c->id().slot;
            if (slot >= states_.size()) states_.resize(slot + 1);
            State& st = states_[slot];
            st = State{};
            boost::system::error_code ec;
            st.socket.emplace(ctx_);
            st.socket->assign(tcp::v6(), fd, ec);
            if (ec) {
                close(*c);
                continue;
            }
            arm_read(slot);
        }
        // At the limit further connections wait in the kernel's backlog (re-armed when one closes).
    }

    void arm_read(std::uint32_t slot) {
        State& st = states_[slot];
        if (!st.socket || st.read_armed || !st.reading || st.peer_eof) return;
        st.read_armed = true;
        const std::uint32_t gen = this->slot(slot).generation;
        st.socket->async_wait(tcp::socket::wait_read, [this, slot, gen](const boost::system::error_code& ec) {
            if (this->slot(slot).generation != gen) return;
            State& s = states_[slot];
            s.read_armed = false;
            if (ec) return;
            on_readable(slot, gen);
        });
    }

    void on_readable(std::uint32_t slot, std::uint32_t gen) {
        State& st = states_[slot];
        if (!st.socket) return;
        const int fd = st.socket->native_handle();
        for (int i = 0; i < reads_per_wakeup; ++i) {
            const ssize_t n = ::recv(fd, read_buffer_.get(), read_buffer_size, 0);
            Connection* c = find(ConnectionId{slot, gen});
            if (n > 0) {
                if (st.lingering || !c) continue;  // draining a closing socket
                if (!c->receive(std::span<const char>(read_buffer_.get(), static_cast<std::size_t>(n)))) {
                    close(*c);
                    return;
                }
                if (!st.reading || !find(ConnectionId{slot, gen})) return;
                if (static_cast<std::size_t>(n) < read_buffer_size) break;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            if (n < 0 && errno == EINTR) continue;
            // EOF or error.
            if (st.lingering) {
                finish_linger(slot);
                return;
            }
            if (!c) return;
            if (n == 0) {
                st.peer_eof = true;
                c->peer_closed();
            } else {
                close(*c);
            }
            return;
        }
        if (find(ConnectionId{slot, gen}) || st.lingering) arm_read(slot);
    }

    void flush_dirty() {
        while (!dirty_.empty()) {
            std::vector<std::uint32_t> batch;
            batch.swap(dirty_);
            for (std::uint32_t slot : batch) {
                states_[slot].dirty = false;
                write_some(slot);
            }
        }
    }

    void write_some(std::uint32_t slot) {
        State& st = states_[slot];
        Slot& s = this->slot(slot);
        if (!st.socket || st.write_armed || !s.connection) return;
        Connection& c = *s.connection;
        io::OutputQueue& q = c.wire_out();
        iovec iov[io::OutputQueue::max_iovecs];
        while (true) {
            const std::size_t n = q.prepare_send(iov);
            if (n == 0) break;
            msghdr msg{};
            msg.msg_iov = iov;
            msg.msg_iovlen = n;
            const ssize_t sent = ::sendmsg(st.socket->native_handle(), &msg, MSG_NOSIGNAL);
            if (sent < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    arm_write(slot);
                    return;
                }
                if (!st.lingering) close(c);
                return;
            }
            q.consume(static_cast<std::size_t>(sent));
        }
        if (c.closing()) {
            if (find(c.id())) begin_linger(slot);
            return;
        }
        c.output_drained();
    }

    void arm_write(std::uint32_t slot) {
        State& st = states_[slot];
        st.write_armed = true;
        const std::uint32_t gen = this->slot(slot).generation;
        st.socket->async_wait(tcp::socket::wait_write, [this, slot, gen](const boost::system::error_code& ec) {
            if (this->slot(slot).generation != gen) return;
            states_[slot].write_armed = false;
            if (!ec) write_some(slot);
        });
    }

    // See the io_uring backend: half-close, discard input for a moment, then close.
    void begin_linger(std::uint32_t slot) {
        State& st = states_[slot];
        mark_closed(*this->slot(slot).connection);
        ::shutdown(st.socket->native_handle(), SHUT_WR);
        st.lingering = true;
        ++lingering_;
        st.reading = true;
        st.linger_until = now() + linger_time;
        if (st.peer_eof) finish_linger(slot);
        else arm_read(slot);
    }
    void finish_linger(std::uint32_t slot) {
        State& st = states_[slot];
        if (!st.lingering) return;
        st.lingering = false;
        --lingering_;
        close_socket(st);
        to_free_.push_back(slot);
    }

    static void close_socket(State& st) {
        boost::system::error_code ec;
        st.socket->cancel(ec);
        st.socket->close(ec);
        st.socket.reset();
    }

    void arm_timer() {
        timer_.expires_after(sweep_interval);
        timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec) return;
            sweep();
            for (std::uint32_t i = 0; i < states_.size(); ++i)
                if (states_[i].lingering && now() >= states_[i].linger_until) finish_linger(i);
            arm_timer();
        });
    }

    void force_close_all() {
        for_each_connection([this](Connection& c) { close(c); });
        for (std::uint32_t i = 0; i < states_.size(); ++i)
            if (states_[i].lingering) finish_linger(i);
    }

    void free_released() {
        for (std::uint32_t slot : to_free_) {
            if (!this->slot(slot).connection) continue;
            states_[slot] = State{};
            release(slot);
        }
        to_free_.clear();
        if (finished()) {
            timer_.cancel();
            ctx_.stop();
        }
    }

    asio::io_context ctx_;
    tcp::acceptor acceptor_;
    asio::steady_timer timer_;
    std::unique_ptr<char[]> read_buffer_;
    std::vector<State> states_;
    std::vector<std::uint32_t> dirty_, to_free_;
    std::size_t lingering_ = 0;
    io::Clock::time_point accept_backoff_until_{}, next_accept_warning_{};
    bool accepting_ = true, accept_armed_ = false;
};

}  // namespace

std::unique_ptr<Worker> make_asio_worker(unsigned index, const ServerConfig& config, int listen_fd, ProtocolFactory factory) {
    return std::make_unique<AsioWorker>(index, config, listen_fd, std::move(factory));
}

}  // namespace covet::net
