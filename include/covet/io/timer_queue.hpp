// Tasks due at a point in time, run by the loop's sweep (io::Loop::post_at), earliest first; tasks due at the same
// time run in the order their ids were reserved. A task can be cancelled until it runs, which frees what it
// captured at once (a call that ends long before its deadline must not keep memory until then).
// reserve() is thread-safe; add, cancel and run_due belong to one thread (the loop's).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <utility>

#include "covet/io/loop.hpp"

namespace covet::io {

class TimerQueue {
public:
    // An id for a task due at `when` (any thread); add() files the task under it.
    TimerId reserve(Clock::time_point when) noexcept { return {when, next_.fetch_add(1, std::memory_order_relaxed)}; }
    TimerId add(Clock::time_point when, std::function<void()> task) {
        const TimerId id = reserve(when);
        add(id, std::move(task));
        return id;
    }
    void add(TimerId id, std::function<void()> task) { tasks_.emplace(Key{id.when, id.seq}, std::move(task)); }
    // Drops the task if it has not run (else nothing happens).
    void cancel(TimerId id) { tasks_.erase(Key{id.when, id.seq}); }

    // Runs every task due at `now`, earliest first. A task may add or cancel others (one added due already runs
    // in this call too).
    void run_due(Clock::time_point now) {
        while (!tasks_.empty() && tasks_.begin()->first.first <= now) {
            std::function<void()> task = std::move(tasks_.begin()->second);
            tasks_.erase(tasks_.begin());
            task();
        }
    }

    std::size_t size() const noexcept { return tasks_.size(); }

private:
    using Key = std::pair<Clock::time_point, std::uint64_t>;
    std::map<Key, std::function<void()>> tasks_;
    std::atomic<std::uint64_t> next_{1};
};

}  // namespace covet::io
