// Listening sockets. Each worker gets its own SO_REUSEPORT socket on the same address, so the kernel
// spreads connections across workers with no shared accept queue.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

struct addrinfo;

namespace covet::net {

// getaddrinfo(3)'s list for a socket of `socktype` to bind on `host:port` (an empty host: every local address),
// with AI_PASSIVE | AI_NUMERICSERV and `flags`. Empty on failure, with `error` set to getaddrinfo's code (for
// gai_strerror). Shared by the listeners, the UDP check below and HTTP/3's sockets.
struct AddressListFree {
    void operator()(addrinfo* list) const noexcept;
};
using AddressList = std::unique_ptr<addrinfo, AddressListFree>;
AddressList resolve_passive(const std::string& host, std::uint16_t port, int socktype, int& error, int flags = 0);

// Opens a non-blocking listening socket with SO_REUSEADDR and SO_REUSEPORT. With `join_existing` false
// (the first worker's) the bind fails if the port is in use; with true it joins that first listener.
// Throws std::system_error with a message naming the address, the cause and the likely fix.
int open_listener(const std::string& host, std::uint16_t port, int backlog, bool join_existing);

// The port a socket is bound to (for port 0).
std::uint16_t bound_port(int fd);

// Whether a UDP socket could bind `host:port` alone (without SO_REUSEPORT): a TCP port the kernel picked may be
// in use on UDP, where HTTP/3 follows it.
bool udp_port_free(const std::string& host, std::uint16_t port);

// A duplicate (close-on-exec, non-blocking) of `fd`, which must be a listening TCP socket; throws naming the fix.
int adopt_listener(int fd);

}  // namespace covet::net
