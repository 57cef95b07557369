// AcceptTurns on a real listening socket shared by two "workers" (two AcceptTurns in one process behave as two
// processes would: each has its own epoll instance on the socket's wait queue).
#include "../../src/net/accept_turns.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

struct Listener {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    Listener() {
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        socklen_t len = sizeof addr;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
        EXPECT_EQ(::listen(fd, 64), 0);
    }
    ~Listener() { ::close(fd); }
    int connect() const {
        const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        EXPECT_EQ(::connect(c, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
        return c;
    }
    bool accept_one() const {
        const int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return false;
        ::close(c);
        return true;
    }
};

// Which worker's turn fired, in order.
struct Turns {
    std::mutex mutex;
    std::condition_variable cv;
    std::vector<int> fired;
    void record(int worker) {
        {
            std::lock_guard lock(mutex);
            fired.push_back(worker);
        }
        cv.notify_all();
    }
    bool wait_for(std::size_t count, std::chrono::milliseconds timeout = 5s) {
        std::unique_lock lock(mutex);
        return cv.wait_for(lock, timeout, [&] { return fired.size() >= count; });
    }
    std::size_t size() {
        std::lock_guard lock(mutex);
        return fired.size();
    }
    int at(std::size_t i) {
        std::lock_guard lock(mutex);
        return fired.at(i);
    }
};

TEST(AcceptTurns, OneConnectionWakesOneWorker) {
    Listener listener;
    Turns turns;
    covet::net::AcceptTurns a(listener.fd, [&] { turns.record(0); });
    covet::net::AcceptTurns b(listener.fd, [&] { turns.record(1); });
    ASSERT_TRUE(a.arm());
    ASSERT_TRUE(b.arm());
    // Until its thread sleeps in epoll_wait, a worker is skipped by the exclusive wake-up and the event stays
    // queued for it as well: let both threads start.
    std::this_thread::sleep_for(50ms);
    const int client = listener.connect();
    ASSERT_TRUE(turns.wait_for(1));
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(turns.size(), 1u) << "both workers woke for one connection (EPOLLEXCLUSIVE not in effect)";
    EXPECT_TRUE(listener.accept_one());
    ::close(client);
}

TEST(AcceptTurns, SequentialConnectionsAlternateBetweenWorkers) {
    Listener listener;
    Turns turns;
    covet::net::AcceptTurns a(listener.fd, [&] { turns.record(0); });
    covet::net::AcceptTurns b(listener.fd, [&] { turns.record(1); });
    covet::net::AcceptTurns* gates[] = {&a, &b};
    ASSERT_TRUE(a.arm());
    ASSERT_TRUE(b.arm());
    // Until its thread sleeps in epoll_wait, a worker is skipped by the exclusive wake-up and the event stays
    // queued for it as well: let both threads start.
    std::this_thread::sleep_for(50ms);
    int taken[2] = {0, 0};
    constexpr int connections = 40;
    std::size_t seen = 0;
    for (int i = 0; i < connections; ++i) {
        const int client = listener.connect();
        ASSERT_TRUE(turns.wait_for(seen + 1)) << "no worker woke for connection " << i;
        // Every turn that fired is taken and re-armed, as a worker's loop does: to the back of the queue. (A
        // waiter not yet back in epoll_wait when a connection comes is skipped by the exclusive wake-up and woken
        // as well, so on a busy machine a turn now and then finds nothing to accept.)
        const std::size_t fired = turns.size();
        for (; seen < fired; ++seen) {
            const int worker = turns.at(seen);
            if (listener.accept_one()) ++taken[worker];
            ASSERT_TRUE(gates[worker]->arm());
        }
        ::close(client);
        // Let the re-armed worker's thread get back into epoll_wait before the next connection: one that is not
        // there yet is skipped by the exclusive wake-up, which on a loaded machine (CI beside a build) skewed the
        // count below the bound (10 of 40) with no fault in the turns.
        std::this_thread::sleep_for(2ms);
    }
    // Turns: about half each. Without them (plain epoll), the worker scheduled first takes nearly every one; the
    // bound (a fifth) leaves room for a busy machine's scheduling and still tells the two apart.
    EXPECT_GE(taken[0], 8) << taken[0] << " of " << connections;
    EXPECT_GE(taken[1], 8) << taken[1] << " of " << connections;
    EXPECT_EQ(taken[0] + taken[1], connections);
}

TEST(AcceptTurns, AConnectionAlreadyQueuedFiresAtArm) {
    Listener listener;
    const int client = listener.connect();
    Turns turns;
    covet::net::AcceptTurns a(listener.fd, [&] { turns.record(0); });
    ASSERT_TRUE(a.arm());
    EXPECT_TRUE(turns.wait_for(1));
    EXPECT_TRUE(listener.accept_one());
    ::close(client);
}

TEST(AcceptTurns, StopEndsAWaitingTurnWithoutFiring) {
    Listener listener;
    Turns turns;
    auto a = std::make_unique<covet::net::AcceptTurns>(listener.fd, [&] { turns.record(0); });
    ASSERT_TRUE(a->arm());
    std::this_thread::sleep_for(20ms);
    const auto start = std::chrono::steady_clock::now();
    a->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
    const int client = listener.connect();  // after stop: nobody takes it
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(turns.size(), 0u);
    EXPECT_TRUE(a->arm());  // ignored once stopped
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(turns.size(), 0u);
    a.reset();
    ::close(client);
}

}  // namespace
