// The connection-ID router on a real SO_REUSEPORT group of loopback UDP sockets: which socket each crafted QUIC
// packet reaches.
#include "covet/http3/cid_router.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

namespace {

using covet::http3::attach_cid_router;
using covet::http3::cid_router_program;
using covet::http3::routed_cid_length;

constexpr std::uint16_t tag = 0xBEEF;

class Group : public ::testing::Test {
protected:
    void SetUp() override {
        for (int& fd : sockets_) {
            fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            ASSERT_GE(fd, 0);
            const int one = 1;
            ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            a.sin_port = port_;
            ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
            socklen_t length = sizeof a;
            getsockname(fd, reinterpret_cast<sockaddr*>(&a), &length);
            port_ = a.sin_port;  // the first socket's port, joined by the others
        }
        client_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(client_, 0);
    }
    void TearDown() override {
        for (int fd : sockets_)
            if (fd >= 0) ::close(fd);
        if (client_ >= 0) ::close(client_);
    }

    // Sends `packet` and returns the index of the socket that received it (-1: none within a second).
    int route(const std::vector<std::uint8_t>& packet) {
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        to.sin_port = port_;
        EXPECT_EQ(::sendto(client_, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
                  static_cast<ssize_t>(packet.size()));
        std::array<pollfd, 4> fds{};
        for (std::size_t i = 0; i < fds.size(); ++i) fds[i] = {sockets_[i], POLLIN, 0};
        if (::poll(fds.data(), fds.size(), 1000) <= 0) return -1;
        int got = -1;
        for (std::size_t i = 0; i < fds.size(); ++i) {
            std::uint8_t buffer[2048];
            while (::recv(sockets_[i], buffer, sizeof buffer, 0) > 0) {
                EXPECT_EQ(got, -1) << "one datagram, two sockets";
                got = static_cast<int>(i);
            }
        }
        return got;
    }

    std::array<int, 4> sockets_{-1, -1, -1, -1};
    int client_ = -1;
    std::uint16_t port_ = 0;
};

std::vector<std::uint8_t> short_header(std::uint8_t first_cid_byte) {
    std::vector<std::uint8_t> p(40, 0x5a);
    p[0] = 0x41;
    p[1] = first_cid_byte;
    return p;
}

// A long-header packet (`type` bits 0x30: 0 Initial, 0x20 Handshake) of QUIC v1 with destination ID `dcid`.
std::vector<std::uint8_t> long_header(std::uint8_t type, const std::vector<std::uint8_t>& dcid) {
    std::vector<std::uint8_t> p = {static_cast<std::uint8_t>(0xc0 | type), 0, 0, 0, 1,
                                   static_cast<std::uint8_t>(dcid.size())};
    p.insert(p.end(), dcid.begin(), dcid.end());
    p.resize(1200, 0);
    return p;
}

std::vector<std::uint8_t> our_cid(std::uint8_t index) {
    std::vector<std::uint8_t> cid(routed_cid_length, 0x33);
    cid[0] = index;
    cid[1] = tag >> 8;
    cid[2] = tag & 0xff;
    return cid;
}

TEST_F(Group, ShortHeaderPacketsGoToTheSocketTheirIdNames) {
    attach_cid_router(sockets_[1], std::array<std::uint8_t, 2>{2, 3}, tag);
    for (int round = 0; round < 3; ++round)
        for (std::uint8_t i = 0; i < 4; ++i) EXPECT_EQ(route(short_header(i)), i);
    // An index past the group falls back to the kernel's hash: delivered to some socket, not dropped.
    EXPECT_GE(route(short_header(200)), 0);
}

TEST_F(Group, HandshakeAndInitialPacketsWithOurIdGoToItsSocket) {
    attach_cid_router(sockets_[0], std::array<std::uint8_t, 1>{3}, tag);
    for (std::uint8_t i = 0; i < 4; ++i) {
        EXPECT_EQ(route(long_header(0x20, our_cid(i))), i) << "Handshake";
        EXPECT_EQ(route(long_header(0x00, our_cid(i))), i) << "Initial after the server's first packet";
    }
}

TEST_F(Group, AClientsOwnIdGoesToTheSocketsTakingNewConnections) {
    const std::array<std::uint8_t, 2> targets{1, 3};
    attach_cid_router(sockets_[2], targets, tag);
    std::mt19937 random(7);
    std::array<int, 4> seen{};
    for (int n = 0; n < 64; ++n) {
        std::vector<std::uint8_t> dcid(n % 2 ? 8 : routed_cid_length);  // an 18-byte one without our tag too
        for (auto& b : dcid) b = static_cast<std::uint8_t>(random());
        dcid[0] = static_cast<std::uint8_t>(n % 4);  // names a socket, but without the tag it is not ours
        const std::uint32_t word =
            (std::uint32_t{dcid[0]} << 24) | (std::uint32_t{dcid[1]} << 16) | (std::uint32_t{dcid[2]} << 8) | dcid[3];
        const int got = route(long_header(0x00, dcid));
        EXPECT_EQ(got, targets[word % targets.size()]);
        ++seen[static_cast<std::size_t>(got < 0 ? 0 : got)];
        EXPECT_EQ(route(long_header(0x10, dcid)), got) << "0-RTT follows its Initial";
    }
    EXPECT_GT(seen[1], 0);
    EXPECT_GT(seen[3], 0);
    // Attaching again replaces the routing (a supervisor's rolling restart moves new connections).
    attach_cid_router(sockets_[3], std::array<std::uint8_t, 1>{0}, tag);
    EXPECT_EQ(route(long_header(0x00, std::vector<std::uint8_t>(8, 0x77))), 0);
    EXPECT_EQ(route(short_header(2)), 2);
}

TEST(CidRouterProgram, RefusesAnEmptyOrOversizedTargetList) {
    EXPECT_THROW(cid_router_program({}, tag), std::invalid_argument);
    std::vector<std::uint8_t> many(129, 0);
    EXPECT_THROW(cid_router_program(many, tag), std::invalid_argument);
    EXPECT_EQ(cid_router_program(std::vector<std::uint8_t>(128, 0), tag).size(), 12u + 2 * 128 + 1);
}

}  // namespace
