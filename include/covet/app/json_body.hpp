// covet::json_body<T>(handler): a route handler whose request body is parsed into the described struct T
// (covet/json/model.hpp) before `handler` runs, as a FastAPI body parameter of a pydantic model:
//
//   app.post("/items", covet::json_body<Item>([](Item& item, covet::Request&) {
//       return Summary{item.name, item.tags.size()};   // a described struct: written as JSON, 200
//   }));
//
// An invalid body is answered 422 with FastAPI's body ({"detail":[...]}, covet/json/errors.hpp) and the
// handler does not run. The body must be JSON: no Content-Type, application/json or application/*+json; any
// other type is 422 as well (FastAPI validates such a body as bytes, which no model accepts). The handler
// returns a Response, or a value covet::json::to_json can write (answered 200, application/json).
#pragma once

#include <string_view>
#include <type_traits>
#include <utility>

#include "covet/http/ascii.hpp"
#include "covet/http/request.hpp"
#include "covet/http/response.hpp"
#include "covet/json/model.hpp"

namespace covet {

namespace detail {

inline bool json_content_type(const Request& r) noexcept {
    const auto header = r.header("content-type");
    if (!header) {
        return true;
    }
    auto type = header->substr(0, header->find(';'));
    while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) {
        type.remove_suffix(1);
    }
    if (iequals(type, "application/json")) {
        return true;
    }
    return type.size() > 17 && iequals(type.substr(0, 12), "application/") &&
           iequals(type.substr(type.size() - 5), "+json");
}

}  // namespace detail

template <class T, class F>
auto json_body(F handler) {
    return [handler = std::move(handler)](Request& r) -> Response {
        T value{};
        json::Errors errors;
        if (!detail::json_content_type(r)) {  // the body is not quoted back: it need not be UTF-8
            errors.add({"model_attributes_type",
                        {},
                        "Input should be a valid dictionary or object to extract fields from",
                        {},
                        {}});
            return Response::json(errors.detail(), 422);
        }
        if (!json::parse(r.body(), value, errors)) {
            return Response::json(errors.detail(), 422);
        }
        using Result = std::invoke_result_t<F&, T&, Request&>;
        if constexpr (std::is_same_v<Result, Response>) {
            return handler(value, r);
        } else {
            return Response::json(json::to_json(handler(value, r)));
        }
    };
}

}  // namespace covet
