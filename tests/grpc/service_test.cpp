// covet::grpc::Service on a real App: the server's deadline, reply compression, interceptors and on_done.
// The client speaks gRPC-Web over HTTP/1.1 (the same calls as gRPC over HTTP/2, which the interop suite covers;
// the status comes in the body's trailer frame), one call per connection, read to its end.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "covet/covet.hpp"
#include "covet/grpc/service.hpp"
#include "support/http_client.hpp"
#include "support/local_app.hpp"

namespace {

using namespace std::chrono_literals;
using covet::grpc::ServerCall;
using covet::grpc::Status;
using covet::grpc::StatusCode;

struct Reply {
    std::string head;
    std::string body;      // dechunked: the framed messages, then the trailer frame
    std::string trailers;  // the trailer frame's lines
    std::string first;     // the first message frame (flag, length, bytes)
};

Reply parse_reply(const std::string& raw) {
    Reply r;
    const std::size_t head_end = raw.find("\r\n\r\n");
    if (head_end == std::string::npos) return r;
    r.head = raw.substr(0, head_end + 2);
    std::size_t pos = head_end + 4;
    if (r.head.find("Transfer-Encoding: chunked") == std::string::npos) {
        r.body = raw.substr(pos);
        return r;
    }
    while (pos < raw.size()) {
        const std::size_t line_end = raw.find("\r\n", pos);
        if (line_end == std::string::npos) break;
        const std::size_t size = std::stoul(raw.substr(pos, line_end - pos), nullptr, 16);
        pos = line_end + 2;
        if (size == 0) break;
        r.body += raw.substr(pos, size);
        pos += size + 2;
    }
    for (std::size_t at = 0; at + 5 <= r.body.size();) {  // the frames
        const auto* p = reinterpret_cast<const unsigned char*>(r.body.data() + at);
        const std::size_t size =
            (std::size_t{p[1]} << 24) | (std::size_t{p[2]} << 16) | (std::size_t{p[3]} << 8) | p[4];
        if (p[0] & 0x80)
            r.trailers = r.body.substr(at + 5, size);
        else if (r.first.empty())
            r.first = r.body.substr(at, 5 + size);
        at += 5 + size;
    }
    return r;
}

// The call's grpc-status, from the trailers or (Trailers-Only) the head; -1 when there is none.
int grpc_status(const Reply& r) {
    for (const std::string* block : {&r.trailers, &r.head}) {
        const std::size_t at = block->find("grpc-status:");
        if (at != std::string::npos) return std::stoi(block->substr(at + 12));
    }
    return -1;
}

class GrpcServiceTest : public ::testing::Test {
protected:
    void SetUp() override {
        covet_test::configure_local_app(app_);
        covet::grpc::Service service("test.Svc");
        service.unary("Echo", [this](ServerCall&, std::string_view request, std::string& reply) {
            ++echoes_;
            reply.assign(request);
            return Status{};
        });
        service.call("Hang", [this](const std::shared_ptr<ServerCall>& call) {  // never finished by the method
            call->on_cancel([this](ServerCall&) { ++cancels_; });
            const std::lock_guard lock(mutex_);
            hanging_.push_back(call);
        });
        // Writes one message from a thread of its own, then never finishes: the deadline ends a started stream.
        service.call("WriteOnce", [this](const std::shared_ptr<ServerCall>& call) {
            const std::lock_guard lock(mutex_);
            hanging_.push_back(call);
            producers_.emplace_back([call] { call->write("first"); });
        });
        covet::grpc::CallOptions options;
        options.compression = "gzip";
        options.interceptors.emplace_back([this](ServerCall& call) {  // records how every call ended
            call.on_done([this](const ServerCall& c, const Status& s) {
                const std::lock_guard lock(mutex_);
                done_.emplace_back(std::string(c.method()), s.code);
            });
            return Status{};
        });
        options.interceptors.emplace_back([](ServerCall& call) {
            if (call.metadata("x-deny")) return Status{StatusCode::permission_denied, "denied by the interceptor"};
            return Status{};
        });
        covet::grpc::add_service(app_, std::move(service), std::move(options));
        app_.start(1);
    }
    void TearDown() override {
        for (auto& t : producers_) t.join();
        app_.stop();
        app_.wait();
    }

    Reply call(std::string_view method, std::string_view message, std::string_view headers = "") {
        covet_test::Client c(app_.port());
        const std::string body = covet::grpc::frame_message(message);
        c.send("POST /test.Svc/" + std::string(method) +
               " HTTP/1.1\r\nHost: t\r\nContent-Type: application/grpc-web+proto\r\nConnection: close\r\n" +
               std::string(headers) + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
        return parse_reply(c.read_to_end());
    }
    std::vector<std::pair<std::string, StatusCode>> done() {
        const std::lock_guard lock(mutex_);
        return done_;
    }
    // on_done runs on the thread that ended the call, possibly just after the client read its answer.
    bool wait_done(std::size_t count) {
        for (int i = 0; i < 200 && done().size() < count; ++i) std::this_thread::sleep_for(10ms);
        return done().size() >= count;
    }

    covet::App app_;
    std::atomic<int> echoes_{0}, cancels_{0};
    std::mutex mutex_;
    std::vector<std::shared_ptr<ServerCall>> hanging_;
    std::vector<std::pair<std::string, StatusCode>> done_;
    std::vector<std::thread> producers_;
};

TEST_F(GrpcServiceTest, TheDeadlineEndsACallItsMethodLeftOpen) {
    const auto start = std::chrono::steady_clock::now();
    const Reply r = call("Hang", "x", "grpc-timeout: 300m\r\n");
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(grpc_status(r), static_cast<int>(StatusCode::deadline_exceeded)) << r.head << r.trailers;
    EXPECT_GE(took, 300ms);
    EXPECT_LT(took, 3s);  // the sweep acts within 250 ms of it; the client's read timeout is 5 s
    ASSERT_TRUE(wait_done(1));
    EXPECT_EQ(done()[0], std::make_pair(std::string("/test.Svc/Hang"), StatusCode::deadline_exceeded));
    EXPECT_EQ(cancels_.load(), 1);  // the method heard it
    const std::lock_guard lock(mutex_);
    ASSERT_EQ(hanging_.size(), 1u);
    EXPECT_TRUE(hanging_[0]->cancelled());
    EXPECT_FALSE(hanging_[0]->write("late"));  // nothing more goes out
}

TEST_F(GrpcServiceTest, TheDeadlineEndsAStartedStreamAfterWhatWasWritten) {
    const Reply r = call("WriteOnce", "x", "grpc-timeout: 300m\r\n");
    EXPECT_EQ(r.first, covet::grpc::frame_message("first")) << r.head;  // the message, then the trailer frame
    EXPECT_EQ(grpc_status(r), static_cast<int>(StatusCode::deadline_exceeded)) << r.trailers;
    ASSERT_TRUE(wait_done(1));
    EXPECT_EQ(done()[0].second, StatusCode::deadline_exceeded);
}

TEST_F(GrpcServiceTest, ADeadlineAlreadyPastIsRefusedBeforeTheMethod) {
    const Reply r = call("Echo", "x", "grpc-timeout: 1n\r\n");
    EXPECT_EQ(grpc_status(r), static_cast<int>(StatusCode::deadline_exceeded)) << r.head;
    EXPECT_EQ(echoes_.load(), 0);
    EXPECT_EQ(grpc_status(call("Echo", "x", "grpc-timeout: 10S\r\n")), 0);  // a future one is kept
    EXPECT_EQ(echoes_.load(), 1);
}

TEST_F(GrpcServiceTest, RepliesAreCompressedForClientsThatAcceptTheEncoding) {
    const std::string message(2000, 'm');
    const Reply gzipped = call("Echo", message, "grpc-accept-encoding: identity, gzip\r\n");
    EXPECT_EQ(grpc_status(gzipped), 0) << gzipped.head << gzipped.trailers;
    EXPECT_NE(gzipped.head.find("grpc-encoding: gzip\r\n"), std::string::npos) << gzipped.head;
    ASSERT_GE(gzipped.first.size(), 5u);
    EXPECT_EQ(gzipped.first[0], 1);  // the compressed flag
    EXPECT_LT(gzipped.first.size(), 200u);
    covet::grpc::MessageReader reader(1 << 20, "gzip");
    std::vector<std::string> got;
    EXPECT_TRUE(reader.feed(gzipped.first, [&](std::string_view m) { got.emplace_back(m); }).ok());
    EXPECT_EQ(got, std::vector<std::string>{message});

    const Reply plain = call("Echo", message, "grpc-accept-encoding: deflate\r\n");  // gzip not accepted
    EXPECT_EQ(plain.head.find("grpc-encoding:"), std::string::npos) << plain.head;
    EXPECT_EQ(plain.first, covet::grpc::frame_message(message));
}

TEST_F(GrpcServiceTest, AnInterceptorRefusesTheCallBeforeItsMethod) {
    const Reply refused = call("Echo", "x", "x-deny: yes\r\n");
    EXPECT_EQ(grpc_status(refused), static_cast<int>(StatusCode::permission_denied)) << refused.head;
    EXPECT_NE(refused.head.find("grpc-message: denied by the interceptor\r\n"), std::string::npos) << refused.head;
    EXPECT_EQ(echoes_.load(), 0);
    EXPECT_EQ(grpc_status(call("Echo", "x")), 0);
    EXPECT_EQ(echoes_.load(), 1);
    ASSERT_TRUE(wait_done(2));  // the first interceptor saw both calls end
    EXPECT_EQ(done()[0].second, StatusCode::permission_denied);
    EXPECT_EQ(done()[1].second, StatusCode::ok);
}

}  // namespace
