// The operations endpoints of a real App over real sockets: /_metrics counts requests by route template,
// /_health, /_ready (draining), the bearer token and the separate operations listener.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "covet/covet.hpp"
#include "covet/metrics/exposition.hpp"
#include "support/http_client.hpp"

using covet_test::body_of;
using covet_test::Client;
using covet_test::status_of;

namespace {

std::string fetch(std::uint16_t port, const std::string& request) {
    Client c(port);
    c.send(request);
    auto r = c.responses(1);
    return r.empty() ? std::string() : r[0];
}
std::string get(std::uint16_t port, std::string_view target, std::string_view extra = "") {
    return fetch(port, "GET " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n" + std::string(extra) + "\r\n");
}

// What stream-end hooks saw: the metrics scraped when each streamed answer ended, and whether it completed.
struct StreamEnds {
    std::mutex mutex;
    std::vector<std::pair<std::string, bool>> seen;
    std::optional<std::pair<std::string, bool>> wait_for(std::size_t n) {
        for (int i = 0; i < 500; ++i) {
            {
                std::lock_guard lock(mutex);
                if (seen.size() >= n) return seen[n - 1];
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return std::nullopt;
    }
};

class ScrapeAtStreamEnd final : public covet::Middleware {
public:
    explicit ScrapeAtStreamEnd(StreamEnds& ends) : ends_(ends) {}
    void after(const covet::Request&, const covet::RequestContext&, covet::Response&) override {}
    void after_stream(const covet::Request&, covet::RequestContext& context, covet::Response&) override {
        context.add_stream_end_hook(std::make_unique<Hook>(ends_));
    }

private:
    struct Hook final : covet::StreamEndHook {
        explicit Hook(StreamEnds& e) : ends(e) {}
        void stream_end(const covet::RequestContext&, std::uint64_t, bool completed) noexcept override {
            std::string scrape = covet::metrics::scrape(covet::metrics::Format::prometheus);
            std::lock_guard lock(ends.mutex);
            ends.seen.emplace_back(std::move(scrape), completed);
        }
        StreamEnds& ends;
    };
    StreamEnds& ends_;
};

}  // namespace

// A stream-end hook (a streamed answer's access log line is written by one) runs once its exchange's metrics are
// recorded: a scrape made there counts the exchange, whether it completed or was cut off.
TEST(OpsEndpoints, AStreamEndHookSeesItsExchangeCountedInTheMetrics) {
    StreamEnds ends;  // outlives the app: its hooks write here
    std::mutex open_mutex;
    std::vector<covet::StreamWriter> open;  // /cut's writers, cut off by the test
    covet::App app;
    app.config().ops.endpoints = true;
    app.use(std::make_unique<ScrapeAtStreamEnd>(ends));
    app.get("/completes", [](covet::Request&, covet::Responder r) {
        covet::StreamWriter w = r.stream(covet::Response(200, "", "text/plain"));
        w.write("done");
        w.end();
    });
    app.get("/cut", [&](covet::Request&, covet::Responder r) {
        covet::StreamWriter w = r.stream(covet::Response(200, "", "text/plain"));
        w.write("partial");
        std::lock_guard lock(open_mutex);
        open.push_back(std::move(w));
    });
    app.listen("127.0.0.1", 0).start(1);

    EXPECT_NE(get(app.port(), "/completes").find("HTTP/1.1 200 OK"), std::string::npos);
    const auto completed = ends.wait_for(1);
    ASSERT_TRUE(completed);
    EXPECT_TRUE(completed->second);
    EXPECT_NE(completed->first.find(R"(http_route="/completes",http_response_status_code="200",)"
                                    R"(network_protocol_version="1.1"} 1)"),
              std::string::npos)
        << completed->first;

    Client c(app.port());
    c.send("GET /cut HTTP/1.1\r\nHost: t\r\n\r\n");
    char buf[256];
    ASSERT_GT(covet_test::recv_through_signals(c.fd(), buf, sizeof buf), 0);  // the head and the first chunk
    {
        std::lock_guard lock(open_mutex);
        ASSERT_EQ(open.size(), 1u);
        open[0].abort();  // the handler cuts its answer off: the exchange ends unfinished
    }
    const auto aborted = ends.wait_for(2);
    ASSERT_TRUE(aborted) << "the cut-off stream's end was not seen";
    EXPECT_FALSE(aborted->second);
    EXPECT_NE(aborted->first.find(R"(http_route="/cut",http_response_status_code="200",)"
                                  R"(network_protocol_version="1.1",error_type="aborted"} 1)"),
              std::string::npos)
        << aborted->first;
    app.stop();
    app.wait();
}

TEST(OpsEndpoints, MetricsCountRequestsByRouteTemplateNeverThePath) {
    covet::App app;
    app.get("/items/{id:int}", [](covet::Request&) { return covet::Response::text("item"); });
    app.config().ops.endpoints = true;
    app.listen("127.0.0.1", 0).start(1);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(status_of(get(app.port(), "/items/" + std::to_string(i))), "HTTP/1.1 200 OK");
    EXPECT_EQ(status_of(get(app.port(), "/no/such/path/x1")), "HTTP/1.1 404 Not Found");
    const std::string scrape = get(app.port(), "/_metrics");
    ASSERT_EQ(status_of(scrape), "HTTP/1.1 200 OK");
    EXPECT_NE(scrape.find("Content-Type: text/plain; version=0.0.4; charset=utf-8"), std::string::npos);
    const std::string body = body_of(scrape);
    EXPECT_NE(body.find(R"(http_server_request_duration_seconds_count{http_request_method="GET",url_scheme="http",)"
                        R"(http_route="/items/{id}",http_response_status_code="200",)"
                        R"(network_protocol_version="1.1"} 3)"),
              std::string::npos)
        << body;
    EXPECT_NE(body.find(R"(http_route="",http_response_status_code="404")"), std::string::npos);
    EXPECT_EQ(body.find("/no/such/path"), std::string::npos);
    EXPECT_EQ(body.find("/_metrics\""), std::string::npos);  // the endpoints are not counted as requests
    EXPECT_NE(body.find("covet_connections_accepted_total "), std::string::npos);
    EXPECT_NE(body.find("process_resident_memory_bytes "), std::string::npos);
    EXPECT_EQ(status_of(get(app.port(), "/_health")), "HTTP/1.1 200 OK");
    EXPECT_EQ(status_of(get(app.port(), "/_ready")), "HTTP/1.1 200 OK");
    app.set_checks_passing(false);
    EXPECT_EQ(status_of(get(app.port(), "/_ready")), "HTTP/1.1 503 Service Unavailable");
    app.set_checks_passing(true);
    app.begin_drain();  // listeners still open: /_ready says 503, requests are still served
    EXPECT_EQ(body_of(get(app.port(), "/_ready")), "draining\n");
    EXPECT_EQ(status_of(get(app.port(), "/items/1")), "HTTP/1.1 200 OK");
    app.stop();
    app.wait();
}

// The three paths are the engine's whatever the method: another method is told which ones they answer (405 and
// Allow, as a route would), not given the app's 404; other /_ paths stay the app's.
TEST(OpsEndpoints, AnotherMethodOnAnOperationsPathIsRefusedWithAllow) {
    covet::App app;
    app.post("/_jobs", [](covet::Request&) { return covet::Response::text("queued"); });
    app.config().ops.endpoints = true;
    app.listen("127.0.0.1", 0).start(1);
    for (const std::string_view target : {"/_health", "/_ready", "/_metrics"}) {
        const std::string r =
            fetch(app.port(), "POST " + std::string(target) + " HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
        EXPECT_EQ(status_of(r), "HTTP/1.1 405 Method Not Allowed") << target;
        EXPECT_NE(r.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos) << r;
    }
    const std::string del = fetch(app.port(), "DELETE /_health HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(status_of(del), "HTTP/1.1 405 Method Not Allowed");
    EXPECT_EQ(body_of(del), "405 Method Not Allowed: /_health answers GET and HEAD\n");
    EXPECT_EQ(body_of(fetch(app.port(), "POST /_jobs HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")), "queued");
    EXPECT_EQ(status_of(fetch(app.port(), "POST /_other HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")),
              "HTTP/1.1 404 Not Found");
    app.stop();
    app.wait();
}

TEST(OpsEndpoints, EndpointsAreOffByDefaultAndTheTokenGuardsMetrics) {
    covet::App off;
    off.listen("127.0.0.1", 0).start(1);
    EXPECT_EQ(status_of(get(off.port(), "/_metrics")), "HTTP/1.1 404 Not Found");
    off.stop();
    off.wait();

    covet::App app;
    app.config().ops.endpoints = true;
    app.config().ops.token = "s3cret";
    app.listen("127.0.0.1", 0).start(1);
    EXPECT_EQ(status_of(get(app.port(), "/_metrics")), "HTTP/1.1 401 Unauthorized");
    EXPECT_EQ(status_of(get(app.port(), "/_metrics", "Authorization: Bearer wrong\r\n")), "HTTP/1.1 401 Unauthorized");
    const std::string ok =
        get(app.port(), "/_metrics", "Authorization: Bearer s3cret\r\nAccept: application/openmetrics-text\r\n");
    EXPECT_EQ(status_of(ok), "HTTP/1.1 200 OK");
    EXPECT_NE(ok.find("application/openmetrics-text; version=1.0.0"), std::string::npos);
    EXPECT_EQ(ok.substr(ok.size() - 6), "# EOF\n");
    EXPECT_EQ(status_of(get(app.port(), "/_health")), "HTTP/1.1 200 OK");  // probes need no token
    app.stop();
    app.wait();
}

TEST(OpsEndpoints, TheOperationsListenerServesThemApartFromTheAppPort) {
    covet::App app;
    app.get("/", [](covet::Request&) { return covet::Response::text("hi"); });
    app.config().ops.port = 0;  // set below once a free port is known
    // Find a free port for the operations listener: bind a probe app on 0 first.
    covet::App probe;
    probe.listen("127.0.0.1", 0).start(1);
    const std::uint16_t free_port = probe.port();
    probe.stop();
    probe.wait();
    app.config().ops.port = free_port;
    app.listen("127.0.0.1", 0).start(1);
    ASSERT_EQ(app.ops_port(), free_port);
    EXPECT_EQ(status_of(get(app.port(), "/_metrics")), "HTTP/1.1 404 Not Found");  // not on the app's port
    EXPECT_EQ(status_of(get(free_port, "/_metrics")), "HTTP/1.1 200 OK");
    EXPECT_EQ(status_of(get(free_port, "/")), "HTTP/1.1 404 Not Found");  // and no app routes there
    app.begin_drain();
    EXPECT_EQ(status_of(get(free_port, "/_ready")), "HTTP/1.1 503 Service Unavailable");
    app.stop();
    app.wait();
}

// Liveness: a handler that blocks its worker's loop (a native handler that never returns soon) turns /_health on
// the operations listener (its own thread) into 503 once the loop has not turned for health_stall; once the loop
// turns again, 200. The app's own loop is not watched unless its host reports it (App::loop_turned).
TEST(OpsEndpoints, HealthFailsWhileAHandlerBlocksAWorkerLoop) {
    using namespace std::chrono_literals;
    covet::App app;
    std::atomic<bool> release{false};
    app.get("/block", [&release](covet::Request&) {
        while (!release.load()) std::this_thread::sleep_for(5ms);
        return covet::Response::text("released");
    });
    covet::App probe;  // a free port for the operations listener
    probe.listen("127.0.0.1", 0).start(1);
    const std::uint16_t ops = probe.port();
    probe.stop();
    probe.wait();
    app.config().ops.port = ops;
    app.config().ops.health_stall = 1000ms;  // 4 sweep intervals: no flapping on a loaded machine
    app.listen("127.0.0.1", 0).start(1);
    std::this_thread::sleep_for(1500ms);  // idle for longer than the limit: an idle loop still turns (its timer)
    EXPECT_EQ(status_of(get(ops, "/_health")), "HTTP/1.1 200 OK");
    std::string blocked;
    std::thread client([&] { blocked = get(app.port(), "/block"); });
    std::string health;
    for (int i = 0; i < 150; ++i) {  // up to 4.5 s
        health = get(ops, "/_health");
        if (status_of(health) != "HTTP/1.1 200 OK") break;
        std::this_thread::sleep_for(30ms);
    }
    release = true;
    client.join();
    EXPECT_EQ(status_of(health), "HTTP/1.1 503 Service Unavailable") << health;
    EXPECT_NE(body_of(health).find("an engine worker's loop has not turned for"), std::string::npos) << health;
    EXPECT_EQ(body_of(blocked), "released");
    std::string after;
    for (int i = 0; i < 100; ++i) {  // the loop's next sweep timer says it turns again
        after = get(ops, "/_health");
        if (status_of(after) == "HTTP/1.1 200 OK") break;
        std::this_thread::sleep_for(30ms);
    }
    EXPECT_EQ(status_of(after), "HTTP/1.1 200 OK");
    app.loop_turned();  // a host loop that then stops reporting is watched too
    std::this_thread::sleep_for(1500ms);
    EXPECT_NE(body_of(get(ops, "/_health")).find("the app's event loop has not turned for"), std::string::npos);
    app.begin_drain();  // never during a graceful stop: a draining worker is not restarted by its probe
    EXPECT_EQ(status_of(get(ops, "/_health")), "HTTP/1.1 200 OK");
    app.stop();
    app.wait();
}

// A supervisor's socket, already listening (OpsConfig::inherited_listener): the operations listener accepts from it
// instead of binding, and leaves it listening when it stops (the next worker generation takes its queue).
TEST(OpsEndpoints, TheOperationsListenerAdoptsAnInheritedSocket) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(fd, 16), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    const std::uint16_t port = ntohs(addr.sin_port);
    for (int generation = 0; generation < 2; ++generation) {
        covet::App app;
        app.config().ops.port = port;
        app.config().ops.inherited_listener = fd;
        app.listen("127.0.0.1", 0).start(1);
        ASSERT_EQ(app.ops_port(), port);
        EXPECT_EQ(status_of(get(port, "/_health")), "HTTP/1.1 200 OK") << "generation " << generation;
        app.stop();
        app.wait();
    }
    int listening = 0;
    len = sizeof listening;
    ASSERT_EQ(::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len), 0);
    EXPECT_EQ(listening, 1);  // still ours, still listening
    ::close(fd);
}
