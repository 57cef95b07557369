// Tests for covet::Router and covet::PathParams.
#include "covet/router/router.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

using covet::Method;
using covet::PathParams;
using covet::RouteError;
using IntRouter = covet::Router<int>;
using Status = IntRouter::Status;

// Owning snapshot of a match, so assertions read naturally.
struct Result {
    Status status = Status::not_found;
    int handler = -1;  // -1 when no handler
    std::string allow;
    std::string pattern;
    std::vector<std::pair<std::string, std::string>> params;
};

Result go(const IntRouter& r, Method m, std::string_view path) {
    PathParams p;
    const auto res = r.match(m, path, p);
    Result out{res.status, res.handler ? *res.handler : -1, std::string(res.allow), std::string(res.pattern), {}};
    for (const auto& kv : p) out.params.emplace_back(kv.name, kv.value);
    return out;
}

using Params = std::vector<std::pair<std::string, std::string>>;

// Returns the RouteError message from `f`, or "<no throw>".
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const RouteError& e) {
        return e.what();
    }
    return "<no throw>";
}

std::string bad_add(std::string_view pattern) {
    IntRouter r;
    std::string msg = error_of([&] { r.add(Method::get, pattern, 1); });
    EXPECT_TRUE(r.routes().empty()) << pattern;  // a rejected pattern leaves no trace
    return msg;
}

bool contains(const std::string& haystack, std::string_view needle) {
    return haystack.find(needle) != std::string::npos;
}

// ---------------------------------------------------------------------------------------------
// PathParams

TEST(PathParams, StartsEmpty) {
    PathParams p;
    EXPECT_TRUE(p.empty());
    EXPECT_EQ(p.size(), 0u);
    EXPECT_EQ(p.begin(), p.end());
    EXPECT_FALSE(p.get("x").has_value());
}

TEST(PathParams, PushGetIterate) {
    PathParams p;
    EXPECT_TRUE(p.push("a", "1"));
    EXPECT_TRUE(p.push("b", "2"));
    EXPECT_FALSE(p.empty());
    ASSERT_EQ(p.size(), 2u);
    EXPECT_EQ(p[0].name, "a");
    EXPECT_EQ(p[1].value, "2");
    EXPECT_EQ(p.get("b"), std::optional<std::string_view>("2"));
    EXPECT_FALSE(p.get("c").has_value());
    std::string joined;
    for (const auto& kv : p) joined.append(kv.name).append("=").append(kv.value).append(";");
    EXPECT_EQ(joined, "a=1;b=2;");
}

TEST(PathParams, EmptyValueIsPresent) {
    PathParams p;
    ASSERT_TRUE(p.push("rest", ""));
    ASSERT_TRUE(p.get("rest").has_value());
    EXPECT_EQ(*p.get("rest"), "");
}

TEST(PathParams, PushFailsWhenFullWithoutChangingContents) {
    PathParams p;
    const std::string names = "abcdefghijklmnop";  // 16 distinct one-letter names
    for (std::size_t i = 0; i < PathParams::capacity; ++i)
        ASSERT_TRUE(p.push(std::string_view(names).substr(i, 1), "v"));
    EXPECT_EQ(p.size(), PathParams::capacity);
    EXPECT_FALSE(p.push("q", "overflow"));
    EXPECT_EQ(p.size(), PathParams::capacity);
    EXPECT_FALSE(p.get("q").has_value());
    EXPECT_EQ(p[15].name, "p");
}

TEST(PathParams, PopAndClear) {
    PathParams p;
    p.push("a", "1");
    p.push("b", "2");
    p.pop();
    ASSERT_EQ(p.size(), 1u);
    EXPECT_FALSE(p.get("b").has_value());
    EXPECT_EQ(p.get("a"), std::optional<std::string_view>("1"));
    p.clear();
    EXPECT_TRUE(p.empty());
    p.pop();  // no-op on empty, must not underflow
    EXPECT_EQ(p.size(), 0u);
    EXPECT_TRUE(p.push("c", "3"));
    EXPECT_EQ(p.size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Value validators

TEST(Validators, Int) {
    using covet::router_detail::is_int;
    for (std::string_view ok :
         {"0", "7", "-0", "-7", "007", "123456789", "9223372036854775807", "-9223372036854775808"})
        EXPECT_TRUE(is_int(ok)) << ok;
    for (std::string_view bad : {"", "-", "+1", "1a", "a1", " 1", "1 ", "1.0", "1e3", "--1", "9223372036854775808",
                                 "-9223372036854775809", "99999999999999999999999"})
        EXPECT_FALSE(is_int(bad)) << bad;
}

TEST(Validators, Float) {
    using covet::router_detail::is_float;
    for (std::string_view ok :
         {"0", "1", "-1", "+2", "1.", ".5", "1.5", "-1.5", "1e10", "1E10", "1e-3", "-1.5e+7", "0.000", "123.456E-78"})
        EXPECT_TRUE(is_float(ok)) << ok;
    for (std::string_view bad : {"", ".", "-", "+", "e5", ".e5", "1e", "1e+", "1.2.3", "1,5", "inf", "-inf", "nan",
                                 "NaN", "0x1p3", " 1", "1 ", "1f", "++1"})
        EXPECT_FALSE(is_float(bad)) << bad;
}

TEST(Validators, Uuid) {
    using covet::router_detail::is_uuid;
    EXPECT_TRUE(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
    EXPECT_TRUE(is_uuid("123E4567-E89B-12D3-A456-426614174ABC"));
    EXPECT_TRUE(is_uuid("abcdefAB-cdEF-0000-ffff-FFFFFFFFFFFF"));
    EXPECT_FALSE(is_uuid(""));
    EXPECT_FALSE(is_uuid("123e4567e89b12d3a456426614174000"));       // no dashes
    EXPECT_FALSE(is_uuid("123e4567-e89b-12d3-a456-42661417400"));    // too short
    EXPECT_FALSE(is_uuid("123e4567-e89b-12d3-a456-4266141740000"));  // too long
    EXPECT_FALSE(is_uuid("123e456-7e89b-12d3-a456-426614174000"));   // dash misplaced
    EXPECT_FALSE(is_uuid("123e4567-e89b-12d3-a456-42661417400g"));   // non-hex
    EXPECT_FALSE(is_uuid("{23e4567-e89b-12d3-a456-426614174000}"));
}

// ---------------------------------------------------------------------------------------------
// Static routes

TEST(Router, StaticRouteFound) {
    IntRouter r;
    r.add(Method::get, "/health", 1);
    r.add(Method::get, "/", 2);
    r.add(Method::get, "/api/v1/status", 3);

    const Result a = go(r, Method::get, "/health");
    EXPECT_EQ(a.status, Status::found);
    EXPECT_EQ(a.handler, 1);
    EXPECT_EQ(a.pattern, "/health");
    EXPECT_TRUE(a.params.empty());
    EXPECT_EQ(go(r, Method::get, "/").handler, 2);
    EXPECT_EQ(go(r, Method::get, "/api/v1/status").handler, 3);
}

TEST(Router, NotFound) {
    IntRouter r;
    r.add(Method::get, "/health", 1);
    r.add(Method::get, "/u/{id}", 2);
    for (std::string_view path : {"/healthz", "/Health", "/health/x", "/", "", "health", "*", "/u", "/u/1/2"}) {
        PathParams p;
        const auto res = r.match(Method::get, path, p);
        EXPECT_EQ(res.status, Status::not_found) << path;
        EXPECT_EQ(res.handler, nullptr) << path;
        EXPECT_TRUE(res.allow.empty()) << path;
        EXPECT_TRUE(res.pattern.empty()) << path;
    }
}

TEST(Router, EmptyRouterFindsNothing) {
    const IntRouter r;
    EXPECT_EQ(go(r, Method::get, "/").status, Status::not_found);
    EXPECT_TRUE(r.routes().empty());
}

TEST(Router, ParamsClearedOnEveryMatch) {
    IntRouter r;
    r.add(Method::get, "/static", 1);
    PathParams p;
    p.push("stale", "value");
    EXPECT_EQ(r.match(Method::get, "/missing", p).status, Status::not_found);
    EXPECT_TRUE(p.empty());
    p.push("stale", "value");
    EXPECT_EQ(r.match(Method::get, "/static", p).status, Status::found);
    EXPECT_TRUE(p.empty());
}

TEST(Router, TrailingSlashIsSignificant) {
    IntRouter r;
    r.add(Method::get, "/a", 1);
    r.add(Method::get, "/a/", 2);
    r.add(Method::get, "/u/{x}", 3);
    r.add(Method::get, "/v/{x}/", 4);
    EXPECT_EQ(go(r, Method::get, "/a").handler, 1);
    EXPECT_EQ(go(r, Method::get, "/a/").handler, 2);
    EXPECT_EQ(go(r, Method::get, "/a//").status, Status::not_found);
    EXPECT_EQ(go(r, Method::get, "/u/1").handler, 3);
    EXPECT_EQ(go(r, Method::get, "/u/1/").status, Status::not_found);
    EXPECT_EQ(go(r, Method::get, "/v/1/").handler, 4);
    EXPECT_EQ(go(r, Method::get, "/v/1").status, Status::not_found);
}

// ---------------------------------------------------------------------------------------------
// Parameters

TEST(Router, StrParamCapturesOneSegment) {
    IntRouter r;
    r.add(Method::get, "/users/{name}", 1);
    r.add(Method::get, "/users/{name}/posts/{post:str}", 2);
    const Result a = go(r, Method::get, "/users/alice");
    EXPECT_EQ(a.status, Status::found);
    EXPECT_EQ(a.pattern, "/users/{name}");
    EXPECT_EQ(a.params, (Params{{"name", "alice"}}));
    EXPECT_EQ(go(r, Method::get, "/users/bob/posts/hello-world").params,
              (Params{{"name", "bob"}, {"post", "hello-world"}}));
}

TEST(Router, ValuesViewIntoPathAndStayRaw) {
    IntRouter r;
    r.add(Method::get, "/users/{name}", 1);
    const std::string path = "/users/a%2Fb%20c";
    PathParams p;
    ASSERT_EQ(r.match(Method::get, path, p).status, Status::found);
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0].value, "a%2Fb%20c");  // not percent-decoded
    EXPECT_EQ(p[0].value.data(), path.data() + 7);
}

TEST(Router, NamesViewIntoRouterStorage) {
    IntRouter r;
    {
        std::string pattern = "/items/{item_id}";
        r.add(Method::get, pattern, 1);
        pattern.assign(pattern.size(), 'X');  // the caller's buffer is gone/garbage afterwards
    }
    PathParams p;
    ASSERT_EQ(r.match(Method::get, "/items/9", p).status, Status::found);
    EXPECT_EQ(p[0].name, "item_id");
    EXPECT_EQ(p.get("item_id"), std::optional<std::string_view>("9"));
}

TEST(Router, EmptySegmentNeverMatchesParam) {
    IntRouter r;
    r.add(Method::get, "/users/{name}", 1);
    r.add(Method::get, "/a/{x}/b", 2);
    r.add(Method::get, "/n/{x:int}", 3);
    EXPECT_EQ(go(r, Method::get, "/users/").status, Status::not_found);
    EXPECT_EQ(go(r, Method::get, "/a//b").status, Status::not_found);
    EXPECT_EQ(go(r, Method::get, "/n/").status, Status::not_found);
    EXPECT_EQ(go(r, Method::get, "/users//x").status, Status::not_found);
}

TEST(Router, IntParam) {
    IntRouter r;
    r.add(Method::get, "/n/{v:int}", 1);
    EXPECT_EQ(go(r, Method::get, "/n/42").params, (Params{{"v", "42"}}));
    EXPECT_EQ(go(r, Method::get, "/n/-7").params, (Params{{"v", "-7"}}));
    EXPECT_EQ(go(r, Method::get, "/n/9223372036854775807").status, Status::found);
    EXPECT_EQ(go(r, Method::get, "/n/-9223372036854775808").status, Status::found);
    for (std::string_view bad :
         {"/n/9223372036854775808", "/n/-9223372036854775809", "/n/+1", "/n/1.5", "/n/abc", "/n/12a", "/n/-"})
        EXPECT_EQ(go(r, Method::get, bad).status, Status::not_found) << bad;
}

TEST(Router, FloatParam) {
    IntRouter r;
    r.add(Method::get, "/f/{x:float}", 1);
    for (std::string_view ok : {"/f/1.5", "/f/-2e3", "/f/.5", "/f/7", "/f/1.", "/f/+3.25E-2"}) {
        const Result res = go(r, Method::get, ok);
        EXPECT_EQ(res.status, Status::found) << ok;
        ASSERT_EQ(res.params.size(), 1u) << ok;
        EXPECT_EQ("/f/" + res.params[0].second, ok);
    }
    for (std::string_view bad : {"/f/abc", "/f/1.2.3", "/f/inf", "/f/nan", "/f/.", "/f/1e"})
        EXPECT_EQ(go(r, Method::get, bad).status, Status::not_found) << bad;
}

TEST(Router, UuidParamIsCaseInsensitive) {
    IntRouter r;
    r.add(Method::get, "/o/{id:uuid}", 1);
    EXPECT_EQ(go(r, Method::get, "/o/123e4567-e89b-12d3-a456-426614174000").params,
              (Params{{"id", "123e4567-e89b-12d3-a456-426614174000"}}));
    EXPECT_EQ(go(r, Method::get, "/o/123E4567-E89B-12D3-A456-426614174000").status, Status::found);
    EXPECT_EQ(go(r, Method::get, "/o/123e4567-e89b-12d3-a456-42661417400z").status, Status::not_found);
    EXPECT_EQ(go(r, Method::get, "/o/42").status, Status::not_found);
}

TEST(Router, TypePriorityIndependentOfRegistrationOrder) {
    IntRouter r;
    r.add(Method::get, "/v/{s}", 4);
    r.add(Method::get, "/v/{rest:path}", 5);
    r.add(Method::get, "/v/{u:uuid}", 3);
    r.add(Method::get, "/v/{f:float}", 2);
    r.add(Method::get, "/v/{i:int}", 1);
    EXPECT_EQ(go(r, Method::get, "/v/42").params, (Params{{"i", "42"}}));
    EXPECT_EQ(go(r, Method::get, "/v/4.2").params, (Params{{"f", "4.2"}}));
    EXPECT_EQ(go(r, Method::get, "/v/00000000-0000-0000-0000-000000000000").handler, 3);
    EXPECT_EQ(go(r, Method::get, "/v/hello").params, (Params{{"s", "hello"}}));
    EXPECT_EQ(go(r, Method::get, "/v/a/b").params, (Params{{"rest", "a/b"}}));
    EXPECT_EQ(go(r, Method::get, "/v/").params, (Params{{"rest", ""}}));
}

TEST(Router, StaticWinsOverParam) {
    IntRouter r;
    r.add(Method::get, "/users/{id}", 1);  // param registered first on purpose
    r.add(Method::get, "/users/me", 2);
    const Result me = go(r, Method::get, "/users/me");
    EXPECT_EQ(me.handler, 2);
    EXPECT_TRUE(me.params.empty());
    EXPECT_EQ(go(r, Method::get, "/users/you").handler, 1);
}

TEST(Router, LiteralSegmentWinsOverParamInTrie) {
    IntRouter r;
    r.add(Method::get, "/t/{x}/view", 1);
    r.add(Method::get, "/t/special/{y}", 2);
    EXPECT_EQ(go(r, Method::get, "/t/special/7").params, (Params{{"y", "7"}}));
    // The literal branch fails deeper, so the param branch takes over.
    EXPECT_EQ(go(r, Method::get, "/t/special/view").handler, 2);
    EXPECT_EQ(go(r, Method::get, "/t/other/view").params, (Params{{"x", "other"}}));
}

TEST(Router, BacktracksWhenSpecificBranchFailsDeeper) {
    IntRouter r;
    r.add(Method::get, "/a/{x:int}/b", 1);
    r.add(Method::get, "/a/{y}/c", 2);
    const Result c = go(r, Method::get, "/a/5/c");
    EXPECT_EQ(c.handler, 2);
    EXPECT_EQ(c.pattern, "/a/{y}/c");
    EXPECT_EQ(c.params, (Params{{"y", "5"}}));
    EXPECT_EQ(go(r, Method::get, "/a/5/b").params, (Params{{"x", "5"}}));
    EXPECT_EQ(go(r, Method::get, "/a/z/c").params, (Params{{"y", "z"}}));
    EXPECT_EQ(go(r, Method::get, "/a/z/b").status, Status::not_found);
}

TEST(Router, BacktrackingAcrossSeveralParamsResetsValues) {
    IntRouter r;
    r.add(Method::get, "/{a:int}/{b:int}/x", 1);
    r.add(Method::get, "/{a:int}/{c}/y", 2);
    r.add(Method::get, "/{d}/{e}/z", 3);
    EXPECT_EQ(go(r, Method::get, "/1/2/x").params, (Params{{"a", "1"}, {"b", "2"}}));
    EXPECT_EQ(go(r, Method::get, "/1/2/y").params, (Params{{"a", "1"}, {"c", "2"}}));
    EXPECT_EQ(go(r, Method::get, "/1/2/z").params, (Params{{"d", "1"}, {"e", "2"}}));
    EXPECT_EQ(go(r, Method::get, "/q/2/x").status, Status::not_found);
}

TEST(Router, BacktracksIntoCatchAll) {
    IntRouter r;
    r.add(Method::get, "/s/{name}/info", 1);
    r.add(Method::get, "/s/{rest:path}", 2);
    EXPECT_EQ(go(r, Method::get, "/s/x/info").handler, 1);
    EXPECT_EQ(go(r, Method::get, "/s/x/other").params, (Params{{"rest", "x/other"}}));
    EXPECT_EQ(go(r, Method::get, "/s/x").params, (Params{{"rest", "x"}}));
}

TEST(Router, CatchAllPath) {
    IntRouter r;
    r.add(Method::get, "/files/{p:path}", 1);
    EXPECT_EQ(go(r, Method::get, "/files/a/b.txt").params, (Params{{"p", "a/b.txt"}}));
    EXPECT_EQ(go(r, Method::get, "/files/").params, (Params{{"p", ""}}));
    EXPECT_EQ(go(r, Method::get, "/files/dir/").params, (Params{{"p", "dir/"}}));
    EXPECT_EQ(go(r, Method::get, "/files//x").params, (Params{{"p", "/x"}}));
    EXPECT_EQ(go(r, Method::get, "/files").status, Status::not_found);
    EXPECT_EQ(go(r, Method::get, "/filesx/a").status, Status::not_found);
}

TEST(Router, CatchAllAfterOtherParamsAndAtRoot) {
    IntRouter r;
    r.add(Method::get, "/u/{id:int}/{rest:path}", 1);
    r.add(Method::get, "/{all:path}", 2);
    r.add(Method::get, "/", 3);
    EXPECT_EQ(go(r, Method::get, "/u/3/x/y").params, (Params{{"id", "3"}, {"rest", "x/y"}}));
    EXPECT_EQ(go(r, Method::get, "/u/x/y").params, (Params{{"all", "u/x/y"}}));
    EXPECT_EQ(go(r, Method::get, "/").handler, 3);  // static beats the root catch-all
    EXPECT_EQ(go(r, Method::get, "/anything").params, (Params{{"all", "anything"}}));
}

TEST(Router, SameShapeDifferentMethodsKeepTheirOwnNames) {
    IntRouter r;
    r.add(Method::get, "/u/{id}", 1);
    r.add(Method::del, "/u/{user_id}", 2);
    EXPECT_EQ(go(r, Method::get, "/u/7").params, (Params{{"id", "7"}}));
    const Result d = go(r, Method::del, "/u/7");
    EXPECT_EQ(d.handler, 2);
    EXPECT_EQ(d.pattern, "/u/{user_id}");
    EXPECT_EQ(d.params, (Params{{"user_id", "7"}}));
}

TEST(Router, MaxParamsFillCapacity) {
    std::string pattern, path;
    Params expected;
    for (std::size_t i = 0; i < PathParams::capacity; ++i) {
        pattern += "/{p" + std::to_string(i) + "}";
        path += "/v" + std::to_string(i);
        expected.emplace_back("p" + std::to_string(i), "v" + std::to_string(i));
    }
    IntRouter r;
    r.add(Method::get, pattern, 1);
    const Result res = go(r, Method::get, path);
    EXPECT_EQ(res.status, Status::found);
    EXPECT_EQ(res.params, expected);
    EXPECT_EQ(go(r, Method::get, path + "/extra").status, Status::not_found);
}

// ---------------------------------------------------------------------------------------------
// 405 and HEAD

TEST(Router, MethodNotAllowedOnStatic) {
    IntRouter r;
    r.add(Method::post, "/items", 1);
    r.add(Method::get, "/items", 2);
    PathParams p;
    const auto res = r.match(Method::del, "/items", p);
    EXPECT_EQ(res.status, Status::method_not_allowed);
    EXPECT_EQ(res.handler, nullptr);
    EXPECT_EQ(res.allow, "GET, HEAD, POST");
    EXPECT_EQ(res.pattern, "/items");
    EXPECT_TRUE(p.empty());
}

TEST(Router, MethodNotAllowedOnParamRoute) {
    IntRouter r;
    r.add(Method::get, "/items/{id:int}", 1);
    r.add(Method::put, "/items/{item:int}", 2);
    const Result res = go(r, Method::del, "/items/5");
    EXPECT_EQ(res.status, Status::method_not_allowed);
    EXPECT_EQ(res.allow, "GET, HEAD, PUT");
    EXPECT_EQ(res.pattern, "/items/{id:int}");  // first registration on the node
    EXPECT_TRUE(res.params.empty());
    EXPECT_EQ(go(r, Method::del, "/items/x").status, Status::not_found);
}

TEST(Router, AllowListInEnumOrder) {
    IntRouter r;
    for (Method m : {Method::trace, Method::patch, Method::del, Method::options, Method::post, Method::put,
                     Method::connect, Method::get})
        r.add(m, "/all/{x}", 1);
    EXPECT_EQ(go(r, Method::head, "/all/1").status, Status::found);  // automatic HEAD
    IntRouter r2;
    for (Method m :
         {Method::trace, Method::patch, Method::del, Method::options, Method::post, Method::put, Method::connect})
        r2.add(m, "/all/{x}", 1);
    const Result res = go(r2, Method::get, "/all/1");
    EXPECT_EQ(res.status, Status::method_not_allowed);
    EXPECT_EQ(res.allow, "POST, PUT, DELETE, PATCH, OPTIONS, CONNECT, TRACE");
}

TEST(Router, AllowOmitsHeadWithoutGet) {
    IntRouter r;
    r.add(Method::post, "/submit", 1);
    const Result res = go(r, Method::head, "/submit");
    EXPECT_EQ(res.status, Status::method_not_allowed);
    EXPECT_EQ(res.allow, "POST");
}

TEST(Router, AllowReportedOnFoundToo) {
    IntRouter r;
    r.add(Method::get, "/x/{id}", 1);
    r.add(Method::patch, "/x/{id}", 2);
    EXPECT_EQ(go(r, Method::patch, "/x/1").allow, "GET, HEAD, PATCH");
}

TEST(Router, MethodNotAllowedUsesMostSpecificNode) {
    IntRouter r;
    r.add(Method::get, "/x/{id:int}", 1);
    r.add(Method::post, "/x/{name}", 2);
    // Both nodes match /x/5 but neither serves PUT: the int node is the more specific one.
    EXPECT_EQ(go(r, Method::put, "/x/5").allow, "GET, HEAD");
    EXPECT_EQ(go(r, Method::put, "/x/abc").allow, "POST");
    // A route for the method anywhere beats a 405 from a more specific node.
    const Result post = go(r, Method::post, "/x/5");
    EXPECT_EQ(post.status, Status::found);
    EXPECT_EQ(post.params, (Params{{"name", "5"}}));
}

TEST(Router, StaticNodeGivesAllowButParamRouteCanServe) {
    IntRouter r;
    r.add(Method::get, "/users/me", 1);
    r.add(Method::del, "/users/{id}", 2);
    r.add(Method::post, "/users/{id}", 3);
    const Result del = go(r, Method::del, "/users/me");
    EXPECT_EQ(del.handler, 2);
    EXPECT_EQ(del.params, (Params{{"id", "me"}}));
    const Result put = go(r, Method::put, "/users/me");
    EXPECT_EQ(put.status, Status::method_not_allowed);
    EXPECT_EQ(put.allow, "GET, HEAD");  // the static node is the most specific
    EXPECT_EQ(put.pattern, "/users/me");
    EXPECT_EQ(go(r, Method::put, "/users/x").allow, "POST, DELETE");
}

TEST(Router, AutomaticHead) {
    IntRouter r;
    r.add(Method::get, "/page", 1);
    r.add(Method::get, "/doc/{id:int}", 2);
    const Result h = go(r, Method::head, "/page");
    EXPECT_EQ(h.status, Status::found);
    EXPECT_EQ(h.handler, 1);
    EXPECT_EQ(h.pattern, "/page");
    EXPECT_EQ(go(r, Method::head, "/doc/3").params, (Params{{"id", "3"}}));
    EXPECT_EQ(go(r, Method::post, "/page").allow, "GET, HEAD");
}

TEST(Router, ExplicitHeadOverridesGet) {
    IntRouter r;
    r.add(Method::get, "/page", 1);
    r.add(Method::head, "/page", 2);  // not a conflict with GET
    EXPECT_EQ(go(r, Method::head, "/page").handler, 2);
    EXPECT_EQ(go(r, Method::get, "/page").handler, 1);
    EXPECT_EQ(go(r, Method::post, "/page").allow, "GET, HEAD");
    EXPECT_EQ(error_of([&] { r.add(Method::head, "/page", 3); }),
              "route conflict: HEAD /page clashes with HEAD /page registered earlier (same shape)");
}

TEST(Router, HeadOnlyRouteDoesNotServeGet) {
    IntRouter r;
    r.add(Method::head, "/ping/{x}", 1);
    EXPECT_EQ(go(r, Method::head, "/ping/1").handler, 1);
    const Result g = go(r, Method::get, "/ping/1");
    EXPECT_EQ(g.status, Status::method_not_allowed);
    EXPECT_EQ(g.allow, "HEAD");
}

// ---------------------------------------------------------------------------------------------
// Conflicts

TEST(Router, ConflictNamesBothPatterns) {
    IntRouter r;
    r.add(Method::get, "/users/{id}", 1);
    EXPECT_EQ(error_of([&] { r.add(Method::get, "/users/{name}", 2); }),
              "route conflict: GET /users/{name} clashes with GET /users/{id} registered earlier "
              "(same shape)");
    // The original route is untouched and the rejected one is not listed.
    EXPECT_EQ(go(r, Method::get, "/users/1").params, (Params{{"id", "1"}}));
    EXPECT_EQ(r.routes().size(), 1u);
}

TEST(Router, StaticConflict) {
    IntRouter r;
    r.add(Method::post, "/login", 1);
    const std::string msg = error_of([&] { r.add(Method::post, "/login", 2); });
    EXPECT_TRUE(contains(msg, "route conflict")) << msg;
    EXPECT_TRUE(contains(msg, "POST /login clashes with POST /login")) << msg;
    EXPECT_EQ(go(r, Method::post, "/login").handler, 1);
}

TEST(Router, ShapeIgnoresNamesButNotTypesOrLiterals) {
    IntRouter r;
    r.add(Method::get, "/a/{x:int}/b", 1);
    const std::string msg = error_of([&] { r.add(Method::get, "/a/{y:int}/b", 2); });
    EXPECT_TRUE(contains(msg, "/a/{y:int}/b")) << msg;
    EXPECT_TRUE(contains(msg, "/a/{x:int}/b")) << msg;
    EXPECT_NO_THROW(r.add(Method::get, "/a/{x}/b", 3));       // different type
    EXPECT_NO_THROW(r.add(Method::get, "/a/{x:int}/c", 4));   // different literal
    EXPECT_NO_THROW(r.add(Method::get, "/a/{x:int}/b/", 5));  // trailing slash
    EXPECT_NO_THROW(r.add(Method::post, "/a/{z:int}/b", 6));  // different method
    // {x} and {x:str} are the same shape.
    EXPECT_TRUE(contains(error_of([&] { r.add(Method::get, "/a/{s:str}/b", 7); }), "clashes with GET /a/{x}/b"));
}

TEST(Router, IntAndStrCoexist) {
    IntRouter r;
    r.add(Method::get, "/users/{id:int}", 1);
    EXPECT_NO_THROW(r.add(Method::get, "/users/{name}", 2));
    EXPECT_EQ(go(r, Method::get, "/users/10").handler, 1);
    EXPECT_EQ(go(r, Method::get, "/users/ten").handler, 2);
}

// ---------------------------------------------------------------------------------------------
// Bad patterns

TEST(Router, BadPatternMessages) {
    EXPECT_EQ(bad_add("/a/{x:path}/b"),
              "bad route pattern '/a/{x:path}/b': a {path} parameter must be the last segment");
    EXPECT_TRUE(contains(bad_add("/a/{x:path}/{y}"), "must be the last segment"));
    EXPECT_TRUE(contains(bad_add("/a/{x:path}/"), "must be the last segment"));

    const std::string unknown = bad_add("/a/{x:bogus}");
    EXPECT_TRUE(contains(unknown, "'/a/{x:bogus}'")) << unknown;
    EXPECT_TRUE(contains(unknown, "unknown parameter type 'bogus'")) << unknown;
    EXPECT_TRUE(contains(bad_add("/a/{x:}"), "unknown parameter type ''"));
    EXPECT_TRUE(contains(bad_add("/a/{x:INT}"), "unknown parameter type 'INT'"));

    for (std::string_view p : {"/a/{x", "/a/x}", "/a/{{x}}", "/a/}x{", "/a/{x}}", "/{"}) {
        const std::string msg = bad_add(p);
        EXPECT_TRUE(contains(msg, "unbalanced braces")) << p << ": " << msg;
        EXPECT_TRUE(contains(msg, "'" + std::string(p) + "'")) << msg;
    }

    EXPECT_TRUE(contains(bad_add("/a/{}"), "empty parameter name"));
    EXPECT_TRUE(contains(bad_add("/a/{:int}"), "empty parameter name"));
    EXPECT_TRUE(contains(bad_add("/a/{1x}"), "invalid parameter name '1x'"));
    EXPECT_TRUE(contains(bad_add("/a/{x-y}"), "invalid parameter name 'x-y'"));

    EXPECT_TRUE(contains(bad_add("/a/{x}/{x:int}"), "duplicate parameter name 'x'"));

    EXPECT_TRUE(contains(bad_add("/a/pre{x}"), "fully literal or exactly one {parameter}"));
    EXPECT_TRUE(contains(bad_add("/a/{x}{y}"), "fully literal or exactly one {parameter}"));
    EXPECT_TRUE(contains(bad_add("/a/{x}.json"), "fully literal or exactly one {parameter}"));

    EXPECT_EQ(bad_add(""), "bad route pattern '': must start with '/'");
    EXPECT_EQ(bad_add("users"), "bad route pattern 'users': must start with '/'");
    EXPECT_TRUE(contains(bad_add("{x}"), "must start with '/'"));
}

TEST(Router, TooManyParams) {
    std::string pattern;
    for (std::size_t i = 0; i <= PathParams::capacity; ++i) pattern += "/{p" + std::to_string(i) + "}";
    EXPECT_TRUE(contains(bad_add(pattern), "more than 16 parameters"));
}

TEST(Router, RouteErrorIsInvalidArgument) {
    IntRouter r;
    EXPECT_THROW(r.add(Method::get, "nope", 1), std::invalid_argument);
    EXPECT_THROW(r.add(Method::get, "nope", 1), RouteError);
}

// ---------------------------------------------------------------------------------------------
// Storage, listing, scale, threads

TEST(Router, RoutesListedInRegistrationOrder) {
    IntRouter r;
    r.add(Method::post, "/b", 1);
    r.add(Method::get, "/a/{id:int}", 2);
    r.add(Method::get, "/b", 3);
    try {
        r.add(Method::get, "/b", 4);  // rejected: must not appear
    } catch (const RouteError&) {
    }
    const std::vector<std::pair<Method, std::string>> expected = {
        {Method::post, "/b"}, {Method::get, "/a/{id:int}"}, {Method::get, "/b"}};
    EXPECT_EQ(r.routes(), expected);
}

TEST(Router, HandlerPointersStableAcrossGrowthAndMove) {
    IntRouter r;
    r.add(Method::get, "/first/{x}", 11);
    r.add(Method::get, "/static", 12);
    PathParams p;
    const int* dyn = r.match(Method::get, "/first/a", p).handler;
    const int* fixed = r.match(Method::get, "/static", p).handler;
    ASSERT_NE(dyn, nullptr);
    ASSERT_NE(fixed, nullptr);
    for (int i = 0; i < 2000; ++i) {
        r.add(Method::get, "/s" + std::to_string(i), i);
        r.add(Method::get, "/p" + std::to_string(i) + "/{x}", i);
    }
    EXPECT_EQ(r.match(Method::get, "/first/a", p).handler, dyn);
    EXPECT_EQ(r.match(Method::get, "/static", p).handler, fixed);

    IntRouter moved(std::move(r));
    const auto res = moved.match(Method::get, "/first/a", p);
    EXPECT_EQ(res.handler, dyn);
    EXPECT_EQ(*res.handler, 11);
    EXPECT_EQ(p.get("x"), std::optional<std::string_view>("a"));

    IntRouter assigned;
    assigned = std::move(moved);
    EXPECT_EQ(assigned.match(Method::get, "/static", p).handler, fixed);
    EXPECT_EQ(assigned.match(Method::post, "/static", p).allow, "GET, HEAD");
}

TEST(Router, MoveOnlyAndCallableHandlers) {
    covet::Router<std::unique_ptr<int>> r;
    r.add(Method::get, "/x/{n:int}", std::make_unique<int>(5));
    PathParams p;
    const auto res = r.match(Method::get, "/x/1", p);
    ASSERT_EQ(res.status, decltype(r)::Status::found);
    EXPECT_EQ(**res.handler, 5);

    covet::Router<std::function<std::string(const PathParams&)>> fr;
    fr.add(Method::get, "/hello/{name}", [](const PathParams& pp) { return "hi " + std::string(*pp.get("name")); });
    const auto fres = fr.match(Method::get, "/hello/ann", p);
    ASSERT_NE(fres.handler, nullptr);
    EXPECT_EQ((*fres.handler)(p), "hi ann");
}

TEST(Router, LargeTable) {
    IntRouter r;
    constexpr int n = 1000;
    for (int i = 0; i < n; ++i) {
        const std::string s = std::to_string(i);
        if (i % 2 == 0)
            r.add(Method::get, "/static/" + s + "/page", i);
        else
            r.add(Method::get, "/res" + s + "/{id:int}/items/{name}", i);
    }
    ASSERT_EQ(r.routes().size(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        const std::string s = std::to_string(i);
        if (i % 2 == 0) {
            const Result res = go(r, Method::get, "/static/" + s + "/page");
            EXPECT_EQ(res.handler, i);
            EXPECT_TRUE(res.params.empty());
        } else {
            const Result res = go(r, Method::get, "/res" + s + "/" + s + "/items/n" + s);
            EXPECT_EQ(res.handler, i);
            EXPECT_EQ(res.params, (Params{{"id", s}, {"name", "n" + s}}));
            EXPECT_EQ(go(r, Method::get, "/res" + s + "/x/items/n").status, Status::not_found);
        }
    }
    EXPECT_EQ(go(r, Method::get, "/static/1/page").status, Status::not_found);
    EXPECT_EQ(go(r, Method::get, "/res0/1/items/a").status, Status::not_found);
    EXPECT_EQ(go(r, Method::post, "/res1/1/items/a").status, Status::method_not_allowed);
}

TEST(Router, ConcurrentMatches) {
    IntRouter r;
    for (int i = 0; i < 100; ++i) {
        r.add(Method::get, "/s/" + std::to_string(i), i);
        r.add(Method::get, "/p/" + std::to_string(i) + "/{id:int}", 1000 + i);
    }
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&r, &failures, t] {
            PathParams p;
            for (int k = 0; k < 2000; ++k) {
                const int i = (k + t * 13) % 100;
                const std::string id = std::to_string(k);
                const auto a = r.match(Method::get, "/s/" + std::to_string(i), p);
                const std::string path = "/p/" + std::to_string(i) + "/" + id;
                const auto b = r.match(Method::get, path, p);
                const bool ok = a.handler && *a.handler == i && b.handler && *b.handler == 1000 + i &&
                                p.get("id") == std::optional<std::string_view>(id);
                if (!ok) failures.fetch_add(1, std::memory_order_relaxed);
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures.load(), 0);
}

}  // namespace
