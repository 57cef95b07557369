// The IMF-fixdate for the Date header, formatted at most once per second per thread.
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

    static DateCache& thread_local_instance() noexcept {
        thread_local DateCache cache;
        return cache;
    }

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
