// The native CORS, compression, trusted-host and HTTPS-redirect middleware: their answers and the headers
// they add (Starlette's semantics, which tests/differential compares with FastAPI end to end), and a
// streamed response compressed through a real socket.
#include <brotli/decode.h>
#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <cctype>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "covet/covet.hpp"
#include "covet/middleware/compression.hpp"
#include "covet/middleware/cors.hpp"
#include "covet/middleware/hosts.hpp"
#include "support/http_client.hpp"

using namespace std::chrono_literals;

namespace {

covet::Request request(covet::Method m, std::string_view target,
                       std::initializer_list<std::pair<std::string_view, std::string_view>> headers) {
    covet::Request r;
    r.set_method(m);
    r.set_target(target);
    for (const auto& [name, value] : headers) r.add_header(name, value);
    return r;
}

// A header as sent: the response's own, or one in a set a middleware attached (Response::shared_fields).
std::string header(const covet::Response& r, std::string_view name) {
    if (const auto own = r.headers().get(name)) return std::string(*own);
    for (std::size_t i = 0; const covet::SharedFields* set = r.shared_fields(i); ++i)
        if (const auto v = set->fields.get(name)) return std::string(*v);
    return "<none>";
}

// Every field as sent, "name=value", in the order of the head: the response's own, then the attached sets.
std::vector<std::string> sent_fields(const covet::Response& r) {
    std::vector<std::string> out;
    for (const covet::Fields::Field f : r.headers()) out.push_back(std::string(f.name) + "=" + std::string(f.value));
    for (std::size_t i = 0; const covet::SharedFields* set = r.shared_fields(i); ++i)
        for (const covet::Fields::Field f : set->fields)
            out.push_back(std::string(f.name) + "=" + std::string(f.value));
    return out;
}

std::string gunzip(std::string_view data) {
    z_stream s{};
    EXPECT_EQ(inflateInit2(&s, 31), Z_OK);
    std::string out(1 << 20, '\0');
    s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    s.avail_in = static_cast<uInt>(data.size());
    s.next_out = reinterpret_cast<Bytef*>(out.data());
    s.avail_out = static_cast<uInt>(out.size());
    const int rc = inflate(&s, Z_FINISH);
    EXPECT_EQ(rc, Z_STREAM_END);
    out.resize(s.total_out);
    inflateEnd(&s);
    return out;
}

covet::RequestContext context;

}  // namespace

// ---- CORS ----

TEST(Cors, PreflightAllowedIsAnsweredWithTheConfiguredHeaders) {
    covet::CorsMiddleware cors({.allow_origins = {"https://a.example"},
                                .allow_methods = {"GET", "POST"},
                                .allow_headers = {"X-Token"},
                                .max_age = 100});
    auto r = request(covet::Method::options, "/x",
                     {{"Origin", "https://a.example"},
                      {"Access-Control-Request-Method", "POST"},
                      {"Access-Control-Request-Headers", "x-token, content-type"}});
    auto resp = cors.before(r, context);
    ASSERT_TRUE(resp);
    EXPECT_EQ(resp->status(), 200);
    EXPECT_EQ(resp->body(), "OK");
    EXPECT_EQ(header(*resp, "access-control-allow-origin"), "https://a.example");
    EXPECT_EQ(header(*resp, "access-control-allow-methods"), "GET, POST");
    EXPECT_EQ(header(*resp, "access-control-allow-headers"),
              "Accept, Accept-Language, Content-Language, Content-Type, X-Token");
    EXPECT_EQ(header(*resp, "access-control-max-age"), "100");
    EXPECT_EQ(header(*resp, "vary"),
              "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
              "Access-Control-Request-Private-Network");
    // Its own after-hook leaves the preflight answer alone.
    cors.after(r, context, *resp);
    EXPECT_EQ(resp->headers().count("vary"), 1u);
}

TEST(Cors, PreflightDisallowedNamesEveryFailure) {
    covet::CorsMiddleware cors({.allow_origins = {"https://a.example"}});
    auto r = request(covet::Method::options, "/x",
                     {{"Origin", "https://evil.example"},
                      {"Access-Control-Request-Method", "DELETE"},
                      {"Access-Control-Request-Headers", "X-Other"}});
    auto resp = cors.before(r, context);
    ASSERT_TRUE(resp);
    EXPECT_EQ(resp->status(), 400);
    EXPECT_EQ(resp->body(), "Disallowed CORS origin, method, headers");
    EXPECT_EQ(header(*resp, "access-control-allow-origin"), "<none>");
}

TEST(Cors, WildcardsAndRegex) {
    covet::CorsMiddleware any({.allow_origins = {"*"}, .allow_methods = {"*"}, .allow_headers = {"*"}});
    auto r = request(covet::Method::options, "/",
                     {{"Origin", "https://b.example"},
                      {"Access-Control-Request-Method", "QUERY"},
                      {"Access-Control-Request-Headers", "X-Anything"}});
    auto resp = any.before(r, context);
    ASSERT_TRUE(resp);
    EXPECT_EQ(resp->status(), 200);
    EXPECT_EQ(header(*resp, "access-control-allow-origin"), "*");
    EXPECT_EQ(header(*resp, "access-control-allow-headers"), "X-Anything");
    EXPECT_EQ(header(*resp, "access-control-allow-methods"), "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT, QUERY");

    covet::CorsMiddleware rx({.allow_origin_regex = R"(https://.*\.example\.org)"});
    EXPECT_TRUE(rx.allowed_origin("https://x.example.org"));
    EXPECT_FALSE(rx.allowed_origin("https://x.example.org.evil"));
    EXPECT_THROW(covet::CorsMiddleware({.allow_origin_regex = "("}), std::invalid_argument);
}

TEST(Cors, SimpleResponsesGetOriginHeadersAndVary) {
    covet::CorsMiddleware cors(
        {.allow_origins = {"https://a.example"}, .allow_credentials = true, .expose_headers = {"X-Total"}});
    auto r = request(covet::Method::get, "/", {{"Origin", "https://a.example"}});
    EXPECT_FALSE(cors.before(r, context));
    covet::Response resp = covet::Response::text("hi");
    resp.add_header("Vary", "Cookie");
    cors.after(r, context, resp);
    EXPECT_EQ(header(resp, "access-control-allow-origin"), "https://a.example");
    EXPECT_EQ(header(resp, "access-control-allow-credentials"), "true");
    EXPECT_EQ(header(resp, "access-control-expose-headers"), "X-Total");
    EXPECT_EQ(header(resp, "vary"), "Cookie, Origin");
    EXPECT_EQ(resp.headers().count("vary"), 1u);

    // Not allowed, or no Origin at all: only Vary.
    auto other = request(covet::Method::get, "/", {{"Origin", "https://evil.example"}});
    covet::Response plain = covet::Response::text("hi");
    cors.after(other, context, plain);
    EXPECT_EQ(header(plain, "access-control-allow-origin"), "<none>");
    EXPECT_EQ(header(plain, "vary"), "Origin");
}

// after()'s fields for a configured origin, for "*" and for no Origin are built once per case: each request gets
// the set of its own origin, in the same order as when they were added one by one.
TEST(Cors, EachConfiguredOriginGetsItsOwnFields) {
    covet::CorsMiddleware cors({.allow_origins = {"https://a.example", "https://b.example"},
                                .allow_credentials = true,
                                .expose_headers = {"X-Total"}});
    const auto fields_of = [&cors](std::string_view origin) {  // "": no Origin
        auto r = origin.empty() ? request(covet::Method::get, "/", {})
                                : request(covet::Method::get, "/", {{"Origin", origin}});
        covet::Response resp = covet::Response::text("hi");
        cors.after(r, context, resp);
        return sent_fields(resp);
    };
    EXPECT_EQ(fields_of("https://b.example"),
              (std::vector<std::string>{"Access-Control-Allow-Origin=https://b.example",
                                        "Access-Control-Allow-Credentials=true",
                                        "Access-Control-Expose-Headers=X-Total", "Vary=Origin"}));
    EXPECT_EQ(fields_of("https://a.example")[0], "Access-Control-Allow-Origin=https://a.example");
    // An origin not allowed: no Allow-Origin, the other fields as Starlette sends them (its simple headers).
    EXPECT_EQ(fields_of("https://a.exampl"),
              (std::vector<std::string>{"Access-Control-Allow-Credentials=true",
                                        "Access-Control-Expose-Headers=X-Total", "Vary=Origin"}));
    EXPECT_EQ(fields_of(""), (std::vector<std::string>{"Vary=Origin"}));
    covet::CorsMiddleware any({.allow_origins = {"*"}, .expose_headers = {"X-Total"}});
    auto r = request(covet::Method::get, "/", {{"Origin", "https://c.example"}});
    covet::Response resp = covet::Response::text("hi");
    resp.add_header("X-Own", "1");
    any.after(r, context, resp);
    EXPECT_EQ(sent_fields(resp), (std::vector<std::string>{"X-Own=1", "Access-Control-Allow-Origin=*",
                                                           "Access-Control-Expose-Headers=X-Total", "Vary=Origin"}));
    // A response without fields of its own gets the set by pointer (nothing copied); with no room for another set
    // (two attached already), the same fields among its own.
    covet::Response bare = covet::Response::text("hi");
    any.after(r, context, bare);
    EXPECT_TRUE(bare.headers().empty());
    ASSERT_NE(bare.shared_fields(), nullptr);
    EXPECT_EQ(sent_fields(bare), (std::vector<std::string>{"Access-Control-Allow-Origin=*",
                                                           "Access-Control-Expose-Headers=X-Total", "Vary=Origin"}));
    covet::Fields x_fields, y_fields;
    x_fields.add("X-One", "1");
    y_fields.add("X-Two", "2");
    const covet::SharedFields x(std::move(x_fields)), y(std::move(y_fields));
    covet::Response full = covet::Response::text("hi");
    ASSERT_TRUE(full.add_shared_fields(&x));
    ASSERT_TRUE(full.add_shared_fields(&y));
    any.after(r, context, full);
    EXPECT_EQ(sent_fields(full),
              (std::vector<std::string>{"Access-Control-Allow-Origin=*", "Access-Control-Expose-Headers=X-Total",
                                        "Vary=Origin", "X-One=1", "X-Two=2"}));
    // A set attached before that carries a CORS field (Vary) sends the response down the general path, which makes
    // the set's fields the response's own and joins Vary into one field, as Starlette does.
    covet::Fields vary_fields;
    vary_fields.add("Vary", "Accept-Encoding");
    const covet::SharedFields vary_set(std::move(vary_fields));
    covet::Response varied = covet::Response::text("hi");
    ASSERT_TRUE(varied.add_shared_fields(&vary_set));
    any.after(r, context, varied);
    EXPECT_EQ(varied.shared_fields(), nullptr);
    EXPECT_EQ(sent_fields(varied),
              (std::vector<std::string>{"Access-Control-Allow-Origin=*", "Access-Control-Expose-Headers=X-Total",
                                        "Vary=Accept-Encoding, Origin"}));
    // A preflight is answered by before() and left as it is by after().
    auto pre = request(covet::Method::options, "/",
                       {{"Origin", "https://a.example"}, {"Access-Control-Request-Method", "GET"}});
    auto answer = cors.before(pre, context);
    ASSERT_TRUE(answer);
    const std::size_t before_after = answer->headers().size();
    cors.after(pre, context, *answer);
    EXPECT_EQ(answer->headers().size(), before_after);
}

// after()'s inline path compares an Origin of 8 to 32 bytes as four words and leaves other lengths to the general
// path: configured origins of every length from 1 to 40 (each a prefix of the next) are answered with themselves,
// and any one byte changed (a letter's case too: origins compare exactly) is not allowed.
TEST(Cors, OriginsOfEveryLengthAreMatchedExactly) {
    const std::string base = "https://a-long-origin.example.com:8443/xyz";
    std::vector<std::string> origins;
    for (std::size_t n = 1; n <= 40; ++n) origins.push_back(base.substr(0, n));
    covet::CorsMiddleware cors({.allow_origins = origins});
    const auto fields_of = [&cors](std::string_view origin, bool allowed = false) {
        auto r = request(covet::Method::get, "/", {{"Origin", origin}});
        covet::Response resp = covet::Response::text("hi");
        cors.after(r, context, resp);
        if (allowed) {
            EXPECT_TRUE(resp.headers().empty()) << origin;  // a set built at construction, attached
        }
        return sent_fields(resp);
    };
    for (const std::string& origin : origins) {
        EXPECT_EQ(fields_of(origin, true),
                  (std::vector<std::string>{"Access-Control-Allow-Origin=" + origin, "Vary=Origin"}));
        for (std::size_t i = 0; i < origin.size(); ++i) {
            std::string other = origin;
            other[i] = static_cast<char>(other[i] ^ (std::isalpha(static_cast<unsigned char>(other[i])) ? 0x20 : 0x01));
            EXPECT_EQ(fields_of(other), std::vector<std::string>{"Vary=Origin"}) << other;
        }
    }
    EXPECT_EQ(fields_of(base + "/"), std::vector<std::string>{"Vary=Origin"});
    EXPECT_EQ(fields_of(""), std::vector<std::string>{"Vary=Origin"});
}

TEST(Cors, AnyOriginWithCredentialsMirrorsTheOrigin) {
    covet::CorsMiddleware cors({.allow_origins = {"*"}, .allow_credentials = true});
    auto r = request(covet::Method::get, "/", {{"Origin", "https://c.example"}});
    covet::Response resp = covet::Response::text("hi");
    cors.after(r, context, resp);
    EXPECT_EQ(header(resp, "access-control-allow-origin"), "https://c.example");
    EXPECT_EQ(resp.headers().count("access-control-allow-origin"), 1u);
}

TEST(Cors, FieldsAppendedInOrderOrReplacedAndEchoedOriginsChecked) {
    covet::CorsMiddleware cors(
        {.allow_origins = {"https://a.example"}, .allow_credentials = true, .expose_headers = {"X-Total", "X-Page"}});
    auto r = request(covet::Method::get, "/", {{"Origin", "https://a.example"}});
    covet::Response fresh = covet::Response::text("hi");
    cors.after(r, context, fresh);
    EXPECT_EQ(sent_fields(fresh),
              (std::vector<std::string>{"Access-Control-Allow-Origin=https://a.example",
                                        "Access-Control-Allow-Credentials=true",
                                        "Access-Control-Expose-Headers=X-Total, X-Page", "Vary=Origin"}));

    // The Origin's name in any case, and only that name.
    auto upper = request(covet::Method::get, "/", {{"Host", "x"}, {"ORIGIN", "https://a.example"}});
    covet::Response upr = covet::Response::text("hi");
    cors.after(upper, context, upr);
    EXPECT_EQ(header(upr, "access-control-allow-origin"), "https://a.example");
    auto near = request(covet::Method::get, "/", {{"Origim", "https://a.example"}, {"0rigin", "https://a.example"}});
    covet::Response nearr = covet::Response::text("hi");
    cors.after(near, context, nearr);
    EXPECT_EQ(header(nearr, "access-control-allow-origin"), "<none>");
    EXPECT_EQ(header(nearr, "access-control-allow-credentials"), "<none>");

    // A handler's own field of one of these names is replaced (one field left), not duplicated.
    covet::Response own = covet::Response::text("hi");
    own.add_header("access-control-allow-origin", "https://stale.example");
    cors.after(r, context, own);
    EXPECT_EQ(header(own, "access-control-allow-origin"), "https://a.example");
    EXPECT_EQ(own.headers().count("access-control-allow-origin"), 1u);
    EXPECT_EQ(header(own, "vary"), "Origin");

    // An origin the regex allows is echoed; "*" without credentials answers "*".
    covet::CorsMiddleware rx({.allow_origin_regex = R"(https://.*\.example\.org)"});
    auto ro = request(covet::Method::get, "/", {{"Origin", "https://x.example.org"}});
    covet::Response rxr = covet::Response::text("hi");
    rx.after(ro, context, rxr);
    EXPECT_EQ(header(rxr, "access-control-allow-origin"), "https://x.example.org");
    covet::CorsMiddleware any({.allow_origins = {"*"}});
    covet::Response anyr = covet::Response::text("hi");
    any.after(ro, context, anyr);
    EXPECT_EQ(header(anyr, "access-control-allow-origin"), "*");

    // An echoed Origin that would split the response is refused by name, never written.
    covet::CorsMiddleware mirror({.allow_origins = {"*"}, .allow_credentials = true});
    auto bad = request(covet::Method::get, "/", {{"Origin", std::string_view("https://c.example\0x", 19)}});
    covet::Response badr = covet::Response::text("hi");
    EXPECT_THROW(mirror.after(bad, context, badr), std::invalid_argument);
    EXPECT_EQ(header(badr, "access-control-allow-origin"), "<none>");
}

// ---- compression ----

TEST(Compression, NegotiatesByAcceptEncoding) {
    covet::CompressionOptions gzip_only;
    EXPECT_EQ(covet::negotiate_coding("gzip, deflate", gzip_only), covet::ContentCoding::gzip);
    EXPECT_EQ(covet::negotiate_coding("br", gzip_only), covet::ContentCoding::identity);
    covet::CompressionOptions all{.brotli_quality = 4, .zstd_level = 3};
    EXPECT_EQ(covet::negotiate_coding("gzip, br", all), covet::ContentCoding::br);
    EXPECT_EQ(covet::negotiate_coding("gzip;q=1, br;q=0.5, zstd;q=0.8", all), covet::ContentCoding::gzip);
    EXPECT_EQ(covet::negotiate_coding("zstd, gzip", all), covet::ContentCoding::zstd);
    EXPECT_EQ(covet::negotiate_coding("*;q=0.1, br;q=0", all), covet::ContentCoding::zstd);
    EXPECT_EQ(covet::negotiate_coding("identity", all), covet::ContentCoding::identity);
    EXPECT_EQ(covet::negotiate_coding("", all), covet::ContentCoding::identity);
}

TEST(Compression, LargeBodiesAreCompressedSmallOnesAreNot) {
    covet::CompressionMiddleware gz({});
    const std::string big(2000, 'a');
    auto r = request(covet::Method::get, "/", {{"Accept-Encoding", "gzip"}});
    covet::Response resp = covet::Response::text(big);
    gz.after(r, context, resp);
    EXPECT_EQ(header(resp, "content-encoding"), "gzip");
    EXPECT_EQ(header(resp, "vary"), "Accept-Encoding");
    EXPECT_LT(resp.body().size(), big.size());
    EXPECT_EQ(gunzip(resp.body()), big);

    covet::Response small = covet::Response::text(std::string(499, 'a'));
    gz.after(r, context, small);
    EXPECT_EQ(header(small, "content-encoding"), "<none>");
    EXPECT_EQ(header(small, "vary"), "<none>");

    // CORS's answer attached by pointer (its Vary: Origin) runs first: compression joins its Vary to that one, one
    // field "Origin, Accept-Encoding" as Starlette's two middleware give, not a second Vary line.
    covet::CorsMiddleware cors({.allow_origins = {"https://a.example"}});
    auto from_origin = request(covet::Method::get, "/", {{"Accept-Encoding", "gzip"}, {"Origin", "https://a.example"}});
    covet::Response both = covet::Response::text(big);
    cors.after(from_origin, context, both);
    ASSERT_NE(both.shared_fields(), nullptr);
    gz.after(from_origin, context, both);
    EXPECT_EQ(both.shared_fields(), nullptr);
    EXPECT_EQ(both.headers().count("vary"), 1u);
    EXPECT_EQ(header(both, "vary"), "Origin, Accept-Encoding");
    EXPECT_EQ(header(both, "access-control-allow-origin"), "https://a.example");

    // Not accepted: the body stays, Vary is still added (Starlette).
    auto identity = request(covet::Method::get, "/", {});
    covet::Response plain = covet::Response::text(big);
    gz.after(identity, context, plain);
    EXPECT_EQ(plain.body(), big);
    EXPECT_EQ(header(plain, "vary"), "Accept-Encoding");
    EXPECT_EQ(header(plain, "content-encoding"), "<none>");
}

TEST(Compression, SkipsEncodedPartialAndExcludedResponses) {
    covet::CompressionMiddleware gz({});
    auto r = request(covet::Method::get, "/", {{"Accept-Encoding", "gzip"}});
    const std::string big(2000, 'a');
    covet::Response events(200, big, "text/event-stream; charset=utf-8");
    gz.after(r, context, events);
    covet::Response image(200, big, "image/png");
    gz.after(r, context, image);
    covet::Response video(200, big, "VIDEO/mp4");
    gz.after(r, context, video);
    covet::Response partial(206, big, "text/plain");
    gz.after(r, context, partial);
    covet::Response encoded(200, big, "text/plain");
    encoded.add_header("Content-Encoding", "br");
    gz.after(r, context, encoded);
    for (const covet::Response* x : {&events, &image, &video, &partial})
        EXPECT_EQ(header(*x, "content-encoding"), "<none>");
    EXPECT_EQ(header(encoded, "content-encoding"), "br");
    EXPECT_EQ(encoded.body(), big);
}

TEST(Compression, BrotliAndZstdRoundTrip) {
    covet::CompressionMiddleware all({.brotli_quality = 5, .zstd_level = 3});
    const std::string big(5000, 'z');
    auto br = request(covet::Method::get, "/", {{"Accept-Encoding", "br"}});
    covet::Response a = covet::Response::text(big);
    all.after(br, context, a);
    ASSERT_EQ(header(a, "content-encoding"), "br");
    std::string out(big.size(), '\0');
    std::size_t size = out.size();
    ASSERT_EQ(BrotliDecoderDecompress(a.body().size(), reinterpret_cast<const std::uint8_t*>(a.body().data()), &size,
                                      reinterpret_cast<std::uint8_t*>(out.data())),
              BROTLI_DECODER_RESULT_SUCCESS);
    EXPECT_EQ(out.substr(0, size), big);

    auto zs = request(covet::Method::get, "/", {{"Accept-Encoding", "zstd"}});
    covet::Response b = covet::Response::text(big);
    all.after(zs, context, b);
    ASSERT_EQ(header(b, "content-encoding"), "zstd");
    const std::size_t n = ZSTD_decompress(out.data(), out.size(), b.body().data(), b.body().size());
    ASSERT_FALSE(ZSTD_isError(n));
    EXPECT_EQ(out.substr(0, n), big);

    EXPECT_THROW(covet::CompressionMiddleware({.gzip_level = 10}), std::invalid_argument);
}

TEST(Compression, StreamFiltersFlushEveryChunk) {
    covet::CompressionOptions o;
    for (auto coding : {covet::ContentCoding::gzip, covet::ContentCoding::br, covet::ContentCoding::zstd}) {
        o.brotli_quality = 4, o.zstd_level = 3;
        auto filter = covet::make_compressor(coding, o);
        std::string all;
        for (int i = 0; i < 3; ++i) {
            const std::string_view out = filter->filter("chunk " + std::to_string(i) + " ", false);
            EXPECT_FALSE(out.empty());
            all += out;
        }
        all += filter->filter({}, true);
        if (coding == covet::ContentCoding::gzip) {
            EXPECT_EQ(gunzip(all), "chunk 0 chunk 1 chunk 2 ");
        }
    }
}

// ---- hosts ----

TEST(TrustedHost, AllowsListedHostsAndWildcards) {
    covet::TrustedHostMiddleware th({.allowed_hosts = {"example.com", "*.example.org", "www.redirect.net"}});
    for (const char* ok : {"example.com", "EXAMPLE.com:8000", "a.example.org"}) {
        auto r = request(covet::Method::get, "/", {{"Host", ok}});
        EXPECT_FALSE(th.before(r, context)) << ok;
    }
    for (const char* bad : {"evil.com", "example.org", "example.com/evil", "exa mple.com"}) {
        auto r = request(covet::Method::get, "/", {{"Host", bad}});
        auto resp = th.before(r, context);
        ASSERT_TRUE(resp) << bad;
        EXPECT_EQ(resp->status(), 400);
        EXPECT_EQ(resp->body(), "Invalid host header");
    }
    auto www = request(covet::Method::get, "/p?q=1", {{"Host", "redirect.net"}});
    auto resp = th.before(www, context);
    ASSERT_TRUE(resp);
    EXPECT_EQ(resp->status(), 307);
    EXPECT_EQ(header(*resp, "location"), "http://www.redirect.net/p?q=1");
    EXPECT_THROW(covet::TrustedHostMiddleware({.allowed_hosts = {"a.*.com"}}), std::invalid_argument);
    EXPECT_THROW(covet::TrustedHostMiddleware({.allowed_hosts = {"*example.com"}}), std::invalid_argument);
}

// WebSocket handshakes go through the same check (App::upgrade runs before_upgrade before the route).
TEST(TrustedHost, ChecksUpgradeRequestsToo) {
    covet::TrustedHostMiddleware th({.allowed_hosts = {"example.com"}});
    auto ok = request(covet::Method::get, "/ws", {{"Host", "example.com:8000"}, {"Upgrade", "websocket"}});
    EXPECT_FALSE(th.before_upgrade(ok));
    auto bad = request(covet::Method::get, "/ws", {{"Host", "evil.com"}, {"Upgrade", "websocket"}});
    auto resp = th.before_upgrade(bad);
    ASSERT_TRUE(resp);
    EXPECT_EQ(resp->status(), 400);
    covet::Middleware plain;  // other middleware do not see handshakes
    EXPECT_FALSE(plain.before_upgrade(bad));
}

TEST(HttpsRedirect, RedirectsPlainHttpWithTheDefaultPortDropped) {
    covet::HttpsRedirectMiddleware https;
    auto r = request(covet::Method::post, "/a/b?x=1", {{"Host", "Example.com:80"}});
    auto resp = https.before(r, context);
    ASSERT_TRUE(resp);
    EXPECT_EQ(resp->status(), 307);
    EXPECT_EQ(header(*resp, "location"), "https://example.com/a/b?x=1");
    auto port = request(covet::Method::get, "/", {{"Host", "example.com:8443"}});
    EXPECT_EQ(header(*https.before(port, context), "location"), "https://example.com:8443/");
}

TEST(Hosts, ParsesHostHeaders) {
    std::string_view host, port;
    EXPECT_TRUE(covet::parse_host_header("[::1]:8000", host, port));
    EXPECT_EQ(host, "[::1]");
    EXPECT_EQ(port, "8000");
    EXPECT_FALSE(covet::parse_host_header("a:b", host, port));
    EXPECT_FALSE(covet::parse_host_header("", host, port));
    EXPECT_FALSE(covet::parse_host_header("[zz]", host, port));
}

// ---- through a real socket: every response of the app, streamed ones chunk by chunk ----

TEST(MiddlewareServer, CompressesStreamedAndWholeResponsesAndAnswersPreflights) {
    covet::configure_logging("off");
    covet::App app;
    app.config().host = "127.0.0.1";
    app.config().port = 0;
    app.config().timeouts.shutdown = 3s;
    app.use(std::make_unique<covet::CorsMiddleware>(covet::CorsOptions{.allow_origins = {"*"}}));
    app.use(std::make_unique<covet::CompressionMiddleware>(covet::CompressionOptions{}));
    app.get("/stream", [](covet::Request&, covet::Responder res) {
        covet::StreamWriter w = res.stream(covet::Response::text("first "));
        w.write("second ");
        w.write("third");
    });
    app.get("/big", [](covet::Request&) { return covet::Response::text(std::string(1000, 'b')); });
    app.start(1);

    covet_test::Client c(app.port());
    c.send("GET /stream HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n");
    const std::string raw = c.read_to_end();
    const std::size_t head_end = raw.find("\r\n\r\n");
    ASSERT_NE(head_end, std::string::npos);
    const std::string head = raw.substr(0, head_end);
    EXPECT_NE(head.find("Content-Encoding: gzip"), std::string::npos) << head;
    EXPECT_NE(head.find("Transfer-Encoding: chunked"), std::string::npos) << head;
    EXPECT_NE(head.find("Vary: Accept-Encoding"), std::string::npos) << head;
    std::string body, rest = raw.substr(head_end + 4);
    while (true) {  // de-chunk
        const std::size_t eol = rest.find("\r\n");
        ASSERT_NE(eol, std::string::npos);
        const std::size_t size = std::stoul(rest.substr(0, eol), nullptr, 16);
        if (size == 0) break;
        body += rest.substr(eol + 2, size);
        rest.erase(0, eol + 2 + size + 2);
    }
    EXPECT_EQ(gunzip(body), "first second third");

    covet_test::Client p(app.port());
    p.send(
        "OPTIONS /big HTTP/1.1\r\nHost: t\r\nOrigin: https://x.example\r\nAccess-Control-Request-Method: GET\r\n\r\n");
    auto pre = p.responses(1);
    ASSERT_EQ(pre.size(), 1u);
    EXPECT_EQ(covet_test::status_of(pre[0]), "HTTP/1.1 200 OK");
    EXPECT_EQ(covet_test::body_of(pre[0]), "OK");

    covet_test::Client g(app.port());
    g.send("GET /big HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nOrigin: https://x.example\r\n\r\n");
    auto big = g.responses(1);
    ASSERT_EQ(big.size(), 1u);
    EXPECT_NE(big[0].find("Access-Control-Allow-Origin: *"), std::string::npos);
    EXPECT_EQ(gunzip(covet_test::body_of(big[0])), std::string(1000, 'b'));
    app.stop();
    app.wait();
}
