// net::Server's embedded mode: one io_uring worker driven by the caller's own epoll loop, no threads.
// ctest runs this binary once per backend; under COVET_BACKEND=asio embedding must refuse clearly.
#include <gtest/gtest.h>
#include <sys/epoll.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <future>
#include <string>
#include <utility>
#include <vector>

#include "covet/covet.hpp"
#include "support/http_client.hpp"
#include "support/local_app.hpp"

namespace {

using namespace std::chrono_literals;
using covet_test::body_of;
using covet_test::Client;
using covet_test::get;
using covet_test::status_of;

bool uring_requested() {
    const char* b = std::getenv("COVET_BACKEND");
    return !b || std::string(b) != "asio";
}

// The caller's event loop: waits on poll_fd() with epoll, polls, runs `between` (the caller's own
// work, e.g. handlers completing responders), flushes. Returns when `done()` or the engine finished.
bool drive(covet::net::Server& server, const std::function<bool()>& done, const std::function<void()>& between,
           const bool& flush_requested, std::chrono::milliseconds limit = 10s) {
    const int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = server.poll_fd();
    epoll_ctl(ep, EPOLL_CTL_ADD, server.poll_fd(), &ev);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    bool running = true;
    while (running && !done() && std::chrono::steady_clock::now() < deadline) {
        epoll_event out{};
        if (epoll_wait(ep, &out, 1, 20) > 0) {
            running = server.poll();
            while (server.flush()) running = server.poll();
        }
        if (between) between();
        if (flush_requested)
            while (server.flush()) running = server.poll();
    }
    ::close(ep);
    return running;
}

class EmbeddedServerTest : public ::testing::Test {
protected:
    void SetUp() override {
        covet_test::configure_local_app(app_);
        app_.get("/plaintext", [](covet::Request&) { return covet::Response::text("Hello, World!"); });
        // Answered by the caller's loop between polls, as a Python handler would be.
        app_.get("/deferred/{n:int}", [this](covet::Request& r, covet::Responder responder) {
            pending_.push_back({std::string(*r.param("n")), std::move(responder)});
        });
    }
    void TearDown() override {
        app_.stop();
        app_.wait();
    }
    // Completes the deferred requests; the engine asks for a flush through the output hook. Answering
    // runs the connection's next pipelined request at once, which may defer itself again: hence the swap.
    void answer_pending() {
        auto answering = std::exchange(pending_, {});
        for (auto& [n, responder] : answering) responder.send(covet::Response::text("deferred " + n));
    }
    covet::net::Server& server() { return *app_.server(); }

    covet::App app_;
    std::vector<std::pair<std::string, covet::Responder>> pending_;
    bool flush_requested_ = false;
    int hook_calls_ = 0;
};

TEST_F(EmbeddedServerTest, RefusesWithoutIoUring) {
    if (uring_requested()) GTEST_SKIP() << "covered by the asio run";
    try {
        app_.start_embedded();
        FAIL() << "start_embedded() must refuse on the asio backend";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("io_uring"), std::string::npos) << e.what();
    }
    EXPECT_EQ(app_.server(), nullptr);
}

TEST_F(EmbeddedServerTest, ServesOnTheCallersLoopWithoutThreads) {
    if (!uring_requested()) GTEST_SKIP() << "embedding needs io_uring";
    app_.start_embedded();
    ASSERT_TRUE(server().embedded());
    ASSERT_GE(server().poll_fd(), 0);
    server().on_output([this] {
        flush_requested_ = true;
        ++hook_calls_;
    });

    auto client = std::async(std::launch::async, [port = app_.port()] {
        std::vector<std::string> got;
        Client c(port);
        c.send(get("/plaintext"));
        for (auto& r : c.responses(1)) got.push_back(r);
        c.send(get("/deferred/7") + get("/plaintext") + get("/deferred/8"));  // pipelined, order kept
        for (auto& r : c.responses(3)) got.push_back(r);
        return got;
    });
    auto finished = [&] { return client.wait_for(0s) == std::future_status::ready; };
    drive(
        server(), finished,
        [this] {
            flush_requested_ = false;
            answer_pending();
        },
        flush_requested_);
    ASSERT_TRUE(finished());
    const auto got = client.get();
    ASSERT_EQ(got.size(), 4u);
    EXPECT_EQ(status_of(got[0]), "HTTP/1.1 200 OK");
    EXPECT_EQ(body_of(got[0]), "Hello, World!");
    EXPECT_EQ(body_of(got[1]), "deferred 7");
    EXPECT_EQ(body_of(got[2]), "Hello, World!");
    EXPECT_EQ(body_of(got[3]), "deferred 8");
    EXPECT_GE(hook_calls_, 1) << "responses completed between polls must ask for a flush";
    EXPECT_EQ(covet::net::WorkerContext::current().stats.snapshot().requests, 4u);
}

// A streamed upload whose handler acknowledges bytes between polls, as the Python bridge does: reading stops
// while too much is unacknowledged, and resuming it must ask for a flush through the output hook (the
// receive is armed at the next submit) or the upload stalls.
TEST_F(EmbeddedServerTest, ResumedReadingBetweenPollsAsksForAFlush) {
    if (!uring_requested()) GTEST_SKIP() << "embedding needs io_uring";
    struct Reader final : covet::BodyReader {
        void on_data(std::string_view chunk) noexcept override { received += chunk.size(); }
        void on_end() noexcept override { ended = true; }
        void on_error(int, std::string_view) noexcept override { failed = true; }
        std::size_t received = 0;
        bool ended = false, failed = false;
    };
    struct Upload {
        covet::Responder responder;
        covet::RequestBody body;
        std::shared_ptr<Reader> reader = std::make_shared<Reader>();
        std::size_t acked = 0;
    };
    std::vector<Upload> uploads;
    app_.config().limits.stream_body_threshold = 1000;
    app_.config().limits.max_buffered_input = 8192;
    app_.post("/upload", [&](covet::Request&, covet::Responder responder, covet::RequestBody body) {
        Upload u{std::move(responder), std::move(body)};
        u.body.read(u.reader);
        uploads.push_back(std::move(u));
    });
    app_.start_embedded();
    server().on_output([this] { flush_requested_ = true; });
    constexpr std::size_t size = 300 * 1000;
    auto client = std::async(std::launch::async, [port = app_.port()] {
        Client c(port);
        c.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(size) + "\r\n\r\n" +
               std::string(size, 'u'));
        auto r = c.responses(1);
        return r.empty() ? std::string() : r[0];
    });
    auto finished = [&] { return client.wait_for(0s) == std::future_status::ready; };
    drive(
        server(), finished,
        [&] {
            flush_requested_ = false;
            for (Upload& u : uploads) {  // the handler's side: acknowledge what arrived, answer at the end
                if (u.reader->received > u.acked) u.body.consume(u.reader->received - u.acked);
                u.acked = u.reader->received;
                if (u.reader->ended && u.responder.pending())
                    u.responder.send(covet::Response::text(std::to_string(u.acked)));
            }
        },
        flush_requested_);
    ASSERT_TRUE(finished()) << "the upload stalled: resuming reading between polls did not ask for a flush";
    EXPECT_EQ(body_of(client.get()), std::to_string(size));
}

TEST_F(EmbeddedServerTest, StopFinishesInFlightRequestsThenPollReportsDone) {
    if (!uring_requested()) GTEST_SKIP() << "embedding needs io_uring";
    app_.start_embedded();
    server().on_output([this] { flush_requested_ = true; });
    auto client = std::async(std::launch::async, [port = app_.port()] {
        Client c(port);
        c.send(get("/deferred/1"));
        auto r = c.responses(1);
        return r.empty() ? std::string() : r[0];
    });
    // Run until the request is pending, then stop: the engine must still deliver its answer.
    drive(server(), [this] { return !pending_.empty(); }, nullptr, flush_requested_);
    ASSERT_EQ(pending_.size(), 1u);
    app_.stop();
    bool answered = false;
    const bool still_running = drive(
        server(), [] { return false; },
        [&] {
            if (!answered) {
                answer_pending();
                answered = true;
            }
        },
        flush_requested_, 5s);
    EXPECT_FALSE(still_running) << "poll() must return false once stopped and drained";
    EXPECT_EQ(body_of(client.get()), "deferred 1");
}

}  // namespace
