// A stream's response bytes between the application and QUIC (private to src/http3). nghttp3 reads them without
// copying and QUIC may resend them until the peer acknowledges them, so each chunk stays here until acked.
#pragma once

#include <nghttp3/nghttp3.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace covet::http3::detail {

class SendBuffer {
public:
    void append(std::string chunk) {
        if (chunk.empty()) return;
        unacked_ += chunk.size();
        chunks_.push_back(std::move(chunk));
    }
    void append(std::string_view chunk) { append(std::string(chunk)); }
    // Fills `vec` with bytes not yet given to nghttp3 (at most `count` entries); returns how many it filled.
    std::size_t take(nghttp3_vec* vec, std::size_t count) {
        std::size_t n = 0;
        while (n < count && given_chunk_ < chunks_.size()) {
            std::string& c = chunks_[given_chunk_];
            vec[n].base = reinterpret_cast<std::uint8_t*>(c.data());
            vec[n].len = c.size();
            ++n;
            ++given_chunk_;
        }
        return n;
    }
    bool all_given() const noexcept { return given_chunk_ >= chunks_.size(); }
    // The peer acknowledged `n` more bytes: chunks wholly acknowledged go.
    void ack(std::uint64_t n) {
        unacked_ -= std::min<std::uint64_t>(n, unacked_);
        acked_front_ += n;
        while (!chunks_.empty() && acked_front_ >= chunks_.front().size() && given_chunk_ > 0) {
            acked_front_ -= chunks_.front().size();
            chunks_.pop_front();
            --given_chunk_;
        }
    }
    // Bytes written and not yet acknowledged (what a StreamFlow counts as unsent).
    std::uint64_t unacked() const noexcept { return unacked_; }
    void clear() {
        chunks_.clear();
        given_chunk_ = 0;
        acked_front_ = unacked_ = 0;
    }

private:
    std::deque<std::string> chunks_;
    std::size_t given_chunk_ = 0;  // chunks before it were handed to nghttp3 whole
    std::uint64_t acked_front_ = 0, unacked_ = 0;
};

}  // namespace covet::http3::detail
