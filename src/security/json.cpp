// The strict JSON reader (see covet/security/json.hpp): recursive descent bounded by Limits::max_depth.
#include "covet/security/json.hpp"

#include <charconv>
#include <cstdint>
#include <string>
#include <system_error>

namespace covet::security::json {

class Reader {
public:
    Reader(std::string_view text, const Limits& limits) : s_(text), limits_(limits) {}

    bool document(Value& out, std::string& error) {
        skip_ws();
        if (!value(out, 0)) {
            error = what_ + " at offset " + std::to_string(pos_);
            return false;
        }
        skip_ws();
        if (pos_ != s_.size()) {
            error = "unexpected data after the value at offset " + std::to_string(pos_);
            return false;
        }
        return true;
    }

private:
    bool fail(const char* what) {
        what_ = what;
        return false;
    }
    void skip_ws() noexcept {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
            ++pos_;
    }
    bool literal(std::string_view word) {
        if (s_.substr(pos_, word.size()) != word) return fail("invalid literal");
        pos_ += word.size();
        return true;
    }
    bool count_member() { return ++members_ <= limits_.max_members ? true : fail("too many members"); }

    bool value(Value& out, std::size_t depth) {
        if (pos_ >= s_.size()) return fail("unexpected end");
        switch (s_[pos_]) {
            case '{': return object(out, depth + 1);
            case '[': return array(out, depth + 1);
            case '"': out.type_ = Type::string; return string(out.text_);
            case 't':
                out.type_ = Type::boolean;
                out.boolean_ = true;
                return literal("true");
            case 'f':
                out.type_ = Type::boolean;
                out.boolean_ = false;
                return literal("false");
            case 'n': out.type_ = Type::null; return literal("null");
            default: return number(out);
        }
    }

    bool object(Value& out, std::size_t depth) {
        if (depth > limits_.max_depth) return fail("nested too deep");
        out.type_ = Type::object;
        ++pos_;
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == '}') {
            ++pos_;
            return true;
        }
        for (;;) {
            if (!count_member()) return false;
            skip_ws();
            if (pos_ >= s_.size() || s_[pos_] != '"') return fail("expected a member name");
            std::string key;
            if (!string(key)) return false;
            for (const auto& member : out.members_)
                if (member.first == key) return fail("duplicate member name");
            skip_ws();
            if (pos_ >= s_.size() || s_[pos_] != ':') return fail("expected ':'");
            ++pos_;
            skip_ws();
            Value v;
            if (!value(v, depth)) return false;
            out.members_.emplace_back(std::move(key), std::move(v));
            skip_ws();
            if (pos_ < s_.size() && s_[pos_] == ',') {
                ++pos_;
                continue;
            }
            if (pos_ < s_.size() && s_[pos_] == '}') {
                ++pos_;
                return true;
            }
            return fail("expected ',' or '}'");
        }
    }

    bool array(Value& out, std::size_t depth) {
        if (depth > limits_.max_depth) return fail("nested too deep");
        out.type_ = Type::array;
        ++pos_;
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == ']') {
            ++pos_;
            return true;
        }
        for (;;) {
            if (!count_member()) return false;
            skip_ws();
            Value v;
            if (!value(v, depth)) return false;
            out.items_.push_back(std::move(v));
            skip_ws();
            if (pos_ < s_.size() && s_[pos_] == ',') {
                ++pos_;
                continue;
            }
            if (pos_ < s_.size() && s_[pos_] == ']') {
                ++pos_;
                return true;
            }
            return fail("expected ',' or ']'");
        }
    }

    static bool digit(char c) noexcept { return c >= '0' && c <= '9'; }

    bool number(Value& out) {
        const std::size_t start = pos_;
        if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
        if (pos_ >= s_.size() || !digit(s_[pos_])) return fail("invalid value");
        if (s_[pos_] == '0') {
            ++pos_;
            if (pos_ < s_.size() && digit(s_[pos_])) return fail("leading zero in a number");
        } else {
            while (pos_ < s_.size() && digit(s_[pos_])) ++pos_;
        }
        if (pos_ < s_.size() && s_[pos_] == '.') {
            ++pos_;
            if (pos_ >= s_.size() || !digit(s_[pos_])) return fail("invalid fraction");
            while (pos_ < s_.size() && digit(s_[pos_])) ++pos_;
        }
        if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
            ++pos_;
            if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
            if (pos_ >= s_.size() || !digit(s_[pos_])) return fail("invalid exponent");
            while (pos_ < s_.size() && digit(s_[pos_])) ++pos_;
        }
        out.type_ = Type::number;
        out.text_.assign(s_.substr(start, pos_ - start));
        // from_chars: strtod would follow the process's LC_NUMERIC (a decimal comma would cut "1.5" to 1).
        // Out of a double's range (1e999) is an error rather than infinity.
        const auto [end, ec] = std::from_chars(out.text_.data(), out.text_.data() + out.text_.size(), out.number_);
        if (ec != std::errc{} || end != out.text_.data() + out.text_.size()) return fail("number out of range");
        return true;
    }

    static int hex(char c) noexcept {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }
    bool hex4(std::uint32_t& cp) {
        if (pos_ + 4 > s_.size()) return fail("truncated \\u escape");
        cp = 0;
        for (int i = 0; i < 4; ++i) {
            const int h = hex(s_[pos_ + static_cast<std::size_t>(i)]);
            if (h < 0) return fail("invalid \\u escape");
            cp = cp << 4 | static_cast<std::uint32_t>(h);
        }
        pos_ += 4;
        return true;
    }
    static void put_utf8(std::string& out, std::uint32_t cp) {
        if (cp < 0x80) {
            out.push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xC0 | cp >> 6));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
            out.push_back(static_cast<char>(0xE0 | cp >> 12));
            out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
            out.push_back(static_cast<char>(0xF0 | cp >> 18));
            out.push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
    }
    // One UTF-8 sequence starting at pos_ (its first byte >= 0x80), validated (no overlongs, surrogates or
    // code points past U+10FFFF) and copied.
    bool utf8(std::string& out) {
        const auto b0 = static_cast<unsigned char>(s_[pos_]);
        std::size_t len = 0;
        std::uint32_t cp = 0;
        if (b0 >= 0xC2 && b0 <= 0xDF)
            len = 2, cp = b0 & 0x1F;
        else if (b0 >= 0xE0 && b0 <= 0xEF)
            len = 3, cp = b0 & 0x0F;
        else if (b0 >= 0xF0 && b0 <= 0xF4)
            len = 4, cp = b0 & 0x07;
        else
            return fail("invalid UTF-8");
        if (pos_ + len > s_.size()) return fail("invalid UTF-8");
        for (std::size_t i = 1; i < len; ++i) {
            const auto b = static_cast<unsigned char>(s_[pos_ + i]);
            if ((b & 0xC0) != 0x80) return fail("invalid UTF-8");
            cp = cp << 6 | (b & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return fail("invalid UTF-8");
        out.append(s_.substr(pos_, len));
        pos_ += len;
        return true;
    }

    bool string(std::string& out) {
        ++pos_;  // the opening quote
        out.clear();
        while (pos_ < s_.size()) {
            const char c = s_[pos_];
            if (c == '"') {
                ++pos_;
                return true;
            }
            if (static_cast<unsigned char>(c) < 0x20) return fail("control character in a string");
            if (static_cast<unsigned char>(c) >= 0x80) {
                if (!utf8(out)) return false;
                continue;
            }
            if (c != '\\') {
                out.push_back(c);
                ++pos_;
                continue;
            }
            if (++pos_ >= s_.size()) break;
            const char e = s_[pos_++];
            switch (e) {
                case '"': out.push_back('"'); break;
                case '\\': out.push_back('\\'); break;
                case '/': out.push_back('/'); break;
                case 'b': out.push_back('\b'); break;
                case 'f': out.push_back('\f'); break;
                case 'n': out.push_back('\n'); break;
                case 'r': out.push_back('\r'); break;
                case 't': out.push_back('\t'); break;
                case 'u': {
                    std::uint32_t cp = 0;
                    if (!hex4(cp)) return false;
                    if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("unpaired surrogate");
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        std::uint32_t low = 0;
                        if (s_.substr(pos_, 2) != "\\u") return fail("unpaired surrogate");
                        pos_ += 2;
                        if (!hex4(low)) return false;
                        if (low < 0xDC00 || low > 0xDFFF) return fail("unpaired surrogate");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    }
                    put_utf8(out, cp);
                    break;
                }
                default: return fail("invalid escape");
            }
        }
        return fail("unterminated string");
    }

    std::string_view s_;
    const Limits& limits_;
    std::size_t pos_ = 0;
    std::size_t members_ = 0;
    std::string what_;
};

bool parse(std::string_view text, Value& out, std::string& error, const Limits& limits) {
    out = Value{};
    Reader reader(text, limits);
    return reader.document(out, error);
}

}  // namespace covet::security::json
