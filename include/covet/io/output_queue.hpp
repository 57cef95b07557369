// Outgoing bytes of one connection, ready for one vectored send.
//
// Two generations of segments: `filling` takes appends while `sending` is owned by the kernel (an io_uring
// sendmsg in flight may still read it). Small writes coalesce into the last filling segment; large bodies are
// moved in whole and sent by reference (no copy). Segment strings are recycled, so a connection in steady
// state allocates nothing; large ones go back to the thread's LargeBuffers pool (large_buffers.hpp).
//
// A file segment (FileRegion: an owned descriptor, offset, length) queues a file body in order after the bytes
// before it. prepare_send() stops in front of it; the backend then sends it with sendfile (front_file()),
// and a transport that must see the bytes (TLS) reads it in bounded pieces.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "covet/io/file_region.hpp"
#include "covet/io/large_buffers.hpp"

namespace covet::io {

class OutputQueue {
public:
    // Bodies at least this large are moved in as their own segment instead of being copied.
    static constexpr std::size_t own_segment_threshold = std::size_t{16} * 1024;
    static constexpr std::size_t max_iovecs = 64;

    void append(std::string_view bytes) {
        if (bytes.empty()) return;
        if (filling_.empty() || filling_.back().sealed) filling_.emplace_back(take_spare(), false);
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
        filling_.emplace_back(std::move(bytes), true);
    }

    // Queues a file region (taking its descriptor), sent after everything appended before it. Empty: dropped.
    void append(FileRegion&& file) {
        if (file.length() == 0) return;
        filling_bytes_ += file.length();
        filling_.emplace_back(std::move(file));
    }

    // Direct access to the coalescing tail, for serializers that write in place (no temporary strings).
    std::string& tail() {
        if (filling_.empty() || filling_.back().sealed) filling_.emplace_back(take_spare(), false);
        return filling_.back().bytes;
    }
    void note_tail_growth(std::size_t n) noexcept { filling_bytes_ += n; }

    std::size_t size() const noexcept { return filling_bytes_ + sending_bytes_ - sent_offset_; }
    bool empty() const noexcept { return size() == 0; }
    bool sending() const noexcept { return !sending_.empty(); }

    // Moves everything appended so far into the sending generation (only when nothing is in flight) and
    // describes it as iovecs, up to the first file segment. Returns how many iovecs were filled (0: nothing to
    // send, or a file segment is next: see front_file()).
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
            if (sending_[i].file) break;
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

    // The unsent part of the file segment that is next to send (after prepare_send() returned 0).
    struct FileChunk {
        const FileRegion* file = nullptr;
        std::uint64_t at = 0;      // position in the region (0 = its first byte)
        std::uint64_t length = 0;  // bytes left
        int fd() const noexcept { return file->fd(); }
        std::uint64_t file_offset() const noexcept { return file->offset() + at; }
    };
    FileChunk front_file() const noexcept {
        if (first_ >= sending_.size() || !sending_[first_].file) return {};
        const FileRegion& f = sending_[first_].file;
        return {&f, sent_offset_, f.length() - sent_offset_};
    }
    bool has_file() const noexcept {
        for (const Segment& s : filling_)
            if (s.file) return true;
        for (std::size_t i = first_; i < sending_.size(); ++i)
            if (sending_[i].file) return true;
        return false;
    }

    // The kernel wrote `n` bytes of the sending generation.
    void consume(std::size_t n) {
        sent_offset_ += n;
        while (first_ < sending_.size() && sent_offset_ >= sending_[first_].size()) {
            const std::size_t done = sending_[first_].size();
            sent_offset_ -= done;
            sending_bytes_ -= done;
            sending_[first_].file.reset();  // closes the file as soon as it is sent
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
        Segment(std::string b, bool s) noexcept : bytes(std::move(b)), sealed(s) {}
        explicit Segment(FileRegion&& f) noexcept : sealed(true), file(std::move(f)) {}
        std::string bytes;
        bool sealed;      // moved-in buffer or file: never appended to
        FileRegion file;  // a file segment (then `bytes` is empty)
        std::size_t size() const noexcept { return file ? static_cast<std::size_t>(file.length()) : bytes.size(); }
    };
    static constexpr std::size_t spare_capacity_limit = std::size_t{64} * 1024;

    std::string take_spare() {
        if (spare_.empty()) return {};
        std::string s = std::move(spare_.back());
        spare_.pop_back();
        return s;
    }
    void recycle(std::string&& s) {
        if (s.capacity() > spare_capacity_limit) return LargeBuffers::give(std::move(s));
        if (spare_.size() >= 4) return;  // let extra buffers go
        s.clear();
        spare_.push_back(std::move(s));
    }

    std::vector<Segment> filling_, sending_;
    std::vector<std::string> spare_;
    std::size_t filling_bytes_ = 0, sending_bytes_ = 0, sent_offset_ = 0, first_ = 0;
};

}  // namespace covet::io
