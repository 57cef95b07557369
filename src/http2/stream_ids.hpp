// Client stream ids seen on a connection, to catch a HEADERS frame that opens a stream below the highest
// one already opened (RFC 9113 §5.1.1: a PROTOCOL_ERROR). nghttp2 1.52 cannot tell such a never-opened
// id from a closed stream and ignores the frame, so we remember the ids the client skipped.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace covet::http2 {

class StreamIds {
public:
    // A request HEADERS opened `id`.
    void opened(std::int32_t id) noexcept {
        if (id <= highest_) return;
        if (id > highest_ + 2 && gaps_.size() < max_gaps) gaps_.emplace_back(highest_ + 2, id - 2);
        highest_ = id;
    }
    // Whether HEADERS on `id` would open a stream the client skipped earlier (never opened, now too low).
    bool skipped(std::int32_t id) const noexcept {
        if (id >= highest_) return false;
        for (const auto& [lo, hi] : gaps_)
            if (id >= lo && id <= hi) return true;
        return false;
    }

private:
    static constexpr std::size_t max_gaps = 64;  // clients open ids in order; a few gaps at most
    std::int32_t highest_ = -1;                  // -1: gaps start at stream 1
    std::vector<std::pair<std::int32_t, std::int32_t>> gaps_;
};

}  // namespace covet::http2
