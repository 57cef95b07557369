#include "covet/http3/cid_router.hpp"

#include <linux/filter.h>
#include <sys/socket.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif

namespace covet::http3 {

namespace {

BpfInstruction statement(std::uint16_t code, std::uint32_t k) { return {code, 0, 0, k}; }
BpfInstruction jump(std::uint16_t code, std::uint32_t k, std::uint8_t yes, std::uint8_t no) {
    return {code, yes, no, k};
}

}  // namespace

std::vector<BpfInstruction> cid_router_program(std::span<const std::uint8_t> initial_targets, std::uint16_t tag) {
    if (initial_targets.empty() || initial_targets.size() > 128)
        throw std::invalid_argument("HTTP/3 connection-ID routing: 1 to 128 sockets take new connections, not " +
                                    std::to_string(initial_targets.size()));
    // A socket filter on a reuseport group sees the UDP payload from offset 0; it returns the socket's index
    // (one past the group falls back to the kernel's hash). A load past the end returns 0: such a datagram is
    // too short to be QUIC and socket 0's endpoint drops it.
    std::vector<BpfInstruction> p = {
        statement(BPF_LD | BPF_B | BPF_ABS, 0),                    // 0: first byte
        jump(BPF_JMP | BPF_JSET | BPF_K, 0x80, 2, 0),              // 1: long header? to 4
        statement(BPF_LD | BPF_B | BPF_ABS, 1),                    // 2: short header: DCID byte 0
        statement(BPF_RET | BPF_A, 0),                             // 3
        statement(BPF_LD | BPF_B | BPF_ABS, 5),                    // 4: long header: DCID length
        jump(BPF_JMP | BPF_JEQ | BPF_K, routed_cid_length, 0, 4),  // 5: not ours: to 10
        statement(BPF_LD | BPF_H | BPF_ABS, 7),                    // 6: DCID bytes 1-2
        jump(BPF_JMP | BPF_JEQ | BPF_K, tag, 0, 2),                // 7: not our tag: to 10
        statement(BPF_LD | BPF_B | BPF_ABS, 6),                    // 8: DCID byte 0
        statement(BPF_RET | BPF_A, 0),                             // 9
        statement(BPF_LD | BPF_W | BPF_ABS, 6),                    // 10: a client's ID: its first 4 bytes
        statement(BPF_ALU | BPF_MOD | BPF_K, static_cast<std::uint32_t>(initial_targets.size())),
    };
    for (std::size_t h = 0; h < initial_targets.size(); ++h) {
        p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(h), 0, 1));
        p.push_back(statement(BPF_RET | BPF_K, initial_targets[h]));
    }
    p.push_back(statement(BPF_RET | BPF_K, 0xffffffffu));  // unreachable (h < size): the kernel's hash
    return p;
}

void attach_cid_router(int fd, std::span<const std::uint8_t> initial_targets, std::uint16_t tag) {
    std::vector<BpfInstruction> program = cid_router_program(initial_targets, tag);
    static_assert(sizeof(BpfInstruction) == sizeof(sock_filter));
    sock_fprog prog{};
    prog.len = static_cast<unsigned short>(program.size());
    prog.filter = reinterpret_cast<sock_filter*>(program.data());
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) != 0)
        throw std::system_error(errno, std::generic_category(),
                                "HTTP/3: cannot attach the connection-ID router to the UDP socket group "
                                "(SO_ATTACH_REUSEPORT_CBPF needs Linux 4.5 or later)");
}

}  // namespace covet::http3
