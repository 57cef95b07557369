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
    // True when called from the loop's own thread.
    virtual bool on_loop_thread() const noexcept = 0;
    // Coarse time, refreshed once per loop turn.
    virtual Clock::time_point now() const noexcept = 0;

protected:
    ~Loop() = default;
};

}  // namespace covet::io
