// covet::Fields: validation on insert, order and repeats, case-insensitive lookup, and the same Fields
// written by the HTTP/1.1 serializer and turned into the HTTP/2 field list.
#include "covet/http/fields.hpp"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "../../src/http2/fields.hpp"
#include "covet/http/response.hpp"
#include "covet/http/status.hpp"
#include "covet/http1/serializer.hpp"

namespace {

using covet::Fields;
using Pairs = std::vector<std::pair<std::string, std::string>>;

Pairs pairs(const Fields& f) {
    Pairs out;
    for (const Fields::Field x : f) out.emplace_back(x.name, x.value);
    return out;
}

// The message of the std::invalid_argument `add` throws, or "" when it does not.
template <class Add>
std::string refusal(Add&& add) {
    try {
        add();
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

TEST(Fields, EmptyByDefault) {
    const Fields f;
    EXPECT_TRUE(f.empty());
    EXPECT_EQ(f.size(), 0u);
    EXPECT_EQ(f.begin(), f.end());
    EXPECT_FALSE(f.contains("x"));
    EXPECT_EQ(f.get("x"), std::nullopt);
}

TEST(Fields, KeepsOrderAndRepeats) {
    Fields f;
    f.add("Set-Cookie", "a=1").add("X-Time", "12:30:00").add("Set-Cookie", "b=2").add("X-Empty", "");
    EXPECT_EQ(f.size(), 4u);
    EXPECT_EQ(pairs(f), (Pairs{{"Set-Cookie", "a=1"}, {"X-Time", "12:30:00"}, {"Set-Cookie", "b=2"}, {"X-Empty", ""}}));
    EXPECT_EQ(f.count("set-cookie"), 2u);
    EXPECT_EQ(f.get("set-cookie"), "a=1") << "get() is the first";
    EXPECT_EQ(f.get("X-Empty"), "");
}

TEST(Fields, LookupIsCaseInsensitiveAndExact) {
    Fields f;
    f.add("Cache-Control", "no-store");
    EXPECT_TRUE(f.contains("cache-control"));
    EXPECT_TRUE(f.contains("CACHE-CONTROL"));
    EXPECT_FALSE(f.contains("Cache"));
    EXPECT_FALSE(f.contains("Cache-Control2"));
    EXPECT_FALSE(f.contains("no-store")) << "a value is not a name";
    EXPECT_FALSE(f.contains(""));
}

TEST(Fields, InsertRefusesWhatCannotBeSentNamingTheCause) {
    Fields f;
    f.add("X-Kept", "1");
    const std::string crlf = refusal([&] { f.add("X-A", "1\r\nSet-Cookie: evil=1"); });
    EXPECT_NE(crlf.find("\"X-A\""), std::string::npos) << crlf;
    EXPECT_NE(crlf.find("must not contain CR, LF or NUL"), std::string::npos) << crlf;
    EXPECT_NE(refusal([&] { f.add("X-A", "a\nb"); }).find("CR, LF or NUL"), std::string::npos);
    EXPECT_NE(refusal([&] { f.add("X-A", "a\rb"); }).find("CR, LF or NUL"), std::string::npos);
    EXPECT_NE(refusal([&] { f.add("X-A", std::string_view("a\0b", 3)); }).find("CR, LF or NUL"), std::string::npos);
    for (const std::string_view bad : {"X A", "X-A:", "X\tA", "X(A)", "caf\xc3\xa9", "X\r\nA"}) {
        const std::string why = refusal([&] { f.add(bad, "1"); });
        EXPECT_NE(why.find("must be a token"), std::string::npos) << bad << ": " << why;
    }
    EXPECT_NE(refusal([&] { f.add("", "1"); }).find("the name is empty"), std::string::npos);
    EXPECT_NE(refusal([&] { f.add("grpc-status", "0\n", "trailer"); }).find("cannot add the trailer"),
              std::string::npos);
    EXPECT_EQ(pairs(f), (Pairs{{"X-Kept", "1"}})) << "a refused field leaves nothing behind";
    f.add("X-Ok", "tab\tand \"quotes\" and caf\xc3\xa9");  // HTAB and obs-text are allowed in values
    EXPECT_EQ(f.get("x-ok"), "tab\tand \"quotes\" and caf\xc3\xa9");
}

TEST(Fields, CopyMoveAndClear) {
    Fields f;
    for (int i = 0; i < 20; ++i) f.add("X-" + std::to_string(i), std::string(static_cast<std::size_t>(i), 'v'));
    const Fields copy = f;
    EXPECT_EQ(copy, f);
    Fields moved = std::move(f);
    EXPECT_EQ(moved, copy);
    EXPECT_EQ(moved.size(), 20u);
    EXPECT_EQ(moved.get("x-19"), std::string(19, 'v'));
    f = Fields();  // a moved-from Fields is usable again once assigned
    EXPECT_TRUE(f.empty());
    moved.clear();
    EXPECT_TRUE(moved.empty());
    EXPECT_EQ(moved.size(), 0u);
    moved.add("A", "b");
    EXPECT_EQ(pairs(moved), (Pairs{{"A", "b"}}));
}

// One or two short fields (a request id) are held in the object itself: moving copies them, the moved-from list is
// empty and usable, and a list that outgrows those bytes moves them to its buffer in order.
TEST(Fields, ShortFieldsLiveInTheObjectAndMoveWithIt) {
    Fields small;
    small.add("X-Request-ID", "5f1c2a9e-1f");
    Fields moved = std::move(small);
    EXPECT_EQ(pairs(moved), (Pairs{{"X-Request-ID", "5f1c2a9e-1f"}}));
    EXPECT_EQ(moved.http1(), "X-Request-ID: 5f1c2a9e-1f\r\n");
    // Moved-from: empty and usable, by contract.
    EXPECT_TRUE(small.empty());    // NOLINT(bugprone-use-after-move,clang-analyzer-cplusplus.Move)
    EXPECT_EQ(small.http1(), "");  // NOLINT(clang-analyzer-cplusplus.Move)
    small.add("A", "1");           // NOLINT(clang-analyzer-cplusplus.Move)
    EXPECT_EQ(pairs(small), (Pairs{{"A", "1"}}));
    // Assigned over a list that had outgrown the object: its buffer is let go, the short fields copied in.
    Fields big;
    for (int i = 0; i < 10; ++i) big.add("X-Long-" + std::to_string(i), std::string(40, 'v'));
    big = std::move(moved);
    EXPECT_EQ(pairs(big), (Pairs{{"X-Request-ID", "5f1c2a9e-1f"}}));
    Fields& alias = big;
    big = std::move(alias);  // itself: unchanged
    EXPECT_EQ(pairs(big), (Pairs{{"X-Request-ID", "5f1c2a9e-1f"}}));
    // Growing past the object's bytes one field at a time: every field and its lengths stay paired, in order.
    Pairs expected{{"X-Request-ID", "5f1c2a9e-1f"}};
    for (int i = 0; i < 6; ++i) {
        big.add("F" + std::to_string(i), std::string(static_cast<std::size_t>(i) * 7, 'x'));
        expected.emplace_back("F" + std::to_string(i), std::string(static_cast<std::size_t>(i) * 7, 'x'));
        EXPECT_EQ(pairs(big), expected) << "after field " << i;
    }
    EXPECT_EQ(big.remove("x-request-id"), 1u);
    expected.erase(expected.begin());
    EXPECT_EQ(pairs(big), expected);
    const Fields heap_moved = std::move(big);  // a buffer moves by pointer
    EXPECT_EQ(pairs(heap_moved), expected);
    // Short lists compare equal whether they live in the object or in a buffer.
    Fields inline_list, reserved;
    inline_list.add("A", "1");
    reserved.reserve_more(200, 4);
    reserved.add("A", "1");
    EXPECT_EQ(inline_list, reserved);
    // Self-append within the object's bytes: twice the fields, in order.
    Fields twice;
    twice.add("A", "1").add("B", "2");
    twice.append(twice);
    EXPECT_EQ(pairs(twice), (Pairs{{"A", "1"}, {"B", "2"}, {"A", "1"}, {"B", "2"}}));
}

// A set of fields built once (a middleware's constant fields) appended to others keeps both orders and stays a
// list of ordinary fields: found, removed, copied and written like the ones added one by one.
TEST(Fields, AppendAddsAnotherSetAfterTheFieldsHeld) {
    Fields block;
    block.add("Access-Control-Allow-Origin", "https://a.example").add("Vary", "Origin");
    Fields f;
    f.append(block);  // into an empty list: its first storage
    EXPECT_EQ(f, block);
    f.add("X-Request-ID", "abc").append(block).append(Fields());
    EXPECT_EQ(pairs(f), (Pairs{{"Access-Control-Allow-Origin", "https://a.example"},
                               {"Vary", "Origin"},
                               {"X-Request-ID", "abc"},
                               {"Access-Control-Allow-Origin", "https://a.example"},
                               {"Vary", "Origin"}}));
    EXPECT_EQ(pairs(block), (Pairs{{"Access-Control-Allow-Origin", "https://a.example"}, {"Vary", "Origin"}}))
        << "the appended set is unchanged";
    EXPECT_EQ(f.http1(),
              "Access-Control-Allow-Origin: https://a.example\r\nVary: Origin\r\nX-Request-ID: abc\r\n"
              "Access-Control-Allow-Origin: https://a.example\r\nVary: Origin\r\n");
    EXPECT_EQ(f.remove("vary"), 2u);
    EXPECT_EQ(pairs(f), (Pairs{{"Access-Control-Allow-Origin", "https://a.example"},
                               {"X-Request-ID", "abc"},
                               {"Access-Control-Allow-Origin", "https://a.example"}}));
    f.add_prechecked("X-Empty", "");
    EXPECT_EQ(f.get("x-empty"), "");
    EXPECT_EQ(f.http1(),
              "Access-Control-Allow-Origin: https://a.example\r\nX-Request-ID: abc\r\n"
              "Access-Control-Allow-Origin: https://a.example\r\nX-Empty: \r\n");
    // Many appended sets: the storage grows and keeps every field.
    Fields many;
    for (int i = 0; i < 50; ++i) many.append(block);
    EXPECT_EQ(many.size(), 100u);
    EXPECT_EQ(many.count("vary"), 50u);
    many.append(many);  // itself: twice as many, in order
    EXPECT_EQ(many.size(), 200u);
    std::size_t i = 0;
    for (const Fields::Field x : many) EXPECT_EQ(x.name, i++ % 2 ? "Vary" : "Access-Control-Allow-Origin");
    // Reserved room, then fields added one by one and a removal in the middle: lengths and lines stay paired.
    Fields r;
    r.reserve_more(40, 3);
    r.add("A", "1").add("Bb", "22").add("Ccc", "333").add("Dddd", "");
    EXPECT_EQ(r.remove("bb"), 1u);
    EXPECT_EQ(pairs(r), (Pairs{{"A", "1"}, {"Ccc", "333"}, {"Dddd", ""}}));
    EXPECT_EQ(r.http1(), "A: 1\r\nCcc: 333\r\nDddd: \r\n");
    EXPECT_EQ(r.remove("nothing"), 0u);
    EXPECT_EQ(r.remove("a"), 1u);
    EXPECT_EQ(r.remove("dddd"), 1u);
    EXPECT_EQ(pairs(r), (Pairs{{"Ccc", "333"}}));
    r.add("E", "5");
    EXPECT_EQ(pairs(r), (Pairs{{"Ccc", "333"}, {"E", "5"}}));
    Fields equal;
    equal.add("Ccc", "333").add("E", "5");
    EXPECT_EQ(r, equal) << "the same fields compare equal whatever the storage's history";
}

// The response of both serializers below.
covet::Response sample() {
    covet::Response r = covet::Response::text("hi");
    r.add_header("Set-Cookie", "a=1").add_header("X-Time", "12:30:00").add_header("Set-Cookie", "b=2");
    r.add_header("Connection", "keep-alive");  // connection-specific: HTTP/1.1 writes it, HTTP/2 must not
    r.trailer("Grpc-Status", "0");
    return r;
}

TEST(Fields, Http1WritesNameColonValueLinesInOrder) {
    std::string head;
    covet::http1::HeadOptions o;
    o.date = "Thu, 01 Jan 2026 00:00:00 GMT";
    o.content_length = 2;
    covet::http1::write_head(head, sample(), o);
    EXPECT_EQ(head,
              "HTTP/1.1 200 OK\r\nServer: covet\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
              "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n"
              "Set-Cookie: a=1\r\nX-Time: 12:30:00\r\nSet-Cookie: b=2\r\nConnection: keep-alive\r\n\r\n");
}

// Shared sets (SharedFields) are written after the response's own fields, in the order attached, and before the
// Connection field and the head's end, whichever way the head ends.
TEST(Fields, Http1WritesASharedSetBeforeTheHeadsEnd) {
    covet::Fields set_fields;
    set_fields.add("X-Frame-Options", "DENY").add("Referrer-Policy", "no-referrer");
    const covet::SharedFields shared(std::move(set_fields));
    EXPECT_EQ(shared.http1, "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n");
    const std::string start =
        "HTTP/1.1 200 OK\r\nServer: covet\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nX-Own: 1\r\n";
    const std::string lines = "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n";
    for (const auto& [close, keep_alive_1_0, end] :
         {std::tuple{false, false, std::string("\r\n")},
          std::tuple{true, false, std::string("Connection: close\r\n\r\n")},
          std::tuple{false, true, std::string("Connection: keep-alive\r\n\r\n")}}) {
        covet::Response r = covet::Response::text("hi");
        r.add_header("X-Own", "1");
        covet::http1::HeadOptions o;
        o.date = "Thu, 01 Jan 2026 00:00:00 GMT";
        o.content_length = 2;
        o.close = close;
        o.keep_alive_1_0 = keep_alive_1_0;
        std::string without, with;
        covet::http1::write_head(without, r, o);
        EXPECT_EQ(without, start + end);
        r.set_shared_fields(&shared);
        covet::http1::write_head(with, r, o);
        EXPECT_EQ(with, start + lines + end);
    }
}

// write_head measures the head and writes it in place: checked against the head written piece by piece (the
// serializer's previous form, spelled out here) for statuses with and without a body or a content type, each
// framing, the Connection variants, no/own fields, one and two shared sets, and after bytes already in `out`.
TEST(Fields, Http1HeadIsTheSameAsWrittenPieceByPiece) {
    covet::Fields a_fields, b_fields;
    a_fields.add("X-A", "1");
    b_fields.add("Vary", "Origin").add("X-B", "two");
    const covet::SharedFields a(std::move(a_fields)), b(std::move(b_fields));
    const auto reference = [](const covet::Response& r, const covet::http1::HeadOptions& o) {
        std::string out = "HTTP/1.1 " + std::to_string(r.status()) + " " +
                          std::string(covet::http::reason_phrase(r.status())) +
                          "\r\nServer: covet\r\nDate: " + std::string(o.date) + "\r\n";
        if (covet::http::status_keeps_content_type(r.status()) && !r.content_type().empty())
            out += "Content-Type: " + std::string(r.content_type()) + "\r\n";
        if (covet::http::status_allows_body(r.status())) {
            if (o.framing == covet::http1::BodyFraming::content_length)
                out += "Content-Length: " + std::to_string(o.content_length) + "\r\n";
            else if (o.framing == covet::http1::BodyFraming::chunked)
                out += "Transfer-Encoding: chunked\r\n";
        }
        for (const covet::Fields::Field f : r.headers())
            out += std::string(f.name) + ": " + std::string(f.value) + "\r\n";
        for (std::size_t i = 0; const covet::SharedFields* set = r.shared_fields(i); ++i) out += set->http1;
        if (o.close)
            out += "Connection: close\r\n";
        else if (o.keep_alive_1_0)
            out += "Connection: keep-alive\r\n";
        return out + "\r\n";
    };
    int heads = 0;
    for (const int status : {200, 204, 304, 101, 404, 599, 799})
        for (const auto framing : {covet::http1::BodyFraming::content_length, covet::http1::BodyFraming::chunked,
                                   covet::http1::BodyFraming::until_close})
            for (const int connection : {0, 1, 2})
                for (const int own : {0, 1})
                    for (const int sets : {0, 1, 2, 3}) {
                        covet::Response r(status);
                        if (status != 101) r.set_content_type("application/json");
                        if (own) r.add_header("Set-Cookie", "a=1").add_header("X-Own", "yes");
                        if (sets >= 1) {
                            EXPECT_TRUE(r.add_shared_fields(&a));
                        }
                        if (sets >= 2) {
                            EXPECT_TRUE(r.add_shared_fields(&b));
                        }
                        if (sets >= 3) {
                            EXPECT_FALSE(r.add_shared_fields(&a));  // no room: the response is as it was
                        }
                        covet::http1::HeadOptions o;
                        o.date = connection == 2 ? std::string_view{} : "Thu, 01 Jan 2026 00:00:00 GMT";
                        o.framing = framing;
                        o.content_length = static_cast<std::size_t>(status) * 1000003;
                        o.close = connection == 1;
                        o.keep_alive_1_0 = connection == 2;
                        std::string out = "earlier bytes";
                        covet::http1::write_head(out, r, o);
                        EXPECT_EQ(out, "earlier bytes" + reference(r, o))
                            << status << " " << static_cast<int>(framing) << " " << connection << " " << own << " "
                            << sets;
                        ++heads;
                    }
    EXPECT_EQ(heads, 7 * 3 * 3 * 2 * 4);
}

Pairs nv_pairs(const std::vector<nghttp2_nv>& nv) {
    Pairs out;
    for (const nghttp2_nv& f : nv)
        out.emplace_back(std::string(reinterpret_cast<const char*>(f.name), f.namelen),
                         std::string(reinterpret_cast<const char*>(f.value), f.valuelen));
    return out;
}

TEST(Fields, Http2ListsLowercaseNamesWithValuesInPlace) {
    const covet::Response r = sample();
    covet::http2::detail::FieldBlock block;
    block.add(":status", "200");
    block.add(r.headers());
    const auto& nv = block.nv();
    EXPECT_EQ(nv_pairs(nv),
              (Pairs{{":status", "200"}, {"set-cookie", "a=1"}, {"x-time", "12:30:00"}, {"set-cookie", "b=2"}}));
    // The values are read where the Fields keep them, not copied.
    auto it = r.headers().begin();
    EXPECT_EQ(reinterpret_cast<const char*>(nv[1].value), (*it).value.data());
    block.clear();
    block.add(r.trailers());
    EXPECT_EQ(nv_pairs(block.nv()), (Pairs{{"grpc-status", "0"}}));
}

}  // namespace
