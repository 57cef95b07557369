// One more entry in the server's first SETTINGS frame, added to nghttp2's output (private to src/http2).
//
// Why: SETTINGS_MAX_CONCURRENT_STREAMS is advertised to the client but enforced by us (Http2Protocol refuses a
// stream over it with RST_STREAM REFUSED_STREAM), not by nghttp2, which ends the whole connection (GOAWAY) once
// the client has acknowledged the setting; RFC 9113 §5.1.2 asks for a stream error. nghttp2 sends the other
// settings and applies them when the client's ACK comes; the limit rides in the same frame, so the client gets
// every setting in one frame (grpcio's client spins, allocating without bound, when the limit came in a second
// SETTINGS frame while its first calls were starting).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace covet::http2::detail {

// `out` with the entry (`id`, `value`) appended to the SETTINGS frame `out` starts with (not an ACK, stream 0,
// whole); empty when `out` does not start with such a frame.
inline std::string with_extra_setting(std::string_view out, std::uint16_t id, std::uint32_t value) {
    constexpr std::size_t header = 9, entry = 6;
    constexpr std::uint8_t settings_type = 0x4, ack_flag = 0x1;
    if (out.size() < header) return {};
    const auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(out[i]); };
    const std::size_t length = (std::size_t{byte(0)} << 16) | (std::size_t{byte(1)} << 8) | byte(2);
    const bool stream_zero = byte(5) == 0 && byte(6) == 0 && byte(7) == 0 && byte(8) == 0;
    if (byte(3) != settings_type || (byte(4) & ack_flag) || !stream_zero || length % entry != 0 ||
        out.size() < header + length)
        return {};
    const std::size_t grown = length + entry;
    std::string result;
    result.reserve(out.size() + entry);
    result += static_cast<char>((grown >> 16) & 0xFF);
    result += static_cast<char>((grown >> 8) & 0xFF);
    result += static_cast<char>(grown & 0xFF);
    result.append(out.substr(3, header - 3 + length));
    result += static_cast<char>(id >> 8);
    result += static_cast<char>(id & 0xFF);
    for (int shift = 24; shift >= 0; shift -= 8) result += static_cast<char>((value >> shift) & 0xFF);
    result.append(out.substr(header + length));
    return result;
}

}  // namespace covet::http2::detail
