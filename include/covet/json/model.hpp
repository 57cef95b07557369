// Typed JSON: a C++ struct described once is parsed from a request body with validation (pydantic-style
// errors, FastAPI's 422 body) and written back as JSON.
//
//   struct Item { std::string name; double price; std::vector<std::string> tags; std::string description; };
//   template <> struct covet::json::Model<Item> {
//       static constexpr auto fields = std::tuple{
//           covet::json::field("name", &Item::name), covet::json::field("price", &Item::price),
//           covet::json::field("tags", &Item::tags),
//           covet::json::field("description", &Item::description, covet::json::has_default)};
//       // optional: checks past the types, each failure an error at a field
//       static void check(const Item& item, covet::json::Checks& c) {
//           if (item.price < 0) c.fail("price", "greater_than_equal", "Input should be greater than or equal to 0");
//       }
//   };
//
//   Item item; covet::json::Errors errors;
//   if (!covet::json::parse(body, item, errors)) return Response::json(errors.detail(), 422);
//   return Response::json(covet::json::to_json(item));
//
// Member types: std::string, bool, integers, floating point, std::optional<T> (absent or null: empty), std::vector
// <T>, and other described structs (nested objects). Types are strict, as pydantic's strict mode: "1" is not an
// integer, 1.0 is not an integer, 1 is a valid float. A required field that is absent is `missing`; fields the
// model does not describe are ignored (pydantic's default, extra="ignore"); with duplicate keys the last wins,
// as in Python's json.
#pragma once

#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "covet/json/document.hpp"
#include "covet/json/errors.hpp"
#include "covet/json/writer.hpp"

namespace covet::json {

// Specialize for a struct: `static constexpr auto fields = std::tuple{field(...), ...};` and optionally
// `static void check(const T&, Checks&)`.
template <class T>
struct Model;

template <class T>
concept Described = requires { Model<T>::fields; };

inline constexpr struct HasDefault {
} has_default{};

template <class T, class M>
struct Field {
    std::string_view name;
    M T::*member;
    bool required;
};

template <class T, class M>
constexpr Field<T, M> field(std::string_view name, M T::*member) {
    return {name, member, true};
}
// An absent field keeps the member's value (its default member initializer).
template <class T, class M>
constexpr Field<T, M> field(std::string_view name, M T::*member, HasDefault) {
    return {name, member, false};
}

namespace detail {

// Where the reader is: names are the models' field names (static storage), so a view per step and no copy;
// an error copies them into its own location.
struct PathStep {
    std::string_view name;  // empty for an index
    std::size_t index = 0;
};
inline std::vector<LocationStep> location(const std::vector<PathStep>& path, std::string_view last = {}) {
    std::vector<LocationStep> loc;
    loc.reserve(path.size() + 1);
    for (const auto& step : path) {
        loc.push_back({std::string(step.name), step.index});
    }
    if (!last.empty()) {
        loc.push_back({std::string(last), 0});
    }
    return loc;
}

}  // namespace detail

// What a model's check() reports failures through: each one an error at `field` below the model's location.
class Checks {
public:
    Checks(Errors& errors, std::vector<detail::PathStep>& path, const Value& input) noexcept
        : errors_(errors), path_(path), input_(input) {}
    void fail(std::string_view field, std::string type, std::string msg) {
        auto loc = detail::location(path_, field);
        std::string input;
        input_.for_each_member([&](std::string_view key, const Value& v) {
            if (key == field) {
                input = v.to_json();
            }
            return true;
        });
        if (input.size() > std::size_t{16} * 1024) {  // detail::max_quoted_input
            input.clear();
        }
        errors_.add({std::move(type), std::move(loc), std::move(msg), std::move(input), {}});
    }

private:
    Errors& errors_;
    std::vector<detail::PathStep>& path_;
    const Value& input_;
};

namespace detail {

// An error's input as JSON text, or empty (written as {}) past max_quoted_input: a large body with many errors
// must not become a response many times its size.
inline constexpr std::size_t max_quoted_input = std::size_t{16} * 1024;
inline std::string quoted(const Value& v) {
    std::string text = v.to_json();
    if (text.size() > max_quoted_input) {
        text.clear();
    }
    return text;
}

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};

struct Reader {
    Errors& errors;
    std::vector<PathStep> path;

    void fail(const Value& v, std::string type, std::string msg) {
        errors.add({std::move(type), location(path), std::move(msg), quoted(v), {}});
    }

    template <class M>
    void read(const Value& v, M& out) {
        if constexpr (std::same_as<M, std::string>) {
            std::string_view s;
            if (v.get(s)) {
                out.assign(s);
            } else {
                fail(v, "string_type", "Input should be a valid string");
            }
        } else if constexpr (std::same_as<M, bool>) {
            if (!v.get(out)) {
                fail(v, "bool_type", "Input should be a valid boolean");
            }
        } else if constexpr (std::integral<M>) {
            read_integer(v, out);
        } else if constexpr (std::floating_point<M>) {
            double d;
            if (!v.get(d)) {
                fail(v, "float_type", "Input should be a valid number");
            } else if (!(std::fabs(d) <= static_cast<double>(std::numeric_limits<M>::max()))) {
                fail(v, "finite_number", "Input should be a finite number");  // beyond a float: not converted (UB)
            } else {
                out = static_cast<M>(d);
            }
        } else if constexpr (is_optional<M>::value) {
            if (v.kind() == Kind::null) {
                out.reset();
            } else {
                read(v, out.emplace());
            }
        } else if constexpr (is_vector<M>::value) {
            if (v.kind() != Kind::array) {
                fail(v, "list_type", "Input should be a valid list");
                return;
            }
            out.clear();
            v.for_each_item([&](std::size_t i, const Value& item) {
                path.push_back({{}, i});
                read(item, out.emplace_back());
                path.pop_back();
                return true;
            });
        } else if constexpr (Described<M>) {
            read_model(v, out);
        } else {
            static_assert(Described<M>,
                          "covet::json: no reader for this member type; describe it with "
                          "covet::json::Model<T>, or use std::string, bool, a number, "
                          "std::optional or std::vector");
        }
    }

    template <class M>
    void read_integer(const Value& v, M& out) {
        using limits = std::numeric_limits<M>;
        std::int64_t i;
        std::uint64_t u;
        if (v.get(i)) {
            if (std::cmp_less(i, limits::min())) {
                fail(v, "greater_than_equal",
                     "Input should be greater than or equal to " + std::to_string(limits::min()));
            } else if (std::cmp_greater(i, limits::max())) {
                fail(v, "less_than_equal", "Input should be less than or equal to " + std::to_string(limits::max()));
            } else {
                out = static_cast<M>(i);
            }
        } else if (v.get(u)) {  // 2^63 and above
            if (std::cmp_greater(u, limits::max())) {
                fail(v, "less_than_equal", "Input should be less than or equal to " + std::to_string(limits::max()));
            } else {
                out = static_cast<M>(u);
            }
        } else {
            fail(v, "int_type", "Input should be a valid integer");
        }
    }

    template <class T>
    void read_model(const Value& v, T& out) {
        if (v.kind() != Kind::object) {
            fail(v, "model_attributes_type", "Input should be a valid dictionary or object to extract fields from");
            return;
        }
        constexpr auto& fields = Model<T>::fields;
        constexpr std::size_t count = std::tuple_size_v<std::remove_cvref_t<decltype(fields)>>;
        static_assert(count <= 64, "covet::json: a model has at most 64 fields");
        // One pass finds each field's value (the last, with duplicate keys); then they are read in the model's
        // order, so errors come in that order, as pydantic reports them.
        std::array<Value, count> found{};
        std::uint64_t seen = 0;
        v.for_each_member([&](std::string_view key, const Value& member) {
            [&]<std::size_t... I>(std::index_sequence<I...>) {
                (void)((key == std::get<I>(fields).name ? (found[I] = member, seen |= std::uint64_t{1} << I, true)
                                                        : false) ||
                       ...);
            }(std::make_index_sequence<count>{});
            return true;
        });
        const auto before = errors.size();
        std::optional<std::string> object_text;  // a missing field's input: the object, quoted once
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (read_field(v, found[I], (seen >> I) & 1, out, std::get<I>(fields), object_text), ...);
        }(std::make_index_sequence<count>{});
        // As pydantic's after-validators: the checks run on a model whose fields are all valid.
        if constexpr (requires(Checks& c) { Model<T>::check(out, c); }) {
            if (errors.size() == before) {
                Checks checks(errors, path, v);
                Model<T>::check(out, checks);
            }
        }
    }

    template <class T, class M>
    void read_field(const Value& object, const Value& v, bool present, T& out, const Field<T, M>& f,
                    std::optional<std::string>& object_text) {
        if (present) {
            path.push_back({f.name, 0});
            read(v, out.*(f.member));
            path.pop_back();
        } else if (f.required && !is_optional<M>::value) {
            auto loc = location(path, f.name);
            if (!object_text) {
                object_text = quoted(object);
            }
            errors.add({"missing", std::move(loc), "Field required", *object_text, {}});
        }
    }
};

struct Writer {
    std::string& out;

    template <class M>
    void write(const M& v) {
        if constexpr (std::same_as<M, std::string> || std::same_as<M, std::string_view>) {
            write_string(out, v);
        } else if constexpr (std::same_as<M, bool>) {
            write_bool(out, v);
        } else if constexpr (std::integral<M>) {
            write_number(out, v);
        } else if constexpr (std::floating_point<M>) {
            write_number(out, static_cast<double>(v));
        } else if constexpr (is_optional<M>::value) {
            if (v) {
                write(*v);
            } else {
                out += "null";
            }
        } else if constexpr (is_vector<M>::value) {
            out.push_back('[');
            bool first = true;
            for (const auto& item : v) {
                if (!first) {
                    out.push_back(',');
                }
                first = false;
                write(item);
            }
            out.push_back(']');
        } else if constexpr (Described<M>) {
            out.push_back('{');
            bool first = true;
            std::apply([&](const auto&... f) { (write_member(v, f, first), ...); }, Model<M>::fields);
            out.push_back('}');
        } else {
            static_assert(Described<M>, "covet::json: no writer for this member type");
        }
    }

    template <class T, class M>
    void write_member(const T& v, const Field<T, M>& f, bool& first) {
        if (!first) {
            out.push_back(',');
        }
        first = false;
        write_string(out, f.name);
        out.push_back(':');
        write(v.*(f.member));
    }
};

}  // namespace detail

// Parses `body` into `out` (a described struct, or any supported member type). True when it is valid JSON of
// the model's shape; otherwise false with every problem in `errors` (a malformed body is one json_invalid
// error; an empty body is `missing`). `out` may be partly assigned on failure. One parser per thread, reused.
template <class T>
bool parse(std::string_view body, T& out, Errors& errors) {
    if (body.empty()) {  // FastAPI: a required body that is absent
        errors.add({"missing", {}, "Field required", "null", {}});
        return false;
    }
    Document& shared = Document::for_this_thread();
    std::optional<Document> own;  // a parse inside another's check(): the thread's document is still being read
    Document& document = shared.in_use ? own.emplace() : shared;
    if (!document.parse(body)) {
        errors.add({"json_invalid", {}, "JSON decode error", {}, std::string(document.error())});
        return false;
    }
    const auto before = errors.size();
    document.in_use = true;
    struct Release {
        Document& d;
        ~Release() { d.in_use = false; }
    } release{document};
    detail::Reader reader{errors, {}};
    reader.read(document.root(), out);
    return errors.size() == before;
}

// Appends `v` as JSON to `out`.
template <class T>
void write(std::string& out, const T& v) {
    detail::Writer{out}.write(v);
}

template <class T>
std::string to_json(const T& v) {
    std::string out;
    write(out, v);
    return out;
}

}  // namespace covet::json
