// Steady state allocates nothing per message: the echo path (parse, unmask, deliver, frame, queue, send)
// with and without permessage-deflate, counted by replacing the global operator new in this binary.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "ws_harness.hpp"

namespace {
std::atomic<long> allocations{0};
}

void* operator new(std::size_t n) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace ws_test {
namespace {

// Runs `rounds` echo round trips without the test itself allocating; returns the allocations counted.
long echo_rounds(Client& c, const std::string& frame, int rounds) {
    iovec iov[io::OutputQueue::max_iovecs];
    const long before = allocations.load();
    for (int i = 0; i < rounds; ++i) {
        c.conn.receive(std::span<const char>(frame.data(), frame.size()));  // read, not modified
        while (const std::size_t n = c.conn.wire_out().prepare_send(iov)) {
            std::size_t bytes = 0;
            for (std::size_t k = 0; k < n; ++k) bytes += iov[k].iov_len;
            c.conn.wire_out().consume(bytes);
        }
        c.conn.output_drained();
    }
    return allocations.load() - before;
}

TEST(WsAllocation, EchoAllocatesNothingPerMessage) {
    FakeWorker w;
    Client c(w);
    auto h = std::const_pointer_cast<ws::Handlers>(c.handlers);
    int seen = 0;
    h->on_message = [&](ws::WebSocket s, std::string_view d, bool binary) { s.send(d, binary), ++seen; };
    const std::string frame = client_frame(Opcode::text, std::string(2000, 'a'), false) +
                              client_frame(Opcode::ping, "p") +
                              client_frame(Opcode::continuation, std::string(500, 'b'));
    echo_rounds(c, frame, 10);  // warm up: buffers reach their sizes
    EXPECT_EQ(echo_rounds(c, frame, 100), 0);
    EXPECT_EQ(seen, 110);
    EXPECT_TRUE(c.closes.empty());
}

TEST(WsAllocation, CompressedEchoAllocatesNothingPerMessage) {
    FakeWorker w;
    ws::DeflateParams p;
    p.enabled = true;
    Client c(w, {}, p);
    auto h = std::const_pointer_cast<ws::Handlers>(c.handlers);
    int seen = 0;
    h->on_message = [&](ws::WebSocket s, std::string_view d, bool binary) { s.send(d, binary), ++seen; };
    ZClient client(true);  // the client resets, so the same compressed frame is valid every round
    std::string m;
    for (int i = 0; i < 100; ++i) m += "compressible text " + std::to_string(i % 7) + " ";
    const std::string frame = client_frame(Opcode::text, client.compress(m), true, true);
    echo_rounds(c, frame, 10);
    EXPECT_EQ(echo_rounds(c, frame, 100), 0);
    EXPECT_EQ(seen, 110);
    EXPECT_TRUE(c.closes.empty());
}

}  // namespace
}  // namespace ws_test
