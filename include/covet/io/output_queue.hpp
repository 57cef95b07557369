// Outgoing bytes of one connection, ready for one vectored send.
//
// Two generations of segments: `filling` takes appends while `sending` is owned by the kernel (an io_uring
// sendmsg in flight may still read it). Small writes coalesce into the last filling segment; large bodies are
// moved in whole and sent by reference (no copy). Segment strings are recycled, so a connection in steady
// state allocates nothing.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace covet::io {

class OutputQueue {
public:
    // Bodies at least this large are moved in as their own segment instead of being copied.
    static constexpr std::size_t own_segment_threshold = std::size_t{16} * 1024;
    static constexpr std::size_t max_iovecs = 64;

    void append(std::string_view bytes) {
        if (bytes.empty()) return;
        if (filling_.empty() || filling_.back().sealed) filling_.push_back(Segment{take_spare(), false});
        filling_.back().bytes.append(bytes);
        filling_bytes_ += bytes.size();
    }

    // Takes ownership of a (large) buffer; small ones are copied so they coalesce.
    void append(std::string&& bytes) {
        if (bytes.size() < own_segment_threshold) {
            append(std::string_view(bytes));
            return;
        }
        filling_bytes_ += bytes.size();
        filling_.push_back(Segment{std::move(bytes), true});
    }

    // Direct access to the coalescing tail, for serializers that write in place (no temporary strings).
    std::string& tail() {
        if (filling_.empty() || filling_.back().sealed) filling_.push_back(Segment{take_spare(), false});
        return filling_.back().bytes;
    }
    void note_tail_growth(std::size_t n) noexcept { filling_bytes_ += n; }

    std::size_t size() const noexcept { return filling_bytes_ + sending_bytes_ - sent_offset_; }
    bool empty() const noexcept { return size() == 0; }
    bool sending() const noexcept { return !sending_.empty(); }

    // Moves everything appended so far into the sending generation (only when nothing is in flight) and
    // describes it as iovecs. Returns how many iovecs were filled (0: nothing to send).
    std::size_t prepare_send(std::span<iovec> out) {
        if (sending_.empty()) {
            if (filling_bytes_ == 0) {  // nothing, or only unwritten tail() segments: nothing goes in flight
                for (Segment& s : filling_) recycle(std::move(s.bytes));
                filling_.clear();
                return 0;
            }
            sending_.swap(filling_);
            sending_bytes_ = filling_bytes_;
            filling_bytes_ = 0;
            sent_offset_ = 0;
            first_ = 0;
        }
        std::size_t n = 0, skip = sent_offset_;
        for (std::size_t i = first_; i < sending_.size() && n < out.size(); ++i) {
            std::string& s = sending_[i].bytes;
            if (skip >= s.size()) {
                skip -= s.size();
                continue;
            }
            out[n].iov_base = s.data() + skip;
            out[n].iov_len = s.size() - skip;
            skip = 0;
            ++n;
        }
        return n;
    }

    // The kernel wrote `n` bytes of the sending generation.
    void consume(std::size_t n) {
        sent_offset_ += n;
        while (first_ < sending_.size() && sent_offset_ >= sending_[first_].bytes.size()) {
            sent_offset_ -= sending_[first_].bytes.size();
            sending_bytes_ -= sending_[first_].bytes.size();
            ++first_;
        }
        if (first_ == sending_.size()) {
            for (Segment& s : sending_) recycle(std::move(s.bytes));
            sending_.clear();
            sending_bytes_ = sent_offset_ = first_ = 0;
        }
    }

    void clear() {
        for (Segment& s : filling_) recycle(std::move(s.bytes));
        for (Segment& s : sending_) recycle(std::move(s.bytes));
        filling_.clear();
        sending_.clear();
        filling_bytes_ = sending_bytes_ = sent_offset_ = first_ = 0;
    }

private:
    struct Segment {
        std::string bytes;
        bool sealed;  // moved-in buffer: never appended to
    };
    static constexpr std::size_t spare_capacity_limit = std::size_t{64} * 1024;

    std::string take_spare() {
        if (spare_.empty()) return {};
        std::string s = std::move(spare_.back());
        spare_.pop_back();
        return s;
    }
    void recycle(std::string&& s) {
        if (s.capacity() > spare_capacity_limit || spare_.size() >= 4) return;  // let big or extra buffers go
        s.clear();
        spare_.push_back(std::move(s));
    }

    std::vector<Segment> filling_, sending_;
    std::vector<std::string> spare_;
    std::size_t filling_bytes_ = 0, sending_bytes_ = 0, sent_offset_ = 0, first_ = 0;
};

}  // namespace covet::io
