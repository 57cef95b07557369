// covet::app::StaticFiles: path safety, Range parsing, validators, media types, and serve() on a real
// directory (symlinks, NUL bytes, conditional requests, ranges, precompressed siblings, html mode).
#include "covet/app/static_files.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using covet::Method;
using covet::Request;
using covet::Response;
using covet::app::ByteRange;
using covet::app::parse_byte_ranges;
using covet::app::RangeOutcome;
using covet::app::static_relative_path;
using covet::app::StaticFiles;
using covet::app::StaticFilesOptions;

namespace {

std::string rel(std::string_view raw) {
    std::string out;
    if (!static_relative_path(raw, out)) return "<refused>";
    return out;
}

}  // namespace

TEST(StaticPath, NormalizesSegments) {
    EXPECT_EQ(rel(""), "");
    EXPECT_EQ(rel("a.css"), "a.css");
    EXPECT_EQ(rel("dir//a.css"), "dir/a.css");
    EXPECT_EQ(rel("./dir/./a.css"), "dir/a.css");
    EXPECT_EQ(rel("dir/../a.css"), "a.css");
    EXPECT_EQ(rel("dir/"), "dir");
    EXPECT_EQ(rel("/etc/passwd"), "etc/passwd");  // a leading slash stays below the root
    EXPECT_EQ(rel("a%20b.txt"), "a b.txt");
}

TEST(StaticPath, RefusesTraversalAndNul) {
    EXPECT_EQ(rel(".."), "<refused>");
    EXPECT_EQ(rel("../secret"), "<refused>");
    EXPECT_EQ(rel("a/../../secret"), "<refused>");
    EXPECT_EQ(rel("%2e%2e/secret"), "<refused>");
    EXPECT_EQ(rel("%2E%2E%2Fsecret"), "<refused>");  // encoded slash: decoded once, then split
    EXPECT_EQ(rel("..%2fsecret"), "<refused>");
    EXPECT_EQ(rel("a.txt%00.png"), "<refused>");
    EXPECT_EQ(rel("%252e%252e/x"), "%2e%2e/x");  // decoded once only: a literal name, harmless
}

TEST(ByteRanges, SingleAndSuffixAndOpenEnded) {
    std::vector<ByteRange> r;
    ASSERT_EQ(parse_byte_ranges("bytes=0-4", 10, r).outcome, RangeOutcome::partial);
    ASSERT_EQ(r.size(), 1U);
    EXPECT_EQ(r[0].start, 0U);
    EXPECT_EQ(r[0].end, 5U);
    ASSERT_EQ(parse_byte_ranges("bytes=-3", 10, r).outcome, RangeOutcome::partial);
    EXPECT_EQ(r[0].start, 7U);
    EXPECT_EQ(r[0].end, 10U);
    ASSERT_EQ(parse_byte_ranges("bytes=4-", 10, r).outcome, RangeOutcome::partial);
    EXPECT_EQ(r[0].start, 4U);
    EXPECT_EQ(r[0].end, 10U);
    ASSERT_EQ(parse_byte_ranges("bytes=2-100", 10, r).outcome, RangeOutcome::partial);  // end clamped
    EXPECT_EQ(r[0].end, 10U);
    ASSERT_EQ(parse_byte_ranges("bytes=-100", 10, r).outcome, RangeOutcome::partial);  // whole file
    EXPECT_EQ(r[0].start, 0U);
    ASSERT_EQ(parse_byte_ranges(" Bytes = 1-2", 10, r).outcome, RangeOutcome::partial);
}

TEST(ByteRanges, MultipleAreSortedAndMerged) {
    std::vector<ByteRange> r;
    ASSERT_EQ(parse_byte_ranges("bytes=6-8, 0-1, 1-3", 10, r).outcome, RangeOutcome::partial);
    ASSERT_EQ(r.size(), 2U);
    EXPECT_EQ(r[0].start, 0U);
    EXPECT_EQ(r[0].end, 4U);
    EXPECT_EQ(r[1].start, 6U);
    EXPECT_EQ(r[1].end, 9U);
    ASSERT_EQ(parse_byte_ranges("bytes=0-4,5-9", 10, r).outcome, RangeOutcome::partial);  // adjacent: one
    EXPECT_EQ(r.size(), 1U);
}

TEST(ByteRanges, MalformedUnsatisfiableAndTooMany) {
    std::vector<ByteRange> r;
    EXPECT_EQ(parse_byte_ranges("bytes 0-1", 10, r).outcome, RangeOutcome::malformed);
    EXPECT_EQ(parse_byte_ranges("items=0-1", 10, r).message, "Only support bytes range");
    EXPECT_EQ(parse_byte_ranges("bytes=abc", 10, r).message, "Range header: range must be requested");
    EXPECT_EQ(parse_byte_ranges("bytes=x-1", 10, r).outcome, RangeOutcome::malformed);
    EXPECT_EQ(parse_byte_ranges("bytes=5-2", 10, r).message, "Range header: start must be less than end");
    EXPECT_EQ(parse_byte_ranges("bytes=10-", 10, r).outcome, RangeOutcome::unsatisfiable);
    EXPECT_EQ(parse_byte_ranges("bytes=99999999999999999999999-", 10, r).outcome, RangeOutcome::unsatisfiable);
    EXPECT_EQ(parse_byte_ranges("bytes=0-1", 0, r).outcome, RangeOutcome::unsatisfiable);
    EXPECT_EQ(parse_byte_ranges("bytes=-0", 10, r).outcome, RangeOutcome::unsatisfiable);
    std::string many = "bytes=0-0";
    for (int i = 0; i < 100; ++i) many += ",0-0";
    EXPECT_EQ(parse_byte_ranges(many, 10, r).outcome, RangeOutcome::whole);
}

TEST(Validators, EtagIsStarlettes) {
    // hashlib.md5(b"1700000000.0-5").hexdigest() and (b"1700000000.5-12")
    EXPECT_EQ(covet::app::file_etag({1700000000, 0}, 5), "\"566ac90eb3f60063615e7901edfbe068\"");
    EXPECT_EQ(covet::app::file_etag({1700000000, 500000000}, 12), "\"8c6a3ea9590153bbc684bc47d591f1f8\"");
}

TEST(Validators, DatesAndEtagMatching) {
    EXPECT_EQ(covet::app::http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
    EXPECT_EQ(covet::app::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
    EXPECT_EQ(covet::app::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
    EXPECT_EQ(covet::app::parse_http_date("Sun Nov  6 08:49:37 1994"), 784111777);
    EXPECT_FALSE(covet::app::parse_http_date("yesterday"));
    EXPECT_TRUE(covet::app::etag_matches("\"a\", W/\"b\"", "\"b\""));
    EXPECT_TRUE(covet::app::etag_matches(" * ", "\"b\""));
    EXPECT_FALSE(covet::app::etag_matches("\"a\"", "\"b\""));
}

TEST(MediaTypes, AsPythonGuessesThem) {
    const auto m = covet::app::MediaTypes::defaults();
    EXPECT_EQ(m.content_type("a.css"), "text/css; charset=utf-8");
    EXPECT_EQ(m.content_type("dir/A.PNG"), "image/png");
    EXPECT_EQ(m.content_type("app.css.gz"), "text/css; charset=utf-8");
    EXPECT_EQ(m.content_type("x.tgz"), "application/x-tar");
    EXPECT_EQ(m.content_type("noext"), "application/octet-stream");
    EXPECT_EQ(m.content_type(".bashrc"), "application/octet-stream");
}

// ---------------------------------------------------------------- serve() on a real directory

class StaticServe : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/covet-static-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        base_ = tmpl;
        root_ = base_ / "root";
        fs::create_directories(root_ / "sub");
        fs::create_directories(root_ / "docs");
        write(root_ / "hello.txt", "hello world");
        write(root_ / "app.js", "console.log(1)");
        write(root_ / "app.js.gz", "GZ");
        write(root_ / "app.js.br", "BR");
        write(root_ / "docs" / "index.html", "<p>docs</p>");
        write(root_ / "404.html", "<p>missing</p>");
        write(base_ / "secret.txt", "top secret");
        fs::create_symlink(base_ / "secret.txt", root_ / "out-link.txt");
        fs::create_symlink("hello.txt", root_ / "in-link.txt");
        fs::create_symlink(root_ / "hello.txt", root_ / "abs-in-link.txt");
    }
    void TearDown() override { fs::remove_all(base_); }

    static void write(const fs::path& p, std::string_view s) { std::ofstream(p, std::ios::binary) << s; }

    Response get(const StaticFiles& files, std::string_view target,
                 std::vector<std::pair<std::string_view, std::string_view>> headers = {}, Method method = Method::get) {
        Request r;
        r.set_method(method);
        r.set_target(target);
        r.add_header("Host", "testserver");
        for (const auto& [n, v] : headers) r.add_header(n, v);
        std::string_view rest = r.path();
        rest.remove_prefix(std::string_view("/static/").size() <= rest.size() ? std::string_view("/static/").size()
                                                                              : rest.size());
        Response response = files.serve(r, rest);
        // A GET body (whole or one range) is the file itself, sent by the engine from it: read it here so the
        // tests compare bytes. Nothing else carries a file body.
        file_bodies += response.has_file_body() ? 1 : 0;
        const bool whole = response.materialize_file_body();
        EXPECT_TRUE(whole);
        return response;
    }
    int file_bodies = 0;

    static std::string header(const Response& r, std::string_view name) {
        for (const auto f : r.headers())
            if (covet::iequals(f.name, name)) return std::string(f.value);
        return "<none>";
    }

    StaticFiles make(bool html = false, bool follow = false, bool precompressed = false) {
        StaticFilesOptions o;
        o.directories = {root_.string()};
        o.html = html, o.follow_symlink = follow, o.precompressed = precompressed;
        return StaticFiles(o);
    }

    fs::path base_, root_;
};

TEST_F(StaticServe, GetBodiesAreFileRegionsHeadAndMultipartAreNot) {
    StaticFiles files = make();
    get(files, "/static/hello.txt");
    EXPECT_EQ(file_bodies, 1);
    get(files, "/static/hello.txt", {{"Range", "bytes=6-"}});
    EXPECT_EQ(file_bodies, 2);
    const Response head = get(files, "/static/hello.txt", {}, Method::head);
    EXPECT_EQ(head.content_length(true), 11u);
    get(files, "/static/hello.txt", {{"Range", "bytes=0-0,6-6"}});
    EXPECT_EQ(file_bodies, 2);
}

TEST_F(StaticServe, ServesAFileWithValidators) {
    StaticFiles files = make();
    const Response r = get(files, "/static/hello.txt");
    EXPECT_EQ(r.status(), 200);
    EXPECT_EQ(r.body(), "hello world");
    EXPECT_EQ(r.content_type(), "text/plain; charset=utf-8");
    EXPECT_EQ(header(r, "accept-ranges"), "bytes");
    EXPECT_EQ(header(r, "etag").size(), 34U);
    EXPECT_NE(header(r, "last-modified"), "<none>");
}

TEST_F(StaticServe, MissingTraversalNulAndSymlinks) {
    StaticFiles files = make();
    EXPECT_EQ(get(files, "/static/nope.txt").status(), 404);
    EXPECT_EQ(get(files, "/static/../secret.txt").status(), 404);
    EXPECT_EQ(get(files, "/static/%2e%2e/secret.txt").status(), 404);
    EXPECT_EQ(get(files, "/static/hello.txt%00").status(), 404);
    EXPECT_EQ(get(files, "/static/out-link.txt").status(), 404);  // leads out of the root
    EXPECT_EQ(get(files, "/static/in-link.txt").body(), "hello world");
    EXPECT_EQ(get(files, "/static/abs-in-link.txt").body(), "hello world");  // absolute, but inside
    EXPECT_EQ(get(files, "/static/sub").status(), 404);                      // a directory without html mode
    StaticFiles follow = make(false, true);
    EXPECT_EQ(get(follow, "/static/out-link.txt").body(), "top secret");
    EXPECT_EQ(get(follow, "/static/%2e%2e/secret.txt").status(), 404);  // still no lexical escape
}

TEST_F(StaticServe, ConditionalRequests) {
    StaticFiles files = make();
    const Response first = get(files, "/static/hello.txt");
    const std::string etag = header(first, "etag"), lm = header(first, "last-modified");
    const Response nm = get(files, "/static/hello.txt", {{"If-None-Match", etag}});
    EXPECT_EQ(nm.status(), 304);
    EXPECT_EQ(nm.body(), "");
    EXPECT_EQ(header(nm, "etag"), etag);
    EXPECT_EQ(get(files, "/static/hello.txt", {{"If-None-Match", "\"other\""}}).status(), 200);
    EXPECT_EQ(get(files, "/static/hello.txt", {{"If-Modified-Since", lm}}).status(), 304);
    EXPECT_EQ(get(files, "/static/hello.txt", {{"If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"}}).status(), 200);
    // If-None-Match decides alone when present.
    EXPECT_EQ(get(files, "/static/hello.txt", {{"If-None-Match", "\"x\""}, {"If-Modified-Since", lm}}).status(), 200);
}

TEST_F(StaticServe, Ranges) {
    StaticFiles files = make();
    Response r = get(files, "/static/hello.txt", {{"Range", "bytes=0-4"}});
    EXPECT_EQ(r.status(), 206);
    EXPECT_EQ(r.body(), "hello");
    EXPECT_EQ(header(r, "content-range"), "bytes 0-4/11");
    r = get(files, "/static/hello.txt", {{"Range", "bytes=-5"}});
    EXPECT_EQ(r.body(), "world");
    r = get(files, "/static/hello.txt", {{"Range", "bytes=20-"}});
    EXPECT_EQ(r.status(), 416);
    EXPECT_EQ(header(r, "content-range"), "bytes */11");
    r = get(files, "/static/hello.txt", {{"Range", "bytes=5-1"}});
    EXPECT_EQ(r.status(), 400);
    r = get(files, "/static/hello.txt", {{"Range", "bytes=0-0,6-6"}});
    EXPECT_EQ(r.status(), 206);
    EXPECT_TRUE(r.content_type().starts_with("multipart/byteranges; boundary="));
    EXPECT_NE(r.body().find("Content-Range: bytes 0-0/11\r\n\r\nh\r\n"), std::string::npos);
    EXPECT_NE(r.body().find("Content-Range: bytes 6-6/11\r\n\r\nw\r\n"), std::string::npos);
    // If-Range that does not match: the whole file.
    r = get(files, "/static/hello.txt", {{"Range", "bytes=0-4"}, {"If-Range", "\"stale\""}});
    EXPECT_EQ(r.status(), 200);
    EXPECT_EQ(r.body(), "hello world");
    // HEAD: headers and the length, no body read.
    r = get(files, "/static/hello.txt", {{"Range", "bytes=0-4"}}, Method::head);
    EXPECT_EQ(r.status(), 206);
    EXPECT_EQ(r.body(), "");
    EXPECT_EQ(r.content_length(true), 5U);
}

TEST_F(StaticServe, HtmlModeIndexRedirectAnd404Page) {
    StaticFiles files = make(true);
    Response r = get(files, "/static/docs");
    EXPECT_EQ(r.status(), 307);
    EXPECT_EQ(header(r, "location"), "http://testserver/static/docs/");
    r = get(files, "/static/docs/");
    EXPECT_EQ(r.status(), 200);
    EXPECT_EQ(r.body(), "<p>docs</p>");
    EXPECT_EQ(r.content_type(), "text/html; charset=utf-8");
    r = get(files, "/static/nope");
    EXPECT_EQ(r.status(), 404);
    EXPECT_EQ(r.body(), "<p>missing</p>");
}

TEST_F(StaticServe, PrecompressedSiblings) {
    StaticFiles files = make(false, false, true);
    Response r = get(files, "/static/app.js", {{"Accept-Encoding", "gzip, br"}});
    EXPECT_EQ(r.body(), "BR");
    EXPECT_EQ(header(r, "content-encoding"), "br");
    EXPECT_EQ(header(r, "vary"), "Accept-Encoding");
    EXPECT_EQ(r.content_type(), "text/javascript; charset=utf-8");
    r = get(files, "/static/app.js", {{"Accept-Encoding", "gzip, br;q=0"}});
    EXPECT_EQ(r.body(), "GZ");
    r = get(files, "/static/app.js");
    EXPECT_EQ(r.body(), "console.log(1)");
    EXPECT_EQ(header(r, "content-encoding"), "<none>");
    EXPECT_EQ(header(r, "vary"), "Accept-Encoding");
}

TEST_F(StaticServe, MissingDirectoryIsNamed) {
    StaticFilesOptions o;
    o.directories = {(base_ / "absent").string()};
    try {
        StaticFiles files(o);
        FAIL() << "expected an error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("absent"), std::string::npos);
    }
}
