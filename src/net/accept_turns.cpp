#include "accept_turns.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "../logging.hpp"
#include "covet/io/errno_text.hpp"

namespace covet::net {
namespace {

[[noreturn]] void fail(const char* what) {
    throw std::runtime_error(std::string("asio: cannot wait for turns on the shared listening socket (") + what +
                             "): " + io::errno_text(errno));
}

}  // namespace

AcceptTurns::AcceptTurns(int listen_fd, std::function<void()> on_turn)
    : listen_fd_(listen_fd), on_turn_(std::move(on_turn)) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) fail("epoll_create1");
    stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0) {
        ::close(epoll_fd_);
        fail("eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = stop_fd_;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &ev) != 0) {
        ::close(stop_fd_);
        ::close(epoll_fd_);
        fail("epoll_ctl");
    }
    waiter_ = std::thread([this] { wait_turns(); });
}

AcceptTurns::~AcceptTurns() {
    stop();
    ::close(stop_fd_);
    ::close(epoll_fd_);
}

bool AcceptTurns::arm() {
    if (stopped_.load(std::memory_order_relaxed)) return true;
    // Added at the back of the socket's wait queue, where the waiter already sleeps; an already readable socket
    // is reported at once.
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.fd = listen_fd_;
    return ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) == 0 || errno == EEXIST;
}

void AcceptTurns::stop() {
    if (stopped_.exchange(true)) return;
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(stop_fd_, &one, sizeof one);
    waiter_.join();
}

void AcceptTurns::wait_turns() {
    for (;;) {
        epoll_event events[2];
        const int n = ::epoll_wait(epoll_fd_, events, 2, -1);
        if (n < 0 && errno != EINTR) {  // only EBADF/EINVAL, on descriptors this class owns: a bug
            logging::error(
                "asio: waiting for turns on the shared listening socket failed ({}); this worker "
                "accepts no more connections",
                io::errno_text(errno));
            return;
        }
        bool turn = false;
        for (int i = 0; i < n; ++i) {
            if (events[i].data.fd == stop_fd_) return;
            turn = true;
        }
        if (!turn) continue;
        // Out of the queue while this worker accepts: the next connection wakes another. Before on_turn, so that
        // the re-arm it leads to always follows.
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
        on_turn_();
    }
}

}  // namespace covet::net
