// permessage-deflate on zlib: raw deflate streams (negative windowBits), sync-flushed per message.
#include "covet/ws/deflate.hpp"

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "covet/http/ascii.hpp"

namespace covet::ws {
namespace {

constexpr std::size_t chunk = std::size_t{16} * 1024;  // output grows by at most this much per zlib call
constexpr char tail[4] = {0x00, 0x00, static_cast<char>(0xFF), static_cast<char>(0xFF)};

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Splits off the part of `s` before `sep` (the whole of `s` if there is none).
std::string_view take(std::string_view& s, char sep) noexcept {
    const std::size_t i = s.find(sep);
    const std::string_view part = s.substr(0, i);
    s.remove_prefix(i == std::string_view::npos ? s.size() : i + 1);
    return part;
}

// A window-bits value: 1*DIGIT in 8..15, possibly quoted (RFC 7692 §7.1.2).
std::optional<int> window_bits(std::string_view v) noexcept {
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    if (v.empty() || v.size() > 2) return std::nullopt;
    int n = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc{} || end != v.data() + v.size() || v.front() == '0') return std::nullopt;
    if (n < 8 || n > 15) return std::nullopt;
    return n;
}

// One offer's parameters ("a; b=1; c"): the agreed params, or nothing if the offer must be declined.
std::optional<DeflateParams> accept_offer(std::string_view params, const DeflateOptions& o) {
    DeflateParams p;
    p.enabled = true;
    bool seen_snct = false, seen_cnct = false, seen_smwb = false, seen_cmwb = false;
    std::optional<int> server_bits;  // the client's limit on our window
    while (!params.empty()) {
        std::string_view item = trim(take(params, ';'));
        if (item.empty()) return std::nullopt;
        std::string_view name = trim(take(item, '='));
        const std::string_view value = trim(item);
        if (iequals(name, "server_no_context_takeover")) {
            if (seen_snct || !value.empty()) return std::nullopt;
            seen_snct = true;
        } else if (iequals(name, "client_no_context_takeover")) {
            if (seen_cnct || !value.empty()) return std::nullopt;
            seen_cnct = true;
        } else if (iequals(name, "server_max_window_bits")) {
            if (seen_smwb) return std::nullopt;
            seen_smwb = true;
            server_bits = window_bits(value);
            if (!server_bits) return std::nullopt;  // a value is required
        } else if (iequals(name, "client_max_window_bits")) {
            if (seen_cmwb) return std::nullopt;
            seen_cmwb = true;
            if (!value.empty() && !window_bits(value)) return std::nullopt;  // the value is optional
        } else {
            return std::nullopt;  // unknown parameter
        }
    }
    const int ours = std::clamp(o.server_max_window_bits, 9, 15);
    p.server_max_window_bits = server_bits ? std::min(*server_bits, ours) : ours;
    if (p.server_max_window_bits < 9) return std::nullopt;  // 8: zlib would use 9 and break the client
    p.server_no_context_takeover = seen_snct || o.server_no_context_takeover;
    p.client_no_context_takeover = seen_cnct || o.client_no_context_takeover;
    // We always inflate with a 15-bit window, which reads any smaller one, so the client's window is
    // never limited (and client_max_window_bits is never answered: it is only a hint that it may be).
    p.client_max_window_bits = 15;
    return p;
}

}  // namespace

std::string DeflateParams::response() const {
    std::string s = "permessage-deflate";
    if (server_no_context_takeover) s += "; server_no_context_takeover";
    if (client_no_context_takeover) s += "; client_no_context_takeover";
    if (server_max_window_bits < 15) s += "; server_max_window_bits=" + std::to_string(server_max_window_bits);
    return s;
}

std::optional<DeflateParams> negotiate_deflate(std::string_view header, const DeflateOptions& options) {
    while (!header.empty()) {
        std::string_view offer = take(header, ',');
        const bool has_params = offer.find(';') != std::string_view::npos;
        std::string_view name = trim(take(offer, ';'));
        if (!iequals(name, "permessage-deflate")) continue;
        if (has_params && trim(offer).empty()) continue;  // "permessage-deflate;": a parameter is missing
        if (auto p = accept_offer(offer, options)) return p;
    }
    return std::nullopt;
}

namespace detail {
struct ZState {
    explicit ZState(bool inflating) : inflate(inflating) {}
    ZState(const ZState&) = delete;
    ZState& operator=(const ZState&) = delete;
    ~ZState() {
        if (!initialized) return;
        if (inflate)
            inflateEnd(&z);
        else
            deflateEnd(&z);
    }
    z_stream z{};
    bool inflate;
    bool initialized = false;
};
}  // namespace detail

Deflater::Deflater(Deflater&&) noexcept = default;
Deflater& Deflater::operator=(Deflater&&) noexcept = default;
Deflater::~Deflater() = default;
Inflater::Inflater(Inflater&&) noexcept = default;
Inflater& Inflater::operator=(Inflater&&) noexcept = default;
Inflater::~Inflater() = default;

Deflater::Deflater(const DeflateParams& params, const DeflateOptions& options)
    : reset_each_message_(params.server_no_context_takeover),
      level_(std::clamp(options.level, 1, 9)),
      window_bits_(params.server_max_window_bits),
      mem_level_(std::clamp(options.mem_level, 1, 9)) {}

bool Deflater::compress(std::string_view message, std::string& out) {
    if (!z_) {  // lazily: a connection that never sends a large message never pays for the state
        auto z = std::make_unique<detail::ZState>(false);
        if (deflateInit2(&z->z, level_, Z_DEFLATED, -window_bits_, mem_level_, Z_DEFAULT_STRATEGY) != Z_OK)
            return false;
        z->initialized = true;
        z_ = std::move(z);
    }
    z_stream& z = z_->z;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(message.data()));
    z.avail_in = static_cast<uInt>(message.size());
    const std::size_t start = out.size();
    out.reserve(start + message.size() / 2 + 64);
    do {
        const std::size_t before = out.size();
        out.resize(before + std::max<std::size_t>(chunk, deflateBound(&z, z.avail_in)));
        z.next_out = reinterpret_cast<Bytef*>(out.data() + before);
        z.avail_out = static_cast<uInt>(out.size() - before);
        const int rc = deflate(&z, Z_SYNC_FLUSH);
        out.resize(out.size() - z.avail_out);
        if (rc != Z_OK && rc != Z_BUF_ERROR) return false;
    } while (z.avail_in > 0 || z.avail_out == 0);
    // A sync flush always ends with an empty stored block: 00 00 ff ff, which the receiver re-adds.
    if (out.size() - start >= 4 && std::memcmp(out.data() + out.size() - 4, tail, 4) == 0) out.resize(out.size() - 4);
    // An empty message right after another (zlib has nothing to flush twice) gave no bytes at all, and the tail
    // the receiver adds is then an incomplete stored block that swallows the next message: send the empty
    // block's header, one 0x00 octet, as RFC 7692 §7.2.3.6 says. Found by tests/fuzz/ws_deflate_fuzz.cpp.
    if (out.size() == start) out.push_back('\0');
    if (reset_each_message_) deflateReset(&z);
    return true;
}

Inflater::Inflater(const DeflateParams& params) : reset_each_message_(params.client_no_context_takeover) {}

Inflater::Status Inflater::feed(std::string_view compressed, std::string& out, std::size_t limit) {
    if (!z_) {
        auto z = std::make_unique<detail::ZState>(true);
        if (inflateInit2(&z->z, -15) != Z_OK) return Status::corrupt;
        z->initialized = true;
        z_ = std::move(z);
    }
    z_stream& z = z_->z;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
    z.avail_in = static_cast<uInt>(compressed.size());
    while (z.avail_in > 0) {
        // Grow by one bounded step, never past limit + 1: one byte over is enough to know it is too big.
        const std::size_t before = out.size();
        const std::size_t step = std::min(chunk, limit + 1 - std::min(before, limit + 1));
        if (step == 0) return Status::too_big;
        out.resize(before + step);
        z.next_out = reinterpret_cast<Bytef*>(out.data() + before);
        z.avail_out = static_cast<uInt>(step);
        const int rc = inflate(&z, Z_SYNC_FLUSH);
        out.resize(out.size() - z.avail_out);
        if (out.size() > limit) return Status::too_big;
        if (rc == Z_STREAM_END) {
            // The client ended the deflate stream (BFINAL): whatever follows starts a new one.
            inflateReset(&z);
            continue;
        }
        if (rc == Z_BUF_ERROR && z.avail_out != 0) break;  // needs more input than this frame has
        if (rc != Z_OK && rc != Z_BUF_ERROR) return Status::corrupt;
    }
    // Output may still be pending inside zlib with no input left (the window was full): drain it.
    while (true) {
        const std::size_t before = out.size();
        const std::size_t step = std::min(chunk, limit + 1 - std::min(before, limit + 1));
        if (step == 0) return Status::too_big;
        out.resize(before + step);
        z.next_out = reinterpret_cast<Bytef*>(out.data() + before);
        z.avail_out = static_cast<uInt>(step);
        const int rc = inflate(&z, Z_SYNC_FLUSH);
        const bool full = z.avail_out == 0;
        out.resize(out.size() - z.avail_out);
        if (out.size() > limit) return Status::too_big;
        if (rc == Z_STREAM_END)
            inflateReset(&z);
        else if (rc != Z_OK && rc != Z_BUF_ERROR)
            return Status::corrupt;
        if (!full) break;
    }
    return Status::ok;
}

Inflater::Status Inflater::finish(std::string& out, std::size_t limit) {
    const Status s = feed(std::string_view(tail, 4), out, limit);
    if (s == Status::ok && reset_each_message_ && z_) inflateReset(&z_->z);
    return s;
}

}  // namespace covet::ws
