#include "covet/io/timer_queue.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
using covet::io::Clock;
using covet::io::TimerQueue;

TEST(TimerQueue, RunsOnlyWhatIsDueEarliestFirstAndTiesInOrderPosted) {
    TimerQueue q;
    const Clock::time_point t0{};
    std::string ran;
    q.add(t0 + 3s, [&] { ran += 'c'; });
    q.add(t0 + 1s, [&] { ran += 'a'; });
    q.add(t0 + 2s, [&] { ran += 'b'; });
    q.add(t0 + 2s, [&] { ran += 'B'; });
    q.run_due(t0 + 500ms);
    EXPECT_EQ(ran, "");
    q.run_due(t0 + 2s);
    EXPECT_EQ(ran, "abB");
    EXPECT_EQ(q.size(), 1u);
    q.run_due(t0 + 1h);
    EXPECT_EQ(ran, "abBc");
    EXPECT_EQ(q.size(), 0u);
}

TEST(TimerQueue, ATaskMayAddAndCancelOthers) {
    TimerQueue q;
    const Clock::time_point t0{};
    int runs = 0;
    covet::io::TimerId doomed;
    q.add(t0 + 1s, [&] {
        ++runs;
        q.add(t0 + 1s, [&] { ++runs; });  // due already, but runs on the next call: no task can hold the loop
        q.add(t0 + 5s, [&] { runs += 10; });
        q.cancel(doomed);
    });
    doomed = q.add(t0 + 1s, [&] { runs += 100; });
    q.run_due(t0 + 1s);
    EXPECT_EQ(runs, 1);
    q.run_due(t0 + 1s);
    EXPECT_EQ(runs, 2);
    q.run_due(t0 + 5s);
    EXPECT_EQ(runs, 12);
}

TEST(TimerQueue, ATaskThatThrowsIsDroppedAndTheOthersRun) {
    TimerQueue q;
    const Clock::time_point t0{};
    int runs = 0;
    q.add(t0 + 1s, [] { throw std::runtime_error("a task that throws"); });
    q.add(t0 + 1s, [&] { ++runs; });
    q.run_due(t0 + 1s);
    EXPECT_EQ(runs, 1);
    EXPECT_EQ(q.size(), 0u);
}

TEST(TimerQueue, ACancelledTaskNeverRunsAndItsCapturesGoAtOnce) {
    TimerQueue q;
    const Clock::time_point t0{};
    auto held = std::make_shared<int>(7);
    std::weak_ptr<int> watch = held;
    int runs = 0;
    const covet::io::TimerId id = q.add(t0 + 20s, [held = std::move(held), &runs] { runs += *held; });
    q.add(t0 + 20s, [&] { ++runs; });
    EXPECT_FALSE(watch.expired());
    q.cancel(id);
    EXPECT_TRUE(watch.expired());  // freed now, not at t0 + 20 s
    EXPECT_EQ(q.size(), 1u);
    q.cancel(id);  // again, or after it ran: nothing happens
    q.run_due(t0 + 1min);
    EXPECT_EQ(runs, 1);
    q.cancel(id);
    EXPECT_EQ(q.size(), 0u);
}

TEST(TimerQueue, AReservedIdFilesItsTaskInOrder) {
    TimerQueue q;
    const Clock::time_point t0{};
    std::string ran;
    const covet::io::TimerId first = q.reserve(t0 + 1s);  // as post_at does off the loop's thread
    q.add(t0 + 1s, [&] { ran += 'b'; });
    q.add(first, [&] { ran += 'a'; });
    q.run_due(t0 + 1s);
    EXPECT_EQ(ran, "ab");
}
