// The worker context's out-of-line parts: the stand-in for threads without a worker, and the accessors
// that headers below the net layer declare (they cannot include worker_context.hpp without a cycle).
#include "covet/net/worker_context.hpp"

#include "covet/ws/hub.hpp"

namespace covet::net {

WorkerContext::WorkerContext(io::Loop& l, ConnectionHome& h) : loop(&l), home(&h) {}
WorkerContext::WorkerContext() = default;
WorkerContext::~WorkerContext() = default;

WorkerContext& WorkerContext::thread_stand_in() noexcept {
    thread_local WorkerContext stand_in;
    return stand_in;
}

}  // namespace covet::net

namespace covet::http {

DateCache& DateCache::thread_local_instance() noexcept { return net::WorkerContext::current().date; }

}  // namespace covet::http
