// Incremental UTF-8 validation (RFC 3629): text messages arrive in fragments that may split a code
// point anywhere, so the validator keeps the state of an unfinished sequence between calls.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace covet::ws {

class Utf8Validator {
public:
    // False as soon as the bytes so far cannot start valid UTF-8 (overlong forms, surrogates, > U+10FFFF).
    bool feed(std::string_view s) noexcept {
        const auto* p = reinterpret_cast<const unsigned char*>(s.data());
        const unsigned char* end = p + s.size();
        while (p < end) {
            if (need_ == 0) {
                // ASCII runs are the common case: skip 8 bytes at a time.
                while (end - p >= 8) {
                    std::uint64_t w;
                    std::memcpy(&w, p, 8);
                    if (w & 0x8080808080808080ull) break;
                    p += 8;
                }
                if (p == end) break;
                const unsigned char c = *p++;
                if (c < 0x80) continue;
                if (!lead(c)) return false;
            } else {
                const unsigned char c = *p++;
                if (c < lo_ || c > hi_) return false;
                lo_ = 0x80, hi_ = 0xBF;  // only the first continuation byte has narrower bounds
                --need_;
            }
        }
        return true;
    }
    // True when no code point is left unfinished.
    bool complete() const noexcept { return need_ == 0; }
    void reset() noexcept { need_ = 0, lo_ = 0x80, hi_ = 0xBF; }

    static bool valid(std::string_view s) noexcept {
        Utf8Validator v;
        return v.feed(s) && v.complete();
    }

private:
    // A lead byte: how many continuation bytes follow and the range of the first one.
    bool lead(unsigned char c) noexcept {
        lo_ = 0x80, hi_ = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            need_ = 1;
        else if (c == 0xE0)
            need_ = 2, lo_ = 0xA0;  // no overlong 3-byte forms
        else if (c == 0xED)
            need_ = 2, hi_ = 0x9F;  // no UTF-16 surrogates
        else if (c >= 0xE1 && c <= 0xEF)
            need_ = 2;
        else if (c == 0xF0)
            need_ = 3, lo_ = 0x90;  // no overlong 4-byte forms
        else if (c >= 0xF1 && c <= 0xF3)
            need_ = 3;
        else if (c == 0xF4)
            need_ = 3, hi_ = 0x8F;  // nothing above U+10FFFF
        else
            return false;  // 0x80-0xC1, 0xF5-0xFF
        return true;
    }

    std::uint8_t need_ = 0;
    unsigned char lo_ = 0x80, hi_ = 0xBF;
};

}  // namespace covet::ws
