// Withholds one SETTINGS ACK of the client from nghttp2 (private to src/http2).
//
// Why: nghttp2 refuses a stream over SETTINGS_MAX_CONCURRENT_STREAMS with RST_STREAM REFUSED_STREAM
// while that setting is unacknowledged, but once the client has ACKed it, nghttp2 ends the whole
// connection (GOAWAY). RFC 9113 §5.1.2 allows either; we want the stream-level refusal, so the server
// sends max_concurrent_streams in a SETTINGS frame of its own and the client's ACK of that frame never
// reaches nghttp2 (the other settings are in the first frame, ACKed normally).
//
// The scan only follows frame boundaries until that ACK has gone by; then bytes pass through untouched.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace covet::http2::detail {

class SettingsAckFilter {
public:
    // `drop_nth`: which SETTINGS ACK (1-based) to withhold. `preface`: bytes of client preface first.
    SettingsAckFilter(int drop_nth, std::size_t preface) : drop_nth_(drop_nth), preface_left_(preface) {}

    // Passes `in` on to `feed` (span → bool, false: stop), in order, minus the withheld ACK. Bytes of a
    // frame header split across reads are held back (at most 8) until the header is complete.
    template <class Feed>
    bool run(std::span<const char> in, Feed&& feed) {
        std::size_t i = 0, from = 0;
        auto pass = [&](std::size_t to) {
            const bool ok = to <= from || feed(in.subspan(from, to - from));
            from = to;
            return ok;
        };
        while (i < in.size() && !done_) {
            const std::size_t left = in.size() - i;
            if (preface_left_ > 0 || payload_left_ > 0) {  // bytes that are not a frame header
                std::size_t& skip = preface_left_ > 0 ? preface_left_ : payload_left_;
                const std::size_t n = std::min(skip, left);
                skip -= n;
                i += n;
                continue;
            }
            // A frame header: complete it in hdr_ (copied only when it is split across reads).
            const char* h = in.data() + i;
            if (held_ > 0 || left < 9) {
                if (!pass(i)) return false;
                const std::size_t used = std::min<std::size_t>(9 - held_, left);
                std::memcpy(hdr_ + held_, in.data() + i, used);
                held_ += used;
                i += used;
                from = i;
                if (held_ < 9) return true;  // wait for the rest of the header
                h = hdr_;
            }
            const auto b = [h](int k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(h[k])); };
            const std::uint32_t length = (b(0) << 16) | (b(1) << 8) | b(2);
            const bool ack = b(3) == 0x4 /* SETTINGS */ && (b(4) & 0x1) && length == 0;
            const bool drop = ack && ++acks_ == drop_nth_;
            if (held_ > 0) {
                held_ = 0;
                if (!drop && !feed(std::span<const char>(hdr_, 9))) return false;
            } else {
                if (drop && !pass(i)) return false;
                i += 9;
                if (drop) from = i;
            }
            if (drop) done_ = true;
            payload_left_ = length;
        }
        return pass(in.size());
    }

private:
    int drop_nth_;
    int acks_ = 0;
    bool done_ = false;
    std::size_t preface_left_;
    std::size_t payload_left_ = 0;
    char hdr_[9]{};
    std::size_t held_ = 0;
};

}  // namespace covet::http2::detail
