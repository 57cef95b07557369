// covet::Fields: the header (or trailer) fields of a message, independent of the protocol that sends them.
// An ordered list of name/value pairs; a name may repeat (Set-Cookie) and keeps its order. Every field is
// checked on insert (field_error), so each serializer writes them as they are: HTTP/1.1 as "Name: value"
// lines, HTTP/2 (and HTTP/3) as lowercased name/value pairs pointing into this storage.
//
// Storage: one contiguous buffer holding, per field, the two lengths and then the name and value bytes. No
// allocation per field, none at all while empty, and the first insert reserves room for a typical handful
// (a response usually adds zero to three fields), so it allocates once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "covet/http/ascii.hpp"

namespace covet {

class Fields {
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
            const Lengths l = read_lengths(at_);
            return {{at_ + sizeof(Lengths), l.name}, {at_ + sizeof(Lengths) + l.name, l.value}};
        }
        const_iterator& operator++() noexcept {
            const Lengths l = read_lengths(at_);
            at_ += sizeof(Lengths) + l.name + l.value;
            return *this;
        }
        const_iterator operator++(int) noexcept {
            const_iterator old = *this;
            ++*this;
            return old;
        }
        bool operator==(const const_iterator& o) const noexcept { return at_ == o.at_; }

    private:
        friend class Fields;
        explicit const_iterator(const char* at) noexcept : at_(at) {}
        const char* at_ = nullptr;
    };

    // Appends a field. Throws std::invalid_argument naming the cause and the field when the name is not a
    // token or the value holds CR, LF or NUL (see field_error); `kind` names the list in that message.
    Fields& add(std::string_view name, std::string_view value, const char* kind = "header") {
        if (const char* why = field_error(name, value))
            throw std::invalid_argument("covet: cannot add the " + std::string(kind) + " \"" + std::string(name) +
                                        "\": " + why);
        if (name.size() > UINT32_MAX || value.size() > UINT32_MAX)
            throw std::invalid_argument("covet: cannot add the " + std::string(kind) + " \"" +
                                        std::string(name.substr(0, 64)) + "\": longer than 4 GiB");
        const std::size_t need = data_.size() + sizeof(Lengths) + name.size() + value.size();
        if (need > data_.capacity()) data_.reserve(need < first_reserve ? first_reserve : need + need / 2);
        const Lengths l{static_cast<std::uint32_t>(name.size()), static_cast<std::uint32_t>(value.size())};
        char raw[sizeof l];
        std::memcpy(raw, &l, sizeof l);
        data_.append(raw, sizeof raw).append(name).append(value);
        return *this;
    }

    // size() walks the fields (there are few); empty() does not.
    std::size_t size() const noexcept { return static_cast<std::size_t>(std::distance(begin(), end())); }
    bool empty() const noexcept { return data_.empty(); }
    void clear() noexcept { data_.clear(); }
    const_iterator begin() const noexcept { return const_iterator(data_.data()); }
    const_iterator end() const noexcept { return const_iterator(data_.data() + data_.size()); }

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
        std::size_t removed = 0, kept = 0, at = 0;
        while (at < data_.size()) {
            const Lengths l = read_lengths(data_.data() + at);
            const std::size_t size = sizeof(Lengths) + l.name + l.value;
            if (iequals(std::string_view(data_.data() + at + sizeof(Lengths), l.name), name)) {
                ++removed;
            } else {
                if (kept != at) std::memmove(data_.data() + kept, data_.data() + at, size);
                kept += size;
            }
            at += size;
        }
        data_.resize(kept);
        return removed;
    }

    friend bool operator==(const Fields& a, const Fields& b) noexcept { return a.data_ == b.data_; }

private:
    struct Lengths {
        std::uint32_t name, value;
    };
    static Lengths read_lengths(const char* at) noexcept {
        Lengths l;
        std::memcpy(&l, at, sizeof l);  // the buffer has no alignment to rely on
        return l;
    }
    static constexpr std::size_t first_reserve = 128;

    std::string data_;  // per field: Lengths, name bytes, value bytes
};

}  // namespace covet
