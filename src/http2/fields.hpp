// Header-field helpers of the HTTP/2 handler (private to src/http2): building nghttp2_nv arrays for
// responses and trailers, and decoding the h2c HTTP2-Settings header.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "covet/http/ascii.hpp"

namespace covet::http2::detail {

// Hop-by-hop fields that HTTP/2 forbids (RFC 9113 §8.2.2): dropped from responses.
inline bool connection_specific(std::string_view lower_name) noexcept {
    return lower_name == "connection" || lower_name == "keep-alive" || lower_name == "transfer-encoding" ||
           lower_name == "upgrade" || lower_name == "proxy-connection";
}

// A field list for nghttp2_submit_response/_trailer, with lowercase names (HTTP/2 requires them).
// nghttp2 copies the fields on submit, so one FieldBlock is reused for every submit of a connection.
class FieldBlock {
public:
    void clear() noexcept {
        bytes_.clear();
        offsets_.clear();
    }
    void add(std::string_view name, std::string_view value) {
        const std::size_t at = bytes_.size();
        for (char c : name) bytes_.push_back(ascii_lower(c));
        bytes_.append(value);
        offsets_.push_back({at, name.size(), value.size()});
    }
    // Response's serialized "Name: value\r\n" lines; connection-specific fields are left out.
    void add_lines(std::string_view rest) {
        while (!rest.empty()) {
            const std::size_t eol = rest.find("\r\n");
            const std::string_view line = rest.substr(0, eol);
            rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 2);
            const std::size_t colon = line.find(':');
            if (colon == std::string_view::npos || colon == 0) continue;
            std::string_view value = line.substr(colon + 1);
            while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
            const std::size_t at = bytes_.size();
            add(line.substr(0, colon), value);
            if (connection_specific(std::string_view(bytes_).substr(at, colon))) {
                bytes_.resize(at);
                offsets_.pop_back();
            }
        }
    }
    // The nv array; valid until the next change to this block.
    const std::vector<nghttp2_nv>& nv() {
        nv_.clear();
        auto* base = reinterpret_cast<std::uint8_t*>(bytes_.data());
        for (const Offset& f : offsets_)
            nv_.push_back({base + f.at, base + f.at + f.name_len, f.name_len, f.value_len, NGHTTP2_NV_FLAG_NONE});
        return nv_;
    }

private:
    struct Offset {
        std::size_t at, name_len, value_len;
    };
    std::string bytes_;  // offsets, not pointers, until nv(): appending may move the bytes
    std::vector<Offset> offsets_;
    std::vector<nghttp2_nv> nv_;
};

// RFC 4648 §5 base64url (padding optional), for HTTP2-Settings. False on invalid input.
inline bool decode_base64url(std::string_view in, std::string& out) {
    while (!in.empty() && in.back() == '=') in.remove_suffix(1);
    out.clear();
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        int v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '-' || c == '+')
            v = 62;  // the standard alphabet's +/ are accepted too
        else if (c == '_' || c == '/')
            v = 63;
        else
            return false;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xff));
        }
    }
    return bits < 6;  // a lone trailing 6-bit group cannot encode a byte
}

}  // namespace covet::http2::detail
