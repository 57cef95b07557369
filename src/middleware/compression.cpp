// Response compression (see covet/middleware/compression.hpp): zlib's gzip, Brotli, Zstandard.
#include "covet/middleware/compression.hpp"

#include <brotli/encode.h>
#include <zlib.h>
#include <zstd.h>

#include <array>
#include <charconv>
#include <stdexcept>

#include "covet/http/ascii.hpp"
#include "covet/http/qvalue.hpp"

namespace covet {

namespace {

struct ZStream {
    z_stream s{};
    bool ready = false;
    ZStream(int level) {
        // 31: a gzip wrapper (16) around a 32 KiB window; memLevel 8 as Python's zlib.compressobj.
        if (deflateInit2(&s, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            throw std::runtime_error("gzip: deflateInit2 failed (out of memory?)");
        ready = true;
    }
    ~ZStream() {
        if (ready) deflateEnd(&s);
    }
    ZStream(const ZStream&) = delete;
    ZStream& operator=(const ZStream&) = delete;

    // Compresses `in` with `flush` (Z_SYNC_FLUSH or Z_FINISH), appending to `out`.
    bool run(std::string_view in, int flush, std::string& out) noexcept {
        s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));  // zlib's API is not const
        s.avail_in = static_cast<uInt>(in.size());
        while (true) {
            const std::size_t room = deflateBound(&s, s.avail_in) + 64;
            const std::size_t at = out.size();
            try {
                out.resize(at + room);
            } catch (...) {
                return false;
            }
            s.next_out = reinterpret_cast<Bytef*>(out.data() + at);
            s.avail_out = static_cast<uInt>(room);
            const int rc = deflate(&s, flush);
            out.resize(at + room - s.avail_out);
            if (rc == Z_STREAM_END) return true;
            if (rc != Z_OK && rc != Z_BUF_ERROR) return false;
            if (s.avail_in == 0 && s.avail_out != 0) return true;  // flushed
        }
    }
};

class GzipFilter final : public BodyFilter {
public:
    explicit GzipFilter(int level) : z_(level) {}
    std::string_view filter(std::string_view chunk, bool last) noexcept override {
        out_.clear();
        if (!z_.run(chunk, last ? Z_FINISH : Z_SYNC_FLUSH, out_)) out_.clear();
        return out_;
    }

private:
    ZStream z_;
    std::string out_;
};

class BrotliFilter final : public BodyFilter {
public:
    explicit BrotliFilter(int quality) : s_(BrotliEncoderCreateInstance(nullptr, nullptr, nullptr)) {
        if (!s_) throw std::runtime_error("brotli: no encoder (out of memory?)");
        BrotliEncoderSetParameter(s_.get(), BROTLI_PARAM_QUALITY, static_cast<std::uint32_t>(quality));
    }
    std::string_view filter(std::string_view chunk, bool last) noexcept override {
        out_.clear();
        std::size_t in_left = chunk.size();
        const auto* in = reinterpret_cast<const std::uint8_t*>(chunk.data());
        const BrotliEncoderOperation op = last ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_FLUSH;
        while (true) {
            std::size_t out_left = 0;
            if (!BrotliEncoderCompressStream(s_.get(), op, &in_left, &in, &out_left, nullptr, nullptr)) {
                out_.clear();
                return out_;
            }
            std::size_t size = 0;
            const std::uint8_t* produced = BrotliEncoderTakeOutput(s_.get(), &size);
            try {
                out_.append(reinterpret_cast<const char*>(produced), size);
            } catch (...) {
                out_.clear();
                return out_;
            }
            if (in_left == 0 && !BrotliEncoderHasMoreOutput(s_.get()) && (!last || BrotliEncoderIsFinished(s_.get())))
                return out_;
        }
    }

private:
    struct Free {
        void operator()(BrotliEncoderState* s) const noexcept { BrotliEncoderDestroyInstance(s); }
    };
    std::unique_ptr<BrotliEncoderState, Free> s_;
    std::string out_;
};

class ZstdFilter final : public BodyFilter {
public:
    explicit ZstdFilter(int level) : s_(ZSTD_createCCtx()) {
        if (!s_) throw std::runtime_error("zstd: no context (out of memory?)");
        ZSTD_CCtx_setParameter(s_.get(), ZSTD_c_compressionLevel, level);
    }
    std::string_view filter(std::string_view chunk, bool last) noexcept override {
        out_.clear();
        ZSTD_inBuffer in{chunk.data(), chunk.size(), 0};
        const ZSTD_EndDirective mode = last ? ZSTD_e_end : ZSTD_e_flush;
        while (true) {
            const std::size_t at = out_.size();
            try {
                out_.resize(at + ZSTD_CStreamOutSize());
            } catch (...) {
                out_.clear();
                return out_;
            }
            ZSTD_outBuffer out{out_.data() + at, out_.size() - at, 0};
            const std::size_t left = ZSTD_compressStream2(s_.get(), &out, &in, mode);
            out_.resize(at + out.pos);
            if (ZSTD_isError(left)) {
                out_.clear();
                return out_;
            }
            if (left == 0 && in.pos == in.size) return out_;
        }
    }

private:
    struct Free {
        void operator()(ZSTD_CCtx* c) const noexcept { ZSTD_freeCCtx(c); }
    };
    std::unique_ptr<ZSTD_CCtx, Free> s_;
    std::string out_;
};

void add_vary(Response& response, std::string_view value) {
    // A Vary in an attached set (CORS's answer) is joined too: the sets' fields become the response's own first.
    for (std::size_t i = 0; const SharedFields* set = response.shared_fields(i); ++i)
        if (set->fields.get("vary")) {
            response.unshare_fields();
            break;
        }
    std::string joined;
    for (const Fields::Field f : response.headers())
        if (iequals(f.name, "vary")) joined.append(f.value).append(", ");
    joined += value;
    response.set_header("Vary", joined);
}

}  // namespace

std::string_view coding_name(ContentCoding coding) noexcept {
    switch (coding) {
        case ContentCoding::gzip: return "gzip";
        case ContentCoding::br: return "br";
        case ContentCoding::zstd: return "zstd";
        case ContentCoding::identity: break;
    }
    return "identity";
}

ContentCoding negotiate_coding(std::string_view accept, const CompressionOptions& o) noexcept {
    const bool gzip = o.gzip_level > 0, br = o.brotli_quality > 0, zstd = o.zstd_level > 0;
    if (gzip && !br && !zstd)  // Starlette's test: the text "gzip" anywhere in the header
        return accept.find("gzip") != std::string_view::npos ? ContentCoding::gzip : ContentCoding::identity;
    // q-values in thousandths; -1: not mentioned.
    int q_gzip = -1, q_br = -1, q_zstd = -1, q_any = -1;
    for_each_weighted(accept, [&](std::string_view name, int q) {
        if (iequals(name, "gzip") || iequals(name, "x-gzip"))
            q_gzip = q;
        else if (iequals(name, "br"))
            q_br = q;
        else if (iequals(name, "zstd"))
            q_zstd = q;
        else if (name == "*")
            q_any = q;
    });
    const auto rate = [q_any](int q) { return q >= 0 ? q : q_any; };
    ContentCoding best = ContentCoding::identity;
    int best_q = 0;
    const std::array<std::pair<ContentCoding, int>, 3> ranked{{{ContentCoding::br, br ? rate(q_br) : -1},
                                                               {ContentCoding::zstd, zstd ? rate(q_zstd) : -1},
                                                               {ContentCoding::gzip, gzip ? rate(q_gzip) : -1}}};
    for (const auto& [coding, q] : ranked)
        if (q > best_q) best = coding, best_q = q;
    return best;
}

std::unique_ptr<BodyFilter> make_compressor(ContentCoding coding, const CompressionOptions& o) {
    switch (coding) {
        case ContentCoding::gzip: return std::make_unique<GzipFilter>(o.gzip_level);
        case ContentCoding::br: return std::make_unique<BrotliFilter>(o.brotli_quality);
        case ContentCoding::zstd: return std::make_unique<ZstdFilter>(o.zstd_level);
        case ContentCoding::identity: break;
    }
    return nullptr;
}

std::string compress(ContentCoding coding, std::string_view data, const CompressionOptions& o) {
    std::string out;
    switch (coding) {
        case ContentCoding::gzip: {
            ZStream z(o.gzip_level);
            if (!z.run(data, Z_FINISH, out)) throw std::runtime_error("gzip: compression failed");
            return out;
        }
        case ContentCoding::br: {
            std::size_t size = BrotliEncoderMaxCompressedSize(data.size());
            if (size == 0) size = data.size() + 1024;
            out.resize(size);
            if (!BrotliEncoderCompress(o.brotli_quality, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC, data.size(),
                                       reinterpret_cast<const std::uint8_t*>(data.data()), &size,
                                       reinterpret_cast<std::uint8_t*>(out.data())))
                throw std::runtime_error("brotli: compression failed");
            out.resize(size);
            return out;
        }
        case ContentCoding::zstd: {
            out.resize(ZSTD_compressBound(data.size()));
            const std::size_t size = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), o.zstd_level);
            if (ZSTD_isError(size)) throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(size));
            out.resize(size);
            return out;
        }
        case ContentCoding::identity: break;
    }
    return std::string(data);
}

CompressionMiddleware::CompressionMiddleware(CompressionOptions options) : options_(std::move(options)) {
    const auto check = [](int value, int high, const char* name) {
        if (value < 0 || value > high)
            throw std::invalid_argument(std::string("compression: ") + name + " must be 0 (off) to " +
                                        std::to_string(high) + ", not " + std::to_string(value));
    };
    check(options_.gzip_level, 9, "gzip_level");
    check(options_.brotli_quality, 11, "brotli_quality");
    check(options_.zstd_level, ZSTD_maxCLevel(), "zstd_level");
    for (std::string& t : options_.exclude_content_types) {
        t = std::string(trim_ows(std::string_view(t).substr(0, t.find(';'))));
        for (char& c : t) c = ascii_lower(c);
    }
}

bool CompressionMiddleware::excluded(const Response& response) const noexcept {
    std::string_view ct = response.content_type();
    ct = trim_ows(ct.substr(0, ct.find(';')));
    const std::string_view major = ct.substr(0, ct.find('/'));
    for (const std::string& t : options_.exclude_content_types) {
        if (iequals(ct, t)) return true;
        if (t.size() == major.size() + 2 && t.ends_with("/*") &&
            iequals(std::string_view(t).substr(0, major.size()), major))
            return true;
        if (t == "application/grpc" && ct.size() > 17 && iequals(ct.substr(0, 17), "application/grpc+")) return true;
    }
    return false;
}

void CompressionMiddleware::after(const Request& request, const RequestContext&, Response& response) {
    if (response.has_header("content-encoding") || response.status() == 206 || excluded(response)) return;
    if (response.body_size() < options_.minimum_size) return;
    add_vary(response, "Accept-Encoding");
    const ContentCoding coding = negotiate_coding(request.header("accept-encoding").value_or(""), options_);
    if (coding == ContentCoding::identity) return;
    response.materialize_file_body();  // a file body (static files) is compressed from memory, as before
    std::string compressed = compress(coding, response.body(), options_);
    response.set_body(std::move(compressed));
    response.set_header("Content-Encoding", coding_name(coding));
}

void CompressionMiddleware::after_stream(const Request& request, RequestContext& context, Response& head) {
    if (head.has_header("content-encoding") || head.status() == 206 || excluded(head)) return;
    add_vary(head, "Accept-Encoding");
    const ContentCoding coding = negotiate_coding(request.header("accept-encoding").value_or(""), options_);
    if (coding == ContentCoding::identity) return;
    context.set_body_filter(make_compressor(coding, options_));
    head.set_header("Content-Encoding", coding_name(coding));
}

}  // namespace covet
