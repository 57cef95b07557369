// Tasks due at a point in time, run by the loop's sweep (io::Loop::post_at): a binary heap, earliest first;
// tasks due at the same time run in the order they were added. One thread only (the loop's).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "covet/io/loop.hpp"

namespace covet::io {

class TimerQueue {
public:
    void add(Clock::time_point when, std::function<void()> task) {
        heap_.push_back({when, next_++, std::move(task)});
        std::push_heap(heap_.begin(), heap_.end(), later);
    }

    // Runs every task due at `now`, earliest first. A task may add others (a task added due already runs in
    // this call too).
    void run_due(Clock::time_point now) {
        while (!heap_.empty() && heap_.front().when <= now) {
            std::pop_heap(heap_.begin(), heap_.end(), later);
            std::function<void()> task = std::move(heap_.back().task);
            heap_.pop_back();
            task();
        }
    }

    std::size_t size() const noexcept { return heap_.size(); }

private:
    struct Entry {
        Clock::time_point when;
        std::uint64_t seq;
        std::function<void()> task;
    };
    // std::push_heap keeps the greatest first: "greater" here is earlier.
    static bool later(const Entry& a, const Entry& b) noexcept {
        return a.when != b.when ? a.when > b.when : a.seq > b.seq;
    }

    std::vector<Entry> heap_;
    std::uint64_t next_ = 0;
};

}  // namespace covet::io
