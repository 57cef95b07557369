// covet::trace::Tracer: the sampler, the id source and the finished spans of one app. Each worker thread
// pushes its sampled spans into its own bounded queue (registered on first use; the lock it takes is shared
// only with the drain, so it is uncontended); when the queue is full the span is dropped and counted. The
// exporter (covet.observability in Python, or any thread) calls drain() off the hot path.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "covet/trace/sampler.hpp"
#include "covet/trace/span.hpp"

namespace covet::trace {

struct TracerOptions {
    Sampler sampler;
    std::size_t queue_capacity = 2048;  // finished spans kept per worker between drains
};

class Tracer {
public:
    explicit Tracer(TracerOptions options = {});
    Tracer(const Tracer&) = delete;
    Tracer& operator=(const Tracer&) = delete;

    const Sampler& sampler() const noexcept { return options_.sampler; }
    void set_sampler(const Sampler& s) noexcept { options_.sampler = s; }  // before the server starts

    // The calling thread's queue; false (and counted) when it is full.
    bool push(const SpanRecord& span) noexcept;
    // Moves every queued span into `out` (appended); returns how many.
    std::size_t drain(std::vector<SpanRecord>& out);
    // Spans dropped because a queue was full, since the start.
    std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
    std::uint64_t recorded() const noexcept { return recorded_.load(std::memory_order_relaxed); }

private:
    struct Queue {
        std::thread::id owner;
        std::mutex mutex;
        std::vector<SpanRecord> spans;  // capacity reserved once: push never allocates
    };
    Queue* this_thread_queue() noexcept;

    TracerOptions options_;
    const std::uint64_t id_;  // tells this tracer's queue apart in the per-thread cache (addresses are reused)
    std::mutex queues_mutex_;
    std::vector<std::unique_ptr<Queue>> queues_;
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> recorded_{0};
};

}  // namespace covet::trace
