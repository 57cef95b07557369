// Header-field helpers of the HTTP/2 handler (private to src/http2): building nghttp2_nv arrays for
// responses and trailers, and decoding the h2c HTTP2-Settings header.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "covet/http/ascii.hpp"
#include "covet/http/fields.hpp"

namespace covet::http2::detail {

// Hop-by-hop fields that HTTP/2 forbids (RFC 9113 §8.2.2): dropped from responses.
inline bool connection_specific(std::string_view lower_name) noexcept {
    return lower_name == "connection" || lower_name == "keep-alive" || lower_name == "transfer-encoding" ||
           lower_name == "upgrade" || lower_name == "proxy-connection";
}

// A field list for nghttp2_submit_response/_trailer, with lowercase names (HTTP/2 requires them).
// Names are lowercased into this block; the values of a Response's Fields are not copied but pointed at,
// so the Fields must not change until the submit that uses nv(). nghttp2 copies the fields on submit, so
// one FieldBlock is reused for every submit of a connection.
class FieldBlock {
public:
    void clear() noexcept {
        bytes_.clear();
        entries_.clear();
    }
    // Copies both.
    void add(std::string_view name, std::string_view value) {
        const std::size_t at = append_lower(name);
        entries_.push_back({at, name.size(), nullptr, bytes_.size(), value.size()});
        bytes_.append(value);
    }
    // A Response's header or trailer fields, in order; connection-specific fields are left out.
    void add(const Fields& fields) {
        for (const Fields::Field f : fields) {
            const std::size_t at = append_lower(f.name);
            if (connection_specific(std::string_view(bytes_).substr(at))) {
                bytes_.resize(at);
                continue;
            }
            entries_.push_back({at, f.name.size(), f.value.data(), 0, f.value.size()});
        }
    }
    // The nv array; valid until the next change to this block (or to the Fields added).
    const std::vector<nghttp2_nv>& nv() {
        nv_.clear();
        auto* base = reinterpret_cast<std::uint8_t*>(bytes_.data());
        for (const Entry& e : entries_) {
            auto* value = e.value ? reinterpret_cast<std::uint8_t*>(const_cast<char*>(e.value)) : base + e.value_at;
            nv_.push_back({base + e.name_at, value, e.name_len, e.value_len, NGHTTP2_NV_FLAG_NONE});
        }
        return nv_;
    }

private:
    std::size_t append_lower(std::string_view name) {
        const std::size_t at = bytes_.size();
        for (const char c : name) bytes_.push_back(ascii_lower(c));
        return at;
    }
    struct Entry {
        std::size_t name_at, name_len;
        const char* value;  // outside this block (a Response's Fields), or null: at value_at in bytes_
        std::size_t value_at, value_len;
    };
    std::string bytes_;  // offsets, not pointers, until nv(): appending may move the bytes
    std::vector<Entry> entries_;
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
