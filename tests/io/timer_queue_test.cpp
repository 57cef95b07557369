#include "covet/io/timer_queue.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

using namespace std::chrono_literals;
using covet::io::Clock;
using covet::io::TimerQueue;

TEST(TimerQueue, RunsOnlyWhatIsDueEarliestFirstAndTiesInOrderAdded) {
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

TEST(TimerQueue, ATaskMayAddAnother) {
    TimerQueue q;
    const Clock::time_point t0{};
    int runs = 0;
    q.add(t0 + 1s, [&] {
        ++runs;
        q.add(t0 + 1s, [&] { ++runs; });  // due already: runs in the same call
        q.add(t0 + 5s, [&] { runs += 10; });
    });
    q.run_due(t0 + 1s);
    EXPECT_EQ(runs, 2);
    q.run_due(t0 + 5s);
    EXPECT_EQ(runs, 12);
}
