// What belongs to one worker and is reached from code that has no worker at hand: its loop, the
// connection home ConnectionRef checks against, the Date header cache, the WebSocket hub, and its
// counters. The worker owns the object; the thread running the worker's loop has it installed.
//
// Naming. In the C++ engine a *worker* is one reactor thread: net::Worker (src/net/worker.hpp), one event
// loop with its own listener handle, connection table and timers; a net::Server runs
// ServerConfig::threads of them (or one, driven by the caller's loop, in embedded mode). It is never a
// process: the processes that `covet run --workers N` and `app.run(workers=N)` start are *worker
// processes*, each running one Server (with its own worker threads) under the supervisor.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "covet/http/date_cache.hpp"
#include "covet/io/loop.hpp"

namespace covet::ws {
class Hub;
}

namespace covet::net {

class ConnectionHome;

// Per-worker counters: the home of per-worker metrics. Written on the worker's thread only (a relaxed load
// and store, no locked read-modify-write on the hot path); read from any thread.
class WorkerStats {
public:
    struct Snapshot {
        std::uint64_t accepted = 0;  // connections set up since the worker started
        std::uint64_t closed = 0;    // of those, ended (closed, or lingering before the close)
        std::uint64_t active = 0;    // accepted - closed
        std::uint64_t requests = 0;  // requests counted by the protocols (count_request)
    };

    void count_accepted() noexcept { bump(accepted_); }
    void count_closed() noexcept { bump(closed_); }
    void count_request() noexcept { bump(requests_); }

    Snapshot snapshot() const noexcept {
        Snapshot s;
        s.requests = requests_.load(std::memory_order_relaxed);
        s.closed = closed_.load(std::memory_order_acquire);  // first: accepted read later is never smaller
        s.accepted = accepted_.load(std::memory_order_acquire);
        s.active = s.accepted - s.closed;
        return s;
    }

private:
    static void bump(std::atomic<std::uint64_t>& counter) noexcept {
        counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
    std::atomic<std::uint64_t> accepted_{0}, closed_{0}, requests_{0};
};

class WorkerContext {
public:
    // A worker's context: `loop` and `home` are the worker itself.
    WorkerContext(io::Loop& loop, ConnectionHome& home);
    // The stand-in of a thread that runs no worker (tests, tools): no loop, no home until one is set.
    WorkerContext();
    ~WorkerContext();
    WorkerContext(const WorkerContext&) = delete;
    WorkerContext& operator=(const WorkerContext&) = delete;

    // The context of the worker whose loop runs on the calling thread; on a thread that runs none, that
    // thread's stand-in, so that the Date cache and the hub still work there.
    static WorkerContext& current() noexcept {
        WorkerContext* c = installed_slot();
        return c ? *c : thread_stand_in();
    }
    // The worker context installed on the calling thread, or null.
    static WorkerContext* installed() noexcept { return installed_slot(); }
    // A worker installs its context on the thread that runs its loop (an embedded worker on every poll,
    // so the last one polled is current) and removes it when destroyed there.
    static void install(WorkerContext* context) noexcept { installed_slot() = context; }

    io::Loop* loop = nullptr;
    // The connection home of this thread: see ConnectionHome::current(). Test drivers set it on the stand-in.
    ConnectionHome* home = nullptr;
    http::DateCache date;
    WorkerStats stats;
    // The WebSocket hub, created on first use by ws::Hub::this_worker and bound to `hub_loop` (on the
    // stand-in a new loop on the same thread gets a new hub).
    std::unique_ptr<ws::Hub> hub;
    io::Loop* hub_loop = nullptr;

private:
    // The one thread_local of the worker layer: which worker's loop runs on this thread.
    static WorkerContext*& installed_slot() noexcept {
        thread_local WorkerContext* context = nullptr;
        return context;
    }
    static WorkerContext& thread_stand_in() noexcept;
};

}  // namespace covet::net
