// Framework protections in C++: SecurityHeadersMiddleware and CsrfMiddleware on constructed requests, and over
// real sockets (once per reactor backend: COVET_BACKEND) the PROXY protocol on the listener and response headers
// with CR, LF or NUL set by a C++ handler (a 500, never a split response).
#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "covet/covet.hpp"
#include "covet/middleware/csrf.hpp"
#include "covet/middleware/security_headers.hpp"
#include "support/http_client.hpp"
#include "support/local_app.hpp"

using namespace std::chrono_literals;

namespace {

covet::Request request(covet::Method m, std::string_view target,
                       std::initializer_list<std::pair<std::string_view, std::string_view>> headers,
                       std::string_view body = {}) {
    covet::Request r;
    r.set_method(m);
    r.set_target(target);
    for (const auto& [name, value] : headers) r.add_header(name, value);
    r.set_body(body);
    return r;
}

// A header as sent: the response's own, or one of the shared fields a middleware attached.
std::string header(const covet::Response& r, std::string_view name) {
    if (const auto own = r.headers().get(name)) return std::string(*own);
    for (std::size_t i = 0; const covet::SharedFields* shared = r.shared_fields(i); ++i)
        if (const auto v = shared->fields.get(name)) return std::string(*v);
    return "<none>";
}

// Everything the server sends on a new connection until it closes it.
std::string exchange(std::uint16_t port, std::string_view bytes) {
    covet_test::Client c(port);
    c.send(bytes);
    return c.read_to_end();
}

// The same, the bytes sent in separate writes (TCP_NODELAY, a pause between them: separate reads on the server
// unless it is slower than the pauses).
std::string exchange_in_writes(std::uint16_t port, const std::vector<std::string>& writes) {
    covet_test::Client c(port);
    const int one = 1;
    setsockopt(c.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (const std::string& w : writes) {
        c.send(w);
        std::this_thread::sleep_for(1ms);
    }
    return c.read_to_end();
}

}  // namespace

// ---- security headers ----

TEST(SecurityHeaders, DefaultsAndTheHandlersOwnWin) {
    covet::SecurityHeadersMiddleware m({});
    covet::RequestContext context;
    covet::Request r = request(covet::Method::get, "/", {});
    covet::Response plain = covet::Response::text("x");
    m.before(r, context);
    m.after(r, context, plain);
    EXPECT_EQ(header(plain, "X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(header(plain, "Referrer-Policy"), "strict-origin-when-cross-origin");
    EXPECT_EQ(header(plain, "X-Frame-Options"), "DENY");
    EXPECT_EQ(header(plain, "Cross-Origin-Opener-Policy"), "same-origin");
    EXPECT_EQ(header(plain, "Strict-Transport-Security"), "<none>");  // plain HTTP

    covet::Response own = covet::Response::text("x");
    own.add_header("X-Frame-Options", "SAMEORIGIN");
    m.after(r, context, own);
    EXPECT_EQ(own.headers().count("X-Frame-Options"), 1u);
    EXPECT_EQ(header(own, "X-Frame-Options"), "SAMEORIGIN");
    EXPECT_EQ(own.shared_fields(), nullptr);  // not the whole set: it would repeat the name
    EXPECT_EQ(header(own, "X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(plain.headers().size(), 0u);  // the usual case: the pre-rendered set by pointer, nothing copied
    ASSERT_NE(plain.shared_fields(), nullptr);
    EXPECT_EQ(plain.shared_fields()->http1,
              "X-Content-Type-Options: nosniff\r\nReferrer-Policy: strict-origin-when-cross-origin\r\n"
              "X-Frame-Options: DENY\r\nCross-Origin-Opener-Policy: same-origin\r\n");

    // A response that already carries another pre-rendered set (CORS's answer) keeps it and gets this one as its
    // second; with no room left (two sets), these fields go among its own; a set that has one of these names wins
    // over it, as a handler's own field does.
    const auto set_of = [](std::string_view name, std::string_view value) {
        covet::Fields f;
        f.add(name, value);
        return covet::SharedFields(std::move(f));
    };
    const covet::SharedFields other = set_of("X-Other", "1"), third = set_of("X-Third", "3"),
                              framing = set_of("X-Frame-Options", "SAMEORIGIN");
    covet::Response carrying = covet::Response::text("x");
    carrying.add_shared_fields(&other);
    m.after(r, context, carrying);
    EXPECT_EQ(carrying.shared_fields(0), &other);
    EXPECT_EQ(carrying.shared_fields(1), plain.shared_fields());
    EXPECT_EQ(carrying.headers().size(), 0u);
    covet::Response full = covet::Response::text("x");
    full.add_shared_fields(&other);
    full.add_shared_fields(&third);
    m.after(r, context, full);
    EXPECT_EQ(full.shared_fields(1), &third);
    EXPECT_EQ(full.headers().get("X-Frame-Options").value_or("<none>"), "DENY");
    EXPECT_EQ(full.headers().size(), 4u);
    covet::Response framed = covet::Response::text("x");
    framed.add_shared_fields(&framing);
    m.after(r, context, framed);
    EXPECT_EQ(framed.shared_fields(1), nullptr);
    EXPECT_EQ(framed.headers().count("X-Frame-Options"), 0u);  // the set's SAMEORIGIN is the one sent
    EXPECT_EQ(framed.headers().get("Referrer-Policy").value_or("<none>"), "strict-origin-when-cross-origin");
    EXPECT_EQ(framed.headers().size(), 3u);

    covet::Request https = request(covet::Method::get, "/", {});
    https.set_scheme("https");
    covet::Response secure = covet::Response::text("x");
    m.after(https, context, secure);
    EXPECT_EQ(header(secure, "Strict-Transport-Security"), "max-age=31536000");
    // Without a nonce there is nothing to do before the handler: the app calls only `after`.
    EXPECT_EQ(m.hooks(), covet::Middleware::after_hook);
}

TEST(SecurityHeaders, NoncePerRequest) {
    covet::SecurityHeadersMiddleware m(
        {.content_security_policy = "script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'"});
    covet::RequestContext a, b;
    covet::Request r = request(covet::Method::get, "/", {});
    m.before(r, a);
    m.before(r, b);
    ASSERT_EQ(a.csp_nonce().size(), 22u);
    EXPECT_NE(a.csp_nonce(), b.csp_nonce());
    covet::Response resp = covet::Response::text("x");
    m.after(r, a, resp);
    const std::string nonce(a.csp_nonce());
    EXPECT_EQ(header(resp, "Content-Security-Policy"),
              "script-src 'nonce-" + nonce + "'; style-src 'nonce-" + nonce + "'");
    EXPECT_EQ(m.hooks(), covet::Middleware::all_hooks);  // `before` makes the nonce
}

TEST(SecurityHeaders, BadOptionsAreRefused) {
    EXPECT_THROW(covet::SecurityHeadersMiddleware({.content_security_policy = "a\r\nb: c"}), std::invalid_argument);
    EXPECT_THROW(covet::SecurityHeadersMiddleware({.frame_options = "ALLOWALL"}), std::invalid_argument);
    EXPECT_THROW(covet::SecurityHeadersMiddleware({.hsts_preload = true}), std::invalid_argument);
}

// ---- CSRF ----

TEST(Csrf, TokensAreSignedWithTheSecret) {
    covet::CsrfMiddleware a({.secret = "0123456789abcdef0123"}), b({.secret = "another-secret-of-20b"});
    const std::string token = a.new_token();
    EXPECT_TRUE(a.valid_token(token));
    EXPECT_FALSE(b.valid_token(token));
    std::string tampered = token;
    tampered[3] = tampered[3] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(a.valid_token(tampered));
    EXPECT_FALSE(a.valid_token("no-dot"));
    EXPECT_THROW(covet::CsrfMiddleware({.secret = "short"}), std::invalid_argument);
    EXPECT_THROW(covet::CsrfMiddleware({.secret = "0123456789abcdef0123", .trusted_origins = {"https://x/"}}),
                 std::invalid_argument);
}

TEST(Csrf, OriginAndTokenChecks) {
    covet::CsrfMiddleware m({.secret = "0123456789abcdef0123", .trusted_origins = {"https://partner.example"}});
    const std::string token = m.new_token();
    const std::string cookie = "csrftoken=" + token;
    const std::string form = "a=1&csrf_token=" + token;
    const auto run = [&](covet::Request r) {
        covet::RequestContext context;
        auto answer = m.before(r, context);
        return answer ? answer->status() : 200;
    };
    const std::pair<std::string_view, std::string_view> ct{"Content-Type", "application/x-www-form-urlencoded"};
    EXPECT_EQ(run(request(covet::Method::post, "/", {{"Host", "a.example"}, {"Cookie", cookie}, ct}, form)), 200);
    EXPECT_EQ(run(request(covet::Method::post, "/", {{"Host", "a.example"}, ct}, form)), 403);  // no cookie
    EXPECT_EQ(run(request(covet::Method::post, "/", {{"Host", "a.example"}, {"Cookie", cookie}, ct}, "a=1")), 403);
    EXPECT_EQ(run(request(covet::Method::post, "/",
                          {{"Host", "a.example"}, {"Cookie", cookie}, {"Origin", "https://evil.example"}, ct}, form)),
              403);
    EXPECT_EQ(run(request(covet::Method::post, "/",
                          {{"Host", "a.example"}, {"Cookie", cookie}, {"Origin", "https://a.example"}, ct}, form)),
              200);
    EXPECT_EQ(run(request(covet::Method::post, "/",
                          {{"Host", "a.example"}, {"Cookie", cookie}, {"Sec-Fetch-Site", "same-site"}, ct}, form)),
              403);
    EXPECT_EQ(run(request(covet::Method::post, "/",
                          {{"Host", "a.example"},
                           {"Cookie", cookie},
                           {"Sec-Fetch-Site", "cross-site"},
                           {"Origin", "https://partner.example"},
                           ct},
                          form)),
              200);
    EXPECT_EQ(run(request(covet::Method::get, "/", {{"Sec-Fetch-Site", "cross-site"}})), 200);
    // JSON needs a preflight cross-origin: the Origin check alone
    EXPECT_EQ(
        run(request(covet::Method::post, "/", {{"Host", "a.example"}, {"Content-Type", "application/json"}}, "{}")),
        200);

    // A request without the cookie gets a token and the cookie on its response.
    covet::RequestContext context;
    covet::Request get = request(covet::Method::get, "/form", {});
    m.before(get, context);
    ASSERT_TRUE(context.csrf_cookie_new);
    EXPECT_TRUE(m.valid_token(context.csrf_token()));
    covet::Response resp = covet::Response::text("x");
    m.after(get, context, resp);
    EXPECT_EQ(header(resp, "Set-Cookie"), "csrftoken=" + std::string(context.csrf_token()) + "; Path=/; SameSite=Lax");
}

// ---- over real sockets ----

class ServerTest : public ::testing::Test {
protected:
    void SetUp() override {
        covet_test::configure_local_app(app_, std::chrono::seconds(3));
        app_.get("/client", [](covet::Request& r) { return covet::Response::text(std::string(r.client_address())); });
        app_.get("/split", [](covet::Request&) {
            covet::Response r = covet::Response::text("x");
            r.add_header("X-Evil", "a\r\nSet-Cookie: session=attacker");
            return r;
        });
        app_.get("/split-type", [](covet::Request&) {
            return covet::Response(200, "x", "text/html\r\nSet-Cookie: session=attacker");
        });
        app_.get("/split-later", [](covet::Request&, covet::Responder responder) {
            covet::Response r = covet::Response::text("x");
            try {
                r.add_header("X-Evil", std::string("a\0b", 3));
            } catch (const std::invalid_argument&) {
                r = covet::Response::text("refused", 500);
            }
            responder.send(std::move(r));
        });
    }
    void TearDown() override {
        app_.stop();
        app_.wait();
    }
    covet::App app_;
};

TEST_F(ServerTest, HeaderInjectionFromACppHandlerIsA500) {
    app_.start(1);
    for (const char* path : {"/split", "/split-type", "/split-later"}) {
        const std::string raw =
            exchange(app_.port(), std::string("GET ") + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        EXPECT_EQ(covet_test::status_of(raw), "HTTP/1.1 500 Internal Server Error") << path;
        EXPECT_EQ(raw.find("attacker"), std::string::npos) << raw;
        EXPECT_EQ(raw.find("Set-Cookie"), std::string::npos) << raw;
    }
    EXPECT_NE(exchange(app_.port(), "GET /client HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").find("127.0.0.1"),
              std::string::npos);
}

TEST_F(ServerTest, ProxyProtocolFromATrustedPeer) {
    app_.config().proxy_protocol.enabled = true;
    app_.config().proxy_protocol.trusted = covet::net::TrustedProxies("127.0.0.1");
    app_.start(1);
    const std::string req = "GET /client HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    EXPECT_EQ(covet_test::body_of(exchange(app_.port(), "PROXY TCP4 203.0.113.9 127.0.0.1 1 2\r\n" + req)),
              "203.0.113.9");
    const std::string v2 = std::string("\r\n\r\n\0\r\nQUIT\n", 12) + std::string("\x21\x11\x00\x0c", 4) +
                           std::string("\xc6\x33\x64\x07\x7f\x00\x00\x01\x15\xb3\x1f\x40", 12);
    EXPECT_EQ(covet_test::body_of(exchange(app_.port(), v2 + req)), "198.51.100.7");
    EXPECT_EQ(exchange(app_.port(), req), "");                                       // no header: refused
    EXPECT_EQ(exchange(app_.port(), "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n" + req), "");  // malformed: refused
}

// The tests' client reads to the end through signals: with SO_RCVTIMEO set, Linux never restarts an interrupted
// recv, and a process stopped and continued under load (SIGSTOP/SIGCONT, a cgroup freeze) gets EINTR too. The
// PROXY test above read that as "no answer" (an empty read, now and then on a loaded machine).
TEST_F(ServerTest, ExchangeReadsThroughSignals) {
    app_.get("/slow", [](covet::Request&) {
        std::this_thread::sleep_for(100ms);
        return covet::Response::text("late");
    });
    app_.start(1);
    struct sigaction action = {};
    struct sigaction previous = {};
    action.sa_handler = [](int) {};  // no SA_RESTART: the interrupted recv fails with EINTR
    sigemptyset(&action.sa_mask);
    ASSERT_EQ(sigaction(SIGUSR2, &action, &previous), 0);
    const pthread_t reader = pthread_self();
    std::atomic<bool> done{false};
    std::thread interrupter([&] {
        while (!done) {
            pthread_kill(reader, SIGUSR2);
            std::this_thread::sleep_for(2ms);
        }
    });
    const std::string raw = exchange(app_.port(), "GET /slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    done = true;
    interrupter.join();
    sigaction(SIGUSR2, &previous, nullptr);
    EXPECT_EQ(covet_test::body_of(raw), "late") << raw;
}

// A PROXY header split across reads (a balancer's writes, or TCP segments): byte by byte, and in two writes whose
// second carries the rest of the header and the request; for v1 and v2.
TEST_F(ServerTest, ProxyProtocolHeaderSplitAcrossReads) {
    app_.config().proxy_protocol.enabled = true;
    app_.config().proxy_protocol.trusted = covet::net::TrustedProxies("127.0.0.1");
    app_.start(1);
    const std::string req = "GET /client HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    const std::string v1 = "PROXY TCP4 203.0.113.9 127.0.0.1 1 2\r\n";
    const std::string v2 = std::string("\r\n\r\n\0\r\nQUIT\n", 12) + std::string("\x21\x11\x00\x0c", 4) +
                           std::string("\xc6\x33\x64\x07\x7f\x00\x00\x01\x15\xb3\x1f\x40", 12);
    for (const auto& [header, client] : {std::pair{v1, "203.0.113.9"}, std::pair{v2, "198.51.100.7"}}) {
        std::vector<std::string> byte_by_byte;
        for (const char ch : header) byte_by_byte.emplace_back(1, ch);
        byte_by_byte.push_back(req);
        EXPECT_EQ(covet_test::body_of(exchange_in_writes(app_.port(), byte_by_byte)), client);
        for (const std::size_t cut : {std::size_t{1}, std::size_t{5}, std::size_t{13}, header.size() - 1}) {
            const std::vector<std::string> two = {header.substr(0, cut), header.substr(cut) + req};
            EXPECT_EQ(covet_test::body_of(exchange_in_writes(app_.port(), two)), client) << "cut at " << cut;
        }
        // The header alone, then the request.
        EXPECT_EQ(covet_test::body_of(exchange_in_writes(app_.port(), {header, req})), client);
    }
}

TEST_F(ServerTest, ProxyProtocolFromAnUntrustedPeerIsGarbage) {
    app_.config().proxy_protocol.enabled = true;
    app_.config().proxy_protocol.trusted = covet::net::TrustedProxies("10.0.0.0/8");
    app_.start(1);
    const std::string raw =
        exchange(app_.port(), "PROXY TCP4 203.0.113.9 127.0.0.1 1 2\r\nGET /client HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(covet_test::status_of(raw).substr(0, 12), "HTTP/1.1 400");
    EXPECT_EQ(
        covet_test::body_of(exchange(app_.port(), "GET /client HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")),
        "127.0.0.1");
}
