// The native hello-world service: the routes the tests and benchmarks use.
//
//   hello --port 8000 --threads 0 --backend auto|uring|asio [--host H] [limits/timeouts, see --help]
#include <covet/app/json_body.hpp>
#include <covet/covet.hpp>
#include <covet/middleware/cors.hpp>
#include <covet/middleware/security_headers.hpp>
#include <covet/ratelimit/middleware.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// The benchmark's post-json model (bench/peers/*: pydantic's Item, actix's serde struct).
struct Item {
    std::string name;
    double price = 0;
    std::vector<std::string> tags;
    std::string description;
};
struct ItemSummary {
    std::string name;
    std::size_t tag_count = 0;
};

template <>
struct covet::json::Model<Item> {
    static constexpr auto fields = std::tuple{field("name", &Item::name), field("price", &Item::price),
                                              field("tags", &Item::tags), field("description", &Item::description)};
};
template <>
struct covet::json::Model<ItemSummary> {
    static constexpr auto fields =
        std::tuple{field("name", &ItemSummary::name), field("tag_count", &ItemSummary::tag_count)};
};

namespace {

// Completes responders after a delay, from its own thread: shows handlers finishing later and off the
// reactor thread (the way Python async handlers and outgoing I/O complete).
class DelayQueue {
public:
    DelayQueue() : thread_([this] { loop(); }) {}
    ~DelayQueue() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    void after(std::chrono::milliseconds delay, covet::Responder responder, covet::Response response) {
        std::lock_guard lock(mutex_);
        queue_.emplace(std::chrono::steady_clock::now() + delay, Item{std::move(responder), std::move(response)});
        cv_.notify_all();
    }

private:
    struct Item {
        covet::Responder responder;
        covet::Response response;
    };
    void loop() {
        std::unique_lock lock(mutex_);
        while (!done_) {
            if (queue_.empty()) {
                cv_.wait(lock);
                continue;
            }
            auto due = queue_.begin()->first;
            if (cv_.wait_until(lock, due) == std::cv_status::timeout || std::chrono::steady_clock::now() >= due) {
                auto node = queue_.extract(queue_.begin());
                lock.unlock();
                node.mapped().responder.send(std::move(node.mapped().response));
                lock.lock();
            }
        }
    }
    std::mutex mutex_;
    std::condition_variable cv_;
    std::multimap<std::chrono::steady_clock::time_point, Item> queue_;
    bool done_ = false;
    std::thread thread_;
};

std::string json_string(std::optional<std::string_view> v) {
    if (!v) return "null";
    std::string out;
    covet::json::write_string(out, *v);
    return out;
}

[[noreturn]] void usage(int code) {
    std::fprintf(code ? stderr : stdout,
                 "usage: hello [--host H] [--port N] [--threads N] [--backend auto|uring|asio]\n"
                 "             [--max-body BYTES] [--max-header-bytes N] [--max-headers N] [--max-url N]\n"
                 "             [--header-timeout-ms N] [--body-timeout-ms N] [--idle-timeout-ms N]\n"
                 "             [--body-deadline-ms N] [--min-body-rate BYTES_PER_S] [--min-body-rate-grace-ms N]\n"
                 "             [--max-connections N] [--shutdown-timeout-ms N] [--pin]\n"
                 "             [--log-level trace|debug|info|warn|error|off] [--log-format text|json]\n"
                 "             [--access-log off|text|json] [--trace off|SAMPLER[:RATIO]]\n"
                 "             [--tls-cert FILE --tls-key FILE] [--tls-sni-cert CERT,KEY]... [--no-tls12]\n"
                 "             [--tls-ca FILE --tls-client-auth none|optional|required] [--no-http2] [--http3] "
                 "[--h3-retry] [--h3-retry-above N] [--h3-0rtt] [--h3-preferred-address IP:PORT]\n"
                 "             [--forwarded-allow-ips IPS (default 127.0.0.1)] [--no-proxy-headers]\n"
                 "             [--metrics] [--no-metrics] [--rate-limit] [--rate-limit-no-headers]\n"
                 "             [--security-headers] [--cors ORIGIN] [--proxy-protocol IPS]\n"
                 "TLS: SIGHUP reloads the certificate files. HTTP/2: h2 via ALPN, h2c on plain ports.\n");
    std::exit(code);  // NOLINT(concurrency-mt-unsafe): argument parsing, before any thread starts
}

unsigned long number(const char* flag, const char* value) {
    char* end = nullptr;
    const unsigned long n = std::strtoul(value, &end, 10);
    if (!*value || *end) {
        std::fprintf(stderr, "hello: %s expects a number, got '%s'\n", flag, value);
        std::exit(2);  // NOLINT(concurrency-mt-unsafe): argument parsing, before any thread starts
    }
    return n;
}

}  // namespace

int main(int argc, char** argv) {
    // Before anything else: a SIGTERM that arrives while starting must still mean a graceful exit.
    covet::net::block_termination_signals();
    covet::App app;
    auto& cfg = app.config();
    cfg.host = "127.0.0.1";
    cfg.port = 8000;
    std::string log_level = "warn", access_log = "off", trace = "off", cors_origin;
    int rate_limit = 0;  // 1: --rate-limit, 2: --rate-limit-no-headers
    bool security_headers = false;
    covet::LogFormat log_format = covet::LogFormat::text;
    covet::net::TlsConfig tls;
    std::string tls_cert, tls_key;
    std::vector<covet::net::TlsCertificate> sni_certs;
    for (int i = 1; i < argc; ++i) {
        const std::string_view flag = argv[i];
        if (flag == "--help" || flag == "-h") usage(0);
        if (flag == "--pin") {
            cfg.pin_threads = true;
            continue;
        }
        if (flag == "--no-http2") {
            cfg.http2 = false;
            continue;
        }
        if (flag == "--http3") {  // HTTP/3 over QUIC on the same port number (UDP); needs --tls-cert/--tls-key
            cfg.http3.enabled = true;
            continue;
        }
        if (flag == "--h3-0rtt") {  // HTTP/3: accept 0-RTT early data (GET/HEAD/OPTIONS; others get 425)
            cfg.http3.early_data = true;
            continue;
        }
        if (flag == "--h3-retry") {  // HTTP/3: every new client validates its address with a Retry first
            cfg.http3.retry = true;
            continue;
        }
        if (flag == "--no-proxy-headers") {
            cfg.proxy_headers.enabled = false;
            continue;
        }
        if (flag == "--security-headers") {  // SecurityHeadersMiddleware with its defaults (bench: its cost)
            security_headers = true;
            continue;
        }
        if (flag == "--no-metrics") {  // the engine's metrics are recorded unless this (bench: their cost)
            cfg.ops.record_metrics = false;
            continue;
        }
        if (flag == "--rate-limit" || flag == "--rate-limit-no-headers") {  // bench: the limiter's cost
            rate_limit = flag == "--rate-limit" ? 1 : 2;
            continue;
        }
        if (flag == "--metrics") {  // GET /_metrics, /_health, /_ready on the app's port
            cfg.ops.endpoints = true;
            continue;
        }
        if (flag == "--no-tls12") {
            tls.allow_tls12 = false;
            continue;
        }
        if (i + 1 >= argc) usage(2);
        const char* v = argv[++i];
        using ms = std::chrono::milliseconds;
        if (flag == "--host")
            cfg.host = v;
        else if (flag == "--port")
            cfg.port = static_cast<std::uint16_t>(number(argv[i - 1], v));
        else if (flag == "--threads")
            cfg.threads = static_cast<unsigned>(number(argv[i - 1], v));
        else if (flag == "--backend") {
            if (std::string_view(v) == "auto")
                cfg.backend.reset();
            else if (auto b = covet::io::parse_backend(v))
                cfg.backend = b;
            else {
                std::fprintf(stderr, "hello: --backend must be auto, uring or asio (got '%s')\n", v);
                return 2;
            }
        } else if (flag == "--max-body")
            cfg.limits.max_body_bytes = number(argv[i - 1], v);
        else if (flag == "--max-header-bytes")
            cfg.limits.max_header_bytes = number(argv[i - 1], v);
        else if (flag == "--max-headers")
            cfg.limits.max_headers = number(argv[i - 1], v);
        else if (flag == "--max-url")
            cfg.limits.max_url_bytes = number(argv[i - 1], v);
        else if (flag == "--max-connections")
            cfg.limits.max_connections = number(argv[i - 1], v);
        else if (flag == "--h3-retry-above")  // HTTP/3: Retry once this many handshakes are in progress
            cfg.http3.retry_above_handshakes = number(argv[i - 1], v);
        else if (flag == "--h3-preferred-address")  // HTTP/3: clients migrate there after the handshake
            cfg.http3.preferred_address = v;
        else if (flag == "--header-timeout-ms")
            cfg.timeouts.header = ms(number(argv[i - 1], v));
        else if (flag == "--body-timeout-ms")
            cfg.timeouts.body = ms(number(argv[i - 1], v));
        else if (flag == "--body-deadline-ms")
            cfg.timeouts.body_deadline = ms(number(argv[i - 1], v));
        else if (flag == "--min-body-rate")
            cfg.timeouts.min_body_rate = number(argv[i - 1], v);
        else if (flag == "--min-body-rate-grace-ms")
            cfg.timeouts.min_body_rate_grace = ms(number(argv[i - 1], v));
        else if (flag == "--idle-timeout-ms")
            cfg.timeouts.keep_alive = ms(number(argv[i - 1], v));
        else if (flag == "--shutdown-timeout-ms")
            cfg.timeouts.shutdown = ms(number(argv[i - 1], v));
        else if (flag == "--log-level")
            log_level = v;
        else if (flag == "--log-format")
            log_format = std::string_view(v) == "json" ? covet::LogFormat::json : covet::LogFormat::text;
        else if (flag == "--access-log")
            access_log = v;
        else if (flag == "--trace")
            trace = v;
        else if (flag == "--cors")  // CorsMiddleware allowing this origin (bench: its cost)
            cors_origin = v;
        else if (flag == "--proxy-protocol") {  // PROXY protocol v1/v2 from these load balancers
            try {
                cfg.proxy_protocol.trusted = covet::net::TrustedProxies(v);
                cfg.proxy_protocol.enabled = true;
            } catch (const std::invalid_argument& e) {
                std::fprintf(stderr, "hello: --proxy-protocol: %s\n", e.what());
                return 2;
            }
        } else if (flag == "--forwarded-allow-ips") {
            try {
                cfg.proxy_headers.trusted = covet::net::TrustedProxies(v);
            } catch (const std::invalid_argument& e) {
                std::fprintf(stderr, "hello: --forwarded-allow-ips: %s\n", e.what());
                return 2;
            }
        } else if (flag == "--tls-cert")
            tls_cert = v;
        else if (flag == "--tls-key")
            tls_key = v;
        else if (flag == "--tls-ca")
            tls.ca_file = v;
        else if (flag == "--tls-sni-cert") {
            const std::string_view pair = v;
            const std::size_t comma = pair.find(',');
            if (comma == std::string_view::npos) {
                std::fprintf(stderr, "hello: --tls-sni-cert expects CERT,KEY (got '%s')\n", v);
                return 2;
            }
            sni_certs.push_back({std::string(pair.substr(0, comma)), std::string(pair.substr(comma + 1))});
        } else if (flag == "--tls-client-auth") {
            const std::string_view mode = v;
            if (mode == "none")
                tls.client_auth = covet::net::ClientAuth::none;
            else if (mode == "optional")
                tls.client_auth = covet::net::ClientAuth::optional;
            else if (mode == "required")
                tls.client_auth = covet::net::ClientAuth::required;
            else {
                std::fprintf(stderr, "hello: --tls-client-auth must be none, optional or required (got '%s')\n", v);
                return 2;
            }
        } else {
            std::fprintf(stderr, "hello: unknown option %s\n", argv[i - 1]);
            usage(2);
        }
    }

    if (tls_cert.empty() != tls_key.empty() || (tls_cert.empty() && (!sni_certs.empty() || !tls.ca_file.empty()))) {
        std::fprintf(stderr, "hello: TLS needs both --tls-cert and --tls-key\n");
        return 2;
    }
    if (!tls_cert.empty()) {
        tls.certificates.push_back({tls_cert, tls_key});
        for (auto& c : sni_certs) tls.certificates.push_back(std::move(c));
        cfg.tls = std::move(tls);
    }

    try {
        covet::configure_logging(log_level, log_format);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "hello: %s\n", e.what());
        return 2;
    }

    // --trace parentbased_traceidratio:0.01: a native span per request (outermost), drained every 200 ms by a
    // thread here (an exporter's place; the spans are discarded).
    std::shared_ptr<covet::trace::Tracer> tracer;
    if (trace != "off") {
        const std::size_t colon = trace.find(':');
        try {
            covet::trace::TracerOptions options;
            options.sampler = covet::trace::Sampler::from_name(
                trace.substr(0, colon), colon == std::string::npos ? 1.0 : std::stod(trace.substr(colon + 1)));
            tracer = std::make_shared<covet::trace::Tracer>(options);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "hello: --trace: %s\n", e.what());
            return 2;
        }
        app.use(std::make_unique<covet::trace::TracingMiddleware>(tracer));
        std::thread([tracer] {
            std::vector<covet::trace::SpanRecord> spans;
            for (;;) {
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
                spans.clear();
                tracer->drain(spans);
            }
        }).detach();
    }
    app.use(std::make_unique<covet::RequestIdMiddleware>());
    if (rate_limit) {  // a per-client-address limit no benchmark reaches: every request checked, none refused
        covet::ratelimit::RateLimitOptions options;
        options.rules.push_back({.name = "per-ip", .limit = 1'000'000'000, .period = std::chrono::seconds(1)});
        options.headers = rate_limit == 1;
        app.use(std::make_unique<covet::ratelimit::RateLimitMiddleware>(std::move(options)));
    }
    if (access_log != "off")
        app.use(std::make_unique<covet::AccessLogMiddleware>(access_log == "json" ? covet::LogFormat::json
                                                                                  : covet::LogFormat::text));

    if (!cors_origin.empty())
        app.use(std::make_unique<covet::CorsMiddleware>(covet::CorsOptions{.allow_origins = {cors_origin}}));
    if (security_headers) app.use(std::make_unique<covet::SecurityHeadersMiddleware>(covet::SecurityHeadersOptions{}));

    DelayQueue delays;

    app.get("/plaintext", [](covet::Request&) { return covet::Response(200, "Hello, World!", "text/plain"); });
    app.get("/json", [](covet::Request&) { return covet::Response::json(R"({"message":"Hello, World!"})"); });
    app.get("/users/{id:int}", [](covet::Request& r) {  // ?q=... is echoed back when given
        const auto q = r.query("q");
        return covet::Response::json("{\"id\":" + std::string(*r.param("id")) +
                                     (q ? ",\"q\":" + json_string(std::string_view(*q)) : std::string()) + "}");
    });
    // A body validated by a model (the benchmark's post-json, as FastAPI's `async def items(item: Item)`):
    // 422 with FastAPI's detail body when it is not an Item.
    app.post("/items", covet::json_body<Item>([](Item& item, covet::Request&) {
                 return ItemSummary{std::move(item.name), item.tags.size()};
             }));
    app.post("/echo", [](covet::Request& r) {
        return covet::Response::bytes(std::string(r.body()),
                                      r.header("content-type").value_or("application/octet-stream"));
    });
    app.get("/search", [](covet::Request& r) { return covet::Response(200, r.query("q").value_or(""), "text/plain"); });
    app.get("/headers", [](covet::Request& r) {
        return covet::Response::json("{\"user-agent\":" + json_string(r.header("user-agent")) +
                                     ",\"x-test\":" + json_string(r.header("x-test")) + "}");
    });
    app.get("/stream", [](covet::Request&, covet::Responder responder) {
        covet::StreamWriter stream = responder.stream(covet::Response(200, "", "text/plain"));
        for (int i = 0; i < 3; ++i) stream.write("chunk-" + std::to_string(i) + "\n");
        stream.end();
    });
    app.get("/delayed", [&delays](covet::Request& r, covet::Responder responder) {
        const std::string ms = r.query("ms").value_or("0");
        char* end = nullptr;
        const long n = std::strtol(ms.c_str(), &end, 10);
        if (ms.empty() || *end || n < 0 || n > 60'000) {
            responder.send(covet::Response(400, "ms must be an integer between 0 and 60000\n", "text/plain"));
            return;
        }
        delays.after(std::chrono::milliseconds(n), std::move(responder),
                     covet::Response(200, "delayed " + ms, "text/plain"));
    });

    // What the request knows about its connection: protocol version and TLS session.
    app.get("/tls", [](covet::Request& r) {
        const covet::net::TlsInfo* t = r.tls();
        auto str = [](std::string_view v) { return json_string(std::optional<std::string_view>(v)); };
        std::string body = "{\"scheme\":" + str(r.scheme()) + ",\"protocol\":" + str(r.protocol());
        if (t) {
            body += ",\"tls_version\":" + str(t->version) + ",\"cipher\":" + str(t->cipher) +
                    ",\"alpn\":" + str(t->alpn) + ",\"sni\":" + str(t->server_name) +
                    ",\"session_reused\":" + (t->session_reused ? "true" : "false") +
                    ",\"client_verified\":" + (t->client_verified ? "true" : "false") +
                    ",\"client_subject\":" + str(t->client_subject) + ",\"client_cn\":" + str(t->client_common_name);
        } else {
            body +=
                ",\"tls_version\":null,\"cipher\":null,\"alpn\":null,\"sni\":null,\"session_reused\":false"
                ",\"client_verified\":false,\"client_subject\":\"\",\"client_cn\":\"\"";
        }
        return covet::Response::json(body + "}");
    });

    // WebSocket: an echo, and chat rooms where every message goes to each connection in the room (on
    // this worker: the hub fans out natively, framing each message once).
    covet::ws::Handlers echo;
    echo.on_message = [](const covet::ws::WebSocket& ws, std::string_view data, bool binary) { ws.send(data, binary); };
    app.ws("/ws/echo", std::move(echo));
    covet::ws::Handlers room;
    room.on_open = [](const covet::ws::WebSocket& ws) {
        if (covet::ws::Hub* hub = covet::ws::Hub::this_worker(ws)) hub->subscribe(ws, ws.path());
    };
    room.on_message = [](const covet::ws::WebSocket& ws, std::string_view data, bool binary) {
        if (covet::ws::Hub* hub = covet::ws::Hub::this_worker(ws)) hub->publish(ws.path(), data, binary);
    };
    app.ws("/ws/room/{name}", std::move(room));

    // The benchmarks' I/O-bound handler: answers after 1 ms, like an `await asyncio.sleep(0.001)`.
    app.get("/sleep", [&delays](covet::Request&, covet::Responder responder) {
        delays.after(std::chrono::milliseconds(1), std::move(responder),
                     covet::Response(200, "Hello, World!", "text/plain"));
    });

    covet::net::block_termination_signals();  // as run() does, before start(): no SIGTERM race with the line below
    try {
        app.start();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "hello: %s\n", e.what());
        return 1;
    }
    std::printf("listening on %s:%u backend=%s threads=%u\n", cfg.host.c_str(), app.port(),
                std::string(covet::io::to_string(app.backend())).c_str(),
                app.config().threads ? app.config().threads : std::thread::hardware_concurrency());
    std::fflush(stdout);
    return app.run();
}
