// The HTTP/1.x request reader on its own (covet::http1::RequestReader): bytes in, events out, no session,
// socket or timer. The harness keeps the bytes the reader did not consume and feeds them again with the
// next ones, and calls keep() before it reuses its buffer, as the reader's contract asks; what the reader
// reports is copied out at once, and the buffer is scribbled over when it is reused, so a request that
// still viewed consumed input would show '#' bytes.
#include "covet/http1/request_reader.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace {

using covet::http1::ReaderLimits;
using covet::http1::RequestReader;
using Event = RequestReader::Event;

ReaderLimits small_limits() {
    ReaderLimits l;
    l.max_url_bytes = 64;
    l.max_header_bytes = 256;
    l.max_headers = 4;
    l.max_body_bytes = 32;
    l.stream_body_threshold = 16;
    l.max_stream_body_bytes = 100;
    return l;
}

class Feeder {
public:
    explicit Feeder(const ReaderLimits& limits = small_limits()) : reader(limits) {}

    // Feeds `bytes` in pieces of `step` bytes (0: all at once) and records every event but `more`.
    Feeder& push(std::string_view bytes, std::size_t step = 0) {
        if (step == 0) step = bytes.size() ? bytes.size() : 1;
        for (std::size_t at = 0; at < bytes.size(); at += step) push_one(bytes.substr(at, step));
        return *this;
    }

    RequestReader reader;
    std::vector<std::string> events;  // "complete GET /a q=b body=..." / "head ..." / "error 400 reason"
    std::string streamed;             // bytes reported in Result::body
    bool stream_at_head = false;      // call stream_body() at each `head` event

private:
    void push_one(std::string_view bytes) {
        reuse();
        buf_.append(bytes);
        while (true) {
            const RequestReader::Result r = reader.feed(buf_);
            ASSERT_LE(r.used, buf_.size());
            for (std::string_view piece : r.body) streamed.append(piece);
            record(r.event);
            reuse();
            buf_.erase(0, r.used);
            if (r.event == Event::more || r.event == Event::error) return;
        }
    }
    // The buffer is about to change: the reader copies its request out, then the old bytes are scribbled.
    void reuse() {
        reader.keep(buf_);
        std::string fresh = buf_;
        buf_.assign(buf_.size(), '#');
        buf_.swap(fresh);
        old_.push_back(std::move(fresh));  // kept allocated (scribbled): a stale view reads '#', not freed memory
    }
    void record(Event e) {
        const covet::Request& q = reader.request();
        std::string s;
        switch (e) {
            case Event::more: return;
            case Event::error:
                events.push_back("error " + std::to_string(reader.error().status) + " " + reader.error().reason);
                return;
            case Event::head: s = "head "; break;
            case Event::complete: s = "complete "; break;
        }
        s.append(q.method_name()).append(" ").append(q.path());
        if (!q.query_string().empty()) s.append(" q=").append(q.query_string());
        for (const covet::Header& h : q.headers()) s.append(" ").append(h.name).append(":").append(h.value);
        if (e == Event::complete && !q.body_streamed()) s.append(" body=").append(q.body());
        events.push_back(std::move(s));
        if (e == Event::head && stream_at_head) reader.stream_body();
    }

    std::string buf_;
    std::vector<std::string> old_;
};

std::vector<std::string> read_all(std::string_view input, std::size_t step = 0) {
    Feeder f;
    f.push(input, step);
    return f.events;
}

// What the reader refuses `input` with: "status reason".
std::string refusal(std::string_view input, const ReaderLimits& limits = small_limits()) {
    Feeder f(limits);
    f.push(input);
    if (f.events.empty() || f.events.back().rfind("error ", 0) != 0) return "not refused";
    return f.events.back().substr(6);
}
int status_of(std::string_view input, const ReaderLimits& limits = small_limits()) {
    return std::stoi(refusal(input, limits));
}

const std::string pipeline =
    "GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"
    "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
    "DELETE /d HTTP/1.0\r\n\r\n";

const std::vector<std::string> pipeline_events = {
    "complete GET /a q=x=1 Host:h body=",
    "head POST /b Host:h Content-Length:5",
    "complete POST /b Host:h Content-Length:5 body=hello",
    "head POST /c Host:h Transfer-Encoding:chunked",
    "complete POST /c Host:h Transfer-Encoding:chunked body=abcde",
    "complete DELETE /d body=",
};

// ================================================================ one buffer, any split

TEST(RequestReader, PipelinedRequestsInOneBufferComeOneAtATime) { EXPECT_EQ(read_all(pipeline), pipeline_events); }

TEST(RequestReader, ByteAtATimeGivesTheSameRequests) { EXPECT_EQ(read_all(pipeline, 1), pipeline_events); }

TEST(RequestReader, EverySplitSizeGivesTheSameRequests) {
    for (std::size_t step = 2; step < pipeline.size(); step += 7) EXPECT_EQ(read_all(pipeline, step), pipeline_events);
}

TEST(RequestReader, AHeadIsNotConsumedUntilItIsComplete) {
    RequestReader r(small_limits());
    const std::string part = "GET / HTTP/1.1\r\nHost: h\r\n";
    const RequestReader::Result a = r.feed(part);
    EXPECT_EQ(a.event, Event::more);
    EXPECT_EQ(a.used, 0u);
    EXPECT_FALSE(r.between_requests());
    const std::string whole = part + "\r\n";
    const RequestReader::Result b = r.feed(whole);
    EXPECT_EQ(b.event, Event::complete);
    EXPECT_EQ(b.used, whole.size());
    EXPECT_TRUE(r.between_requests());
}

TEST(RequestReader, FeedStopsAtTheEndOfEachRequest) {
    RequestReader r(small_limits());
    const std::string two = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
    const RequestReader::Result a = r.feed(two);
    EXPECT_EQ(a.event, Event::complete);
    EXPECT_EQ(a.used, two.size() / 2);
    EXPECT_EQ(r.request().path(), "/1");
    const RequestReader::Result b = r.feed(std::string_view(two).substr(a.used));
    EXPECT_EQ(b.event, Event::complete);
    EXPECT_EQ(r.request().path(), "/2");
}

TEST(RequestReader, TheRequestSurvivesItsInputOnceKept) {
    Feeder f;  // the harness scribbles every buffer it reuses
    f.push("POST /p?k=v HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nContent-Length: 4\r\n\r\n");
    f.push("ab");
    f.push("cd");
    ASSERT_EQ(f.events.size(), 2u);
    EXPECT_EQ(f.events[1], "complete POST /p q=k=v Host:h X-A:1 Content-Length:4 body=abcd");
    EXPECT_EQ(f.reader.request().header("x-a").value_or(""), "1");
}

TEST(RequestReader, HeadFieldsAndVersion) {
    RequestReader r(small_limits());
    ASSERT_EQ(r.feed("GET http://example.com/x/y?z HTTP/1.0\r\nA:  v  \r\nB:\r\n\r\n").event, Event::complete);
    const covet::Request& q = r.request();
    EXPECT_EQ(q.target(), "http://example.com/x/y?z");
    EXPECT_EQ(q.path(), "/x/y");
    EXPECT_EQ(q.query_string(), "z");
    EXPECT_EQ(q.version_minor(), 0);
    EXPECT_FALSE(q.keep_alive());
    EXPECT_EQ(q.header("a").value_or("?"), "v");  // optional whitespace trimmed
    EXPECT_EQ(q.header("b").value_or("?"), "");
}

// ================================================================ stray empty lines (RFC 9112 §2.2)

TEST(RequestReader, EmptyLinesBeforeAndBetweenRequestsAreSkipped) {
    EXPECT_EQ(read_all("\r\n\n\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
              (std::vector<std::string>{"complete GET /a Host:h body=", "complete GET /b Host:h body="}));
}

TEST(RequestReader, OnlyEmptyLinesAreConsumedAndLeaveTheReaderBetweenRequests) {
    RequestReader r(small_limits());
    const RequestReader::Result a = r.feed("\r\n\n\r\n");
    EXPECT_EQ(a.event, Event::more);
    EXPECT_EQ(a.used, 5u);
    EXPECT_TRUE(r.between_requests());
    // A lone CR may begin another empty line or a request: it waits for the next byte.
    const RequestReader::Result b = r.feed("\r");
    EXPECT_EQ(b.event, Event::more);
    EXPECT_EQ(b.used, 0u);
    EXPECT_TRUE(r.between_requests());
    // Fed again with what followed it: more empty lines, then a request (found by tests/fuzz/http1_reader_fuzz.cpp:
    // the lone CR started a head, and the empty lines after it were read as that head: 400).
    const RequestReader::Result c = r.feed("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_EQ(c.event, Event::complete);
    EXPECT_EQ(r.request().target(), "/");
}

// A bare CR before the request line ("\r\r\n\n" reads as a complete head that llhttp skips whole): refused, not
// a head without headers whose request then came through as its body (tests/fuzz/http1_reader_fuzz.cpp found a
// heap-use-after-free there; seed tests/fuzz/corpus/http1_reader/regression_bare_cr_head).
TEST(RequestReader, ABareCrBeforeTheRequestLineIsRefused) {
    for (std::size_t piece : {0, 1, 3}) {
        const std::vector<std::string> got = read_all("\n\r\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", piece);
        ASSERT_FALSE(got.empty());
        EXPECT_EQ(got.back().rfind("error 400", 0), 0u) << piece << ": " << got.back();
        for (const std::string& e : got) EXPECT_EQ(e.rfind("complete", 0), std::string::npos) << piece << ": " << e;
    }
}

TEST(RequestReader, EmptyLinesSplitAnywhereAreSkipped) {
    const std::string input = "\r\n\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    const std::vector<std::string> whole = read_all(input);
    ASSERT_EQ(whole, (std::vector<std::string>{"complete GET /a Host:h body=", "complete GET /b Host:h body="}));
    for (std::size_t piece = 1; piece < 8; ++piece) EXPECT_EQ(read_all(input, piece), whole) << piece;
}

// ================================================================ bodies

TEST(RequestReader, ChunkedBodyTrailersAreNotHeaders) {
    const std::vector<std::string> got = read_all(
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nHost: evil\r\n\r\n", 1);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[1], "complete POST / Host:h Transfer-Encoding:chunked body=x");
}

TEST(RequestReader, DeclaredLengthAndOverBodyLimit) {
    RequestReader r(small_limits());  // max_body_bytes 32, streamed limit 100
    ASSERT_EQ(r.feed("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\r\n").event, Event::head);
    EXPECT_EQ(r.declared_length().value_or(0), 50u);
    EXPECT_TRUE(r.over_body_limit());  // only a streamed body may be this large
    EXPECT_TRUE(r.reading_body());
}

TEST(RequestReader, StreamedBodyComesInResultBody) {
    Feeder f;
    f.stream_at_head = true;
    f.push("PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\r\n" + std::string(50, 'z') +
               "GET /next HTTP/1.1\r\nHost: h\r\n\r\n",
           3);
    EXPECT_EQ(f.streamed, std::string(50, 'z'));
    ASSERT_EQ(f.events.size(), 3u);
    EXPECT_EQ(f.events[1], "complete PUT /u Host:h Content-Length:50");
    EXPECT_TRUE(f.reader.request().path() == "/next");
}

TEST(RequestReader, ChunkedBodyStreamedMidwayKeepsWhatCameFirst) {
    RequestReader r(small_limits());
    const std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    ASSERT_EQ(r.feed(head).event, Event::head);
    EXPECT_FALSE(r.declared_length());
    ASSERT_EQ(r.feed("4\r\nabcd\r\n").event, Event::more);
    EXPECT_EQ(r.request().body(), "abcd");
    const std::string first(r.request().body());
    r.stream_body();  // the caller takes what the body held, then streams the rest
    EXPECT_TRUE(r.request().body().empty());
    EXPECT_TRUE(r.request().body_streamed());
    const RequestReader::Result rest = r.feed("2\r\nef\r\n0\r\n\r\n");
    EXPECT_EQ(rest.event, Event::complete);
    ASSERT_EQ(rest.body.size(), 1u);
    EXPECT_EQ(first + std::string(rest.body[0]), "abcdef");
}

// ================================================================ limits → status

TEST(RequestReader, EachLimitHasItsStatus) {
    const std::string long_target = "/" + std::string(80, 'u');
    EXPECT_EQ(refusal("GET " + long_target + " HTTP/1.1\r\nHost: h\r\n\r\n"),
              "414 the request target is longer than the URL limit");
    // A request line over the limit is refused before its head is complete.
    EXPECT_EQ(refusal("GET /" + std::string(100, 'u')), "414 the request line is longer than the URL limit");
    EXPECT_EQ(refusal("GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(300, 'v') + "\r\n\r\n"),
              "431 the request head is larger than the header size limit");
    EXPECT_EQ(refusal("GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(300, 'v')),  // still incomplete
              "431 the request head is larger than the header size limit");
    EXPECT_EQ(refusal("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"),
              "431 the request has more header fields than the limit");
    EXPECT_EQ(refusal("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n"),
              "413 the request body is larger than the body size limit");
    EXPECT_EQ(refusal("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n21\r\n" + std::string(33, 'b')),
              "413 the request body is larger than the body size limit");
}

TEST(RequestReader, BodyExactlyAtTheLimitIsRead) {
    const std::vector<std::string> got =
        read_all("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 32\r\n\r\n" + std::string(32, 'b'));
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[1].substr(got[1].size() - 5), "bbbbb");
}

TEST(RequestReader, StreamedBodyOverItsLimitIs413) {
    Feeder f;
    f.stream_at_head = true;
    f.push("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    f.push("40\r\n" + std::string(64, 'a') + "\r\n40\r\n" + std::string(64, 'a') + "\r\n");
    ASSERT_FALSE(f.events.empty());
    EXPECT_EQ(f.events.back(),
              "error 413 the request body is larger than the streamed body size limit (max_stream_body_bytes)");
}

TEST(RequestReader, WithoutAStreamingThresholdBelowTheBodyLimitOversizedIsRefusedAtTheHead) {
    ReaderLimits l = small_limits();
    l.stream_body_threshold = l.max_body_bytes;  // nothing can stream past the buffered limit
    EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\r\n", l), 413);
}

// ================================================================ request smuggling and malformed input

TEST(RequestReader, SmugglingVectorsAreRefused) {
    EXPECT_EQ(refusal("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
              "400 Content-Length is repeated or sent together with Transfer-Encoding");
    EXPECT_EQ(refusal("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
              "400 Content-Length is repeated or sent together with Transfer-Encoding");
    EXPECT_EQ(refusal("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3x\r\n\r\n"),
              "400 Content-Length is not a valid number");
    EXPECT_EQ(refusal("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabc"),
              "400 Transfer-Encoding is invalid (chunked must be last)");
    EXPECT_EQ(refusal("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"), "400 obsolete line folding is not allowed");
    EXPECT_EQ(refusal("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), "400 a header name is followed by whitespace before ':'");
    EXPECT_EQ(status_of("GET / HTTP/1.1\nHost: h\n\n"), 400);  // bare LF
    EXPECT_EQ(refusal("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n"),
              "400 chunk data is not followed by CRLF");
    EXPECT_EQ(refusal("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
              "400 a chunk size is not valid hexadecimal");
    EXPECT_EQ(refusal("GET / HTTP/1.1\r\n\r\n"), "400 HTTP/1.1 requires a Host header");
    EXPECT_EQ(refusal("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), "400 the Host header is repeated");
}

TEST(RequestReader, ChunkCrlfSplitAcrossFeedsIsChecked) {
    Feeder f;
    f.push("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r");
    f.push("X0\r\n\r\n");
    ASSERT_FALSE(f.events.empty());
    EXPECT_EQ(f.events.back(), "error 400 chunk data is not followed by CRLF");
}

TEST(RequestReader, MethodsVersionsAndForeignProtocols) {
    EXPECT_EQ(refusal("BREW / HTTP/1.1\r\nHost: h\r\n\r\n"), "501 the request method is not implemented");
    EXPECT_EQ(status_of("PROPFIND / HTTP/1.1\r\nHost: h\r\n\r\n"), 501);  // llhttp knows it, covet does not
    EXPECT_EQ(status_of("G@T / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    EXPECT_EQ(status_of("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
    EXPECT_EQ(refusal("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
              "505 HTTP/2 is not enabled on this port (got the HTTP/2 connection preface)");
    EXPECT_EQ(refusal(std::string("\x16\x03\x01\x02\x00", 5)),
              "400 this is not an HTTP/1.x request (TLS or binary data sent to a plain HTTP port?)");
}

TEST(RequestReader, AnErrorIsFinal) {
    RequestReader r(small_limits());
    ASSERT_EQ(r.feed("GET / HTTP/1.1\r\n\r\n").event, Event::error);
    const RequestReader::Result again = r.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_EQ(again.event, Event::error);
    EXPECT_EQ(again.used, 0u);
    EXPECT_EQ(r.error().status, 400);
}

TEST(RequestReader, AskingToUpgradeIsAPlainRequestToTheReader) {
    EXPECT_EQ(read_all("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                       "GET /after HTTP/1.1\r\nHost: h\r\n\r\n"),
              (std::vector<std::string>{"complete GET /ws Host:h Connection:Upgrade Upgrade:websocket body=",
                                        "complete GET /after Host:h body="}));
}

// ================================================================ the shared request builder

TEST(RequestBuilder, DeclaredLengthAgainstTheLimits) {
    covet::Request q;
    const covet::http::RequestLimits l = small_limits();
    covet::http::RequestBuilder b(q, l);
    EXPECT_EQ(b.declared_length(32), covet::http::DeclaredBody::fits);
    EXPECT_EQ(b.declared_length(33), covet::http::DeclaredBody::stream_only);
    EXPECT_EQ(b.declared_length(101), covet::http::DeclaredBody::too_large);
    EXPECT_EQ(b.method("BREW").status, 501);
    EXPECT_FALSE(b.method("PATCH"));
    EXPECT_EQ(q.method(), covet::Method::patch);
    for (int i = 0; i < 4; ++i) EXPECT_FALSE(b.header("X", "1"));
    EXPECT_EQ(b.header("X", "1").status, 431);
}

}  // namespace
