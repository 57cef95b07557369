// A start that fails part-way (a worker's datagram service that cannot start, as HTTP/3 on a taken UDP port; an
// operations port that is taken) leaves nothing bound or running while the object lives, and may be retried.
// Built into embedded_server_test, which ctest runs once per backend.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>

#include "covet/covet.hpp"
#include "covet/net/listener.hpp"
#include "support/local_app.hpp"

namespace {

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

// A TCP socket bound (without SO_REUSEADDR or SO_REUSEPORT) to `port` on loopback, or -1 when the port is taken.
int bind_exclusively(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in a = loopback(port);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

bool port_is_free(std::uint16_t port) {
    const int fd = bind_exclusively(port);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

std::uint16_t port_of(int fd) {
    sockaddr_in a{};
    socklen_t length = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &length);
    return ntohs(a.sin_port);
}

// A port the kernel had free a moment ago.
std::uint16_t free_port() {
    const int fd = bind_exclusively(0);
    const std::uint16_t port = port_of(fd);
    ::close(fd);
    return port;
}

bool accepts_connections(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in a = loopback(port);
    const bool connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return connected;
}

class Closer final : public covet::net::ProtocolHandler {
public:
    explicit Closer(covet::net::Connection& c) : c_(c) {}
    void on_data(std::span<const char>) override { c_.close_after_flush(); }
    void on_peer_closed() override { c_.close_after_flush(); }
    void on_tick(covet::io::Clock::time_point) override {}
    void on_shutdown() override { c_.close_after_flush(); }

private:
    covet::net::Connection& c_;
};

TEST(ServerStart, AWorkerThatCannotStartLeavesNothingBoundAndStartMayBeRetried) {
    covet::configure_logging("off");
    const std::uint16_t port = free_port();
    covet::net::ServerConfig config;
    config.host = "127.0.0.1";
    config.port = port;
    config.threads = 2;
    config.timeouts.shutdown = std::chrono::seconds(1);
    covet::net::Server server(
        config, [](covet::net::Connection& c, covet::net::ConnectionHome&) { return std::make_unique<Closer>(c); });
    std::atomic<bool> service_can_start = false;
    server.set_datagram_factory(
        [&](covet::net::DatagramHost&, std::uint16_t) -> std::unique_ptr<covet::net::DatagramService> {
            if (!service_can_start) throw std::runtime_error("UDP port taken");
            return nullptr;  // no service: the workers serve TCP alone
        });

    EXPECT_THROW(server.start(), std::runtime_error);
    EXPECT_TRUE(port_is_free(port)) << "the failed start kept its TCP listener while the Server lives";
    EXPECT_EQ(server.port(), 0);

    service_can_start = true;
    ASSERT_NO_THROW(server.start()) << "a second start() after a failed one must start afresh";
    EXPECT_EQ(server.port(), port);
    EXPECT_TRUE(accepts_connections(port));
    server.stop();
    server.wait();
}

// HTTP/3 follows a port-0 TCP listener onto the same number: the server checks that number is free on UDP.
TEST(ServerStart, AUdpPortHeldByAnotherSocketIsNotFree) {
    const int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const sockaddr_in any = loopback(0);
    ASSERT_EQ(::bind(udp, reinterpret_cast<const sockaddr*>(&any), sizeof any), 0);
    const std::uint16_t held = port_of(udp);
    EXPECT_FALSE(covet::net::udp_port_free("127.0.0.1", held));
    EXPECT_FALSE(covet::net::udp_port_free("", held)) << "the wildcard address overlaps loopback's port";
    ::close(udp);
    EXPECT_TRUE(covet::net::udp_port_free("127.0.0.1", held));
}

TEST(ServerStart, AnOperationsPortThatIsTakenLeavesTheAppPortFree) {
    covet::App app;
    covet_test::configure_local_app(app, std::chrono::seconds(1));
    app.get("/", [](covet::Request&) { return covet::Response::text("ok"); });
    const std::uint16_t app_port = free_port();
    app.config().port = app_port;
    const int squatter = bind_exclusively(0);  // not SO_REUSEPORT: the ops listener cannot join it
    ASSERT_GE(squatter, 0);
    ASSERT_EQ(::listen(squatter, 8), 0);
    app.config().ops.port = port_of(squatter);

    EXPECT_THROW(app.start(1), std::exception);
    EXPECT_EQ(app.server(), nullptr);
    EXPECT_TRUE(port_is_free(app_port)) << "the app's listener stayed bound after its ops listener failed";

    ::close(squatter);
    ASSERT_NO_THROW(app.start(1)) << "start() again once the operations port is free";
    EXPECT_EQ(app.port(), app_port);
    EXPECT_TRUE(accepts_connections(app_port));
    EXPECT_TRUE(accepts_connections(app.ops_port()));
    app.stop();
    app.wait();
}

}  // namespace
