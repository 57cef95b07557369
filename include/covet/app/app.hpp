// covet::App: routes + middleware + a server. The native C++ API.
//
//   covet::App app;
//   app.get("/users/{id:int}", [](covet::Request& r) {
//       return covet::Response::json("{\"id\":" + std::string(*r.param("id")) + "}");
//   });
//   app.listen("0.0.0.0", 8000).run(/*threads=*/0);   // 0 = one per core; returns on SIGINT/SIGTERM
//
// Handlers either return a Response (run inline on the worker thread: keep them short), or take a
// Responder and complete it later, from any thread, which is how async work plugs in without blocking a
// reactor thread. A handler that also takes a RequestBody streams large request bodies (uploads):
//
//   app.post("/upload", [](covet::Request& r, covet::Responder res, covet::RequestBody body) { ... });
//
// A body over Limits::stream_body_threshold then reaches it as it arrives (body.read(reader), then
// body.consume(n) for the bytes handled: see covet/http/body_stream.hpp), within max_stream_body_bytes;
// smaller bodies come whole in r.body() with an empty `body`.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "covet/app/context.hpp"
#include "covet/app/protocol_switch.hpp"
#include "covet/app/route_limits.hpp"
#include "covet/http/body_stream.hpp"
#include "covet/http/exchange.hpp"
#include "covet/http/request.hpp"
#include "covet/http/response.hpp"
#include "covet/http/upgrade.hpp"
#include "covet/middleware/middleware.hpp"
#include "covet/net/server.hpp"
#include "covet/net/server_config.hpp"
#include "covet/router/router.hpp"
#include "covet/ws/options.hpp"
#include "covet/ws/route.hpp"
#include "covet/ws/websocket.hpp"

namespace covet {

using Handler = std::function<Response(Request&)>;
using AsyncHandler = std::function<void(Request&, Responder)>;
// Accepts streamed request bodies: `body` is set when request.body_streamed() (else the body is whole).
using StreamingHandler = std::function<void(Request&, Responder, RequestBody body)>;
// Per-connection WebSocket handlers, made from the upgrade request (its path parameters, query, headers
// are valid during the call). Null refuses the upgrade with 403.
using WebSocketFactory = std::function<std::shared_ptr<const ws::Handlers>(Request&)>;

class App final : public RequestDispatcher {
public:
    App();
    ~App() override;

    // Registration (before start). Conflicting or malformed routes throw covet::RouteError. `limits`: the
    // route's own (covet/app/route_limits.hpp).
    App& route(Method method, std::string_view pattern, Handler handler, RouteLimits limits = {});
    App& route(Method method, std::string_view pattern, AsyncHandler handler, RouteLimits limits = {});
    App& route(Method method, std::string_view pattern, StreamingHandler handler, RouteLimits limits = {});
    App& route(std::initializer_list<Method> methods, std::string_view pattern, const Handler& handler,
               RouteLimits limits = {});

    template <class H>
    App& get(std::string_view p, H&& h, RouteLimits limits = {}) {
        return add(Method::get, p, std::forward<H>(h), limits);
    }
    template <class H>
    App& post(std::string_view p, H&& h, RouteLimits limits = {}) {
        return add(Method::post, p, std::forward<H>(h), limits);
    }
    template <class H>
    App& put(std::string_view p, H&& h, RouteLimits limits = {}) {
        return add(Method::put, p, std::forward<H>(h), limits);
    }
    template <class H>
    App& patch(std::string_view p, H&& h, RouteLimits limits = {}) {
        return add(Method::patch, p, std::forward<H>(h), limits);
    }
    template <class H>
    App& del(std::string_view p, H&& h, RouteLimits limits = {}) {
        return add(Method::del, p, std::forward<H>(h), limits);
    }
    template <class H>
    App& head(std::string_view p, H&& h, RouteLimits limits = {}) {
        return add(Method::head, p, std::forward<H>(h), limits);
    }
    template <class H>
    App& options(std::string_view p, H&& h, RouteLimits limits = {}) {
        return add(Method::options, p, std::forward<H>(h), limits);
    }

    // WebSocket routes (GET + Upgrade: websocket over HTTP/1.1; patterns as for HTTP routes). The same
    // handlers serve every connection, or `factory` makes them per connection from the upgrade request.
    App& ws(std::string_view pattern, ws::Handlers handlers, ws::Options options = {});
    App& ws(std::string_view pattern, WebSocketFactory factory, ws::Options options = {});

    App& use(std::unique_ptr<Middleware> middleware);
    std::vector<std::pair<Method, std::string>> routes() const { return router_.routes(); }
    // Bodies of the app's own 404/405/500 answers: `{"detail":"Not Found"}` (FastAPI's shape, JSON) instead
    // of plain text. Protocol-level refusals (400, 413, 431, ...) stay plain text.
    App& json_errors(bool on = true) noexcept {
        json_errors_ = on;
        return *this;
    }

    // Server settings: limits, timeouts, backend, threads, host/port.
    net::ServerConfig& config() noexcept { return config_; }
    const net::ServerConfig& config() const noexcept { return config_; }
    App& listen(std::string host, std::uint16_t port);

    // Starts the server and blocks until SIGINT/SIGTERM (or stop()), then drains gracefully. Returns 0.
    // SIGHUP reloads the TLS certificate files meanwhile (ignored without TLS).
    int run(unsigned threads = 0);
    // Non-blocking variants for embedding and tests.
    void start(unsigned threads = 0);
    void stop();
    void wait();
    // Embedded mode: the server runs on the caller's event loop (see net::Server::start_embedded).
    void start_embedded();

    // Readiness (GET /_ready, see net::OpsConfig): 200 while the app is ready, its readiness checks pass and
    // it is not draining; 503 otherwise. The app is ready from start() unless set_ready(false) (a host that
    // starts the server before its own startup ends); begin_drain() (stop() and run()'s signal do it)
    // answers 503 from then on, before the listeners close.
    void set_ready(bool ready) noexcept { ready_.store(ready, std::memory_order_relaxed); }
    void set_checks_passing(bool passing) noexcept { checks_passing_.store(passing, std::memory_order_relaxed); }
    void begin_drain() noexcept { draining_.store(true, std::memory_order_relaxed); }
    bool ready() const noexcept {
        return ready_.load(std::memory_order_relaxed) && checks_passing_.load(std::memory_order_relaxed) &&
               !draining_.load(std::memory_order_relaxed);
    }
    bool draining() const noexcept { return draining_.load(std::memory_order_relaxed); }
    // Liveness (GET /_health): 503 once a loop of this app has not turned for longer than
    // net::OpsConfig::health_stall. The engine's worker loops are watched by themselves; a host whose own event
    // loop runs the handlers beside the engine's threads (Python's asyncio loop) calls loop_turned() from that
    // loop, at least a few times per health_stall, and from the first call on that loop is watched too.
    void loop_turned() noexcept {
        loop_turned_.store(io::Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    }
    // Why the app is not live ("" while it is): which loop has stalled, for how long, and the limit.
    std::string stalled() const;
    // The port of the operations listener (net::OpsConfig::port) once started, or 0.
    std::uint16_t ops_port() const noexcept;
    // Reloads the TLS certificates for new connections (any thread). Throws if loading fails; the old
    // ones stay in use.
    void reload_tls();
    net::Server* server() noexcept { return server_.get(); }
    const net::Server* server() const noexcept { return server_.get(); }
    std::uint16_t port() const noexcept;
    io::Backend backend() const noexcept;

    // ---- RequestDispatcher ----
    // Its ExchangeState is a RequestContext (covet/app/context.hpp).
    std::unique_ptr<ExchangeState> make_exchange_state() override;
    void dispatch(Request& request, ExchangeState* state, Responder responder) override;
    void finalize(const Request& request, ExchangeState* state, Response& response) noexcept override;
    void finalize_stream(const Request& request, ExchangeState* state, Response& head) noexcept override;
    std::string_view filter_body(ExchangeState* state, std::string_view chunk, bool last) noexcept override;
    void exchange_over(ExchangeState* state) noexcept override;
    bool upgrade(Request& request, Upgrade& upgrade) override;
    bool stream_body(Request& request) override;

private:
    struct RouteTarget {
        Handler sync;
        AsyncHandler async;
        StreamingHandler streaming;
        std::uint16_t metric_route = 0;  // the route's http_route label (covet/metrics/http_metrics.hpp)
        RouteLimits limits;
    };
    // Every route() ends here: `target` under each of `methods`, and route_body_limits_ kept up to date.
    App& add_route(std::initializer_list<Method> methods, std::string_view pattern, RouteTarget target);
    std::uint64_t route_body_limit(Request& request) override;
    // 413 when the request's body (whole, or as declared while it streams) is over `limits`; else false.
    bool refuse_over_route_limits(const Request& request, const RouteLimits& limits, Responder& responder) const;
    // GET /_health, /_ready and the metrics path, answered here when `ops` (the app's endpoints, or the
    // operations listener's app); false: not one of them.
    bool answer_ops(const Request& request, Responder& responder);
    void start_ops();

    template <class H>
    App& add(Method m, std::string_view p, H&& h, RouteLimits limits) {
        if constexpr (std::is_invocable_v<H&, Request&, Responder, RequestBody>)
            return route(m, p, StreamingHandler(std::forward<H>(h)), limits);
        else if constexpr (std::is_invocable_v<H&, Request&, Responder>)
            return route(m, p, AsyncHandler(std::forward<H>(h)), limits);
        else
            return route(m, p, Handler(std::forward<H>(h)), limits);
    }

    void make_server();
    // make_server(), then `start_server` on it and start_ops(); a failure part-way drops both servers again.
    void launch(void (net::Server::*start_server)());

    struct WebSocketTarget {
        std::shared_ptr<const ws::Handlers> shared;  // one set for all connections, or
        WebSocketFactory factory;                    // per connection
        ws::Options options;
    };

    Router<RouteTarget> router_;
    Router<WebSocketTarget> ws_router_;
    std::vector<std::unique_ptr<Middleware>> middleware_;
    // The middleware whose `before` (or `after`) the app calls (Middleware::hooks), in order, each with its
    // place in middleware_: a flat list per hook, no call per request to a hook that does nothing.
    struct HookCall {
        Middleware* middleware;
        std::size_t position;
    };
    // `before` hooks per request method (Middleware::before_methods; indexed by the Method's value, 16 slots so
    // that any byte masked to 4 bits is in range), `after` hooks for all.
    std::array<std::vector<HookCall>, 16> before_hooks_;
    std::vector<HookCall> after_hooks_;
    // The `before` hooks in order, up to the first that answers (its answer), leaving the context's depth set; a
    // std::exception from one becomes the app's 500 answer (before_failed). One call per request, not per hook.
    std::optional<Response> run_before_hooks(Request& request, RequestContext& context);
    std::optional<Response> before_failed(const Request& request, const std::exception& error) const;
    net::ServerConfig config_;
    app::ProtocolSwitch switch_{*this};  // every connection's protocol and every switch between protocols
    std::unique_ptr<net::Server> server_;
    std::atomic<bool> stop_requested_{false};
    bool json_errors_ = false;
    // `h3=":443"; ma=86400` when HTTP/3 is on (ServerConfig::http3): added to TCP answers. Set before workers run.
    std::string alt_svc_;
    void advertise_http3(Response& response) const noexcept;
    bool record_metrics_ = true;      // config_.ops.record_metrics, read at start
    bool ops_endpoints_ = false;      // answer the operations endpoints on this app's listener
    bool route_body_limits_ = false;  // a route has RouteLimits::max_body_bytes: heads are matched for it
    std::atomic<bool> ready_{true}, checks_passing_{true}, draining_{false};
    std::atomic<io::Clock::rep> loop_turned_{0};  // 0: no host loop reports (loop_turned)
    // The operations listener (net::OpsConfig::port): a small App of its own, one thread, whose readiness
    // is this one's (`ops_owner_`).
    std::unique_ptr<App> ops_app_;
    App* ops_owner_ = this;
};

}  // namespace covet
