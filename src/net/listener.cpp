#include "covet/net/listener.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace covet::net {

namespace {
[[noreturn]] void throw_listen_error(const std::string& where, int err) {
    std::string hint;
    if (err == EADDRINUSE)
        hint = " (another process is using this port: stop it or choose another port)";
    else if (err == EACCES)
        hint = " (ports below 1024 need privileges: choose a port >= 1024)";
    else if (err == EADDRNOTAVAIL)
        hint = " (this machine has no such address: use 0.0.0.0 or 127.0.0.1)";
    throw std::system_error(err, std::generic_category(), "cannot listen on " + where + hint);
}
}  // namespace

void AddressListFree::operator()(addrinfo* list) const noexcept { freeaddrinfo(list); }

AddressList resolve_passive(const std::string& host, std::uint16_t port, int socktype, int& error, int flags) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | flags;
    addrinfo* found = nullptr;
    error = getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints, &found);
    return AddressList(error == 0 ? found : nullptr);
}

int open_listener(const std::string& host, std::uint16_t port, int backlog, bool join_existing) {
    const std::string where = host + ":" + std::to_string(port);
    int rc = 0;
    const AddressList found = resolve_passive(host, port, SOCK_STREAM, rc);
    if (!found)
        throw std::system_error(EINVAL, std::generic_category(),
                                "cannot listen on " + where + ": " + gai_strerror(rc) + " (check the host name)");
    int last_errno = 0;
    for (addrinfo* ai = found.get(); ai; ai = ai->ai_next) {
        const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        const int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        // The first listener binds without SO_REUSEPORT, so the bind fails if anyone listens here already
        // (another server would otherwise silently share our traffic, and port 0 could even pick such a
        // port); it enables SO_REUSEPORT afterwards so that the other workers' listeners can join it.
        if (join_existing) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // inherited by accepted sockets
        if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, backlog) == 0 &&
            (join_existing || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0))
            return fd;
        last_errno = errno;
        ::close(fd);
    }
    throw_listen_error(where, last_errno);
}

int adopt_listener(int fd) {
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening)
        throw std::system_error(errno ? errno : EINVAL, std::generic_category(),
                                "cannot listen on inherited socket " + std::to_string(fd) +
                                    " (not a listening socket: pass a TCP socket after bind() and listen(), "
                                    "inheritable by this process)");
    const int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0)
        throw std::system_error(errno, std::generic_category(),
                                "cannot listen on inherited socket " + std::to_string(fd));
    ::fcntl(dup, F_SETFL, ::fcntl(dup, F_GETFL) | O_NONBLOCK);
    return dup;
}

std::uint16_t bound_port(int fd) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
    if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    return 0;
}

bool udp_port_free(const std::string& host, std::uint16_t port) {
    int rc = 0;
    const AddressList found = resolve_passive(host, port, SOCK_DGRAM, rc);
    if (!found) return true;                                  // nothing to bind: HTTP/3's own bind names the cause
    for (addrinfo* ai = found.get(); ai; ai = ai->ai_next) {  // like HTTP/3's bind: the first address that binds
        const int fd = ::socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        if (ai->ai_family == AF_INET6) {
            const int zero = 0;
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        }
        const bool bound = ::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0;
        ::close(fd);
        if (bound) return true;
    }
    return false;
}

}  // namespace covet::net
