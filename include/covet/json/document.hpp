// A parsed JSON document and cursors into it. The parser is simdjson's DOM (src/json/document.cpp: strict RFC
// 8259, UTF-8 validated, every byte checked, ~0.2 µs for a 1 KB object on this project's machine), kept out of
// this header: a Value is an opaque 16-byte cursor, iteration goes through a function pointer. Values are valid
// until the Document parses again or is destroyed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace covet::json {

enum class Kind : unsigned char { null, boolean, integer, number, string, array, object };

class Value {
public:
    Kind kind() const noexcept;
    // Each is false (and leaves `out` alone) unless the value has that kind. get(double&) takes any number;
    // the integer ones only integers that fit (`2.0` and `1e3` are numbers, not integers; 2^63 and above fit
    // only std::uint64_t, negative ones only std::int64_t).
    bool get(std::string_view& out) const noexcept;
    bool get(double& out) const noexcept;
    bool get(std::int64_t& out) const noexcept;
    bool get(std::uint64_t& out) const noexcept;
    bool get(bool& out) const noexcept;

    // Calls f(key, value) for each member of an object, in document order, until f returns false; false when
    // this is not an object or f stopped it.
    template <class F>
    bool for_each_member(F&& f) const {
        return members([](void* fn, std::string_view key,
                          const Value& v) { return (*static_cast<std::remove_reference_t<F>*>(fn))(key, v); },
                       &f);
    }
    // Calls f(index, value) for each item of an array until f returns false; false when not an array.
    template <class F>
    bool for_each_item(F&& f) const {
        return items([](void* fn, std::size_t i,
                        const Value& v) { return (*static_cast<std::remove_reference_t<F>*>(fn))(i, v); },
                     &f);
    }

    // The value as compact JSON text (error reports quote the input).
    std::string to_json() const;

private:
    friend class Document;
    using MemberFn = bool (*)(void*, std::string_view, const Value&);
    using ItemFn = bool (*)(void*, std::size_t, const Value&);
    bool members(MemberFn fn, void* ctx) const;
    bool items(ItemFn fn, void* ctx) const;

    alignas(std::uintptr_t) std::array<std::byte, 16> raw_{};  // simdjson::dom::element
};

class Document {
public:
    Document();
    ~Document();
    Document(const Document&) = delete;
    Document& operator=(const Document&) = delete;

    // Parses `text` as one JSON value; false on malformed JSON or invalid UTF-8, with error() saying why. Throws
    // std::bad_alloc when the parser's buffers cannot be had (a route answers 500: not the client's fault).
    // Nesting deeper than max_depth is refused too, and so are numbers simdjson cannot hold: integers beyond
    // [-2^63, 2^64) and numbers that overflow a double (Python's json takes both).
    bool parse(std::string_view text);
    std::string_view error() const noexcept { return error_; }
    // The parsed value (null before a successful parse).
    const Value& root() const noexcept { return root_; }

    static constexpr std::size_t max_depth = 256;
    // Buffers for documents up to this size stay allocated between parses; larger ones are released at the next
    // parse of a smaller document.
    static constexpr std::size_t retained_capacity = std::size_t{64} * 1024;
    static constexpr std::size_t min_capacity = 4096;

    // This thread's document, shared by every parse on it (one parser's buffers per thread, whatever the types).
    // Not re-entrant: covet::json::parse takes a Document of its own when called while this one is in use.
    static Document& for_this_thread();
    bool in_use = false;

private:
    struct Parser;
    std::unique_ptr<Parser> parser_;
    Value root_;
    std::string_view error_;
};

}  // namespace covet::json
