// The part of a reactor loop that code above the io layer may use from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace covet::io {

using Clock = std::chrono::steady_clock;

// A task of Loop::post_at: when it is due, and the order it was posted in.
struct TimerId {
    Clock::time_point when{};
    std::uint64_t seq = 0;  // 0: none
};

class Loop {
public:
    // Runs `task` on the loop's thread, soon. Thread-safe; never runs the task inline.
    virtual void post(std::function<void()> task) = 0;
    // Runs `task` on the loop's thread once `when` has passed. The loop's sweep runs it, so it may run up to a
    // sweep interval late (250 ms). Thread-safe; never runs the task inline.
    virtual TimerId post_at(Clock::time_point when, std::function<void()> task) = 0;
    // Drops a post_at task that has not run yet, freeing what it captured now rather than when it falls due; a
    // no-op once it ran. Thread-safe; from another thread it takes effect on the loop's next turn, so the task
    // may still run meanwhile, and so may a task posted from another thread and not filed yet when the cancel
    // came (a task that may outlive what it acts on holds a weak reference).
    virtual void cancel(TimerId id) = 0;
    // True when called from the loop's own thread.
    virtual bool on_loop_thread() const noexcept = 0;
    // Coarse time, refreshed once per loop turn.
    virtual Clock::time_point now() const noexcept = 0;

protected:
    ~Loop() = default;
};

}  // namespace covet::io
