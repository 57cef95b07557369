// covet::Fields: the header (or trailer) fields of a message, independent of the protocol that sends them.
// An ordered list of name/value pairs; a name may repeat (Set-Cookie) and keeps its order. Every field is
// checked on insert (field_error), so each serializer writes them as they are: HTTP/1.1 as "Name: value"
// lines, HTTP/2 (and HTTP/3) as lowercased name/value pairs pointing into this storage.
//
// Storage: one buffer holding, from its start, the fields as HTTP/1.1 lines ("Name: value\r\n", one after the
// other: HTTP/1.1 writes them all with one copy, http1()) and, from its end backwards, each field's name and
// value lengths. A set of fields built once (a middleware's constant fields) is appended to another with two
// copies (append). No allocation per field: the first bytes live in the object itself (one or two short fields, e.g.
// a request id or a Location, allocate nothing), and the first insert past them reserves room for a typical
// handful (a response usually adds zero to three fields), so it allocates once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "covet/http/ascii.hpp"

namespace covet {

class Fields {
    struct Lengths {
        std::uint32_t name, value;
    };

public:
    struct Field {
        std::string_view name;
        std::string_view value;
    };

    class const_iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = Field;
        using difference_type = std::ptrdiff_t;
        using pointer = void;
        using reference = Field;

        const_iterator() = default;
        Field operator*() const noexcept {
            const Lengths l = read_lengths(lengths_);
            return {{line_, l.name}, {line_ + l.name + 2, l.value}};
        }
        const_iterator& operator++() noexcept {
            const Lengths l = read_lengths(lengths_);
            line_ += l.name + l.value + line_extra;
            lengths_ -= sizeof(Lengths);
            return *this;
        }
        const_iterator operator++(int) noexcept {
            const_iterator old = *this;
            ++*this;
            return old;
        }
        // Every line has at least ": \r\n": the position in the lines alone tells iterators apart.
        bool operator==(const const_iterator& o) const noexcept { return line_ == o.line_; }

    private:
        friend class Fields;
        const_iterator(const char* line, const char* lengths) noexcept : line_(line), lengths_(lengths) {}
        const char* line_ = nullptr;     // the field's "Name: value\r\n"
        const char* lengths_ = nullptr;  // its Lengths (the next field's are just before)
    };

    // User-provided: the inline bytes stay unwritten until a field needs them (a const empty list is valid).
    Fields() noexcept {}  // NOLINT(modernize-use-equals-default)
    Fields(const Fields& o) { *this = o; }
    Fields& operator=(const Fields& o) {
        if (this == &o) return *this;
        clear();
        append(o);
        return *this;
    }
    Fields(Fields&& o) noexcept { take(o); }
    Fields& operator=(Fields&& o) noexcept {
        if (this != &o) {
            heap_.reset();
            capacity_ = inline_capacity;
            take(o);
        }
        return *this;
    }

    // Appends a field. Throws std::invalid_argument naming the cause and the field when the name is not a
    // token or the value holds CR, LF or NUL (see field_error); `kind` names the list in that message.
    Fields& add(std::string_view name, std::string_view value, const char* kind = "header") {
        if (const char* why = field_error(name, value))
            throw std::invalid_argument("covet: cannot add the " + std::string(kind) + " \"" + std::string(name) +
                                        "\": " + why);
        if (name.size() > UINT32_MAX || value.size() > UINT32_MAX)
            throw std::invalid_argument("covet: cannot add the " + std::string(kind) + " \"" +
                                        std::string(name.substr(0, 64)) + "\": longer than 4 GiB");
        put(name, value);
        return *this;
    }

    // Appends a field already known to pass field_error (checked once when a middleware was configured): no scan.
    Fields& add_prechecked(std::string_view name, std::string_view value) {
        put(name, value);
        return *this;
    }
    // Appends every field of `fields` (checked when they were added there), in order: a set of fields built once
    // and added to many messages, in two copies.
    Fields& append(const Fields& fields) {
        if (fields.count_ == 0) return *this;
        make_room(fields.lines_, fields.count_, true);
        std::memcpy(data() + lines_, fields.data(), fields.lines_);
        const std::size_t lengths = fields.count_ * sizeof(Lengths);
        std::memcpy(data() + capacity_ - count_ * sizeof(Lengths) - lengths, fields.data() + fields.capacity_ - lengths,
                    lengths);
        lines_ += fields.lines_;
        count_ += fields.count_;
        return *this;
    }
    // Room for fields of `bytes` name and value bytes in all, `count` of them, beyond what is held: a middleware
    // adding several at once allocates at most once.
    void reserve_more(std::size_t bytes, std::size_t count) { make_room(bytes + count * line_extra, count, false); }

    // Every field as an HTTP/1.1 header line, "Name: value\r\n", in order.
    std::string_view http1() const noexcept { return {data(), lines_}; }

    std::size_t size() const noexcept { return count_; }
    bool empty() const noexcept { return count_ == 0; }
    void clear() noexcept { lines_ = count_ = 0; }
    const_iterator begin() const noexcept {
        return count_ ? const_iterator(data(), data() + capacity_ - sizeof(Lengths)) : end();
    }
    const_iterator end() const noexcept { return {data() + lines_, nullptr}; }

    // Names compare case-insensitively (RFC 9110 §5.1).
    bool contains(std::string_view name) const noexcept { return get(name).has_value(); }
    // The first field named `name`.
    std::optional<std::string_view> get(std::string_view name) const noexcept {
        for (const Field f : *this)
            if (iequals(f.name, name)) return f.value;
        return std::nullopt;
    }
    // How many fields are named `name`.
    std::size_t count(std::string_view name) const noexcept {
        std::size_t n = 0;
        for (const Field f : *this) n += iequals(f.name, name) ? 1 : 0;
        return n;
    }

    // Removes every field named `name` (case-insensitive), keeping the others in order; returns how many.
    std::size_t remove(std::string_view name) noexcept {
        char* const data = this->data();
        char* const back = data + capacity_;  // field i's Lengths end at back - i * sizeof(Lengths)
        std::size_t kept = 0, kept_lines = 0, at = 0;
        for (std::size_t i = 0; i < count_; ++i) {
            const Lengths l = read_lengths(back - (i + 1) * sizeof(Lengths));
            const std::size_t size = l.name + l.value + line_extra;
            if (!iequals(std::string_view(data + at, l.name), name)) {
                if (kept_lines != at) std::memmove(data + kept_lines, data + at, size);
                if (kept != i)
                    std::memcpy(back - (kept + 1) * sizeof(Lengths), back - (i + 1) * sizeof(Lengths), sizeof(Lengths));
                kept_lines += size;
                ++kept;
            }
            at += size;
        }
        const std::size_t removed = count_ - kept;
        count_ = kept;
        lines_ = kept_lines;
        return removed;
    }

    friend bool operator==(const Fields& a, const Fields& b) noexcept {
        const std::size_t lengths = a.count_ * sizeof(Lengths);
        return a.count_ == b.count_ && a.lines_ == b.lines_ &&
               (a.count_ == 0 ||
                (std::memcmp(a.data(), b.data(), a.lines_) == 0 &&
                 std::memcmp(a.data() + a.capacity_ - lengths, b.data() + b.capacity_ - lengths, lengths) == 0));
    }

private:
    static Lengths read_lengths(const char* at) noexcept {
        Lengths l;
        std::memcpy(&l, at, sizeof l);  // the buffer has no alignment to rely on
        return l;
    }
    static constexpr std::size_t first_reserve = 128;
    static constexpr std::size_t line_extra = 4;  // ": " and "\r\n"

    // Writes one field: its line at the end of the lines, its lengths before the others'.
    void put(std::string_view name, std::string_view value) {
        const std::size_t n = name.size(), v = value.size();
        make_room(n + v + line_extra, 1, true);
        char* p = data() + lines_;
        if (n) std::memcpy(p, name.data(), n);  // (a null data() with size 0 must not reach memcpy)
        p += n;
        p[0] = ':';
        p[1] = ' ';
        if (v) std::memcpy(p + 2, value.data(), v);
        p[2 + v] = '\r';
        p[3 + v] = '\n';
        const Lengths l{static_cast<std::uint32_t>(n), static_cast<std::uint32_t>(v)};
        ++count_;
        std::memcpy(data() + capacity_ - count_ * sizeof(Lengths), &l, sizeof l);
        lines_ += n + v + line_extra;
    }
    // Room for `bytes` more of lines and `count` more fields' lengths; `spare`: grow by half again (one more
    // field is likely), else exactly (reserve_more).
    void make_room(std::size_t bytes, std::size_t count, bool spare) {
        const std::size_t need = lines_ + bytes + (count_ + count) * sizeof(Lengths);
        if (need > capacity_) grow(need, spare);
    }
    void grow(std::size_t need, bool spare) {
        const std::size_t capacity = need < first_reserve ? first_reserve : spare ? need + need / 2 : need;
        std::unique_ptr<char[]> bigger = std::make_unique_for_overwrite<char[]>(capacity);
        const std::size_t lengths = count_ * sizeof(Lengths);
        if (lines_) std::memcpy(bigger.get(), data(), lines_);
        if (lengths) std::memcpy(bigger.get() + capacity - lengths, data() + capacity_ - lengths, lengths);
        heap_ = std::move(bigger);
        capacity_ = capacity;
    }
    // Takes `o`'s fields (its buffer, or a copy of what its inline bytes hold) and leaves it empty, inline. This
    // object holds nothing (inline, empty) on entry.
    void take(Fields& o) noexcept {
        if (o.heap_) {
            heap_ = std::move(o.heap_);
            capacity_ = o.capacity_;
        } else {
            const std::size_t lengths = o.count_ * sizeof(Lengths);
            if (o.lines_) std::memcpy(inline_, o.inline_, o.lines_);
            if (lengths)
                std::memcpy(inline_ + inline_capacity - lengths, o.inline_ + inline_capacity - lengths, lengths);
        }
        lines_ = std::exchange(o.lines_, 0);
        count_ = std::exchange(o.count_, 0);
        o.capacity_ = inline_capacity;
    }
    char* data() noexcept { return heap_ ? heap_.get() : inline_; }
    const char* data() const noexcept { return heap_ ? heap_.get() : inline_; }

    // Room for one short field in the object (a request id: "X-Request-ID: 5f1c2a9e-1f\r\n" and its lengths).
    static constexpr std::size_t inline_capacity = 64;
    // Lines from the start, Lengths from the end (field 0's last): in inline_ until they outgrow it, then in heap_.
    std::unique_ptr<char[]> heap_;
    std::size_t capacity_ = inline_capacity;
    std::size_t lines_ = 0;         // bytes of lines
    std::size_t count_ = 0;         // fields
    char inline_[inline_capacity];  // read only below lines_ and within the Lengths of count_ fields
};

}  // namespace covet
