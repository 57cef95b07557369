// A strict, bounded JSON reader for the small documents of token security: JWS headers and claims, JWKs and
// JWK sets, discovery documents. RFC 8259 exactly (no comments, trailing commas, NaN, leading zeros, bare
// control characters or invalid UTF-8) plus the limits an attacker cannot push past: a nesting depth and a
// member count, and no duplicate object keys (RFC 7515 §4: a header with duplicate names must be refused,
// since two parsers could each believe a different value). The project had no C++ JSON reader; this one is
// ~300 lines, allocation-light, and never throws.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace covet::security::json {

enum class Type : unsigned char { null, boolean, number, string, array, object };

class Value {
public:
    Type type() const noexcept { return type_; }
    bool is_null() const noexcept { return type_ == Type::null; }
    bool is_bool() const noexcept { return type_ == Type::boolean; }
    bool is_number() const noexcept { return type_ == Type::number; }
    bool is_string() const noexcept { return type_ == Type::string; }
    bool is_array() const noexcept { return type_ == Type::array; }
    bool is_object() const noexcept { return type_ == Type::object; }

    bool as_bool() const noexcept { return boolean_; }
    double as_number() const noexcept { return number_; }
    // The number as written (for integers beyond a double's 53 bits).
    std::string_view number_text() const noexcept { return text_; }
    // A string's decoded UTF-8 value.
    std::string_view as_string() const noexcept { return text_; }
    const std::vector<Value>& items() const noexcept { return items_; }
    const std::vector<std::pair<std::string, Value>>& members() const noexcept { return members_; }

    // An object's member by name, or null when absent (or when this is not an object).
    const Value* find(std::string_view name) const noexcept {
        for (const auto& [key, value] : members_)
            if (key == name) return &value;
        return nullptr;
    }
    // An object's string member, or an empty view when absent or of another type.
    std::string_view string_member(std::string_view name) const noexcept {
        const Value* v = find(name);
        return v != nullptr && v->is_string() ? v->as_string() : std::string_view{};
    }

private:
    friend class Reader;
    Type type_ = Type::null;
    bool boolean_ = false;
    double number_ = 0;
    std::string text_;  // string value, or a number's text
    std::vector<Value> items_;
    std::vector<std::pair<std::string, Value>> members_;
};

struct Limits {
    std::size_t max_depth = 16;      // arrays/objects inside each other
    std::size_t max_members = 1024;  // object members and array items in the whole document
};

// Parses `text` into `out`. On failure returns false and sets `error` to what was wrong and where (an offset;
// the text itself is never quoted, it may be a secret).
bool parse(std::string_view text, Value& out, std::string& error, const Limits& limits = {});

}  // namespace covet::security::json
