// Strict base64url (see covet/security/base64url.hpp).
#include "covet/security/base64url.hpp"

#include <array>
#include <cstdint>

namespace covet::security {

namespace {

constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<std::int8_t, 256> decode_table() {
    std::array<std::int8_t, 256> t{};
    for (auto& v : t) v = -1;
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
    return t;
}
constexpr auto table = decode_table();

}  // namespace

bool base64url_decode(std::string_view in, std::string& out) {
    out.clear();
    if (in.size() % 4 == 1) return false;
    out.reserve(in.size() / 4 * 3 + 2);
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : in) {
        const std::int8_t v = table[static_cast<unsigned char>(c)];
        if (v < 0) return false;
        acc = (acc << 6 | static_cast<std::uint32_t>(v)) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>(acc >> bits & 0xFF));
        }
    }
    // Leftover bits (2 or 4) must be zero: otherwise two spellings would decode to the same bytes.
    return (acc & ((1u << bits) - 1)) == 0;
}

std::string base64url_encode(std::string_view in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : in) {
        acc = (acc << 8 | static_cast<unsigned char>(c)) & 0xFFFF;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(alphabet[acc >> bits & 0x3F]);
        }
    }
    if (bits > 0) out.push_back(alphabet[acc << (6 - bits) & 0x3F]);
    return out;
}

}  // namespace covet::security
