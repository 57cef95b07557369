// URL pieces: percent-decoding (include/covet/http/url.hpp), query strings (for_each_query_pair,
// query_value) and a request target split into path and query (Request::set_target, origin- and
// absolute-form), as every request's target is.
// Input: one byte of mode, then the string.
// Properties: no crash or sanitizer report; decoding never grows a string; a decoded string with no '%' or
// '+' left to decode decodes to itself; query pairs are pieces of the query; a target's path and query are
// pieces of it and the path is never empty.
#include <cstdint>
#include <string>

#include "covet/http/request.hpp"
#include "covet/http/url.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using covet_fuzz::check;
    namespace http = covet::http;
    covet_fuzz::Input in(data, size);
    const std::uint8_t mode = in.byte();
    const std::string_view s = in.rest();
    const bool plus = (mode & 1) != 0;

    const std::string decoded = http::percent_decode(s, plus);
    check(decoded.size() <= s.size(), "percent-decoding grew the string");
    if (!http::needs_decoding(s, plus)) check(decoded == s, "a string with nothing to decode changed");

    std::size_t pairs = 0;
    http::for_each_query_pair(s, [&](std::string_view key, std::string_view value) {
        check(key.data() >= s.data() && key.data() + key.size() <= s.data() + s.size(), "a key outside the query");
        check(value.empty() || (value.data() >= s.data() && value.data() + value.size() <= s.data() + s.size()),
              "a value outside the query");
        check(key.find('&') == std::string_view::npos, "a key holding '&'");
        return ++pairs < 1000;
    });
    // Look up the first key (decoded), which must then be found.
    const std::size_t amp = s.find_first_of("&=");
    const std::string first_key = http::percent_decode(s.substr(0, amp), true);
    if (!s.empty() && !s.starts_with('&') && !s.starts_with('=')) (void)http::query_value(s, first_key);
    (void)http::query_value(s, "a");

    covet::Request request;
    request.set_target(s);
    const auto inside = [&](std::string_view piece) {
        return piece.data() >= s.data() && piece.data() + piece.size() <= s.data() + s.size();
    };
    check(request.target() == s, "the target changed");
    check(!request.path().empty(), "an empty path");
    check(inside(request.path()) || request.path() == "/", "a path that is not a piece of the target");
    check(request.query_string().empty() || inside(request.query_string()), "a query outside the target");
    (void)request.query("id");
    return 0;
}
