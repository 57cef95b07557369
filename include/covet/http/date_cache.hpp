// The IMF-fixdate for the Date header, formatted at most once per second per worker.
#pragma once

#include <ctime>
#include <string_view>

namespace covet::http {

class DateCache {
public:
    // Returns e.g. "Sun, 06 Nov 1994 08:49:37 GMT". Cheap: one coarse clock read, reformat on a new second.
    std::string_view get() noexcept {
        timespec ts{};
        clock_gettime(CLOCK_REALTIME_COARSE, &ts);
        if (ts.tv_sec != second_) format(ts.tv_sec);
        return {buf_, len_};
    }

    // The cache of the worker running on the calling thread: net::WorkerContext::current().date (a
    // per-thread stand-in on threads that run no worker). The name is kept from when it was a thread_local
    // of its own, so that the protocols' call sites read the same. Defined in src/net/worker_context.cpp.
    static DateCache& thread_local_instance() noexcept;

private:
    void format(std::time_t t) noexcept {
        std::tm tm{};
        gmtime_r(&t, &tm);
        len_ = std::strftime(buf_, sizeof buf_, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        second_ = t;
    }
    char buf_[40]{};
    std::size_t len_ = 0;
    std::time_t second_ = -1;
};

}  // namespace covet::http
