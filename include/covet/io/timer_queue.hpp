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
#include <vector>

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

    // Runs every task due at `now` that was filed before this call, earliest first (one a task adds runs on a
    // later call, so a task that files itself again cannot keep the loop here). A task may cancel others. Tasks
    // must not throw: one that does is dropped, so that the loop goes on.
    void run_due(Clock::time_point now) {
        due_.clear();
        for (auto it = tasks_.begin(); it != tasks_.end() && it->first.first <= now;) {
            due_.push_back(it->first);
            ++it;
        }
        for (const Key& key : due_) {
            const auto it = tasks_.find(key);
            if (it == tasks_.end()) continue;  // cancelled by an earlier task of this call
            std::function<void()> task = std::move(it->second);
            tasks_.erase(it);
            try {
                task();
            } catch (...) {  // NOLINT(bugprone-empty-catch): documented above; the loop must survive its tasks
            }
        }
    }

    std::size_t size() const noexcept { return tasks_.size(); }

private:
    using Key = std::pair<Clock::time_point, std::uint64_t>;
    std::map<Key, std::function<void()>> tasks_;
    std::vector<Key> due_;  // run_due's list, kept for its capacity
    std::atomic<std::uint64_t> next_{1};
};

}  // namespace covet::io
