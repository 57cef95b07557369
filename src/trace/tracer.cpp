#include "covet/trace/tracer.hpp"

#include <thread>

namespace covet::trace {
namespace {

std::atomic<std::uint64_t> next_tracer_id{1};

}  // namespace

Tracer::Tracer(TracerOptions options) : options_(options), id_(next_tracer_id.fetch_add(1)) {
    if (options_.queue_capacity == 0) options_.queue_capacity = 1;
}

Tracer::Queue* Tracer::this_thread_queue() noexcept {
    // One entry per thread: the last tracer it pushed to (a thread serves one app's workers in practice).
    thread_local struct {
        std::uint64_t tracer = 0;
        Queue* queue = nullptr;
    } cache;
    if (cache.tracer == id_) return cache.queue;
    try {
        const auto me = std::this_thread::get_id();
        std::lock_guard lock(queues_mutex_);
        for (const auto& q : queues_)  // a thread that serves two apps in turn keeps one queue in each
            if (q->owner == me) {
                cache = {id_, q.get()};
                return cache.queue;
            }
        auto q = std::make_unique<Queue>();
        q->owner = me;
        q->spans.reserve(options_.queue_capacity);
        queues_.push_back(std::move(q));
        cache = {id_, queues_.back().get()};
        return cache.queue;
    } catch (...) {
        return nullptr;  // out of memory: the span is dropped
    }
}

bool Tracer::push(const SpanRecord& span) noexcept {
    Queue* q = this_thread_queue();
    if (q) {
        std::lock_guard lock(q->mutex);
        if (q->spans.size() < options_.queue_capacity) {
            q->spans.push_back(span);
            recorded_.fetch_add(1, std::memory_order_relaxed);
            return true;
        }
    }
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
}

std::size_t Tracer::drain(std::vector<SpanRecord>& out) {
    std::size_t n = 0;
    std::lock_guard registry(queues_mutex_);
    for (const auto& q : queues_) {
        std::lock_guard lock(q->mutex);
        out.insert(out.end(), q->spans.begin(), q->spans.end());
        n += q->spans.size();
        q->spans.clear();  // keeps its capacity
    }
    return n;
}

}  // namespace covet::trace
