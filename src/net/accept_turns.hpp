// Turns on a listening socket that several worker processes share (`covet run --workers N` hands every worker
// the master's socket). Each new connection wakes one waiter, the one that has waited longest: the socket is
// registered with EPOLLEXCLUSIVE while a turn is armed and removed when it fires, so re-arming puts this worker
// at the back of the socket's wait queue (the io_uring backend gets the same from a single-shot accept).
// Asio's epoll registers a descriptor without EPOLLEXCLUSIVE, so every idle worker would wake on every
// connection and the first to be scheduled would take it; on an idle machine that is nearly always the same one.
// The kernel wakes an exclusive waiter only if a thread sleeps in epoll_wait on it, hence a thread of its own,
// which only waits: arm() registers the socket from the worker's own thread, so the turn is queued at once.
#pragma once

#include <atomic>
#include <functional>
#include <thread>

namespace covet::net {

class AcceptTurns {
public:
    // `on_turn` runs on the waiting thread once per arm(), when a connection may be waiting. It must only hand
    // over to the worker's loop.
    AcceptTurns(int listen_fd, std::function<void()> on_turn);
    ~AcceptTurns();  // stop()
    AcceptTurns(const AcceptTurns&) = delete;
    AcceptTurns& operator=(const AcceptTurns&) = delete;

    // Joins the socket's queue for the next connection; call again only after on_turn. False (errno set): the
    // socket could not be registered (out of epoll watches or memory), no turn is pending.
    bool arm();
    // Leaves the queue for good (shutdown); no on_turn runs once this returns. Not from on_turn.
    void stop();

private:
    void wait_turns();

    const int listen_fd_;
    int epoll_fd_ = -1;
    int stop_fd_ = -1;  // eventfd: wakes the waiter for stop()
    std::function<void()> on_turn_;
    std::atomic<bool> stopped_{false};
    std::thread waiter_;
};

}  // namespace covet::net
