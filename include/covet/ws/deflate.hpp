// permessage-deflate (RFC 7692): negotiating the extension from a client's offers, and per-message
// compression and decompression with zlib (kept out of this header).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace covet::ws {

// The server's policy.
struct DeflateOptions {
    int level = 6;                    // zlib compression level, 1 (fast) .. 9 (small)
    int mem_level = 8;                // zlib memLevel, 1..9: compressor state size
    int server_max_window_bits = 15;  // 9..15: our LZ77 window (smaller: less memory per connection)
    // Reset our compressor after every message: each connection then keeps no compression state between
    // messages, and a Hub compresses a broadcast once per configuration instead of once per connection.
    bool server_no_context_takeover = false;
    // Ask clients to reset theirs, so we may drop the decompressor's window between messages.
    bool client_no_context_takeover = false;
    std::size_t min_compress_bytes = 64;  // shorter messages are sent uncompressed (RSV1 is per message)
};

// What was agreed for one connection.
struct DeflateParams {
    bool enabled = false;
    bool server_no_context_takeover = false;
    bool client_no_context_takeover = false;
    int server_max_window_bits = 15;
    int client_max_window_bits = 15;
    // The Sec-WebSocket-Extensions response value.
    std::string response() const;
    friend bool operator==(const DeflateParams&, const DeflateParams&) = default;
};

// Picks the first acceptable permessage-deflate offer in one Sec-WebSocket-Extensions value (a comma-
// separated list). Offers with unknown, repeated or out-of-range parameters are declined (not accepted,
// the connection goes on uncompressed), as are offers that limit our window to 8 bits (zlib's raw
// deflate cannot produce 256-byte windows).
std::optional<DeflateParams> negotiate_deflate(std::string_view extensions_header, const DeflateOptions& options);

namespace detail {
struct ZState;  // a z_stream and which end() it needs (src/ws/deflate.cpp)
using ZStream = std::unique_ptr<ZState>;
}  // namespace detail

// Compresses whole messages (server → client).
class Deflater {
public:
    Deflater(const DeflateParams& params, const DeflateOptions& options);
    Deflater(Deflater&&) noexcept;
    Deflater& operator=(Deflater&&) noexcept;
    ~Deflater();
    // Appends the compressed form of `message` to `out`, without the 00 00 ff ff tail (RFC 7692 §7.2.1).
    // False if zlib failed (out of memory); `out` is then unspecified.
    bool compress(std::string_view message, std::string& out);

private:
    detail::ZStream z_;
    bool reset_each_message_;
    int level_, window_bits_, mem_level_;
};

// Decompresses messages (client → server) frame by frame, in bounded steps: output beyond `limit`
// bytes is never produced, so a small compressed message cannot make us allocate a huge one.
class Inflater {
public:
    enum class Status { ok, too_big, corrupt };
    explicit Inflater(const DeflateParams& params);
    Inflater(Inflater&&) noexcept;
    Inflater& operator=(Inflater&&) noexcept;
    ~Inflater();
    // Appends what `compressed` (a frame's payload) inflates to onto `out`; too_big as soon as `out`
    // would grow past `limit`.
    Status feed(std::string_view compressed, std::string& out, std::size_t limit);
    // The message's last frame was fed: appends the implied 00 00 ff ff tail's output and, without
    // context takeover, forgets the window.
    Status finish(std::string& out, std::size_t limit);

private:
    detail::ZStream z_;
    bool reset_each_message_;
};

}  // namespace covet::ws
