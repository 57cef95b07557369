// The gRPC wire format under a call: length-prefixed messages (a compressed flag, a 4-byte big-endian length,
// the bytes), reassembled from body chunks cut anywhere; grpc-timeout; binary metadata's base64.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "covet/grpc/status.hpp"

namespace covet::grpc {

// One message on the wire, uncompressed.
std::string frame_message(std::string_view message);
// One message compressed with `encoding` ("gzip" or "deflate"), its compressed flag set; uncompressed for any
// other encoding ("" included).
std::string frame_message(std::string_view message, std::string_view encoding);

// Reassembles a request's messages. The size limit is checked on the prefix, before the bytes arrive, and
// again on a decompressed message (a gzip bomb is refused as it inflates).
class MessageReader {
public:
    // `encoding`: the request's grpc-encoding ("" or "identity": none; "gzip" and "deflate" are read).
    MessageReader(std::size_t max_message_bytes, std::string_view encoding)
        : limit_(max_message_bytes), encoding_(encoding == "identity" ? std::string_view{} : encoding) {}

    // Adds `chunk`; calls `on_message` with each message it completes. A failed status (INTERNAL,
    // RESOURCE_EXHAUSTED, UNIMPLEMENTED) ends the reading: feed no more.
    Status feed(std::string_view chunk, const std::function<void(std::string_view)>& on_message);
    // The body ended: bytes left over are a truncated message (INTERNAL).
    Status finish() const;

private:
    Status complete(bool compressed, std::string_view payload, const std::function<void(std::string_view)>& on_message);

    std::size_t limit_;
    std::string encoding_;
    std::string buffer_;
    std::string inflated_;
};

// A grpc-timeout value (1 to 8 digits, then H, M, S, m, u or n); nullopt when malformed.
std::optional<std::chrono::nanoseconds> parse_timeout(std::string_view value) noexcept;

// Standard base64 (binary metadata, keys ending in "-bin"; gRPC-Web text bodies): decoding accepts padded and
// unpadded input; false for anything else. Encoding writes no padding unless `pad` (metadata: none, as gRPC
// implementations send; a gRPC-Web text frame: padded).
bool base64_decode(std::string_view in, std::string& out);
std::string base64_encode(std::string_view in, bool pad = false);

}  // namespace covet::grpc
