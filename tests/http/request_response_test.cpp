// Tests for covet::Request, covet::Response, covet::http::DateCache, the status helpers and
// covet::http::parse_content_length.
#include <gtest/gtest.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "covet/app/context.hpp"
#include "covet/http/date_cache.hpp"
#include "covet/http/request.hpp"
#include "covet/http/request_builder.hpp"
#include "covet/http/response.hpp"
#include "covet/http/status.hpp"
#include "covet/http1/serializer.hpp"

namespace {

using covet::Method;
using covet::Request;
using covet::Response;

// The fields as HTTP/1.1 writes them.
std::string lines(const covet::Fields& fields) {
    std::string out;
    covet::http1::append_fields(out, fields);
    return out;
}

// ---------------------------------------------------------------- Request

Request with_target(std::string_view target) {
    Request r;
    r.set_target(target);
    return r;
}

TEST(Request, HeaderLookupIsCaseInsensitiveAndReturnsTheFirst) {
    Request r;
    r.add_header("Content-Type", "text/plain");
    r.add_header("X-Trace", "one");
    r.add_header("x-trace", "two");
    EXPECT_EQ(r.header("content-type"), "text/plain");
    EXPECT_EQ(r.header("CONTENT-TYPE"), "text/plain");
    EXPECT_EQ(r.header("X-TRACE"), "one");
    EXPECT_EQ(r.header("Content-Typ"), std::nullopt);
    EXPECT_EQ(r.header("Content-Type2"), std::nullopt);
    EXPECT_EQ(r.header(""), std::nullopt);
    EXPECT_EQ(r.headers().size(), 3u);
    EXPECT_EQ(r.header_count(), 3u);
}

// origin_field() is noted as fields are added (CORS reads it on every request): the first Origin in any case, kept
// through the vector's growth and a value set later, gone after reset(); names that only look like it are not it.
TEST(Request, OriginFieldIsTheFirstOriginInAnyCase) {
    Request r;
    EXPECT_EQ(r.origin_field(), nullptr);
    for (const char* name : {"Origins", "Origi", "0rigin", "Origim", "Oregin", "X-Origin", "Orig\xe9n", "origin "})
        r.add_header(name, "no");
    EXPECT_EQ(r.origin_field(), nullptr);
    r.add_header("oRiGiN", "");
    r.set_last_header_value("https://a.example");
    for (int i = 0; i < 40; ++i) r.add_header("X-Filler", "grows the vector");
    r.add_header("Origin", "https://second.example");
    const covet::Header* origin = r.origin_field();
    ASSERT_NE(origin, nullptr);
    EXPECT_EQ(origin->name, "oRiGiN");
    EXPECT_EQ(origin->value, "https://a.example");
    EXPECT_EQ(origin->value, r.header("origin"));
    r.reset();
    EXPECT_EQ(r.origin_field(), nullptr);
    r.add_header("ORIGIN", "null");
    ASSERT_NE(r.origin_field(), nullptr);
    EXPECT_EQ(r.origin_field()->value, "null");
}

// is_letters_name compares words with the case bit set: exact for every byte value against a name of letters.
TEST(Ascii, LettersNameIsExactForEveryByte) {
    for (int b = 0; b < 256; ++b) {
        for (std::size_t at = 0; at < 6; ++at) {
            std::string name = "origin";
            name[at] = static_cast<char>(b);
            const bool expected = covet::ascii_lower(static_cast<char>(b)) == "origin"[at];
            EXPECT_EQ(covet::is_letters_name(name, "origin"), expected) << b << " at " << at;
        }
        std::string host = "Host";
        host[3] = static_cast<char>(b);
        EXPECT_EQ(covet::is_letters_name(host, "host"), b == 't' || b == 'T') << b;
    }
    EXPECT_FALSE(covet::is_letters_name("hos", "host"));
    EXPECT_FALSE(covet::is_letters_name("hostt", "host"));
    EXPECT_TRUE(covet::is_letters_name("HOST", "host"));
    EXPECT_TRUE(covet::is_letters_name("Upgrade", "upgrade"));
    EXPECT_TRUE(covet::is_letters_name("KeepLIVE", "keeplive"));
}

TEST(Request, EmptyHeaderValueIsPresent) {
    Request r;
    r.add_header("X-Empty", "");
    const auto v = r.header("x-empty");
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(*v, "");
}

TEST(Request, SetLastHeaderValue) {
    Request r;
    r.set_last_header_value("ignored when there are no headers");
    EXPECT_EQ(r.header_count(), 0u);
    r.add_header("A", "");
    r.add_header("B", "");
    r.set_last_header_value("b");
    EXPECT_EQ(r.header("a"), "");
    EXPECT_EQ(r.header("b"), "b");
}

TEST(Request, PathAndQuerySplitAtTheFirstQuestionMark) {
    Request r = with_target("/search/items?q=a+b&page=2");
    EXPECT_EQ(r.target(), "/search/items?q=a+b&page=2");
    EXPECT_EQ(r.path(), "/search/items");
    EXPECT_EQ(r.query_string(), "q=a+b&page=2");
    EXPECT_EQ(r.query("q"), "a b");
    EXPECT_EQ(r.query("page"), "2");
    EXPECT_EQ(r.query("missing"), std::nullopt);

    r = with_target("/no/query");
    EXPECT_EQ(r.path(), "/no/query");
    EXPECT_EQ(r.query_string(), "");
    EXPECT_EQ(r.query("q"), std::nullopt);

    r = with_target("/trailing?");
    EXPECT_EQ(r.path(), "/trailing");
    EXPECT_EQ(r.query_string(), "");

    r = with_target("/a?b?c=d");
    EXPECT_EQ(r.path(), "/a");
    EXPECT_EQ(r.query_string(), "b?c=d");

    r = with_target("/enc%20oded?x=%41");
    EXPECT_EQ(r.path(), "/enc%20oded") << "path() is raw";
    EXPECT_EQ(r.query("x"), "A");
}

TEST(Request, ProtocolNameFollowsVersion) {
    Request r;
    EXPECT_EQ(r.protocol(), "HTTP/1.1");
    r.set_version(1, 0);
    EXPECT_EQ(r.protocol(), "HTTP/1.0");
    r.set_version(2, 0);
    EXPECT_EQ(r.protocol(), "HTTP/2");
    r.set_method(Method::del);
    EXPECT_EQ(r.method_name(), "DELETE");
}

TEST(Request, RebaseHeadRepointsViewsIntoTheMovedBytes) {
    std::string old_head = "GET /x?y=1 HTTP/1.1\r\nHost: example\r\nX-A: b\r\n\r\n";
    const std::string body_storage = "body lives elsewhere";
    Request r;
    r.set_target(std::string_view(old_head).substr(4, 6));
    r.add_header(std::string_view(old_head).substr(21, 4), std::string_view(old_head).substr(27, 7));
    r.add_header(std::string_view(old_head).substr(36, 3), std::string_view(old_head).substr(41, 1));
    r.set_body(body_storage);
    ASSERT_EQ(r.target(), "/x?y=1");
    ASSERT_EQ(r.header("host"), "example");
    ASSERT_EQ(r.header("x-a"), "b");

    const std::string new_head = old_head;
    r.rebase_head(old_head.data(), old_head.size(), new_head.data());
    old_head.assign(old_head.size(), '#');  // the old bytes are gone

    EXPECT_EQ(r.target(), "/x?y=1");
    EXPECT_EQ(r.target().data(), new_head.data() + 4);
    EXPECT_EQ(r.header("HOST"), "example");
    EXPECT_EQ(r.headers()[0].name.data(), new_head.data() + 21);
    EXPECT_EQ(r.header("x-a"), "b");
    EXPECT_EQ(r.body(), "body lives elsewhere");
    EXPECT_EQ(r.body().data(), body_storage.data()) << "views outside the head range are left alone";
}

// The app's per-exchange context (not the protocol's Request) keeps the request id.
TEST(RequestContext, RequestIdIsTruncatedTo64BytesAndResetClearsIt) {
    covet::RequestContext c;
    EXPECT_EQ(c.request_id(), "");
    c.set_request_id("abc-123");
    EXPECT_EQ(c.request_id(), "abc-123");
    const std::string long_id(100, 'z');
    c.set_request_id(long_id);
    EXPECT_EQ(c.request_id(), std::string(64, 'z'));
    c.set_request_id(std::string(64, 'q'));
    EXPECT_EQ(c.request_id(), std::string(64, 'q'));
    c.set_request_id("short");
    EXPECT_EQ(c.request_id(), "short");
    c.reset();
    EXPECT_EQ(c.request_id(), "");
}

TEST(Request, ResetClearsPerRequestState) {
    Request r;
    r.set_target("/t");
    r.set_body("b");
    r.add_header("A", "1");
    r.params().push("id", "7");
    r.set_keep_alive(false);
    r.reset();
    EXPECT_EQ(r.target(), "");
    EXPECT_EQ(r.body(), "");
    EXPECT_EQ(r.header_count(), 0u);
    EXPECT_TRUE(r.params().empty());
    EXPECT_EQ(r.param("id"), std::nullopt);
    EXPECT_TRUE(r.keep_alive());
}

// ---------------------------------------------------------------- Response

TEST(Response, Defaults) {
    const Response r;
    EXPECT_EQ(r.status(), 200);
    EXPECT_EQ(r.body(), "");
    EXPECT_EQ(r.content_type(), "");
    EXPECT_EQ(lines(r.headers()), "");
    EXPECT_FALSE(r.closes_connection());
}

TEST(Response, Helpers) {
    Response t = Response::text("hi");
    EXPECT_EQ(t.status(), 200);
    EXPECT_EQ(t.body(), "hi");
    EXPECT_EQ(t.content_type(), "text/plain; charset=utf-8");

    Response j = Response::json(R"({"a":1})", 201);
    EXPECT_EQ(j.status(), 201);
    EXPECT_EQ(j.body(), R"({"a":1})");
    EXPECT_EQ(j.content_type(), "application/json");

    Response h = Response::html("<p>x</p>", 404);
    EXPECT_EQ(h.status(), 404);
    EXPECT_EQ(h.content_type(), "text/html; charset=utf-8");

    Response b = Response::bytes("\x01\x02");
    EXPECT_EQ(b.status(), 200);
    EXPECT_EQ(b.body(), "\x01\x02");
    EXPECT_EQ(b.content_type(), "application/octet-stream");

    Response c = Response::bytes("x,y", "text/csv", 202);
    EXPECT_EQ(c.status(), 202);
    EXPECT_EQ(c.content_type(), "text/csv");

    Response e = Response::empty();
    EXPECT_EQ(e.status(), 204);
    EXPECT_EQ(e.body(), "");
    EXPECT_EQ(e.content_type(), "");
    EXPECT_EQ(Response::empty(304).status(), 304);
}

TEST(Response, SettersChain) {
    Response r;
    r.set_status(418).set_body("teapot").set_content_type("text/x-tea").close_connection();
    EXPECT_EQ(r.status(), 418);
    EXPECT_EQ(r.body(), "teapot");
    EXPECT_EQ(r.content_type(), "text/x-tea");
    EXPECT_TRUE(r.closes_connection());
    r.close_connection(false);
    EXPECT_FALSE(r.closes_connection());
    r.body() += "!";
    EXPECT_EQ(r.body(), "teapot!");
}

TEST(Response, SetContentTypeCopiesItsArgument) {
    std::string ct = "text/csv";
    Response r;
    r.set_content_type(ct);
    ct.assign("XXXXXXXX");
    EXPECT_EQ(r.content_type(), "text/csv");
}

// A short content type lives in the string's inline (SSO) buffer, which moves with the object: the view
// must be re-pointed on every copy and move.
TEST(Response, OwnedShortContentTypeSurvivesCopyAndMove) {
    std::vector<Response> keep;
    {
        Response original = Response::bytes("body", "a/b");
        Response copy(original);
        Response assigned;
        assigned = original;
        Response moved(std::move(original));
        Response move_assigned;
        move_assigned = std::move(copy);
        keep.push_back(std::move(moved));
        keep.push_back(std::move(move_assigned));
        keep.push_back(assigned);
        // `original`, `copy`, `assigned`, `moved` and `move_assigned` are overwritten/destroyed here.
        assigned.set_content_type("zzz");
        original.set_content_type("yyy");
    }
    for (int i = 0; i < 100; ++i) keep.push_back(Response::bytes("filler", "f/g"));  // reallocations move them
    ASSERT_GE(keep.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(keep[i].content_type(), "a/b") << i;
        EXPECT_EQ(keep[i].body(), "body") << i;
    }
}

TEST(Response, OwnedLongContentTypeSurvivesCopyAndMove) {
    const std::string long_ct = "application/vnd.example.something-long+json; charset=utf-8";
    Response a = Response::bytes("x", long_ct);
    Response b(a);
    Response c(std::move(a));
    Response d;
    d = b;
    Response e;
    e = std::move(c);
    b.set_content_type("changed");
    EXPECT_EQ(b.content_type(), "changed");
    EXPECT_EQ(d.content_type(), long_ct);
    EXPECT_EQ(e.content_type(), long_ct);
}

TEST(Response, StaticContentTypeSurvivesCopyAndMove) {
    Response a = Response::json("{}");
    Response b(a);
    Response c(std::move(a));
    Response d;
    d = std::move(c);
    EXPECT_EQ(b.content_type(), "application/json");
    EXPECT_EQ(d.content_type(), "application/json");
    EXPECT_EQ(d.body(), "{}");
}

TEST(Response, AssigningOverAnOwnedContentTypeTakesTheOtherOne) {
    Response owned = Response::bytes("", "x/owned");
    owned = Response::text("t");
    EXPECT_EQ(owned.content_type(), "text/plain; charset=utf-8");
    Response other = Response::bytes("", "y/owned");
    owned = other;
    EXPECT_EQ(owned.content_type(), "y/owned");
    Response& self = owned;
    owned = self;  // self-copy keeps everything
    EXPECT_EQ(owned.content_type(), "y/owned");
}

TEST(Response, CopyAndMoveCarryEveryField) {
    Response r = Response::text("body", 201);
    r.add_header("X-A", "1").close_connection();
    const Response c(r);
    EXPECT_EQ(c.status(), 201);
    EXPECT_EQ(c.body(), "body");
    EXPECT_EQ(lines(c.headers()), "X-A: 1\r\n");
    EXPECT_TRUE(c.closes_connection());
    const Response m(std::move(r));
    EXPECT_EQ(m.status(), 201);
    EXPECT_EQ(m.body(), "body");
    EXPECT_EQ(lines(m.headers()), "X-A: 1\r\n");
    EXPECT_TRUE(m.closes_connection());
}

// BUG: the public (status, body, content_type) constructor keeps a view of its argument instead of a
// copy, so any content type that is not a string literal dangles (here: it silently changes).
TEST(Response, ConstructorDoesNotAliasANonStaticContentType) {
    std::string ct = "text/csv";
    const Response r(200, "a,b", ct);
    ct.assign("XXXXXXXX");  // same length: stays in the same (SSO) buffer, no UB, just a visible alias
    EXPECT_EQ(r.content_type(), "text/csv");
}

TEST(Response, AddHeaderSerializesLines) {
    Response r;
    r.add_header("Set-Cookie", "a=1").add_header("Set-Cookie", "b=2").add_header("X-Time", "12:30:00");
    EXPECT_EQ(lines(r.headers()), "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Time: 12:30:00\r\n");
}

// A field that would end early (CR/LF: response splitting) or that no peer accepts is refused on insert,
// with the cause; nothing of it is kept.
TEST(Response, AddHeaderRefusesFieldsThatCannotBeSent) {
    const auto refusal = [](auto&& add) -> std::string {
        try {
            add();
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "";
    };
    Response r;
    EXPECT_NE(refusal([&] { r.add_header("X-A", "1\r\nSet-Cookie: evil=1"); }).find("must not contain CR, LF or NUL"),
              std::string::npos);
    EXPECT_NE(refusal([&] { r.add_header("X-A", std::string_view("a\0b", 3)); }).find("CR, LF or NUL"),
              std::string::npos);
    EXPECT_NE(refusal([&] { r.add_header("X-A", "a\nb"); }).find("CR, LF or NUL"), std::string::npos);
    const std::string bad_name = refusal([&] { r.add_header("X A", "1"); });
    EXPECT_NE(bad_name.find("\"X A\""), std::string::npos) << bad_name;
    EXPECT_NE(bad_name.find("must be a token"), std::string::npos) << bad_name;
    EXPECT_NE(refusal([&] { r.add_header("X-A:", "1"); }).find("must be a token"), std::string::npos);
    EXPECT_NE(refusal([&] { r.add_header("", "1"); }).find("empty"), std::string::npos);
    EXPECT_NE(refusal([&] { r.trailer("grpc-status", "0\r\n"); }).find("trailer"), std::string::npos);
    EXPECT_EQ(lines(r.headers()), "");
    EXPECT_EQ(lines(r.trailers()), "");
    r.add_header("X-Ok", "tab\tand \"quotes\" and caf\xc3\xa9");  // obs-text and HTAB are allowed values
    EXPECT_EQ(lines(r.headers()), "X-Ok: tab\tand \"quotes\" and caf\xc3\xa9\r\n");
}

TEST(Response, HasHeaderIsCaseInsensitiveAndExact) {
    Response r;
    EXPECT_FALSE(r.has_header("X-A"));
    r.add_header("X-Time", "12:30:00").add_header("Cache-Control", "no-store");
    EXPECT_TRUE(r.has_header("x-time"));
    EXPECT_TRUE(r.has_header("CACHE-CONTROL"));
    EXPECT_FALSE(r.has_header("Cache"));
    EXPECT_FALSE(r.has_header("Cache-Control2"));
    EXPECT_FALSE(r.has_header("12")) << "a value is not a name";
    EXPECT_FALSE(r.has_header("no-store"));
    EXPECT_FALSE(r.has_header(""));
}

// ---------------------------------------------------------------- Content-Length

TEST(ContentLength, DigitsOnlyAndWithin64Bits) {
    using covet::http::parse_content_length;
    EXPECT_EQ(parse_content_length("0"), 0u);
    EXPECT_EQ(parse_content_length("42"), 42u);
    EXPECT_EQ(parse_content_length("007"), 7u);
    EXPECT_EQ(parse_content_length("18446744073709551615"), UINT64_MAX);
    EXPECT_EQ(parse_content_length("18446744073709551616"), std::nullopt) << "overflow";
    EXPECT_EQ(parse_content_length("99999999999999999999999"), std::nullopt) << "overflow";
    for (const std::string_view bad : {"", "+1", "-1", " 1", "1 ", "1,2", "1.0", "0x10", "ten", "1\r"})
        EXPECT_EQ(parse_content_length(bad), std::nullopt) << '"' << bad << '"';
}

// ---------------------------------------------------------------- status

TEST(Status, ReasonPhrases) {
    using covet::http::reason_phrase;
    EXPECT_EQ(reason_phrase(200), "OK");
    EXPECT_EQ(reason_phrase(404), "Not Found");
    EXPECT_EQ(reason_phrase(413), "Content Too Large");
    EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
    EXPECT_EQ(reason_phrase(203), "Non-Authoritative Information");
    EXPECT_EQ(reason_phrase(418), "I'm a Teapot");
    EXPECT_EQ(reason_phrase(416), "Range Not Satisfiable");
    EXPECT_EQ(reason_phrase(299), "Success");
    EXPECT_EQ(reason_phrase(499), "Client Error");
    EXPECT_EQ(reason_phrase(599), "Server Error");
}

TEST(Status, BodylessStatuses) {
    using covet::http::status_allows_body;
    EXPECT_FALSE(status_allows_body(100));
    EXPECT_FALSE(status_allows_body(101));
    EXPECT_FALSE(status_allows_body(204));
    EXPECT_FALSE(status_allows_body(304));
    EXPECT_TRUE(status_allows_body(200));
    EXPECT_TRUE(status_allows_body(205));
    EXPECT_TRUE(status_allows_body(404));
}

// ---------------------------------------------------------------- DateCache

const std::regex imf_fixdate(
    R"(^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} )"
    R"([0-2][0-9]:[0-5][0-9]:[0-6][0-9] GMT$)");

std::string format_http_date(std::time_t t) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    const std::size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return std::string(buf, n);
}

TEST(DateCache, FormatsIMFFixdate) {
    covet::http::DateCache cache;
    const std::time_t before = std::time(nullptr);
    const std::string date(cache.get());
    const std::time_t after = std::time(nullptr);
    EXPECT_TRUE(std::regex_match(date, imf_fixdate)) << date;
    EXPECT_EQ(date.size(), 29u);
    // The coarse clock may lag by a tick: accept the second before, too.
    EXPECT_TRUE(date == format_http_date(before) || date == format_http_date(after) ||
                date == format_http_date(before - 1))
        << date;
}

TEST(DateCache, ThreadLocalInstance) {
    covet::http::DateCache* here = &covet::http::DateCache::thread_local_instance();
    EXPECT_EQ(here, &covet::http::DateCache::thread_local_instance());
    covet::http::DateCache* there = nullptr;
    std::string there_date;
    std::thread([&] {
        there = &covet::http::DateCache::thread_local_instance();
        there_date = std::string(there->get());
    }).join();
    EXPECT_NE(here, there);
    EXPECT_TRUE(std::regex_match(there_date, imf_fixdate)) << there_date;
    EXPECT_TRUE(std::regex_match(std::string(here->get()), imf_fixdate));
}

}  // namespace
