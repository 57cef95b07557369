// The gRPC wire format: see covet/grpc/wire.hpp.
#include "covet/grpc/wire.hpp"

#include <zlib.h>

#include <array>
#include <cstring>
#include <new>

#include "covet/http/grpc_call.hpp"

namespace covet::grpc {

std::string encode_status_message(std::string_view message) { return http::grpc_percent_encode(message); }

std::string frame_message(std::string_view message) {
    std::string out(5 + message.size(), '\0');
    const auto n = static_cast<std::uint32_t>(message.size());
    out[1] = static_cast<char>(n >> 24);
    out[2] = static_cast<char>(n >> 16);
    out[3] = static_cast<char>(n >> 8);
    out[4] = static_cast<char>(n);
    if (!message.empty()) std::memcpy(out.data() + 5, message.data(), message.size());
    return out;
}

namespace {

// Inflates `in` (gzip: windowBits 16+15; deflate: zlib format) into `out`, refusing past `limit` bytes.
Status inflate_message(std::string_view in, bool gzip, std::size_t limit, std::string& out) {
    z_stream z{};
    if (inflateInit2(&z, gzip ? 16 + MAX_WBITS : MAX_WBITS) != Z_OK)
        return {StatusCode::internal, "could not start decompressing a message"};
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));  // NOLINT: zlib's API is not const
    z.avail_in = static_cast<uInt>(in.size());
    out.clear();
    std::array<char, 16384> buf{};
    int rc = Z_OK;
    while (rc == Z_OK) {
        z.next_out = reinterpret_cast<Bytef*>(buf.data());
        z.avail_out = static_cast<uInt>(buf.size());
        rc = inflate(&z, Z_NO_FLUSH);
        out.append(buf.data(), buf.size() - z.avail_out);
        if (out.size() > limit) {
            inflateEnd(&z);
            return {StatusCode::resource_exhausted, "a decompressed message is larger than the server's limit of " +
                                                        std::to_string(limit) + " bytes (max_receive_message_bytes)"};
        }
        if (rc == Z_BUF_ERROR && z.avail_in == 0) break;  // input used up before the end: truncated
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END)
        return {StatusCode::internal, "a compressed message is truncated or not valid for its encoding"};
    return {};
}

// Deflates `in` (gzip: windowBits 16+15; deflate: zlib format) at zlib's default level.
std::string deflate_message(std::string_view in, bool gzip) {
    z_stream z{};
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, gzip ? 16 + MAX_WBITS : MAX_WBITS, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        throw std::bad_alloc();  // zlib fails to start only when out of memory
    std::string out(deflateBound(&z, static_cast<uLong>(in.size())) + (gzip ? 18 : 0), '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));  // NOLINT: zlib's API is not const
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&z, Z_FINISH);  // the bound leaves room for all of it in one call
    out.resize(out.size() - z.avail_out);
    deflateEnd(&z);
    if (rc != Z_STREAM_END) throw std::bad_alloc();
    return out;
}

}  // namespace

std::string frame_message(std::string_view message, std::string_view encoding) {
    if (encoding != "gzip" && encoding != "deflate") return frame_message(message);
    std::string framed = frame_message(deflate_message(message, encoding == "gzip"));
    framed[0] = 1;
    return framed;
}

Status MessageReader::feed(std::string_view chunk, const std::function<void(std::string_view)>& on_message) {
    // Whole messages straight from the chunk when nothing is buffered (no copy); the rest is kept.
    std::string_view data = chunk;
    if (!buffer_.empty()) {
        buffer_.append(chunk);
        data = buffer_;
    }
    std::size_t pos = 0;
    Status status;
    while (data.size() - pos >= 5) {
        const auto* p = reinterpret_cast<const unsigned char*>(data.data() + pos);
        const std::size_t size =
            (std::size_t{p[1]} << 24) | (std::size_t{p[2]} << 16) | (std::size_t{p[3]} << 8) | p[4];
        if (size > limit_) {
            status = {StatusCode::resource_exhausted,
                      "a request message of " + std::to_string(size) + " bytes is larger than the server's limit of " +
                          std::to_string(limit_) + " bytes (max_receive_message_bytes)"};
            break;
        }
        if (data.size() - pos - 5 < size) break;
        if (p[0] > 1) {
            status = {StatusCode::internal,
                      "a message's compressed flag is " + std::to_string(p[0]) + " (must be 0 or 1)"};
            break;
        }
        const std::string_view payload = data.substr(pos + 5, size);
        pos += 5 + size;
        status = complete(p[0] == 1, payload, on_message);
        if (!status.ok()) break;
    }
    if (!status.ok()) {
        buffer_.clear();
        return status;
    }
    if (data.data() == buffer_.data()) {
        buffer_.erase(0, pos);
    } else {
        buffer_.assign(data.substr(pos));
    }
    return status;
}

Status MessageReader::complete(bool compressed, std::string_view payload,
                               const std::function<void(std::string_view)>& on_message) {
    if (!compressed) {
        on_message(payload);
        return {};
    }
    if (encoding_.empty())
        return {StatusCode::internal, "a message is marked compressed but the request has no grpc-encoding header"};
    if (encoding_ != "gzip" && encoding_ != "deflate")
        return {StatusCode::unimplemented,
                "message compression \"" + encoding_ + "\" is not supported (supported: identity, deflate, gzip)"};
    Status status = inflate_message(payload, encoding_ == "gzip", limit_, inflated_);
    if (!status.ok()) return status;
    on_message(inflated_);
    return {};
}

Status MessageReader::finish() const {
    if (buffer_.empty()) return {};
    return {StatusCode::internal,
            "the request ended inside a message (" + std::to_string(buffer_.size()) + " bytes of it arrived)"};
}

std::optional<std::chrono::nanoseconds> parse_timeout(std::string_view value) noexcept {
    if (value.size() < 2 || value.size() > 9) return std::nullopt;
    std::int64_t n = 0;
    for (const char c : value.substr(0, value.size() - 1)) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + (c - '0');
    }
    using namespace std::chrono;
    // 8 digits of hours overflow nanoseconds: a timeout is capped at a year (a call that long has none).
    static constexpr std::int64_t cap = std::int64_t{365} * 24 * 3600;  // seconds
    std::int64_t per_second = 1;                                        // units in a second (n: 1e9)
    std::int64_t unit_seconds = 1;                                      // seconds in a unit (H: 3600)
    switch (value.back()) {
        case 'H': unit_seconds = 3600; break;
        case 'M': unit_seconds = 60; break;
        case 'S': break;
        case 'm': per_second = 1000; break;
        case 'u': per_second = 1'000'000; break;
        case 'n': per_second = 1'000'000'000; break;
        default: return std::nullopt;
    }
    if (n / per_second >= cap / unit_seconds) return seconds(cap);
    return nanoseconds(n * unit_seconds * (1'000'000'000 / per_second));
}

namespace {
constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int sextet(char c) noexcept {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}
}  // namespace

bool base64_decode(std::string_view in, std::string& out) {
    while (!in.empty() && in.back() == '=') in.remove_suffix(1);
    if (in.size() % 4 == 1) return false;
    out.clear();
    out.reserve(in.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : in) {
        const int v = sextet(c);
        if (v < 0) return false;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFF);
        }
    }
    return true;
}

std::string base64_encode(std::string_view in, bool pad) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : in) {
        acc = (acc << 8) | static_cast<unsigned char>(c);
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += alphabet[(acc >> bits) & 0x3F];
        }
    }
    if (bits > 0) out += alphabet[(acc << (6 - bits)) & 0x3F];
    if (pad)
        while (out.size() % 4 != 0) out += '=';
    return out;
}

}  // namespace covet::grpc
