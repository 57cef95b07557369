// covet::json::Document on simdjson's DOM parser. A Value carries a simdjson::dom::element (a document
// pointer and a tape index) in its raw bytes; the element is trivially copyable, so it moves in and out with
// bit_cast and nothing of simdjson shows in the header.
#include "covet/json/document.hpp"

#include <simdjson.h>

#include <bit>
#include <cstring>
#include <new>

namespace covet::json {
namespace {

namespace dom = simdjson::dom;

static_assert(sizeof(dom::element) == sizeof(std::array<std::byte, 16>));
static_assert(std::is_trivially_copyable_v<dom::element>);

dom::element element_of(const std::array<std::byte, 16>& raw) noexcept { return std::bit_cast<dom::element>(raw); }

Value value_of(dom::element e) noexcept {
    Value v;
    auto raw = std::bit_cast<std::array<std::byte, 16>>(e);
    static_assert(sizeof v == sizeof raw);
    std::memcpy(static_cast<void*>(&v), raw.data(), raw.size());
    return v;
}

}  // namespace

struct Document::Parser {
    dom::parser parser;
    std::string padded;  // the text with simdjson's padding after it (it reads up to 64 bytes past the end)
};

Document::Document() : parser_(std::make_unique<Parser>()) {}
Document::~Document() = default;

Document& Document::for_this_thread() {
    thread_local Document document;
    return document;
}

bool Document::parse(std::string_view text) {
    auto& p = *parser_;
    // The parser's buffers take ~10 bytes per byte of capacity (indexes, tape, strings): grown for a large
    // document, they shrink back at the next ordinary one, so that one big body does not stay in the thread.
    const bool large = p.parser.capacity() > retained_capacity;
    if (p.parser.max_depth() != max_depth || p.parser.capacity() < text.size() ||
        (large && text.size() <= retained_capacity)) {
        if (p.parser.allocate(std::max(text.size(), min_capacity), max_depth) != simdjson::SUCCESS) {
            root_ = Value{};
            throw std::bad_alloc();  // the server's failure, not the client's: a handler's exception, answered 500
        }
        if (large) {
            p.padded = std::string();
        }
    }
    // One buffer, reused (no allocation per document once it is large enough).
    p.padded.resize(text.size() + simdjson::SIMDJSON_PADDING);
    if (!text.empty()) {  // an empty body's data() may be null
        std::memcpy(p.padded.data(), text.data(), text.size());
    }
    dom::element root;
    const auto err = p.parser.parse(p.padded.data(), text.size(), false).get(root);
    if (err != simdjson::SUCCESS) {
        root_ = Value{};
        if (err == simdjson::MEMALLOC) {
            throw std::bad_alloc();
        }
        error_ = simdjson::error_message(err);
        return false;
    }
    error_ = {};
    root_ = value_of(root);
    return true;
}

Kind Value::kind() const noexcept {
    if (raw_ == std::array<std::byte, 16>{}) {
        return Kind::null;  // a default Value: no document
    }
    switch (element_of(raw_).type()) {
        case dom::element_type::ARRAY: return Kind::array;
        case dom::element_type::OBJECT: return Kind::object;
        case dom::element_type::INT64:
        case dom::element_type::UINT64: return Kind::integer;
        case dom::element_type::DOUBLE: return Kind::number;
        case dom::element_type::STRING: return Kind::string;
        case dom::element_type::BOOL: return Kind::boolean;
        case dom::element_type::NULL_VALUE: return Kind::null;
    }
    return Kind::null;
}

bool Value::get(std::string_view& out) const noexcept {
    return kind() == Kind::string && element_of(raw_).get_string().get(out) == simdjson::SUCCESS;
}

bool Value::get(double& out) const noexcept {
    const auto k = kind();
    return (k == Kind::number || k == Kind::integer) && element_of(raw_).get_double().get(out) == simdjson::SUCCESS;
}

bool Value::get(std::int64_t& out) const noexcept {
    return kind() == Kind::integer && element_of(raw_).get_int64().get(out) == simdjson::SUCCESS;
}

bool Value::get(std::uint64_t& out) const noexcept {
    return kind() == Kind::integer && element_of(raw_).get_uint64().get(out) == simdjson::SUCCESS;
}

bool Value::get(bool& out) const noexcept {
    return kind() == Kind::boolean && element_of(raw_).get_bool().get(out) == simdjson::SUCCESS;
}

bool Value::members(MemberFn fn, void* ctx) const {
    if (kind() != Kind::object) {
        return false;
    }
    dom::object object;
    if (element_of(raw_).get_object().get(object) != simdjson::SUCCESS) {
        return false;
    }
    for (auto [key, value] : object) {
        if (!fn(ctx, key, value_of(value))) {
            return false;
        }
    }
    return true;
}

bool Value::items(ItemFn fn, void* ctx) const {
    if (kind() != Kind::array) {
        return false;
    }
    dom::array array;
    if (element_of(raw_).get_array().get(array) != simdjson::SUCCESS) {
        return false;
    }
    std::size_t i = 0;
    for (auto value : array) {
        if (!fn(ctx, i++, value_of(value))) {
            return false;
        }
    }
    return true;
}

std::string Value::to_json() const {
    if (raw_ == std::array<std::byte, 16>{}) {
        return "null";
    }
    return simdjson::to_string(element_of(raw_));
}

}  // namespace covet::json
