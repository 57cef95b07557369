// Recycles a multiplexed protocol's per-stream objects (HTTP/2, HTTP/3) with their buffers' capacity, so a busy
// connection stops allocating once its streams have grown. The stream type provides `reset(id)` (made like new for
// that stream) and `retire(max_kept_bytes)` (drops what it must not keep: the response, a reader, buffers bigger
// than the limit). A bounded number of spares is kept: an idle connection, or worker, holds little.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace covet::detail {

template <class Stream>
class StreamPool {
public:
    static constexpr std::size_t max_kept_bytes = std::size_t{64} * 1024;

    explicit StreamPool(std::size_t max_spare = 16) : max_spare_(max_spare) {}

    template <class Id>
    std::unique_ptr<Stream> acquire(Id id) {
        std::unique_ptr<Stream> s;
        if (spare_.empty()) {
            s = std::make_unique<Stream>();
        } else {
            s = std::move(spare_.back());
            spare_.pop_back();
        }
        s->reset(id);
        return s;
    }
    void release(std::unique_ptr<Stream> s) {
        if (spare_.size() >= max_spare_) return;
        s->retire(max_kept_bytes);
        spare_.push_back(std::move(s));
    }

private:
    std::size_t max_spare_;
    std::vector<std::unique_ptr<Stream>> spare_;
};

}  // namespace covet::detail
