// Response compression with Starlette's GZipMiddleware semantics, plus Brotli and Zstandard when enabled:
// a response whose body is at least minimum_size bytes (or any streamed one), not already encoded, not a
// 206 and not of an excluded content type gets `Vary: Accept-Encoding` and, when the client accepts one of
// the enabled encodings, its body compressed and `Content-Encoding` set. Streamed bodies are compressed
// chunk by chunk (each chunk flushed, so the client sees it at once).
//
// With gzip alone, the client accepts it when its Accept-Encoding contains "gzip" (Starlette's test).
// With several encodings, Accept-Encoding is parsed (q-values, `*`, q=0 refusals) and the best-rated
// enabled encoding wins; ties go to the server's preference: br, zstd, gzip.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "covet/middleware/middleware.hpp"

namespace covet {

enum class ContentCoding { identity, gzip, br, zstd };

struct CompressionOptions {
    std::size_t minimum_size = 500;
    int gzip_level = 9;      // 1..9; 0 disables gzip
    int brotli_quality = 0;  // 1..11; 0: Brotli off
    int zstd_level = 0;      // 1..22; 0: zstd off
    // Media types (parameters ignored, "type/*" wildcards) never compressed. Starlette's defaults.
    std::vector<std::string> exclude_content_types{
        "application/grpc", "application/gzip", "application/x-gzip", "application/zip", "audio/*",
        "font/woff",        "font/woff2",       "image/avif",         "image/gif",       "image/jpeg",
        "image/png",        "image/webp",       "text/event-stream",  "video/*"};
};

// The coding a response to `accept_encoding` gets (identity when none of the enabled ones is acceptable).
ContentCoding negotiate_coding(std::string_view accept_encoding, const CompressionOptions& options) noexcept;
// One-shot compression of a whole body (gzip: the same bytes as Python's zlib.compressobj(level, DEFLATED,
// 31) + flush()). Throws std::runtime_error if the library fails (out of memory).
std::string compress(ContentCoding coding, std::string_view data, const CompressionOptions& options);
// A streaming compressor for one body: each filter() call returns the chunk compressed and flushed.
std::unique_ptr<BodyFilter> make_compressor(ContentCoding coding, const CompressionOptions& options);
std::string_view coding_name(ContentCoding coding) noexcept;

class CompressionMiddleware final : public Middleware {
public:
    // Throws std::invalid_argument naming the option for an out-of-range level.
    explicit CompressionMiddleware(CompressionOptions options);

    void after(const Request& request, const RequestContext& context, Response& response) override;
    void after_stream(const Request& request, RequestContext& context, Response& head) override;

private:
    bool excluded(const Response& response) const noexcept;
    CompressionOptions options_;
};

}  // namespace covet
