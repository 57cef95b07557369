#include "covet/app/app.hpp"

#include <csignal>
#include <cstdio>
#include <thread>  // pthread_sigmask, sigtimedwait (POSIX, declared by glibc here too)

#include "../logging.hpp"
#include "covet/http/grpc_call.hpp"
#include "covet/http/request_builder.hpp"
#include "covet/http/status.hpp"
#include "covet/http3/server.hpp"
#include "covet/metrics/exposition.hpp"
#include "covet/metrics/http_metrics.hpp"

namespace covet {
namespace {

// The reason phrases contain no characters that need JSON escaping.
Response ops_text(std::string_view text, int status) { return Response::text(std::string(text), status); }

// A constant-time comparison of the bearer token (no early exit on the first differing byte).
bool token_matches(std::string_view given, std::string_view expected) noexcept {
    if (given.size() != expected.size()) return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < given.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ expected[i]);
    return diff == 0;
}

Response error_response(int status, bool json) {
    if (json) return Response::json(R"({"detail":")" + std::string(http::reason_phrase(status)) + R"("})", status);
    std::string body = std::to_string(status);
    body.append(" ").append(http::reason_phrase(status)).push_back('\n');
    return Response::text(std::move(body), status);
}

}  // namespace

App::App() = default;
App::~App() {
    if (server_) {
        server_->stop();
        server_->wait();
    }
}

App& App::route(Method method, std::string_view pattern, Handler handler, RouteLimits limits) {
    return add_route({method}, pattern, RouteTarget{std::move(handler), {}, {}, metrics::route_id(pattern), limits});
}

App& App::route(Method method, std::string_view pattern, AsyncHandler handler, RouteLimits limits) {
    return add_route({method}, pattern, RouteTarget{{}, std::move(handler), {}, metrics::route_id(pattern), limits});
}

App& App::route(Method method, std::string_view pattern, StreamingHandler handler, RouteLimits limits) {
    return add_route({method}, pattern, RouteTarget{{}, {}, std::move(handler), metrics::route_id(pattern), limits});
}

App& App::route(std::initializer_list<Method> methods, std::string_view pattern, const Handler& handler,
                RouteLimits limits) {
    return add_route(methods, pattern, RouteTarget{handler, {}, {}, metrics::route_id(pattern), limits});
}

App& App::add_route(std::initializer_list<Method> methods, std::string_view pattern, RouteTarget target) {
    // Set before router_.add, which may throw: a flag set in vain only costs a match per request.
    route_body_limits_ = route_body_limits_ || target.limits.max_body_bytes != 0;
    if (methods.size() == 0) return *this;
    // A copy for each method but the last, which takes the target itself (one method: no copy).
    const Method* last = methods.end() - 1;
    for (const Method* m = methods.begin(); m != last; ++m) router_.add(*m, pattern, target);
    router_.add(*last, pattern, std::move(target));
    return *this;
}

std::uint64_t App::route_body_limit(Request& request) {
    if (!route_body_limits_) return 0;  // no route has one: no match per request
    const auto match = router_.match(request.method(), request.path(), request.params());
    const std::uint64_t limit =
        match.status == Router<RouteTarget>::Status::found ? match.handler->limits.max_body_bytes : 0;
    request.params().clear();  // dispatch() matches again
    return limit;
}

bool App::refuse_over_route_limits(const Request& request, const RouteLimits& limits, Responder& responder) const {
    std::uint64_t size = request.body().size();
    if (request.body_streamed()) {  // still arriving: its declared length, when it has one
        size = http::parse_content_length(request.header("content-length").value_or("")).value_or(0);
    }
    if (size <= limits.max_body_bytes) return false;
    const std::string why = "the request body (" + std::to_string(size) +
                            " bytes) is larger than this route's limit of " + std::to_string(limits.max_body_bytes) +
                            " bytes; send less, or raise the route's limit (RouteLimits::max_body_bytes, "
                            "max_body_size= in Python)";
    Response r = json_errors_ ? Response::json(R"({"detail":")" + why + R"("})", 413) : Response::text(why + "\n", 413);
    if (request.body_streamed()) r.close_connection();  // what is left of the body is not read
    responder.send(std::move(r));
    return true;
}

App& App::ws(std::string_view pattern, ws::Handlers handlers, ws::Options options) {
    ws_router_.add(Method::get, pattern,
                   WebSocketTarget{std::make_shared<const ws::Handlers>(std::move(handlers)), {}, std::move(options)});
    return *this;
}

App& App::ws(std::string_view pattern, WebSocketFactory factory, ws::Options options) {
    ws_router_.add(Method::get, pattern, WebSocketTarget{nullptr, std::move(factory), std::move(options)});
    return *this;
}

bool App::upgrade(Request& request, Upgrade& upgrade) {
    if (upgrade.protocol != Upgrade::Protocol::websocket) return false;
    ws::Route& route = upgrade.websocket;
    for (const std::unique_ptr<Middleware>& m : middleware_) {
        if (std::optional<Response> refusal = m->before_upgrade(request)) {
            upgrade.refusal = std::move(refusal);
            return true;
        }
    }
    const auto match = ws_router_.match(Method::get, request.path(), request.params());
    if (match.status != Router<WebSocketTarget>::Status::found) {
        request.params().clear();
        return false;
    }
    const WebSocketTarget& target = *match.handler;
    route.options = target.options;
    route.handlers = target.shared ? target.shared : target.factory(request);
    return true;
}

namespace {

// What a gRPC client gets for a method no route serves: the status UNIMPLEMENTED, Trailers-Only (gRPC's
// answer to an unknown service; an HTTP 404 is read the same way by clients, with a less useful message).
Response grpc_unimplemented(const Request& request) {
    Response r(200);
    r.set_content_type("application/grpc");
    r.add_prechecked_header("grpc-status", "12");
    const std::string message = http::grpc_percent_encode("Method not found: " + std::string(request.path()));
    r.add_prechecked_header("grpc-message", message);
    return r;
}

}  // namespace

bool App::stream_body(Request& request) {
    const auto match = router_.match(request.method(), request.path(), request.params());
    request.params().clear();  // dispatch() matches again
    if (match.status == Router<RouteTarget>::Status::found) return static_cast<bool>(match.handler->streaming);
    // A gRPC call no route takes is dispatched at once (answered UNIMPLEMENTED): its client waits for the answer
    // before it sends more, and would get a 408 once its body stalls. Other requests keep being read whole first,
    // so that a protocol error in the rest of the body is still seen (h2spec 8.1).
    return http::is_grpc_call(request);
}

namespace {
// The after hooks in reverse order, for the middleware whose `before` ran: positions below the depth, a prefix of the
// list (positions ascend), so no test per hook. A std::exception from one is logged and the others still run.
template <class Hooks, class Call>
void run_after_hooks(const Hooks& hooks, std::size_t depth, const Call& call_hook) noexcept {
    const auto* const first = hooks.data();
    const auto* call = first + hooks.size();
    while (call != first && call[-1].position >= depth) --call;
    while (call != first) {
        --call;
        try {
            call_hook(*call->middleware);
        } catch (const std::exception& e) {
            logging::error("middleware after-hook failed: {}", e.what());
        }
    }
}
}  // namespace

App& App::use(std::unique_ptr<Middleware> middleware) {
    const unsigned hooks = middleware->hooks();
    const unsigned methods = middleware->before_methods();
    const HookCall call{middleware.get(), middleware_.size()};
    middleware_.push_back(std::move(middleware));
    if (hooks & Middleware::before_hook)
        for (std::size_t m = 0; m < before_hooks_.size(); ++m)
            if ((methods >> m) & 1u) before_hooks_[m].push_back(call);
    if (hooks & Middleware::after_hook) after_hooks_.push_back(call);
    return *this;
}

// Inlined into dispatch(), its one caller: no frame of its own per request.
[[gnu::always_inline]] inline std::optional<Response> App::run_before_hooks(Request& request, RequestContext& context) {
    // The depth counts every middleware up to the one that answered (those without a `before` hook too: their
    // `after` runs as if it had), that one included; set where the loop ends, not per hook.
    const std::vector<HookCall>& hooks = before_hooks_[static_cast<unsigned>(request.method()) & 15u];
    const HookCall* call = hooks.data();
    const HookCall* const end = call + hooks.size();
    try {
        for (; call != end; ++call) {
            if (std::optional<Response> early = call->middleware->before(request, context)) [[unlikely]] {
                context.middleware_depth_ = call->position + 1;
                return early;
            }
        }
    } catch (const std::exception& e) {
        context.middleware_depth_ = call->position + 1;
        return before_failed(request, e);
    }
    context.middleware_depth_ = middleware_.size();
    return std::nullopt;
}

std::optional<Response> App::before_failed(const Request& request, const std::exception& error) const {
    logging::error("middleware failed on {} {}: {}", request.method_name(), request.target(), error.what());
    return error_response(500, json_errors_);
}

App& App::listen(std::string host, std::uint16_t port) {
    config_.host = std::move(host);
    config_.port = port;
    return *this;
}

std::unique_ptr<ExchangeState> App::make_exchange_state() { return std::make_unique<RequestContext>(); }

void App::dispatch(Request& request, ExchangeState* state, Responder responder) {
    // Middleware before-hooks, in order; a response short-circuits the rest. Without a context (a protocol
    // driven by hand with none) there is nowhere to remember them, so none run.
    auto* context = static_cast<RequestContext*>(state);
    if (context) context->reset();
    if (ops_endpoints_ && answer_ops(request, responder)) return;
    if (context && record_metrics_) {
        // Counted active from here to its answer (RequestContext::end_exchange).
        const int minor = request.version_minor();
        context->started_at_ = request.received_at();
        // "https" and "wss" (5 and 3 letters) against "http" and "ws": the length tells them apart.
        const std::size_t scheme_length = request.scheme().size();
        context->request_bytes_ = request.body().size();
        context->open_ = true;
        context->series_.begin(static_cast<std::uint8_t>(request.method()), scheme_length == 5 || scheme_length == 3,
                               request.version_major() == 2 ? 2
                               : minor == 0                 ? 0
                                                            : 1);
    }
    if (context && !before_hooks_[static_cast<unsigned>(request.method()) & 15u].empty()) {
        if (std::optional<Response> early = run_before_hooks(request, *context)) [[unlikely]] {
            responder.send(std::move(*early));
            return;
        }
    } else if (context) {
        context->middleware_depth_ = middleware_.size();
    }

    const auto match = router_.match(request.method(), request.path(), request.params());
    using Status = Router<RouteTarget>::Status;
    if (match.status != Status::found && http::is_grpc_call(request)) {
        responder.send(grpc_unimplemented(request));
        return;
    }
    if (match.status == Status::not_found) {
        responder.send(error_response(404, json_errors_));
        return;
    }
    if (match.status == Status::method_not_allowed) {
        Response r = error_response(405, json_errors_);
        r.add_header("Allow", match.allow);
        responder.send(std::move(r));
        return;
    }
    const RouteTarget& target = *match.handler;
    if (context) {
        context->route_ = target.metric_route ? match.pattern : std::string_view{};
        if (record_metrics_) context->series_.route(target.metric_route);
    }
    // Handlers that see only the Request (the Python bindings) find the exchange's context through this.
    struct Current {
        explicit Current(const RequestContext* c) noexcept { RequestContext::current_ = c; }
        ~Current() { RequestContext::current_ = nullptr; }
    } current(context);
    try {
        if (target.limits.max_body_bytes != 0 && refuse_over_route_limits(request, target.limits, responder))
            [[unlikely]]
            return;
        if (target.streaming) {
            responder.keep_request();  // read after this call returns (another thread, the body's arrival)
            RequestBody body = responder.body();
            target.streaming(request, std::move(responder), std::move(body));
        } else if (target.async) {
            responder.keep_request();                     // answered later, perhaps from another thread
            target.async(request, std::move(responder));  // an exception abandons it: 500
        } else {
            responder.send(target.sync(request));
        }
    } catch (const std::exception& e) {
        logging::error("handler for {} {} threw: {}", request.method_name(), request.target(), e.what());
        responder.send(error_response(500, json_errors_));
    } catch (...) {
        logging::error("handler for {} {} threw a non-std exception", request.method_name(), request.target());
        responder.send(error_response(500, json_errors_));
    }
}

void App::finalize(const Request& request, ExchangeState* state, Response& response) noexcept {
    if (!alt_svc_.empty() && request.version_major() < 3) advertise_http3(response);
    auto* context = static_cast<RequestContext*>(state);
    const std::size_t depth = context ? context->middleware_depth_ : 0;
    if (context) run_after_hooks(after_hooks_, depth, [&](Middleware& m) { m.after(request, *context, response); });
    if (context) {
        // The whole answer is known: its head and body are written right after this.
        context->status_ = response.status();
        // What goes out as the body: none for HEAD, the file region for a file body.
        context->response_bytes_ = request.method() == Method::head ? 0 : response.body_size();
        context->end_exchange(metrics::ErrorType::none);
    }
}

void App::advertise_http3(Response& response) const noexcept {
    try {
        response.add_header("Alt-Svc", alt_svc_);
    } catch (...) {  // out of memory: the answer goes without it
    }
}

void App::finalize_stream(const Request& request, ExchangeState* state, Response& head) noexcept {
    if (!alt_svc_.empty() && request.version_major() < 3) advertise_http3(head);
    auto* context = static_cast<RequestContext*>(state);
    const std::size_t depth = context ? context->middleware_depth_ : 0;
    if (context) run_after_hooks(after_hooks_, depth, [&](Middleware& m) { m.after_stream(request, *context, head); });
    // A body filter (compression) changes the body's length: the stream cannot keep a declared one.
    if (context && context->body_filter()) head.clear_head_length();
    if (context) {
        context->status_ = head.status();
        context->count_body_ = request.method() != Method::head;  // an answer to HEAD sends none of it
    }
}

std::string_view App::filter_body(ExchangeState* state, std::string_view chunk, bool last) noexcept {
    auto* context = static_cast<RequestContext*>(state);
    BodyFilter* filter = context ? context->body_filter() : nullptr;
    const std::string_view out = filter ? filter->filter(chunk, last) : chunk;
    if (context) {
        if (context->count_body_) context->response_bytes_ += out.size();
        if (last) {  // the protocols call it at the stream's end
            context->end_exchange(metrics::ErrorType::none);
            context->end_stream(true);
        }
    }
    return out;
}

void App::exchange_over(ExchangeState* state) noexcept {
    if (auto* context = static_cast<RequestContext*>(state)) context->end_unfinished();
}

bool App::answer_ops(const Request& request, Responder& responder) {
    const std::string_view path = request.path();
    if (path.size() < 2 || path[1] != '_') return false;
    const net::OpsConfig& ops = config_.ops;
    if (request.method() != Method::get && request.method() != Method::head) {
        if (path != "/_health" && path != "/_ready" && path != ops.metrics_path) return false;
        // The path is the engine's, whatever the method: 405 as for any route, not the app's 404.
        Response r = ops_text("405 Method Not Allowed: " + std::string(path) + " answers GET and HEAD\n", 405);
        r.add_header("Allow", "GET, HEAD");
        responder.send(std::move(r));
        return true;
    }
    if (path == "/_health") {
        // The owner's loops, not only this listener's (the ops listener has a thread of its own).
        const std::string why = ops_owner_->stalled();
        if (why.empty()) {
            responder.send(ops_text("ok\n", 200));
        } else {
            Response r = ops_text(why, 503);
            r.add_header("Cache-Control", "no-store");
            responder.send(std::move(r));
        }
        return true;
    }
    if (path == "/_ready") {
        const App& owner = *ops_owner_;
        if (owner.ready()) {
            responder.send(ops_text("ready\n", 200));
        } else {
            const std::string_view why = owner.draining()                                ? "draining\n"
                                         : !owner.ready_.load(std::memory_order_relaxed) ? "starting\n"
                                                                                         : "checks failing\n";
            Response r = ops_text(why, 503);
            r.add_header("Cache-Control", "no-store");
            responder.send(std::move(r));
        }
        return true;
    }
    if (path == ops.metrics_path) {
        if (!ops.token.empty()) {
            const std::string_view auth = request.header("authorization").value_or("");
            constexpr std::string_view bearer = "Bearer ";
            const bool ok = auth.size() > bearer.size() && iequals(auth.substr(0, bearer.size()), bearer) &&
                            token_matches(auth.substr(bearer.size()), ops.token);
            if (!ok) {
                Response r = ops_text("401 Unauthorized: /_metrics needs Authorization: Bearer <token>\n", 401);
                r.add_header("WWW-Authenticate", "Bearer");
                responder.send(std::move(r));
                return true;
            }
        }
        const metrics::Format format = metrics::negotiate(request.header("accept").value_or(""));
        Response r(200, metrics::scrape(format), metrics::content_type(format));
        r.add_header("Cache-Control", "no-store");
        responder.send(std::move(r));
        return true;
    }
    return false;
}

std::string App::stalled() const {
    const auto limit = config_.ops.health_stall;
    if (limit.count() <= 0 || draining()) return {};
    auto seconds = [](auto d) {
        char text[32];
        std::snprintf(text, sizeof text, "%.1f s", std::chrono::duration<double>(d).count());
        return std::string(text);
    };
    auto stall = [&](std::string_view which, std::chrono::milliseconds gap) {
        return std::string(which) + " has not turned for " + seconds(gap) + " (the limit is " + seconds(limit) +
               "): a handler is blocking it, or it is deadlocked. Find the handler in a stack dump (py-spy dump, "
               "gdb); raise the limit with health_stall (--health-stall) if such a pause is expected\n";
    };
    if (server_) {
        if (const auto gap = server_->longest_stall(); gap > limit) return stall("an engine worker's loop", gap);
    }
    if (const io::Clock::rep turned = loop_turned_.load(std::memory_order_relaxed); turned != 0) {
        const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(
            io::Clock::now() - io::Clock::time_point(io::Clock::duration(turned)));
        if (gap > limit) return stall("the app's event loop", gap);
    }
    return {};
}

void App::start_ops() {
    const net::OpsConfig& ops = config_.ops;
    if (ops.port == 0 || ops_owner_ != this) return;
    ops_app_ = std::make_unique<App>();
    ops_app_->ops_owner_ = this;
    net::ServerConfig& c = ops_app_->config();
    c.host = ops.host;
    c.port = ops.port;
    c.threads = 1;
    c.http2 = false;
    // Every worker process of a group answers there (any of them for all): from the master's one socket when it
    // handed one down, else from one SO_REUSEPORT socket each.
    if (ops.inherited_listener >= 0)
        c.inherited_listener = ops.inherited_listener;
    else
        c.shared_port = true;
    c.limits.max_connections = 64;
    c.ops = ops;
    c.ops.port = 0;
    c.ops.inherited_listener = -1;
    c.ops.endpoints = true;
    c.ops.record_metrics = false;  // its own traffic is not the app's
    ops_app_->start(1);
}

std::uint16_t App::ops_port() const noexcept { return ops_app_ ? ops_app_->port() : 0; }

void App::start(unsigned threads) {
    if (server_) return;
    if (threads) config_.threads = threads;
    launch(&net::Server::start);
}

void App::start_embedded() {
    if (server_) return;
    launch(&net::Server::start_embedded);
}

void App::launch(void (net::Server::*start_server)()) {
    make_server();
    try {
        (server_.get()->*start_server)();
        start_ops();
    } catch (...) {
        // Nothing stays bound or running, and the next start begins afresh.
        ops_app_.reset();
        server_.reset();  // stops and joins what did start, and closes its listeners
        throw;
    }
}

void App::make_server() {
    stop_requested_ = false;
    draining_ = false;
    record_metrics_ = config_.ops.record_metrics;
    ops_endpoints_ = config_.ops.endpoints;
    if (record_metrics_) metrics::EngineFamilies::get();  // declared at start, not by the first request
    server_ = std::make_unique<net::Server>(config_, [this](net::Connection& c, net::ConnectionHome& home) {
        return switch_.connection_protocol(c, home);
    });
    alt_svc_.clear();
    if (config_.http3.enabled) {
        http3::Service h3 = http3::make_service(server_->config(), *this);
        server_->set_datagram_factory(std::move(h3.factory));
        server_->on_reload_tls(std::move(h3.reload_tls));
        // Alt-Svc on TCP answers (RFC 7838), so that browsers try HTTP/3; set before any worker runs.
        if (config_.http3.advertise)
            server_->on_bound([this](std::uint16_t port) {
                alt_svc_ = http3::alt_svc_value(config_.http3, config_.http3.port ? config_.http3.port : port);
            });
    }
}

void App::stop() {
    begin_drain();
    stop_requested_ = true;
    if (server_) server_->stop();
    if (ops_app_) ops_app_->stop();
}

void App::wait() {
    if (server_) server_->wait();
    if (ops_app_) ops_app_->wait();
}

void App::reload_tls() {
    if (!server_) throw std::logic_error("covet: reload_tls() before the server was started");
    server_->reload_tls();
}

int App::run(unsigned threads) {
    // SIGINT/SIGTERM stop; SIGHUP reloads the TLS certificates (as nginx does). All three are blocked here
    // so that worker threads inherit the mask and the signals wait for this thread.
    net::block_termination_signals();
    sigset_t hangup;
    sigemptyset(&hangup);
    sigaddset(&hangup, SIGHUP);
    start(threads);
    const int sig = net::wait_for_termination_signal([&] {
        const timespec now{0, 0};
        if (sigtimedwait(&hangup, nullptr, &now) == SIGHUP) {
            if (!config_.tls) {
                logging::info("SIGHUP ignored: no TLS certificates to reload");
            } else {
                try {
                    server_->reload_tls();
                    logging::warn("SIGHUP: TLS certificates reloaded");
                } catch (const std::exception& e) {
                    logging::error("SIGHUP: {} (the previous certificates stay in use)", e.what());
                }
            }
        }
        return stop_requested_.load();
    });
    if (sig) logging::info("received {}, shutting down gracefully", sig == SIGINT ? "SIGINT" : "SIGTERM");
    begin_drain();  // /_ready answers 503 from now on; the listeners stay open for the drain delay
    if (config_.ops.drain_delay.count() > 0) std::this_thread::sleep_for(config_.ops.drain_delay);
    stop();
    wait();
    return 0;
}

std::uint16_t App::port() const noexcept { return server_ ? server_->port() : config_.port; }
io::Backend App::backend() const noexcept { return server_ ? server_->backend() : io::Backend::asio; }

}  // namespace covet
