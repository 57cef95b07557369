// A blocking HTTP/1.1 test client for the real-socket C++ tests.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace covet_test {

// recv(2) that goes on through signals. With SO_RCVTIMEO set, Linux never restarts an interrupted recv (EINTR,
// signal(7)), and a process stopped and continued (SIGSTOP/SIGCONT, a cgroup freeze) sees one too: a test
// that took EINTR for "no answer" failed now and then on a loaded machine.
inline ssize_t recv_through_signals(int fd, char* buf, std::size_t size, int flags = 0) {
    ssize_t n;
    do n = ::recv(fd, buf, size, flags);
    while (n < 0 && errno == EINTR);
    return n;
}

// A blocking test client: sends bytes, reads until a condition or EOF, with a timeout on every read.
class Client {
public:
    explicit Client(std::uint16_t port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        timeval tv{5, 0};
        setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    }
    ~Client() { ::close(fd_); }
    bool connected() const { return connected_; }
    int fd() const { return fd_; }

    void send(std::string_view bytes) {
        while (!bytes.empty()) {
            const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return;
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    // Reads until `count` complete responses (Content-Length framed) arrived, or EOF/timeout.
    std::vector<std::string> responses(std::size_t count) {
        std::vector<std::string> out;
        while (out.size() < count) {
            const std::size_t head_end = buffer_.find("\r\n\r\n");
            if (head_end != std::string::npos) {
                std::size_t length = 0;
                const std::size_t cl = buffer_.find("Content-Length: ");
                if (cl != std::string::npos && cl < head_end) length = std::stoul(buffer_.substr(cl + 16));
                if (buffer_.size() >= head_end + 4 + length) {
                    out.push_back(buffer_.substr(0, head_end + 4 + length));
                    buffer_.erase(0, head_end + 4 + length);
                    continue;
                }
            }
            if (!read_more()) break;
        }
        return out;
    }
    // Everything the server sends until it closes the connection (or the read timeout): what was buffered, then
    // the rest; a signal does not end it (recv_through_signals).
    std::string read_to_end() {
        while (read_more()) {
        }
        return std::exchange(buffer_, {});
    }
    void shutdown_writes() { ::shutdown(fd_, SHUT_WR); }
    // Non-blocking: has a complete response arrived?
    bool has_response() {
        char buf[4096];
        ssize_t n;
        while ((n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT)) > 0) buffer_.append(buf, static_cast<std::size_t>(n));
        return buffer_.find("\r\n\r\nHello, World!") != std::string::npos;
    }
    // True when the server closed the connection (EOF) within the read timeout.
    bool closed_by_peer() {
        char buf[4096];
        while (true) {
            const ssize_t n = recv_through_signals(fd_, buf, sizeof buf);
            if (n == 0) return true;
            if (n < 0) return false;
        }
    }

private:
    bool read_more() {
        char buf[65536];
        const ssize_t n = recv_through_signals(fd_, buf, sizeof buf);
        if (n <= 0) return false;
        buffer_.append(buf, static_cast<std::size_t>(n));
        return true;
    }
    int fd_ = -1;
    bool connected_ = false;
    std::string buffer_;
};

inline std::string get(std::string_view target) {
    return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n\r\n";
}

inline std::string body_of(const std::string& response) { return response.substr(response.find("\r\n\r\n") + 4); }
inline std::string status_of(const std::string& response) { return response.substr(0, response.find("\r\n")); }

}  // namespace covet_test
