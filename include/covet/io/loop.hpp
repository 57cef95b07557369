// The part of a reactor loop that code above the io layer may use from any thread.
#pragma once

#include <chrono>
#include <functional>

namespace covet::io {

using Clock = std::chrono::steady_clock;

class Loop {
public:
    // Runs `task` on the loop's thread, soon. Thread-safe; never runs the task inline.
    virtual void post(std::function<void()> task) = 0;
    // Runs `task` on the loop's thread once `when` has passed. The loop's sweep runs it, so it may run up to a
    // sweep interval late (250 ms); there is no cancelling: a task that may outlive what it acts on holds a
    // weak reference. Thread-safe; never runs the task inline.
    virtual void post_at(Clock::time_point when, std::function<void()> task) = 0;
    // True when called from the loop's own thread.
    virtual bool on_loop_thread() const noexcept = 0;
    // Coarse time, refreshed once per loop turn.
    virtual Clock::time_point now() const noexcept = 0;

protected:
    ~Loop() = default;
};

}  // namespace covet::io
