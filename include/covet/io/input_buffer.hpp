// Bytes read from a connection and not yet consumed, taken from the front (an HTTP/1.1 connection's pipelined
// requests waiting their turn). Consuming advances a read position instead of erasing the front each time:
// erasing moved every byte behind it, once per request, so 1 MiB of small pipelined requests answered one at a
// time (any handler that completes later, every Python one) cost gigabytes of memmove. The consumed front is
// dropped once it is at least half of what is held: each byte moves at most once on average.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

namespace covet::io {

class InputBuffer {
public:
    // What is unread. Valid until the next append, assign or consume.
    std::string_view view() const noexcept { return std::string_view(data_).substr(pos_); }
    std::size_t size() const noexcept { return data_.size() - pos_; }
    bool empty() const noexcept { return pos_ == data_.size(); }

    void append(std::string_view bytes) { data_.append(bytes); }
    void assign(std::string_view bytes) {
        data_.assign(bytes);
        pos_ = 0;
    }
    void clear() noexcept {
        data_.clear();
        pos_ = 0;
    }
    void consume(std::size_t n) noexcept {
        pos_ += std::min(n, size());
        if (pos_ == data_.size()) {
            clear();
        } else if (pos_ >= data_.size() - pos_) {  // the consumed front is at least what is left
            data_.erase(0, pos_);
            pos_ = 0;
        }
    }

private:
    std::string data_;
    std::size_t pos_ = 0;  // bytes of data_ already consumed
};

}  // namespace covet::io
