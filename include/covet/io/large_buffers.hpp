// A small per-thread pool of large body buffers (over 64 KiB), so that a thread sending a large response per
// request (a 1 MB Python `bytes` body) reuses pages that are already mapped instead of allocating a fresh
// buffer each time: glibc serves such sizes from the heap top or mmap and gives them back when freed, so
// every response paid page faults, page clearing and a trim (docs/benchmarks.md, "Static files").
//
// OutputQueue gives its sent segments back here; the Python bridge takes a buffer for a response body.
// Buffers go back to whichever thread frees them (with the engine on its own threads the reactor thread
// collects them and the Python thread does not see them: no reuse there, and no cross-thread locking).
// Bounded: per thread at most `max_buffers` buffers, each at most `max_capacity` bytes, `max_kept_bytes` in all.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace covet::io {

class LargeBuffers {
public:
    static constexpr std::size_t min_capacity = std::size_t{64} * 1024;
    static constexpr std::size_t max_capacity = std::size_t{8} * 1024 * 1024;
    static constexpr std::size_t max_buffers = 16;
    static constexpr std::size_t max_kept_bytes = std::size_t{16} * 1024 * 1024;

    // An empty string whose capacity is at least `size` (a kept one when any is large enough).
    static std::string take(std::size_t size) {
        Pool& p = pool();
        std::vector<std::string>& pool = p.buffers;
        for (std::size_t i = pool.size(); i-- > 0;) {
            if (pool[i].capacity() < size) continue;
            p.bytes -= pool[i].capacity();
            std::string s = std::move(pool[i]);
            pool[i] = std::move(pool.back());
            pool.pop_back();
            return s;
        }
        std::string s;
        s.reserve(size);
        return s;
    }

    // Keeps `s` for reuse if it is large, not too large, and the pool has room; else lets it go.
    static void give(std::string&& s) noexcept {
        if (s.capacity() < min_capacity || s.capacity() > max_capacity) return;
        Pool& p = pool();
        if (p.buffers.size() >= max_buffers || p.bytes + s.capacity() > max_kept_bytes) return;
        s.clear();
        const std::size_t capacity = s.capacity();
        try {
            p.buffers.push_back(std::move(s));
            p.bytes += capacity;
        } catch (...) {  // no room for the pointer: the buffer is simply freed
        }
    }

    static std::size_t kept_count() noexcept { return pool().buffers.size(); }

private:
    struct Pool {
        std::vector<std::string> buffers;
        std::size_t bytes = 0;  // their capacities
    };
    static Pool& pool() noexcept {
        thread_local Pool p;
        return p;
    }
};

}  // namespace covet::io
