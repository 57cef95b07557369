// The router (include/covet/router/router.hpp): a fixed table of static and parameterised routes of every
// parameter type, matched against fuzzed methods and paths; and, when the first byte asks for it, a fuzzed
// pattern added to a router of its own (a refused pattern throws RouteError, which is the documented
// refusal) and then matched against the rest of the input.
// Properties: no crash or sanitizer report; a found match has its handler and its pattern, the parameters
// captured are pieces of the path and fit PathParams.
#include <cstdint>
#include <string>

#include "covet/router/router.hpp"
#include "fuzz_support.hpp"

namespace {

using covet::Method;
using IntRouter = covet::Router<int>;

IntRouter make_table() {
    IntRouter t;
    {
        const char* patterns[] = {
            "/",
            "/health",
            "/users",
            "/users/{name}",
            "/users/{name}/posts/{post:str}",
            "/n/{v:int}",
            "/f/{x:float}",
            "/o/{id:uuid}",
            "/v/{s}",
            "/v/{rest:path}",
            "/v/{u:uuid}",
            "/v/{f:float}",
            "/v/{i:int}",
            "/a/{x}/b",
            "/a/{x}/c/{y:int}/d",
            "/static/{p:path}",
            "/x/",
            "/deep/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}",
        };
        int id = 0;
        for (const char* p : patterns) {
            t.add(Method::get, p, ++id);
            if (id % 3 == 0) t.add(Method::post, p, ++id);
        }
        t.add(Method::del, "/users/{name}", ++id);
    }
    return t;
}

const IntRouter& table() {
    static const IntRouter t = make_table();
    return t;
}

void match_and_check(const IntRouter& r, Method m, std::string_view path) {
    using covet_fuzz::check;
    covet::PathParams params;
    const IntRouter::Match found = r.match(m, path, params);
    if (found.status == IntRouter::Status::found) {
        check(found.handler != nullptr && !found.pattern.empty(), "a found match without handler or pattern");
    } else {
        check(found.handler == nullptr, "a handler for a match that was not found");
    }
    if (found.status == IntRouter::Status::method_not_allowed) check(!found.allow.empty(), "405 without Allow");
    check(params.size() <= covet::PathParams::capacity, "more parameters than PathParams holds");
    for (const auto& p : params) {
        const bool inside =
            p.value.data() >= path.data() && p.value.data() + p.value.size() <= path.data() + path.size();
        check(inside || p.value.empty(), "a parameter value that is not a piece of the path");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    covet_fuzz::Input in(data, size);
    const std::uint8_t mode = in.byte();
    const auto method = static_cast<Method>(mode % covet::method_count);
    if ((mode & 0x80) == 0) {
        match_and_check(table(), method, in.rest());
        return 0;
    }
    // A pattern of its own, up to the first newline; the rest is the path.
    const std::string_view rest = in.rest();
    const std::size_t nl = rest.find('\n');
    const std::string_view pattern = rest.substr(0, nl);
    const std::string_view path = nl == std::string_view::npos ? rest : rest.substr(nl + 1);
    IntRouter r;
    try {
        r.add(method, pattern, 1);
        r.add(Method::get, "/fixed/{x:int}", 2);
    } catch (const covet::RouteError&) {
        return 0;  // refused, with a message naming why
    }
    match_and_check(r, method, path);
    match_and_check(r, Method::get, path);
    return 0;
}
