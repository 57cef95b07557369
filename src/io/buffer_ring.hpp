// A provided-buffer ring for multishot recv, registered by hand: liburing 2.3 lacks
// io_uring_setup_buf_ring, so the ring memory is mmap'ed here and handed to io_uring_register_buf_ring.
#pragma once

#include <liburing.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "covet/io/errno_text.hpp"

namespace covet::io {

class BufferRing {
public:
    BufferRing(io_uring& ring, std::uint16_t group, unsigned entries, unsigned buffer_size)
        : ring_(ring), group_(group), entries_(entries), buffer_size_(buffer_size) {
        ring_bytes_ = entries * sizeof(io_uring_buf);
        void* mem = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        if (mem == MAP_FAILED) throw std::runtime_error("buffer ring: mmap failed");
        br_ = static_cast<io_uring_buf_ring*>(mem);
        io_uring_buf_ring_init(br_);
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<std::uint64_t>(mem);
        reg.ring_entries = entries;
        reg.bgid = group;
        if (int rc = io_uring_register_buf_ring(&ring_, &reg, 0); rc < 0) {
            munmap(mem, ring_bytes_);
            throw std::runtime_error(std::string("io_uring_register_buf_ring: ") + errno_text(-rc));
        }
        // Its own mapping (page-aligned): pages are touched only when used, and release_pages() can drop them.
        data_bytes_ = static_cast<std::size_t>(entries) * buffer_size;
        void* data = mmap(nullptr, data_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        if (data == MAP_FAILED) {
            io_uring_unregister_buf_ring(&ring_, group_);
            munmap(mem, ring_bytes_);
            throw std::runtime_error("buffer ring: mmap of the buffers failed");
        }
        data_ = static_cast<char*>(data);
        for (unsigned i = 0; i < entries; ++i)
            io_uring_buf_ring_add(br_, buffer(i), buffer_size, static_cast<unsigned short>(i),
                                  io_uring_buf_ring_mask(entries), static_cast<int>(i));
        io_uring_buf_ring_advance(br_, static_cast<int>(entries));
    }
    ~BufferRing() {
        io_uring_unregister_buf_ring(&ring_, group_);
        munmap(data_, data_bytes_);
        munmap(br_, ring_bytes_);
    }
    BufferRing(const BufferRing&) = delete;
    BufferRing& operator=(const BufferRing&) = delete;

    char* buffer(unsigned id) noexcept { return data_ + static_cast<std::size_t>(id) * buffer_size_; }
    // Hands a consumed buffer back to the kernel.
    void recycle(unsigned id) noexcept {
        io_uring_buf_ring_add(br_, buffer(id), buffer_size_, static_cast<unsigned short>(id),
                              io_uring_buf_ring_mask(entries_), 0);
        io_uring_buf_ring_advance(br_, 1);
        used_ = true;
    }
    // Whether a buffer was used since the last release_pages().
    bool used() const noexcept { return used_; }
    // Returns the buffers' pages to the kernel (they read as zeros and are faulted in again when next used). The
    // kernel picks buffers round-robin, so a worker that served a few thousand reads keeps all of them resident
    // (8 MiB) until this runs. Only when no completion waits to be handled (its buffer would read as zeros):
    // the kernel fills buffers in this thread's task work, which cannot run during this call.
    void release_pages() noexcept {
        madvise(data_, data_bytes_, MADV_DONTNEED);
        used_ = false;
    }
    std::uint16_t group() const noexcept { return group_; }

private:
    io_uring& ring_;
    std::uint16_t group_;
    unsigned entries_, buffer_size_;
    std::size_t ring_bytes_ = 0;
    io_uring_buf_ring* br_ = nullptr;
    char* data_ = nullptr;
    std::size_t data_bytes_ = 0;
    bool used_ = false;
};

}  // namespace covet::io
