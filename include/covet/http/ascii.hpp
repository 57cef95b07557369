// ASCII helpers for header syntax (locale-independent): case folding, tokens, optional whitespace, lists.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace covet {

constexpr char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

// The 8 bytes at `p` as one word (unaligned, host byte order): short byte strings compared or hashed a word at a
// time with fixed-size loads (a variable-length memcmp or memcpy is a libc call).
inline std::uint64_t load8(const char* p) noexcept {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
}

// Whether `name` is `lower`, a name of 4 to 8 lowercase letters, in any case: two overlapping 4-byte words with the
// ASCII case bit set (exact because every byte of `lower` is a letter: only 'X' and 'x' give 'x'). iequals' byte
// loop costs about six instructions per byte; this costs about eight in all.
template <std::size_t N>
    requires(N >= 5 && N <= 9)
inline bool is_letters_name(std::string_view name, const char (&lower)[N]) noexcept {
    constexpr std::size_t n = N - 1;
    if (name.size() != n) return false;
    std::uint32_t want_head, want_tail, head, tail;
    std::memcpy(&want_head, lower, 4);
    std::memcpy(&want_tail, lower + n - 4, 4);
    std::memcpy(&head, name.data(), 4);
    std::memcpy(&tail, name.data() + n - 4, 4);
    return (head | 0x20202020u) == want_head && (tail | 0x20202020u) == want_tail;
}

// RFC 9110 §5.6.2 token characters (header names, methods).
constexpr bool is_tchar(char c) noexcept {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    for (const char t : std::string_view("!#$%&'*+-.^_`|~"))
        if (c == t) return true;
    return false;
}

// `s` without the optional whitespace (spaces, tabs) at either end (RFC 9110 §5.6.3).
constexpr std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Whether a comma-separated header value (RFC 9110 §5.6.1) lists `token`, its items trimmed of optional
// whitespace; compared case-insensitively unless `exact`.
constexpr bool lists_token(std::string_view list, std::string_view token, bool exact = false) noexcept {
    while (!list.empty()) {
        const std::size_t comma = list.find(',');
        const std::string_view item = trim_ows(list.substr(0, comma));
        if (exact ? item == token : iequals(item, token)) return true;
        list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
    }
    return false;
}

// Why a header field cannot be sent as given, or null when it can: a name is a token (no spaces, ':',
// CR or LF: it would end the name or the field early), a value holds no CR, LF or NUL (a CR or LF would end
// the field and let the rest pass as another header or a body: response splitting).
constexpr const char* field_error(std::string_view name, std::string_view value) noexcept {
    if (name.empty()) return "the name is empty";
    for (const char c : name)
        if (!is_tchar(c)) return "the name must be a token: letters, digits and !#$%&'*+-.^_`|~ (no spaces or ':')";
    for (const char c : value)
        if (c == '\r' || c == '\n' || c == '\0') return "the value must not contain CR, LF or NUL";
    return nullptr;
}

}  // namespace covet
