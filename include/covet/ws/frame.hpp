// WebSocket framing (RFC 6455 §5), server side: an incremental parser for client frame headers and a
// writer for server frames (unmasked) into a connection's output queue.
//
// The parser only reads headers; the protocol copies each payload chunk straight into its message
// buffer and unmasks it there (unmask()), so payload bytes are touched once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "covet/io/output_queue.hpp"

namespace covet::ws {

enum class Opcode : std::uint8_t { continuation = 0x0, text = 0x1, binary = 0x2, close = 0x8, ping = 0x9, pong = 0xA };

constexpr bool is_control(Opcode o) noexcept { return (static_cast<std::uint8_t>(o) & 0x8) != 0; }

// Close status codes (RFC 6455 §7.4.1) this library sends or reports.
namespace close_code {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
inline constexpr std::uint16_t no_status = 1005;        // reported only: the close frame had no code
inline constexpr std::uint16_t abnormal = 1006;         // reported only: no close frame at all
inline constexpr std::uint16_t invalid_payload = 1007;  // text that is not UTF-8
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t message_too_big = 1009;
inline constexpr std::uint16_t internal_error = 1011;
}  // namespace close_code

// Whether `code` may appear in a close frame: 1000-1003, 1007-1014 (IANA registry) and 3000-4999.
// 1004-1006 and 1015 are reserved for reporting and never sent.
constexpr bool valid_close_code(std::uint16_t code) noexcept {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

struct FrameHeader {
    Opcode opcode = Opcode::continuation;
    bool fin = false;
    bool rsv1 = false;  // permessage-deflate: the message is compressed (first frame only)
    std::uint64_t length = 0;
    std::uint8_t mask[4]{};
};

// Parses client frame headers incrementally (bytes may be split anywhere) and enforces the rules that a
// header alone decides: masking, reserved bits, opcodes, control frame size and fragmentation, the
// 64-bit length's top bit, and continuation order. Violations are close code 1002.
class FrameParser {
public:
    // `allow_rsv1`: permessage-deflate was negotiated (RSV1 marks a compressed message).
    explicit FrameParser(bool allow_rsv1 = false) noexcept : allow_rsv1_(allow_rsv1) {}

    // Consumes header bytes from `in` and returns how many were used: stops once a header is complete
    // (ready()) or on a violation (failed()). Call next() after the frame's payload has been read.
    std::size_t parse(std::span<const char> in) noexcept;
    bool ready() const noexcept { return ready_; }
    bool failed() const noexcept { return error_ != nullptr; }
    const char* error() const noexcept { return error_; }  // why, for the close reason
    const FrameHeader& header() const noexcept { return header_; }
    // A data message is open (its last frame has not arrived yet).
    bool in_message() const noexcept { return in_message_; }
    void next() noexcept { ready_ = false, have_ = 0; }

private:
    bool check_first_two() noexcept;
    void finish() noexcept;

    unsigned char buf_[14]{};
    std::size_t have_ = 0, need_ = 2;
    FrameHeader header_;
    const char* error_ = nullptr;
    bool ready_ = false;
    bool in_message_ = false;
    bool allow_rsv1_;
};

// XORs `n` payload bytes with the frame's mask; `offset` is how many bytes of this frame's payload came
// before (the mask cycles every 4 bytes).
void unmask(char* data, std::size_t n, const std::uint8_t (&mask)[4], std::uint64_t offset) noexcept;

// Appends a server (unmasked) frame header for a payload of `length` bytes.
void append_frame_header(std::string& out, Opcode opcode, std::uint64_t length, bool fin = true, bool rsv1 = false);

// Queues one complete frame.
void write_frame(io::OutputQueue& q, Opcode opcode, std::string_view payload, bool rsv1 = false);

// Queues a close frame: `code` 0 sends an empty payload; the reason is cut to fit 125 bytes.
void write_close(io::OutputQueue& q, std::uint16_t code, std::string_view reason);

// The longest prefix of `s` of at most `max` bytes that does not split a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view s, std::size_t max) noexcept;

}  // namespace covet::ws
