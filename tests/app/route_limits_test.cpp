// covet::RouteLimits over real sockets (ctest runs this binary once per backend): a route's own body limit refuses
// a larger body with 413 before its handler runs, a declared Content-Length before the body is even sent, and the
// other routes keep the server's limit.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>

#include "covet/covet.hpp"
#include "support/http_client.hpp"

namespace {

using covet_test::body_of;
using covet_test::Client;
using covet_test::status_of;

std::string with_body(std::uint16_t port, std::string_view method, std::string_view path, const std::string& body) {
    Client c(port);
    c.send(std::string(method) + " " + std::string(path) +
           " HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    auto r = c.responses(1);
    return r.empty() ? std::string() : r[0];
}

std::string post(std::uint16_t port, std::string_view path, const std::string& body) {
    return with_body(port, "POST", path, body);
}

TEST(RouteLimits, ABodyOverTheRoutesLimitIs413BeforeTheHandler) {
    covet::App app;
    std::atomic<int> calls{0};
    app.post(
        "/login",
        [&calls](covet::Request& r) {
            ++calls;
            return covet::Response::text(std::to_string(r.body().size()));
        },
        covet::RouteLimits{.max_body_bytes = 256});
    app.post("/other", [](covet::Request& r) { return covet::Response::text(std::to_string(r.body().size())); });
    app.listen("127.0.0.1", 0).start(1);
    EXPECT_EQ(body_of(post(app.port(), "/login", std::string(256, 'x'))), "256");
    const std::string refused = post(app.port(), "/login", std::string(257, 'x'));
    EXPECT_EQ(status_of(refused), "HTTP/1.1 413 Content Too Large") << refused;
    // A declared length: refused by the protocol before the body is read (the dispatch check, with the sizes,
    // is for bodies without one).
    EXPECT_NE(body_of(refused).find("larger than this route's limit"), std::string::npos) << refused;
    EXPECT_EQ(calls.load(), 1);
    EXPECT_EQ(body_of(post(app.port(), "/other", std::string(5000, 'x'))), "5000");  // the server's limit (1 MB)
    app.stop();
    app.wait();
}

TEST(RouteLimits, ADeclaredLengthOverTheLimitIsRefusedBeforeTheBodyIsSent) {
    covet::App app;
    std::atomic<int> calls{0};
    // A streaming route: a large body would be handed to it as it arrives; over its limit, it is never called.
    app.post(
        "/upload",
        [&calls](covet::Request&, covet::Responder responder, covet::RequestBody) {
            ++calls;
            responder.send(covet::Response::text("called"));
        },
        covet::RouteLimits{.max_body_bytes = 100'000});
    app.listen("127.0.0.1", 0).start(1);
    {
        Client c(app.port());
        // Within the server's 1 MB and over the 64 KB streaming threshold; only the head is sent.
        c.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 500000\r\n\r\n");
        const auto started = std::chrono::steady_clock::now();
        const std::string answer = c.read_to_end();  // the server answers and closes: the body will not be read
        EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1));
        EXPECT_EQ(status_of(answer), "HTTP/1.1 413 Content Too Large") << answer;
        EXPECT_NE(answer.find("this route's limit"), std::string::npos) << answer;
        EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
        EXPECT_EQ(calls.load(), 0);
    }  // closed before the stop, which would otherwise wait out the server's lingering close
    app.stop();
    app.wait();
}

// The overload that takes a list of methods takes limits too: each method has the route's limit.
TEST(RouteLimits, AMultiMethodRouteHoldsEachMethodToItsLimit) {
    covet::App app;
    std::atomic<int> calls{0};
    app.route(
        {covet::Method::post, covet::Method::put, covet::Method::patch}, "/item",
        [&calls](covet::Request& r) {
            ++calls;
            return covet::Response::text(std::to_string(r.body().size()));
        },
        covet::RouteLimits{.max_body_bytes = 10});
    app.listen("127.0.0.1", 0).start(1);
    for (const std::string_view method : {"POST", "PUT", "PATCH"}) {
        SCOPED_TRACE(method);
        EXPECT_EQ(body_of(with_body(app.port(), method, "/item", std::string(10, 'x'))), "10");
        const std::string refused = with_body(app.port(), method, "/item", std::string(11, 'x'));
        EXPECT_EQ(status_of(refused), "HTTP/1.1 413 Content Too Large") << refused;
        EXPECT_NE(body_of(refused).find("larger than this route's limit"), std::string::npos) << refused;
    }
    EXPECT_EQ(calls.load(), 3);  // the bodies within the limit only
    app.stop();
    app.wait();
}

// A client that asks for 100 Continue first is refused before it is told to send: no 100, a 413, the connection
// closed; within the limit it gets its 100 Continue and is served.
TEST(RouteLimits, AnExpectContinueOverTheLimitGetsNo100) {
    covet::App app;
    app.post(
        "/form", [](covet::Request& r) { return covet::Response::text(std::to_string(r.body().size())); },
        covet::RouteLimits{.max_body_bytes = 1000});
    app.listen("127.0.0.1", 0).start(1);
    {
        Client c(app.port());
        c.send("POST /form HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n");
        const std::string answer = c.read_to_end();
        EXPECT_EQ(answer.rfind("HTTP/1.1 413 Content Too Large", 0), 0u) << answer;  // first, not after a 100
        EXPECT_EQ(answer.find("100 Continue"), std::string::npos) << answer;
        EXPECT_NE(answer.find("this route's limit"), std::string::npos) << answer;
    }
    {
        Client c(app.port());
        c.send("POST /form HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n");
        const auto go_on = c.responses(1);  // the interim answer, before the body is sent
        ASSERT_EQ(go_on.size(), 1u);
        EXPECT_EQ(go_on[0], "HTTP/1.1 100 Continue\r\n\r\n");
        c.send("0123456789");
        const auto answers = c.responses(1);
        ASSERT_EQ(answers.size(), 1u);
        EXPECT_EQ(status_of(answers[0]), "HTTP/1.1 200 OK") << answers[0];
        EXPECT_EQ(body_of(answers[0]), "10");
    }
    app.stop();
    app.wait();
}

}  // namespace
