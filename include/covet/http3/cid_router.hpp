// Routing QUIC packets between worker *processes* by connection ID (RFC 9000 §5.2: a server may encode routing
// information in the IDs it issues). The kernel's SO_REUSEPORT hash of the 4-tuple picks a socket of the group;
// after a client's NAT rebinding or a migration the hash moves, and a packet would reach a process that does not
// know its connection. A classic BPF program attached to the group (SO_ATTACH_REUSEPORT_CBPF) instead returns the
// socket whose index is the first byte of the connection ID, so every process's packets reach it.
//
// The ID layout this engine issues when routed (Http3Options::inherited_sockets): byte 0 is the socket's index in
// the group, bytes 1-2 the group's `tag` (big-endian), the rest random, `routed_cid_length` bytes in all. A
// client's first Initial and 0-RTT packets carry an ID the client chose: those go to
// `initial_targets[first 4 ID bytes % initial_targets.size()]`, the sockets that take new connections (a
// supervisor changes them during a rolling restart, so that new connections reach the new processes while the
// old ones' packets still reach the old). The tag tells our IDs from a client's random ones of the same length.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace covet::http3 {

inline constexpr std::size_t routed_cid_length = 18;  // the length of every connection ID the server issues

// One instruction of a classic BPF program (struct sock_filter's layout).
struct BpfInstruction {
    std::uint16_t code;
    std::uint8_t jump_true, jump_false;
    std::uint32_t k;
};

// The program; `initial_targets`: 1 to 128 socket indexes (std::invalid_argument otherwise).
std::vector<BpfInstruction> cid_router_program(std::span<const std::uint8_t> initial_targets, std::uint16_t tag);

// Attaches (or replaces) the program on the SO_REUSEPORT group of the UDP socket `fd` (any socket of the group).
// Throws std::system_error naming the cause (a kernel without SO_ATTACH_REUSEPORT_CBPF: Linux < 4.5).
void attach_cid_router(int fd, std::span<const std::uint8_t> initial_targets, std::uint16_t tag);

}  // namespace covet::http3
