// Path parameters captured by the router: fixed capacity, so filling them never touches the heap.
#pragma once

#include <array>
#include <cassert>
#include <cstddef>
#include <optional>
#include <string_view>

namespace covet {

struct PathParam {
    std::string_view name;
    std::string_view value;
};

// Names view into router storage and values into the request path, so a filled PathParams must
// not outlive either of them. Lookup by name is a linear scan: with at most `capacity` entries that
// beats any map.
class PathParams {
public:
    static constexpr std::size_t capacity = 16;

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

    // Precondition: i < size().
    const PathParam& operator[](std::size_t i) const noexcept {
        assert(i < size_);
        return items_[i];
    }

    std::optional<std::string_view> get(std::string_view name) const noexcept {
        for (std::size_t i = 0; i < size_; ++i)
            if (items_[i].name == name) return items_[i].value;
        return std::nullopt;
    }

    // Re-points every value (the bytes they view moved, e.g. a request head copied out of a read buffer).
    template <class Fn>
    void rebase_values(Fn&& fn) noexcept {
        for (std::size_t i = 0; i < size_; ++i) items_[i].value = fn(items_[i].value);
    }

    const PathParam* begin() const noexcept { return items_.data(); }
    const PathParam* end() const noexcept { return items_.data() + size_; }

    void clear() noexcept { size_ = 0; }

    // Returns false (and changes nothing) when full.
    bool push(std::string_view name, std::string_view value) noexcept {
        if (size_ == capacity) return false;
        items_[size_++] = PathParam{name, value};
        return true;
    }

    // Drops the most recent entry; a no-op when empty so backtracking code need not guard it.
    void pop() noexcept {
        if (size_ != 0) --size_;
    }

private:
    std::array<PathParam, capacity> items_{};
    std::size_t size_ = 0;
};

}  // namespace covet
