// covet._native: the native engine for Python.
//
// Threading, two modes:
// - threads >= 1: native worker threads do all socket I/O and routing and never take the GIL. A request
//   for a Python route is queued on a Bridge; the queue's eventfd wakes the ONE Python thread that runs
//   the asyncio loop, which takes the queued requests in a batch (take()), runs the handlers and answers
//   through NativeResponder.send(), which posts the response back to the connection's worker.
// - threads == 0 (embedded, io_uring only): the engine's single worker runs on the asyncio thread itself.
//   fileno() is the ring's notification eventfd; the loop calls poll() (native I/O, GIL released), take(),
//   runs the handlers, whose send() goes straight to the connection, then flush() submits the responses.
//   No thread hop, no cross-thread wake-ups.
#include <pybind11/chrono.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "../../../src/logging.hpp"  // the engine's log calls
#include "asgi_scope.hpp"
#include "body_bridge.hpp"
#include "covet/covet.hpp"
#include "covet/http3/cid_router.hpp"
#include "covet/net/tls_context.hpp"
#include "file_send.hpp"
#include "jwt_binding.hpp"
#include "metrics_bindings.hpp"
#include "middleware_bindings.hpp"
#include "model_json.hpp"
#include "request_contexts.hpp"
#include "runtime_metrics.hpp"
#include "static_binding.hpp"
#include "trace_binding.hpp"
#include "ws_bridge.hpp"
#include "wsgi_environ.hpp"

namespace py = pybind11;

namespace {

// An address the engine cannot listen on (or an inherited socket it cannot adopt). The engine reports it as a
// std::system_error (src/net/listener.cpp), the only kind of std::system_error its start() throws; Python sees
// covet._native.ListenError, an OSError with the errno and the engine's message (`strerror`).
struct ListenFailure {
    int code;
    std::string message;
};

// A read of a request that the server answered itself (it refused the streamed body: 413, 408, 400): the
// request's data is gone. Python sees covet._native.RequestGone, a RuntimeError.
struct RequestGone {
    std::string message;
};

class Bridge;

// One request handed to Python: the request stays valid (the connection keeps it) until answered.
struct Exchange {
    covet::Request* request = nullptr;
    covet::Responder responder;
    covet::StreamWriter stream;
    bool answered = false;
    // A streamed body (Request::body_streamed()): the engine's handle, and the chunks for Python.
    covet::RequestBody body;
    std::shared_ptr<covet_py::BodyQueue> queue;
    std::size_t max_body_bytes = 0;        // what body()/json()/form() may collect of a streamed body
    std::size_t route_max_body_bytes = 0;  // the route's own limit (covet::RouteLimits), which stream() keeps too
    // Flow control of the response (made on start_stream, or when the handler asks is_disconnected()).
    std::shared_ptr<covet::StreamFlow> flow;
    std::size_t send_limit = 0;  // Limits::stream_send_buffer
    Bridge* bridge = nullptr;    // where the flow's news go
    // The request's trace ids and request id (TracingMiddleware, RequestIdMiddleware), copied from its
    // RequestContext: the handler's current OpenTelemetry context and its log records' ids. Bytes only (no string
    // assignment per request): formatted for Python when something reads them (trace_ids).
    covet::trace::SpanState span;
    char request_id_bytes[covet::RequestContext::max_request_id];
    std::size_t request_id_size = 0;
    std::string_view request_id() const noexcept { return {request_id_bytes, request_id_size}; }
    // SecurityHeadersMiddleware's CSP nonce and CsrfMiddleware's token for this request ("" without them).
    std::string csp_nonce, csrf_token;
};
using ExchangePtr = std::shared_ptr<Exchange>;

class Bridge {
public:
    Bridge() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        if (fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
    }
    ~Bridge() { ::close(fd_); }

    // Embedded mode: the consumer is on the producing thread and polls; no eventfd signalling.
    void set_polled(bool polled) noexcept { polled_ = polled; }

    // Worker threads.
    void push(int route_id, covet::Request& request, covet::Responder responder, std::size_t send_limit,
              covet::RequestBody body = {}, std::size_t max_body_bytes = 0, std::size_t chunk_bytes = 0,
              std::size_t route_max_body_bytes = 0) {
        auto ex = std::make_shared<Exchange>();
        ex->request = &request;
        ex->responder = std::move(responder);
        ex->send_limit = send_limit;
        ex->bridge = this;
        if (const covet::RequestContext* context = covet::RequestContext::current()) {
            if (const covet::trace::SpanState& span = context->span(); span.active) {
                ex->span.active = true;  // the fields one by one: the tracestate string only when there is one
                ex->span.has_parent = span.has_parent;
                ex->span.flags = span.flags;
                ex->span.trace_id = span.trace_id;
                ex->span.span_id = span.span_id;
                ex->span.parent_span_id = span.parent_span_id;
                if (!span.tracestate.empty()) ex->span.tracestate = span.tracestate;
            }
            const std::string_view request_id = context->request_id();  // at most max_request_id bytes
            ex->request_id_size = request_id.size();
            std::memcpy(ex->request_id_bytes, request_id.data(), request_id.size());
            if (!context->csp_nonce().empty()) ex->csp_nonce = context->csp_nonce();
            if (!context->csrf_token().empty()) ex->csrf_token = context->csrf_token();
        }
        if (body) {
            ex->queue = std::make_shared<covet_py::BodyQueue>(chunk_bytes);
            ex->max_body_bytes = max_body_bytes;
            ex->route_max_body_bytes = route_max_body_bytes;
            ex->body = std::move(body);
            ex->body.read(
                std::make_shared<covet_py::QueueReader>(ex->queue, [this](std::uintptr_t id) { push_body(id); }));
        }
        bool was_empty;
        {
            std::lock_guard lock(mutex_);
            was_empty = queue_.empty();
            queue_.push_back({route_id, std::move(ex)});
        }
        if (was_empty && !polled_) {
            const std::uint64_t one = 1;
            [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof one);
        }
    }

    // The Python thread.
    std::vector<std::pair<int, ExchangePtr>> take(std::size_t max_items) {
        if (!polled_) {
            std::uint64_t drained;
            [[maybe_unused]] ssize_t n = ::read(fd_, &drained, sizeof drained);
        }
        std::vector<std::pair<int, ExchangePtr>> out;
        std::lock_guard lock(mutex_);
        const std::size_t count = std::min(max_items, queue_.size());
        out.assign(std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + static_cast<std::ptrdiff_t>(count)));
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(count));
        if ((!queue_.empty() || !ws_queue_.empty() || !body_queue_.empty()) &&
            !polled_) {  // more waiting: stay readable
            const std::uint64_t one = 1;
            [[maybe_unused]] ssize_t w = ::write(fd_, &one, sizeof one);
        }
        return out;
    }
    // WebSocket events (worker threads), taken by the Python thread like requests.
    void push_ws(covet_py::WsEvent event) {
        bool was_empty;
        {
            std::lock_guard lock(mutex_);
            was_empty = queue_.empty() && ws_queue_.empty();
            ws_queue_.push_back(std::move(event));
        }
        if (was_empty && !polled_) {
            const std::uint64_t one = 1;
            [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof one);
        }
    }
    std::vector<covet_py::WsEvent> take_ws() {
        std::lock_guard lock(mutex_);
        return std::exchange(ws_queue_, {});
    }
    // Streamed bodies with news (a chunk, the end, an error) for a Python reader that waits: their ids.
    void push_body(std::uintptr_t id) {
        bool was_empty;
        {
            std::lock_guard lock(mutex_);
            was_empty = queue_.empty() && ws_queue_.empty() && body_queue_.empty();
            body_queue_.push_back(id);
        }
        if (was_empty && !polled_) {
            const std::uint64_t one = 1;
            [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof one);
        }
    }
    std::vector<std::uintptr_t> take_body() {
        std::lock_guard lock(mutex_);
        return std::exchange(body_queue_, {});
    }

    int fileno() const noexcept { return fd_; }
    bool pending() {
        std::lock_guard lock(mutex_);
        return !queue_.empty() || !ws_queue_.empty() || !body_queue_.empty();
    }

private:
    int fd_;
    bool polled_ = false;
    std::mutex mutex_;
    std::vector<std::pair<int, ExchangePtr>> queue_;
    std::vector<covet_py::WsEvent> ws_queue_;
    std::vector<std::uintptr_t> body_queue_;
};

// The request of an exchange, for Python to read: valid until the answer (the connection keeps it). A
// request whose streamed body the server refused (413, 408, 400: it answered the client itself) is let go
// by the connection at once, from its own thread: a read holds the body queue's lock, which the refusal
// takes too, and fails cleanly once the request is gone.
class LiveRequest {
public:
    explicit LiveRequest(const ExchangePtr& ex) {
        if (ex->queue) {
            hold_ = ex->queue->hold_request();
            if (auto [status, reason] = ex->queue->request_gone(); status > 0)
                throw RequestGone{"this request is gone: the server refused its body and answered " +
                                  std::to_string(status) + " itself (" + std::string(reason) +
                                  "); nothing more can be read of it or sent for it"};
        }
        if (ex->answered || !ex->request)
            throw std::runtime_error("this request has already been answered; copy what you need before responding");
        request_ = ex->request;
    }
    const covet::Request* operator->() const noexcept { return request_; }

private:
    std::unique_lock<std::mutex> hold_;
    const covet::Request* request_ = nullptr;
};

LiveRequest live_request(const ExchangePtr& ex) { return LiveRequest(ex); }

py::str latin1(std::string_view s) {
    PyObject* o = PyUnicode_DecodeLatin1(s.data(), static_cast<Py_ssize_t>(s.size()), nullptr);
    if (!o) throw py::error_already_set();
    return py::reinterpret_steal<py::str>(o);
}

// A declared Content-Length (digits only, as RFC 9110 §8.6) as Response::set_head_length: announced for an answer
// to HEAD that has no body (send), and the framing of a streamed response (start_stream: no chunked coding; the
// engine cuts the response off if the app writes more or ends with less). A full send() body frames itself.
void set_declared_length(covet::Response& r, std::string_view value) {
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec == std::errc() && end == value.data() + value.size()) r.set_head_length(n);
}

// One Python (name, value) header into a native response head; Content-Type goes where the serializer expects it.
void add_python_header(covet::Response& r, std::string_view name, std::string_view value) {
    // Checked here whatever the header (Content-Type too): a CR or LF would split the response. The message names
    // the header; the caller answers 500 and logs it.
    if (const char* why = covet::field_error(name, value))
        throw py::value_error("covet: cannot send the response header \"" + std::string(name.substr(0, 64)) +
                              "\": " + why);
    if (covet::iequals(name, "content-type"))
        r.set_content_type(value);
    else if (covet::iequals(name, "content-length"))
        set_declared_length(r, value);  // as uvicorn: the app's length for HEAD and streams; not a number: ignored
    else if (covet::iequals(name, "transfer-encoding"))
        return;  // framing is ours
    else
        r.add_header(name, value);
}

// Python (name, value) pairs → header fields (early hints, trailers, a WebSocket accept's extra headers):
// ValueError naming a name that is not a token or a value with CR, LF or NUL. Framing fields are the
// engine's: dropped.
covet::Fields fields_from_python(const std::vector<std::pair<std::string, std::string>>& pairs, const char* kind) {
    covet::Fields out;
    for (const auto& [name, value] : pairs) {
        if (covet::iequals(name, "content-length") || covet::iequals(name, "transfer-encoding")) continue;
        out.add(name, value, kind);  // std::invalid_argument → ValueError
    }
    return out;
}

// Python (name, value) pairs → a native response head.
covet::Response make_response(int status, const std::vector<std::pair<std::string, std::string>>& headers,
                              std::string body) {
    covet::Response r(status);
    r.set_body(std::move(body));
    for (const auto& [name, value] : headers) add_python_header(r, name, value);
    return r;
}

// A str's UTF-8 or a bytes object's contents, viewed in place (valid while the object lives), as pybind11's
// std::string caster would read them; false for anything else (or a str that has no UTF-8 form).
bool text_view(PyObject* o, std::string_view& out) {
    if (PyUnicode_Check(o)) {
        Py_ssize_t size = 0;
        const char* data = PyUnicode_AsUTF8AndSize(o, &size);
        if (!data) {
            PyErr_Clear();
            return false;
        }
        out = {data, static_cast<std::size_t>(size)};
        return true;
    }
    if (PyBytes_Check(o)) {
        out = {PyBytes_AS_STRING(o), static_cast<std::size_t>(PyBytes_GET_SIZE(o))};
        return true;
    }
    return false;
}

// The response for NativeResponder.send: `headers` as a list or tuple of (str, str) tuples is read in place
// (no intermediate vector of strings); anything else goes through pybind11's conversion, as before.
covet::Response response_from_python(int status, py::handle headers, py::bytes body) {
    PyObject* seq = headers.ptr();
    if (PyList_CheckExact(seq) || PyTuple_CheckExact(seq)) {
        const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        PyObject** items = PySequence_Fast_ITEMS(seq);
        bool plain = true;
        std::string_view name, value;
        for (Py_ssize_t i = 0; i < n && plain; ++i)
            plain = PyTuple_CheckExact(items[i]) && PyTuple_GET_SIZE(items[i]) == 2 &&
                    text_view(PyTuple_GET_ITEM(items[i], 0), name) && text_view(PyTuple_GET_ITEM(items[i], 1), value);
        if (plain) {  // every pair checked: read them again in place (a str keeps its UTF-8 form once made)
            covet::Response r(status);
            r.set_body(covet_py::body_bytes(body));  // large bodies in a reused per-thread buffer (file_send.hpp)
            for (Py_ssize_t i = 0; i < n; ++i) {
                text_view(PyTuple_GET_ITEM(items[i], 0), name);
                text_view(PyTuple_GET_ITEM(items[i], 1), value);
                add_python_header(r, name, value);
            }
            return r;
        }
    }
    return make_response(status, headers.cast<std::vector<std::pair<std::string, std::string>>>(),
                         covet_py::body_bytes(body));
}

// Request.stream()'s chunk size (covet.requests.STREAM_CHUNK_SIZE): a streamed body is handed out the same way.
constexpr std::size_t stream_chunk_bytes = 64 * 1024;

class NativeServer {
public:
    // The keywords set the covet::net::ServerConfig fields of the same meaning (their defaults are that
    // struct's: see the binding below); docs/operations.md lists them with their `covet run` flags.
    NativeServer(std::string host, std::uint16_t port, unsigned threads, const std::string& backend,
                 std::size_t max_body_bytes, long header_timeout_ms, long keep_alive_timeout_ms,
                 long shutdown_timeout_ms, std::size_t max_connections, bool shared_port, std::size_t max_url_bytes,
                 std::size_t max_header_bytes, std::size_t max_headers, std::size_t max_buffered_input,
                 std::size_t output_high_water, long body_timeout_ms, long body_deadline_ms, std::size_t min_body_rate,
                 long min_body_rate_grace_ms, int listen_backlog, int listen_fd, std::size_t stream_body_threshold,
                 std::size_t max_stream_body_bytes, std::size_t stream_send_buffer,
                 std::uint32_t max_connections_per_ip, std::uint32_t new_connections_per_ip,
                 std::uint32_t max_streams_per_ip, long h2_ping_interval_ms, long h2_ping_timeout_ms) {
        app_.json_errors();  // 404/405/500 bodies as FastAPI writes them
        auto& c = app_.config();
        const auto ms = [](const char* name, long value) {
            if (value < 0)
                throw py::value_error(std::string(name) + " must be a number of milliseconds >= 0, not " +
                                      std::to_string(value));
            return std::chrono::milliseconds(value);
        };
        if (listen_backlog < 1)
            throw py::value_error("listen_backlog must be at least 1, not " + std::to_string(listen_backlog));
        c.host = std::move(host);
        c.port = port;
        c.threads = threads;
        threads_ = threads;
        if (backend != "auto") {
            auto b = covet::io::parse_backend(backend);
            if (!b) throw py::value_error("backend must be 'auto', 'uring' or 'asio', not '" + backend + "'");
            c.backend = b;
        }
        c.limits.max_body_bytes = max_body_bytes;
        c.limits.max_connections = max_connections;
        c.limits.max_url_bytes = max_url_bytes;
        c.limits.max_header_bytes = max_header_bytes;
        c.limits.max_headers = max_headers;
        c.limits.max_buffered_input = max_buffered_input;
        c.limits.stream_body_threshold = stream_body_threshold;
        c.limits.max_stream_body_bytes = max_stream_body_bytes;
        c.limits.output_high_water = output_high_water;
        c.limits.stream_send_buffer = stream_send_buffer;
        // Per client address, at accept (covet/net/client_limits.hpp); new connections are counted per second.
        c.client_limits.max_connections_per_ip = max_connections_per_ip;
        c.client_limits.new_connections_per_ip = new_connections_per_ip;
        c.client_limits.max_streams_per_ip = max_streams_per_ip;
        c.shared_port = shared_port;
        c.listen_backlog = listen_backlog;
        c.inherited_listener = listen_fd;  // >= 0: accept on this already-listening socket (covet run's master)
        c.timeouts.header = ms("header_timeout_ms", header_timeout_ms);
        c.timeouts.body = ms("body_timeout_ms", body_timeout_ms);
        c.timeouts.body_deadline = ms("body_deadline_ms", body_deadline_ms);
        c.timeouts.min_body_rate = min_body_rate;
        c.timeouts.min_body_rate_grace = ms("min_body_rate_grace_ms", min_body_rate_grace_ms);
        c.timeouts.keep_alive = ms("keep_alive_timeout_ms", keep_alive_timeout_ms);
        c.timeouts.shutdown = ms("shutdown_timeout_ms", shutdown_timeout_ms);
        c.http2_limits.ping_interval = ms("h2_ping_interval_ms", h2_ping_interval_ms);
        c.http2_limits.ping_timeout = ms("h2_ping_timeout_ms", h2_ping_timeout_ms);
    }
    // For the bindings beside this file (static_binding, middleware_bindings).
    covet::App& app() noexcept { return app_; }

    ~NativeServer() {
        if (embedded_) app_.server()->on_output(nullptr);
        py::gil_scoped_release unlocked;
        app_.stop();
        app_.wait();
    }

    void add_route(const std::string& method, const std::string& pattern, int route_id, std::uint64_t max_body_bytes) {
        auto m = covet::parse_method(method);
        if (!m) throw py::value_error("unknown HTTP method '" + method + "'");
        try {
            // Every Python route takes streamed bodies: the handler decides whether it reads body()/parameters
            // (collected within the route's max_body_bytes, else the server's) or stream().
            app_.route(
                *m, pattern,
                covet::StreamingHandler([this, route_id, max_body_bytes](covet::Request& r, covet::Responder responder,
                                                                         covet::RequestBody body) {
                    const covet::net::Limits& limits = app_.config().limits;
                    if (!body) {
                        bridge_.push(route_id, r, std::move(responder), limits.stream_send_buffer);
                        return;
                    }
                    bridge_.push(route_id, r, std::move(responder), limits.stream_send_buffer, std::move(body),
                                 max_body_bytes ? max_body_bytes : limits.max_body_bytes,
                                 std::min<std::size_t>(stream_chunk_bytes, limits.max_buffered_input), max_body_bytes);
                }),
                covet::RouteLimits{max_body_bytes});
        } catch (const covet::RouteError& e) {
            throw py::value_error(e.what());
        }
    }

    // A WebSocket route: each accepted connection's events go to the Python thread as (route_id, kind,
    // connection, data, code) through take_ws(). The handlers run on the worker thread, without the GIL.
    void add_websocket_route(const std::string& pattern, int route_id, std::size_t max_message_bytes,
                             long idle_timeout_ms, long ping_interval_ms, std::size_t max_send_buffer,
                             bool permessage_deflate, const std::vector<std::string>& subprotocols, bool defer_accept) {
        covet::ws::Options options;
        options.max_message_bytes = max_message_bytes;
        options.idle_timeout = std::chrono::milliseconds(idle_timeout_ms);
        options.ping_interval = std::chrono::milliseconds(ping_interval_ms);
        options.max_send_buffer = max_send_buffer;
        options.permessage_deflate = permessage_deflate;
        options.subprotocols = subprotocols;
        options.defer_accept = defer_accept;  // the OPEN event comes before the 101: accept() or deny() decides
        Bridge* bridge = &bridge_;
        auto factory = [bridge, route_id](covet::Request& request) {
            auto conn = std::make_shared<covet_py::WsConnection>(request);
            auto handlers = std::make_shared<covet::ws::Handlers>();
            using Kind = covet_py::WsEventKind;
            handlers->on_open = [bridge, route_id, conn](covet::ws::WebSocket ws) {
                conn->ws = ws;
                bridge->push_ws({route_id, Kind::open, conn, {}, false, 0});
            };
            // The handlers (owned by the connection's protocol handler) keep `conn` alive; `conn` holds only
            // the WebSocket handle, so there is no cycle.
            handlers->on_message = [bridge, route_id, conn](covet::ws::WebSocket, std::string_view data, bool binary) {
                bridge->push_ws({route_id, Kind::message, conn, std::string(data), binary, 0});
            };
            handlers->on_close = [bridge, route_id, conn](covet::ws::WebSocket, std::uint16_t code,
                                                          std::string_view reason) {
                bridge->push_ws({route_id, Kind::close, conn, std::string(reason), false, code});
            };
            handlers->on_drain = [bridge, route_id, conn](covet::ws::WebSocket) {
                bridge->push_ws({route_id, Kind::drain, conn, {}, false, 0});
            };
            return std::shared_ptr<const covet::ws::Handlers>(std::move(handlers));
        };
        try {
            app_.ws(pattern, std::move(factory), std::move(options));
        } catch (const covet::RouteError& e) {
            throw py::value_error(e.what());
        }
    }

    // Broadcast topics on the native per-worker hubs. subscribe runs on the connection's thread (posted
    // there from other threads); publish reaches every hub a subscription was made on.
    void ws_subscribe(const covet_py::WsPtr& c, const std::string& topic, bool on) {
        auto apply = [this, c, topic, on] {
            covet::ws::Hub* hub = covet::ws::Hub::this_worker(c->ws);
            if (!hub) return;
            if (on)
                hub->subscribe(c->ws, topic);
            else
                hub->unsubscribe(c->ws, topic);
            std::lock_guard lock(hubs_mutex_);
            if (std::find(hubs_.begin(), hubs_.end(), hub) == hubs_.end()) hubs_.push_back(hub);
        };
        if (c->ws.ref().on_home_thread())
            apply();
        else
            c->ws.ref().run([apply](covet::net::Connection&) { apply(); }, false);
    }
    // How many connections it was queued to on this thread's hub; work for I/O threads is posted (0).
    std::size_t ws_publish(const std::string& topic, std::string_view data, bool binary) {
        std::lock_guard lock(hubs_mutex_);
        std::size_t n = 0;
        for (covet::ws::Hub* hub : hubs_) n += hub->publish(topic, data, binary);
        return n;
    }

    void add_constant_route(const std::string& method, const std::string& pattern, int status,
                            const std::string& content_type, py::bytes body,
                            const std::vector<std::pair<std::string, std::string>>& headers) {
        auto m = covet::parse_method(method);
        if (!m) throw py::value_error("unknown HTTP method '" + method + "'");
        auto fixed = std::make_shared<covet::Response>(make_response(status, headers, std::string(body)));
        if (!content_type.empty()) fixed->set_content_type(content_type);
        try {
            app_.route(*m, pattern, covet::Handler([fixed](covet::Request&) { return *fixed; }));
        } catch (const covet::RouteError& e) {
            throw py::value_error(e.what());
        }
    }

    // uvicorn's --proxy-headers / --forwarded-allow-ips ("127.0.0.1", "10.0.0.0/8, ::1", "*"): ValueError
    // naming a bad entry. Before start.
    void configure_proxy_headers(bool enabled, std::string_view forwarded_allow_ips) {
        covet::net::ProxyHeaders& p = app_.config().proxy_headers;
        p.trusted = covet::net::TrustedProxies(forwarded_allow_ips);
        p.enabled = enabled;
    }

    // PROXY protocol v1/v2 from the load balancers in `trusted` (addresses, networks; "" turns it off): a connection
    // from one of them must start with a PROXY header, whose client becomes the peer. ValueError naming a bad
    // entry. Before start.
    void configure_proxy_protocol(std::string_view trusted) {
        covet::net::ProxyProtocolConfig& p = app_.config().proxy_protocol;
        p.trusted = covet::net::TrustedProxies(trusted);
        p.enabled = !p.trusted.empty();
    }

    // TLS on every connection (h2 or http/1.1 by ALPN). The files are loaded here, so that a wrong path
    // or key fails now with its reason rather than at start().
    void configure_tls(const std::string& certfile, const std::string& keyfile, const std::string& ca_certs,
                       const std::string& client_auth, bool allow_tls12, const std::string& ciphers,
                       const std::vector<std::pair<std::string, std::string>>& sni_certs) {
        covet::net::TlsConfig tls;
        tls.certificates.push_back({certfile, keyfile});
        for (const auto& [cert, key] : sni_certs) tls.certificates.push_back({cert, key});
        tls.ca_file = ca_certs;
        if (client_auth == "none")
            tls.client_auth = covet::net::ClientAuth::none;
        else if (client_auth == "optional")
            tls.client_auth = covet::net::ClientAuth::optional;
        else if (client_auth == "required")
            tls.client_auth = covet::net::ClientAuth::required;
        else
            throw py::value_error("client_auth must be 'none', 'optional' or 'required', not '" + client_auth + "'");
        tls.allow_tls12 = allow_tls12;
        tls.ciphers = ciphers;
        try {
            covet::net::TlsContext check(tls, {"http/1.1"});
        } catch (const std::exception& e) {
            throw py::value_error(e.what());
        }
        app_.config().tls = std::move(tls);
    }
    void reload_tls() {
        py::gil_scoped_release unlocked;
        app_.reload_tls();
    }

    void start() {
        try {
            start_engine();
        } catch (const std::system_error& e) {
            throw ListenFailure{e.code().value(), e.what()};
        }
    }
    void start_engine() {
        py::gil_scoped_release unlocked;
        if (threads_ == 0) {
            try {
                app_.start_embedded();
                embedded_ = true;
                bridge_.set_polled(true);
                return;
            } catch (const std::system_error&) {
                throw;  // the address cannot be bound: an I/O thread would fail the same way
            } catch (const std::exception& e) {
                covet::logging::info("the engine runs on its own I/O thread: {}", e.what());
            }
            app_.config().threads = 1;
        }
        app_.start();
    }
    void stop() {
        {
            std::lock_guard lock(hubs_mutex_);  // the hubs end with their worker threads
            hubs_.clear();
        }
        app_.stop();
    }
    void wait() {
        py::gil_scoped_release unlocked;
        app_.wait();
    }
    bool embedded() const noexcept { return embedded_; }
    bool poll() {
        require_embedded("poll");
        py::gil_scoped_release unlocked;
        return app_.server()->poll();
    }
    // True when more work waits: completions, or requests queued while responses were sent (answering
    // a request runs the connection's next pipelined one at once).
    bool flush() {
        require_embedded("flush");
        const bool completions = app_.server()->flush();
        return completions || bridge_.pending();
    }
    // `hook()` runs (GIL held, on the loop thread) when a response completes between polls.
    void set_output_hook(py::function hook) {
        require_embedded("set_output_hook");
        output_hook_ = std::move(hook);
        app_.server()->on_output([this] {
            py::gil_scoped_acquire locked;
            try {
                output_hook_();
            } catch (py::error_already_set& e) {
                e.discard_as_unraisable("covet: the output hook");
            }
        });
    }
    std::uint16_t port() const { return app_.port(); }
    covet::net::ServerConfig config() { return app_.config(); }
    bool http2() const { return app_.config().http2; }
    void set_http2(bool on) { app_.config().http2 = on; }
    bool http3() const { return app_.config().http3.enabled; }
    void set_http3(bool on) { app_.config().http3.enabled = on; }
    // `covet run`'s master's routed UDP sockets (Http3Options::inherited_sockets), one per engine worker.
    void adopt_http3_sockets(std::vector<int> fds, unsigned cid_base, unsigned cid_tag) {
        const std::size_t workers = threads_ == 0 ? 1 : threads_;
        if (fds.size() != workers || cid_base + fds.size() > 256 || cid_tag > 0xffff)
            throw py::value_error("adopt_http3_sockets: one socket per engine thread (" + std::to_string(workers) +
                                  "), not " + std::to_string(fds.size()) + ", an ID base up to " +
                                  std::to_string(256 - fds.size()) + " and a 16-bit tag");
        auto& h3 = app_.config().http3;
        h3.inherited_sockets = std::move(fds);
        h3.cid_base = static_cast<std::uint8_t>(cid_base);
        h3.cid_tag = static_cast<std::uint16_t>(cid_tag);
    }
    bool tls() const { return app_.config().tls.has_value(); }
    std::string backend() const { return std::string(covet::io::to_string(app_.backend())); }
    int fileno() const { return embedded_ ? app_.server()->poll_fd() : bridge_.fileno(); }
    std::vector<std::pair<int, ExchangePtr>> take(std::size_t max_items) { return bridge_.take(max_items); }
    std::vector<covet_py::WsEvent> take_ws() { return bridge_.take_ws(); }
    std::vector<std::uintptr_t> take_body() { return bridge_.take_body(); }
    Bridge& bridge() noexcept { return bridge_; }

private:
    void require_embedded(const char* what) const {
        if (!embedded_)
            throw std::runtime_error(std::string(what) + "() is for a server started with threads=0 on io_uring");
    }

    py::object output_hook_;  // declared first: outlives the engine
    Bridge bridge_;           // outlives the engine too: body readers still in connections notify it
    covet::App app_;
    std::mutex hubs_mutex_;
    std::vector<covet::ws::Hub*> hubs_;
    unsigned threads_ = 1;
    bool embedded_ = false;
};

py::dict tls_dict(std::string_view version, std::string_view cipher, std::string_view alpn,
                  std::string_view server_name, bool reused, bool verified, std::string_view subject,
                  std::string_view common_name) {
    py::dict d;
    d["tls_version"] = py::str(std::string(version));
    d["cipher_suite"] = py::str(std::string(cipher));
    d["alpn_protocol"] = py::str(std::string(alpn));
    d["server_name"] = py::str(std::string(server_name));
    d["session_reused"] = reused;
    d["client_cert_verified"] = verified;
    d["client_cert_name"] = verified ? py::object(py::str(std::string(subject))) : py::object(py::none());
    d["client_cert_common_name"] = verified ? py::object(py::str(std::string(common_name))) : py::object(py::none());
    return d;
}

// The exchange's flow control, made on first use (the Python thread): its news (drained, closed) come
// through take_body() with the flow's id, as a streamed body's do. A flow made before the answer is
// watched at once (is_disconnected()); start_stream hands it to the stream.
const std::shared_ptr<covet::StreamFlow>& exchange_flow(Exchange& ex, bool watch) {
    if (!ex.flow) {
        Bridge* bridge = ex.bridge;
        ex.flow = std::make_shared<covet::StreamFlow>(ex.send_limit, [bridge](covet::StreamFlow& f) {
            if (bridge) bridge->push_body(reinterpret_cast<std::uintptr_t>(&f));
        });
        if (watch) ex.responder.watch(ex.flow);
    }
    return ex.flow;
}

// Python-visible wrappers around one Exchange.
struct NativeRequest {
    ExchangePtr ex;
};
struct NativeResponder {
    ExchangePtr ex;
};
// One WebSocket connection: the upgrade request's data (the same attributes as NativeRequest, so that
// covet.Request works on it) and the send side.
struct NativeWebSocket {
    covet_py::WsPtr c;
};

// (trace_id, span_id, request_id, trace_flags, tracestate), "" for what the request has not: what the dispatchers
// set as covet.logger.request_ids in each request's context (covet.observability.tracing makes the OpenTelemetry
// span of it only when something asks). A new reference, or null with an exception set.
PyObject* trace_ids_tuple(const NativeRequest& r) {
    const covet::trace::SpanState& s = r.ex->span;
    char trace_hex[32], span_hex[16];
    std::string_view trace_id = "", span_id = "", tracestate = "";
    if (s.active) {
        trace_id = covet::trace::to_hex(s.trace_id, trace_hex);
        span_id = covet::trace::to_hex(s.span_id, span_hex);
        tracestate = s.tracestate;
    }
    const std::string_view request_id = r.ex->request_id();
    const auto text = [](std::string_view v) {
        return PyUnicode_FromStringAndSize(v.data(), static_cast<Py_ssize_t>(v.size()));
    };
    PyObject* items[5] = {text(trace_id), text(span_id), text(request_id), PyLong_FromLong(s.active ? s.flags : 0),
                          text(tracestate)};
    PyObject* out = std::all_of(std::begin(items), std::end(items), [](PyObject* o) { return o != nullptr; })
                        ? PyTuple_New(5)
                        : nullptr;
    for (Py_ssize_t i = 0; i < 5; ++i) {
        if (out != nullptr)
            PyTuple_SET_ITEM(out, i, items[i]);  // steals it
        else
            Py_XDECREF(items[i]);  // a failed allocation: its exception is set
    }
    return out;
}

// covet._native.trace_ids(request): NativeRequest.trace_ids as a plain C function (METH_O), for the dispatchers'
// per-request call: pybind11's call machinery would be most of a property's cost.
PyObject* trace_ids_function(PyObject*, PyObject* arg) {
    py::detail::make_caster<NativeRequest> caster;
    if (!caster.load(arg, false)) {
        PyErr_SetString(PyExc_TypeError, "trace_ids() takes a NativeRequest");
        return nullptr;
    }
    return trace_ids_tuple(py::detail::cast_op<const NativeRequest&>(caster));
}

PyMethodDef trace_ids_def{"trace_ids", trace_ids_function, METH_O,
                          "trace_ids(request) -> (trace_id, span_id, request_id, trace_flags, tracestate): the same "
                          "as request.trace_ids, for the per-request call of the dispatchers."};

// covet._native.context_with(context, var, value): a copy of `context` in which `var` is `value`. The dispatchers
// give each request its own context holding the request (covet.logger.request_ids); in Python that is a copy and a
// Context.run of ContextVar.set (two calls through the interpreter, a bound call's arguments): here it is the same
// C API calls in one.
PyObject* context_with_function(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyContext_CheckExact(args[0]) || !PyContextVar_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "context_with() takes a contextvars.Context, a ContextVar and a value");
        return nullptr;
    }
    PyObject* context = PyContext_Copy(args[0]);
    if (context == nullptr) return nullptr;
    if (PyContext_Enter(context) < 0) {  // a new copy is never entered: only a failure to allocate gets here
        Py_DECREF(context);
        return nullptr;
    }
    PyObject* token = PyContextVar_Set(args[1], args[2]);
    const int exited = PyContext_Exit(context);
    if (token == nullptr || exited < 0) {
        Py_XDECREF(token);
        Py_DECREF(context);
        return nullptr;
    }
    Py_DECREF(token);
    return context;
}

PyMethodDef context_with_def{
    "context_with", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(context_with_function)), METH_FASTCALL,
    "context_with(context, var, value) -> Context: a copy of context with var set to value "
    "(the dispatchers' per-request context)."};

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "CovetPy native engine (C++20, io_uring/epoll, HTTP/1.1, HTTP/2, TLS)";

    // Held for the life of the process (the module keeps the type too): the translator below raises it.
    static PyObject* const listen_error = py::exception<ListenFailure>(m, "ListenError", PyExc_OSError).release().ptr();
    static PyObject* const request_gone =
        py::exception<RequestGone>(m, "RequestGone", PyExc_RuntimeError).release().ptr();
    py::register_exception_translator([](std::exception_ptr failure) {
        try {
            if (failure) std::rethrow_exception(failure);
        } catch (const ListenFailure& e) {
            // OSError(errno, strerror): sets .errno and .strerror, as the socket module's errors do.
            PyErr_SetObject(listen_error, py::make_tuple(e.code, e.message).ptr());
        } catch (const RequestGone& e) {
            PyErr_SetString(request_gone, e.message.c_str());
        }
    });

    m.def(
        "attach_http3_router",
        [](int fd, std::vector<std::uint8_t> initial_targets, std::uint16_t tag) {
            try {
                covet::http3::attach_cid_router(fd, initial_targets, tag);
            } catch (const std::system_error& e) {
                PyErr_SetObject(PyExc_OSError, py::make_tuple(e.code().value(), e.what()).ptr());
                throw py::error_already_set();
            }
        },
        py::arg("fd"), py::arg("initial_targets"), py::arg("tag"),
        "Routes the SO_REUSEPORT group of UDP socket `fd` by QUIC connection ID (covet/http3/cid_router.hpp): "
        "a packet goes to the socket whose group index is its ID's first byte; a client's first Initial to "
        "initial_targets[hash % len]. Attaching again replaces the routing.");
    covet_py::register_asgi_scope(m);
    covet_py::register_wsgi_environ(m);
    m.add_object("trace_ids", py::reinterpret_steal<py::object>(PyCFunction_NewEx(&trace_ids_def, nullptr, nullptr)));
    m.add_object("context_with",
                 py::reinterpret_steal<py::object>(PyCFunction_NewEx(&context_with_def, nullptr, nullptr)));
    covet_py::register_request_contexts(m);
    py::class_<NativeRequest>(m, "NativeRequest")
        .def_property_readonly("method",
                               [](const NativeRequest& r) { return latin1(live_request(r.ex)->method_name()); })
        .def_property_readonly("target", [](const NativeRequest& r) { return latin1(live_request(r.ex)->target()); })
        .def_property_readonly("path", [](const NativeRequest& r) { return latin1(live_request(r.ex)->path()); })
        .def_property_readonly("query_string",
                               [](const NativeRequest& r) { return latin1(live_request(r.ex)->query_string()); })
        .def_property_readonly("headers",
                               [](const NativeRequest& r) {
                                   const LiveRequest req = live_request(r.ex);
                                   py::list out(req->headers().size());
                                   std::size_t i = 0;
                                   for (const covet::Header& h : req->headers())
                                       out[i++] = py::make_tuple(latin1(h.name), latin1(h.value));
                                   return out;
                               })
        // The first `name` header (compared case-insensitively) or None: one lookup, not every header converted.
        .def("header",
             [](const NativeRequest& r, std::string_view name) -> py::object {
                 const LiveRequest req = live_request(r.ex);  // held while the value is copied out
                 const std::optional<std::string_view> value = req->header(name);
                 if (!value) return py::none();
                 return latin1(*value);
             })
        // Every `name` header's value in arrival order (compared case-insensitively): getlist and cookies.
        .def("header_values",
             [](const NativeRequest& r, std::string_view name) {
                 const LiveRequest req = live_request(r.ex);
                 py::list out;
                 for (const covet::Header& h : req->headers())
                     if (covet::iequals(h.name, name)) out.append(latin1(h.value));
                 return out;
             })
        .def_property_readonly("body",
                               [](const NativeRequest& r) {
                                   const LiveRequest req = live_request(r.ex);
                                   const std::string_view b = req->body();
                                   return py::bytes(b.data(), b.size());
                               })
        // A large body that streams (read_body()) instead of coming whole in `body` (then b"").
        .def_property_readonly("streaming", [](const NativeRequest& r) { return r.ex->queue != nullptr; })
        .def_property_readonly(
            "body_id", [](const NativeRequest& r) { return reinterpret_cast<std::uintptr_t>(r.ex->queue.get()); })
        .def_property_readonly("max_body_bytes", [](const NativeRequest& r) { return r.ex->max_body_bytes; })
        .def_property_readonly("route_max_body_bytes",
                               [](const NativeRequest& r) { return r.ex->route_max_body_bytes; })
        // True once the exchange is over: the client went away (or reset the stream), or the response ended.
        // The first call before the answer starts watching the connection (and answers False).
        .def_property_readonly("disconnected",
                               [](const NativeRequest& r) {
                                   Exchange& ex = *r.ex;
                                   if (!ex.flow && (ex.answered || !ex.responder.pending())) return ex.answered;
                                   return !exchange_flow(ex, /*watch=*/true)->is_open();
                               })
        // Watches for the end of the exchange without polling: True when it is over already (the client went
        // away, reset the stream, or the response ended); False when armed: an event with the responder's
        // flow_id comes through take_body() once it is over (call again then: the event may also be the
        // stream's room to send). Nothing is watched for an exchange nobody asks about.
        .def("watch_disconnect",
             [](const NativeRequest& r) {
                 Exchange& ex = *r.ex;
                 if (!ex.flow && (ex.answered || !ex.responder.pending())) return true;
                 return !exchange_flow(ex, /*watch=*/true)->arm_close();
             })
        // The next chunk of a streamed body (bytes, acknowledged: the engine may read more), b"" once it has
        // ended, None while nothing is there (an event with body_id comes through take_body() when there is),
        // or (status, reason) when it failed (status 0: the client went away or the exchange ended).
        .def("read_body",
             [](const NativeRequest& r) -> py::object {
                 Exchange& ex = *r.ex;
                 if (!ex.queue) throw std::runtime_error("this request's body is not streamed: read `body`");
                 std::string chunk;
                 switch (ex.queue->take(chunk)) {
                     case covet_py::BodyQueue::Take::chunk: {
                         py::bytes out(chunk.data(), chunk.size());
                         // Embedded mode: a read this resumes (or an HTTP/2 WINDOW_UPDATE it sends) asks the
                         // loop for a flush through the output hook (the engine's set_reading / send path).
                         ex.body.consume(chunk.size());
                         return out;  // moved implicitly (C++20)
                     }
                     case covet_py::BodyQueue::Take::waiting: return py::none();
                     case covet_py::BodyQueue::Take::ended: return py::bytes();
                     case covet_py::BodyQueue::Take::failed: {
                         auto [status, reason] = ex.queue->error();
                         return py::make_tuple(status, latin1(reason));
                     }
                 }
                 return py::none();
             })
        .def_property_readonly("params",
                               [](const NativeRequest& r) {
                                   py::dict out;
                                   const LiveRequest req = live_request(r.ex);
                                   for (const covet::PathParam& p : req->params())
                                       out[latin1(p.name)] = latin1(p.value);
                                   return out;
                               })
        .def_property_readonly("client",
                               [](const NativeRequest& r) {
                                   const LiveRequest req = live_request(r.ex);
                                   return py::make_tuple(latin1(req->client_address()), req->client_port());
                               })
        .def_property_readonly("http_version",
                               [](const NativeRequest& r) {
                                   const LiveRequest req = live_request(r.ex);
                                   if (req->version_major() >= 2)  // "2", "3": as ASGI servers write them
                                       return std::to_string(req->version_major());
                                   return std::to_string(req->version_major()) + "." +
                                          std::to_string(req->version_minor());
                               })
        .def_property_readonly("scheme",
                               [](const NativeRequest& r) { return std::string(live_request(r.ex)->scheme()); })
        // The request's ASGI "http" scope, built natively (covet.asgi.server; asgi_scope.hpp).
        .def("asgi_scope",
             [](const NativeRequest& r, const covet_py::AsgiScope& shared) {
                 const LiveRequest req = live_request(r.ex);
                 return shared.http(*req.operator->());
             })
        // The request's WSGI environ but wsgi.input, built natively (covet.wsgi.environ; wsgi_environ.hpp).
        .def("wsgi_environ",
             [](const NativeRequest& r, const covet_py::WsgiEnviron& shared) {
                 const LiveRequest req = live_request(r.ex);
                 return shared.build(*req.operator->());
             })
        // The TLS session as a dict (ASGI's TLS extension names where there is one), or None.
        .def_property_readonly("trace_context",
                               [](const NativeRequest& r) -> py::object {
                                   const covet::trace::SpanState& s = r.ex->span;
                                   if (!s.active) return py::none();
                                   char trace_hex[32], span_hex[16];
                                   return py::make_tuple(std::string(covet::trace::to_hex(s.trace_id, trace_hex)),
                                                         std::string(covet::trace::to_hex(s.span_id, span_hex)),
                                                         s.flags, s.tracestate);
                               })
        .def_property_readonly("request_id", [](const NativeRequest& r) { return std::string(r.ex->request_id()); })
        .def_property_readonly("csp_nonce", [](const NativeRequest& r) { return r.ex->csp_nonce; })
        .def_property_readonly("csrf_token", [](const NativeRequest& r) { return r.ex->csrf_token; })
        // (trace_id, span_id, request_id, trace_flags, tracestate), "" for what the request has not: what the
        // dispatchers set as covet.logger.request_ids in each request's context (one call and one tuple per
        // request; covet.observability.tracing makes the OpenTelemetry span of it only when something asks).
        .def_property_readonly("trace_ids",
                               [](const NativeRequest& r) {
                                   PyObject* ids = trace_ids_tuple(r);
                                   if (ids == nullptr) throw py::error_already_set();
                                   return py::reinterpret_steal<py::tuple>(ids);
                               })
        .def_property_readonly("tls", [](const NativeRequest& r) -> py::object {
            const LiveRequest req = live_request(r.ex);
            const covet::net::TlsInfo* t = req->tls();
            if (!t) return py::none();
            return tls_dict(t->version, t->cipher, t->alpn, t->server_name, t->session_reused, t->client_verified,
                            t->client_subject, t->client_common_name);
        });

    py::class_<NativeWebSocket>(m, "NativeWebSocket")
        .def_property_readonly("id",
                               [](const NativeWebSocket& w) { return reinterpret_cast<std::uintptr_t>(w.c.get()); })
        .def_property_readonly("method", [](const NativeWebSocket&) { return std::string("GET"); })
        .def_property_readonly("target", [](const NativeWebSocket& w) { return latin1(w.c->target); })
        .def_property_readonly("path", [](const NativeWebSocket& w) { return latin1(w.c->path); })
        .def_property_readonly("query_string", [](const NativeWebSocket& w) { return latin1(w.c->query); })
        .def_property_readonly("headers",
                               [](const NativeWebSocket& w) {
                                   py::list out;
                                   for (const auto& [k, v] : w.c->headers)
                                       out.append(py::make_tuple(latin1(k), latin1(v)));
                                   return out;
                               })
        .def_property_readonly("body", [](const NativeWebSocket&) { return py::bytes(); })
        .def_property_readonly("params",
                               [](const NativeWebSocket& w) {
                                   py::dict out;
                                   for (const auto& [k, v] : w.c->params) out[latin1(k)] = latin1(v);
                                   return out;
                               })
        .def_property_readonly(
            "client",
            [](const NativeWebSocket& w) { return py::make_tuple(latin1(w.c->client_address), w.c->client_port); })
        .def_property_readonly("http_version", [](const NativeWebSocket& w) { return w.c->http_version; })
        .def_property_readonly("scheme", [](const NativeWebSocket& w) { return w.c->scheme; })
        .def_property_readonly("tls",
                               [](const NativeWebSocket& w) -> py::object {
                                   if (!w.c->tls) return py::none();
                                   const auto& t = *w.c->tls;
                                   return tls_dict(t.version, t.cipher, t.alpn, t.server_name, t.session_reused,
                                                   t.client_verified, t.client_subject, t.client_common_name);
                               })
        // The connection's ASGI "websocket" scope but its subprotocols and extensions (asgi_scope.hpp).
        .def("asgi_scope",
             [](const NativeWebSocket& w, const covet_py::AsgiScope& shared) { return shared.websocket(*w.c); })
        .def_property_readonly("subprotocol",
                               [](const NativeWebSocket& w) { return std::string(w.c->ws.subprotocol()); })
        .def_property_readonly("is_open", [](const NativeWebSocket& w) { return w.c->ws.is_open(); })
        .def_property_readonly("buffered_amount", [](const NativeWebSocket& w) { return w.c->ws.buffered_amount(); })
        // False: not sent (closing, or over the send buffer limit: wait for the drain event and retry).
        .def(
            "send_text", [](const NativeWebSocket& w, std::string_view text) { return w.c->ws.send_text(text); },
            py::arg("text"))
        .def(
            "send_bytes",
            [](const NativeWebSocket& w, py::bytes data) {
                std::string_view v = data;
                return w.c->ws.send_binary(v);
            },
            py::arg("data"))
        .def(
            "ping", [](const NativeWebSocket& w, py::bytes payload) { return w.c->ws.ping(std::string_view(payload)); },
            py::arg("payload") = py::bytes())
        .def(
            "close",
            [](const NativeWebSocket& w, std::uint16_t code, std::string_view reason) { w.c->ws.close(code, reason); },
            py::arg("code") = 1000, py::arg("reason") = "")
        // A route with defer_accept=True: the 101 (with `subprotocol`, or the one negotiated from the route's
        // subprotocols when ""; and the extra `headers`), then frames flow. A no-op once decided.
        .def(
            "accept",
            [](const NativeWebSocket& w, const std::string& subprotocol,
               const std::vector<std::pair<std::string, std::string>>& headers) {
                if (subprotocol.find_first_of(" ,;\t\r\n\"") != std::string::npos)
                    throw py::value_error(
                        "the WebSocket subprotocol must be one token (no spaces, commas, CR or LF): " + subprotocol);
                covet::Fields extra = fields_from_python(headers, "header");
                w.c->ws.accept(subprotocol, std::move(extra));
            },
            py::arg("subprotocol") = "", py::arg("headers") = std::vector<std::pair<std::string, std::string>>{})
        // A route with defer_accept=True: refuses the handshake with this HTTP response, then the connection
        // closes (a close event with 1006 follows). A no-op once decided.
        .def(
            "deny",
            [](const NativeWebSocket& w, int status, const std::vector<std::pair<std::string, std::string>>& headers,
               py::bytes body) {
                if (status < 200 || status > 599)
                    throw py::value_error("a WebSocket denial's status must be 200-599, not " + std::to_string(status));
                w.c->ws.deny(make_response(status, headers, std::string(body)));
            },
            py::arg("status"), py::arg("headers"), py::arg("body"));

    py::class_<NativeResponder> responder_class(m, "NativeResponder");
    covet_py::def_send_file(responder_class, &make_response);
    responder_class
        .def(
            "send",
            [](NativeResponder& r, int status, py::handle headers, py::bytes body) {
                if (r.ex->answered) throw std::runtime_error("this request has already been answered");
                covet::Response resp = response_from_python(status, headers, std::move(body));
                r.ex->answered = true;
                r.ex->responder.send(std::move(resp));
            },
            py::arg("status"), py::arg("headers"), py::arg("body"))
        // A whole response with trailer fields, in one call (a unary gRPC answer: HEADERS, DATA, trailing
        // HEADERS). HTTP/2 sends the trailers; HTTP/1.1 drops them (start_stream + send_trailers sends them
        // in the chunked trailer section).
        .def(
            "send_with_trailers",
            [](NativeResponder& r, int status, py::handle headers, py::bytes body,
               const std::vector<std::pair<std::string, std::string>>& trailers) {
                if (r.ex->answered) throw std::runtime_error("this request has already been answered");
                covet::Response resp = response_from_python(status, headers, std::move(body));
                for (const auto& [name, value] : trailers) resp.trailer(name, value);  // invalid_argument → ValueError
                r.ex->answered = true;
                r.ex->responder.send(std::move(resp));
            },
            py::arg("status"), py::arg("headers"), py::arg("body"), py::arg("trailers"))
        .def("start_stream",
             [](NativeResponder& r, int status, const std::vector<std::pair<std::string, std::string>>& headers) {
                 if (r.ex->answered) throw std::runtime_error("this request has already been answered");
                 Exchange& ex = *r.ex;
                 // A refused header (ValueError) leaves the request unanswered: the caller's 500 can still go out.
                 covet::Response head = make_response(status, headers, {});
                 ex.answered = true;
                 auto flow = exchange_flow(ex, /*watch=*/false);
                 ex.stream = ex.responder.stream(std::move(head), std::move(flow));
             })
        // True: queued. False: dropped, the exchange is over (the client went away): stop producing.
        .def("write",
             [](NativeResponder& r, py::bytes chunk) {
                 Exchange& ex = *r.ex;
                 if (!ex.stream)
                     throw std::runtime_error("write() needs start_stream() first (or the stream has ended)");
                 if (ex.flow && !ex.flow->is_open()) return false;
                 ex.stream.write(std::string_view(chunk));
                 return true;
             })
        // Back-pressure after write(): 0 go on; 1 wait: more than Limits::stream_send_buffer is unsent, and an
        // event with `flow_id` comes through take_body() once it has fallen to half of that (or the exchange
        // closed); 2 the exchange is over (the client went away, the stream was reset): stop producing.
        .def("flow_state",
             [](NativeResponder& r) {
                 const covet::StreamFlow* f = r.ex->flow.get();
                 if (!f) return 0;
                 if (!f->is_open()) return 2;
                 if (!f->over_limit()) return 0;
                 if (r.ex->flow->arm()) return 1;
                 return f->is_open() ? 0 : 2;
             })
        .def_property_readonly(
            "flow_id", [](const NativeResponder& r) { return reinterpret_cast<std::uintptr_t>(r.ex->flow.get()); })
        // Bytes written and not yet sent (approximate).
        .def_property_readonly("buffered_amount",
                               [](const NativeResponder& r) { return r.ex->flow ? r.ex->flow->buffered() : 0; })
        .def("end", [](NativeResponder& r) { r.ex->stream.end(); })
        // Ends the stream (instead of end()) with trailer fields: HTTP/2 a trailing HEADERS frame, HTTP/1.1
        // the chunked trailer section (an HTTP/1.0 client's stream drops them).
        .def(
            "send_trailers",
            [](NativeResponder& r, const std::vector<std::pair<std::string, std::string>>& trailers) {
                Exchange& ex = *r.ex;
                if (!ex.stream)
                    throw std::runtime_error("send_trailers() needs start_stream() first (or the stream has ended)");
                ex.stream.end(fields_from_python(trailers, "trailer"));
            },
            py::arg("trailers"))
        // A 103 Early Hints response with these headers, before send()/start_stream()/send_file(); several may
        // go. Dropped for an HTTP/1.0 client.
        .def(
            "early_hint",
            [](NativeResponder& r, const std::vector<std::pair<std::string, std::string>>& headers) {
                Exchange& ex = *r.ex;
                if (ex.answered) throw std::runtime_error("early_hint() must come before the response starts");
                ex.responder.early_hint(fields_from_python(headers, "header"));
            },
            py::arg("headers"))
        .def(
            "abort", [](NativeResponder& r) { r.ex->stream.abort(); },
            "Cuts a started stream short: the connection closes without the terminating chunk, so the "
            "client sees an incomplete response (for a producer that failed midway).")
        .def_property_readonly("answered", [](const NativeResponder& r) { return r.ex->answered; });

    // The engine's configuration structs (include/covet/net/server_config.hpp), default-constructible: what a
    // default-constructed one holds is the engine's default for every setting, the one source the Python
    // side reads (covet.server.options, `covet run --help`). Durations are datetime.timedelta.
    using covet::net::Http2Limits;
    using covet::net::Limits;
    using covet::net::ServerConfig;
    using covet::net::Timeouts;
    py::class_<Limits>(m, "Limits", "Size limits of requests and connections (covet::net::Limits).")
        .def(py::init<>())
        .def_readwrite("max_url_bytes", &Limits::max_url_bytes)
        .def_readwrite("max_header_bytes", &Limits::max_header_bytes)
        .def_readwrite("max_headers", &Limits::max_headers)
        .def_readwrite("max_body_bytes", &Limits::max_body_bytes)
        .def_readwrite("stream_body_threshold", &Limits::stream_body_threshold)
        .def_readwrite("max_stream_body_bytes", &Limits::max_stream_body_bytes)
        .def_readwrite("max_connections", &Limits::max_connections)
        .def_readwrite("max_buffered_input", &Limits::max_buffered_input)
        .def_readwrite("output_high_water", &Limits::output_high_water)
        .def_readwrite("stream_send_buffer", &Limits::stream_send_buffer);
    py::class_<Timeouts>(m, "Timeouts", "Timeouts and the request body rate floor (covet::net::Timeouts).")
        .def(py::init<>())
        .def_readwrite("header", &Timeouts::header)
        .def_readwrite("body", &Timeouts::body)
        .def_readwrite("min_body_rate", &Timeouts::min_body_rate)
        .def_readwrite("min_body_rate_grace", &Timeouts::min_body_rate_grace)
        .def_readwrite("body_deadline", &Timeouts::body_deadline)
        .def_readwrite("keep_alive", &Timeouts::keep_alive)
        .def_readwrite("shutdown", &Timeouts::shutdown);
    py::class_<Http2Limits>(m, "Http2Limits", "HTTP/2 SETTINGS and abuse limits (covet::net::Http2Limits).")
        .def(py::init<>())
        .def_readwrite("max_concurrent_streams", &Http2Limits::max_concurrent_streams)
        .def_readwrite("initial_window_size", &Http2Limits::initial_window_size)
        .def_readwrite("max_frame_size", &Http2Limits::max_frame_size)
        .def_readwrite("max_header_list_bytes", &Http2Limits::max_header_list_bytes)
        .def_readwrite("max_resets_per_second", &Http2Limits::max_resets_per_second)
        .def_readwrite("max_continuations", &Http2Limits::max_continuations)
        .def_readwrite("max_unacked_upload_bytes", &Http2Limits::max_unacked_upload_bytes)
        .def_readwrite("ping_interval", &Http2Limits::ping_interval)
        .def_readwrite("ping_timeout", &Http2Limits::ping_timeout);
    using covet::net::ClientLimits;
    py::class_<ClientLimits>(m, "ClientLimits",
                             "Per client address limits checked at accept (covet::net::ClientLimits; 0: off).")
        .def(py::init<>())
        .def_readwrite("max_connections_per_ip", &ClientLimits::max_connections_per_ip)
        .def_readwrite("new_connections_per_ip", &ClientLimits::new_connections_per_ip)
        .def_readwrite("new_connections_period", &ClientLimits::new_connections_period)
        .def_readwrite("new_connections_burst", &ClientLimits::new_connections_burst)
        .def_readwrite("max_streams_per_ip", &ClientLimits::max_streams_per_ip);
    py::class_<ServerConfig>(m, "ServerConfig",
                             "A server's listener, limit and timeout settings (covet::net::ServerConfig; TLS is "
                             "set with NativeServer.configure_tls).")
        .def(py::init<>())
        .def_readwrite("host", &ServerConfig::host)
        .def_readwrite("port", &ServerConfig::port)
        .def_readwrite("threads", &ServerConfig::threads)
        .def_readwrite("pin_threads", &ServerConfig::pin_threads)
        .def_readwrite("shared_port", &ServerConfig::shared_port)
        .def_readwrite("inherited_listener", &ServerConfig::inherited_listener)
        .def_property(
            "backend",
            [](const ServerConfig& c) { return c.backend ? std::string(covet::io::to_string(*c.backend)) : "auto"; },
            [](ServerConfig& c, const std::string& name) {
                if (name == "auto") {
                    c.backend.reset();
                    return;
                }
                auto b = covet::io::parse_backend(name);
                if (!b) throw py::value_error("backend must be 'auto', 'uring' or 'asio', not '" + name + "'");
                c.backend = b;
            })
        .def_readwrite("listen_backlog", &ServerConfig::listen_backlog)
        .def_readwrite("limits", &ServerConfig::limits)
        .def_readwrite("timeouts", &ServerConfig::timeouts)
        .def_readwrite("http2", &ServerConfig::http2)
        .def_readwrite("http2_limits", &ServerConfig::http2_limits)
        .def_readwrite("client_limits", &ServerConfig::client_limits)
        .def_property(
            "proxy_headers", [](const ServerConfig& c) { return c.proxy_headers.enabled; },
            [](ServerConfig& c, bool on) { c.proxy_headers.enabled = on; })
        .def_property(
            "forwarded_allow_ips", [](const ServerConfig& c) { return c.proxy_headers.trusted.text(); },
            [](ServerConfig& c, std::string_view ips) { c.proxy_headers.trusted = covet::net::TrustedProxies(ips); })
        .def_property(
            "proxy_protocol",
            [](const ServerConfig& c) { return c.proxy_protocol.enabled ? c.proxy_protocol.trusted.text() : ""; },
            [](ServerConfig& c, std::string_view trusted) {
                c.proxy_protocol.trusted = covet::net::TrustedProxies(trusted);
                c.proxy_protocol.enabled = !c.proxy_protocol.trusted.empty();
            });
    // --forwarded-allow-ips parsed as the engine does (ValueError naming a bad entry): `"10.1.2.3" in t`.
    py::class_<covet::net::TrustedProxies>(m, "TrustedProxies",
                                           "The proxies whose X-Forwarded-* headers count "
                                           "(covet::net::TrustedProxies): IP addresses, networks, or '*'.")
        .def(py::init<std::string_view>(), py::arg("forwarded_allow_ips"))
        .def("__contains__",
             [](const covet::net::TrustedProxies& t, std::string_view address) { return t.contains(address); })
        .def_property_readonly("text", &covet::net::TrustedProxies::text)
        .def("__repr__", [](const covet::net::TrustedProxies& t) { return "TrustedProxies('" + t.text() + "')"; });

    // Keyword defaults: the engine's (ServerConfig{}), except host, port and threads, which default as
    // covet.serve does (a local address; threads=1: the engine on its own thread).
    const ServerConfig defaults;
    const auto ms = [](std::chrono::milliseconds d) { return static_cast<long>(d.count()); };
    py::class_<NativeServer> server_class(m, "NativeServer");
    covet_py::def_static_mount(server_class);
    server_class
        .def(py::init<std::string, std::uint16_t, unsigned, const std::string&, std::size_t, long, long, long,
                      std::size_t, bool, std::size_t, std::size_t, std::size_t, std::size_t, std::size_t, long, long,
                      std::size_t, long, int, int, std::size_t, std::size_t, std::size_t, std::uint32_t, std::uint32_t,
                      std::uint32_t, long, long>(),
             py::arg("host") = "127.0.0.1", py::arg("port") = 8000, py::arg("threads") = 1, py::arg("backend") = "auto",
             py::arg("max_body_bytes") = defaults.limits.max_body_bytes,
             py::arg("header_timeout_ms") = ms(defaults.timeouts.header),
             py::arg("keep_alive_timeout_ms") = ms(defaults.timeouts.keep_alive),
             py::arg("shutdown_timeout_ms") = ms(defaults.timeouts.shutdown),
             py::arg("max_connections") = defaults.limits.max_connections,
             py::arg("shared_port") = defaults.shared_port, py::arg("max_url_bytes") = defaults.limits.max_url_bytes,
             py::arg("max_header_bytes") = defaults.limits.max_header_bytes,
             py::arg("max_headers") = defaults.limits.max_headers,
             py::arg("max_buffered_input") = defaults.limits.max_buffered_input,
             py::arg("output_high_water") = defaults.limits.output_high_water,
             py::arg("body_timeout_ms") = ms(defaults.timeouts.body),
             py::arg("body_deadline_ms") = ms(defaults.timeouts.body_deadline),
             py::arg("min_body_rate") = defaults.timeouts.min_body_rate,
             py::arg("min_body_rate_grace_ms") = ms(defaults.timeouts.min_body_rate_grace),
             py::arg("listen_backlog") = defaults.listen_backlog, py::arg("listen_fd") = defaults.inherited_listener,
             py::arg("stream_body_threshold") = defaults.limits.stream_body_threshold,
             py::arg("max_stream_body_bytes") = defaults.limits.max_stream_body_bytes,
             py::arg("stream_send_buffer") = defaults.limits.stream_send_buffer,
             py::arg("max_connections_per_ip") = defaults.client_limits.max_connections_per_ip,
             py::arg("new_connections_per_ip") = defaults.client_limits.new_connections_per_ip,
             py::arg("max_streams_per_ip") = defaults.client_limits.max_streams_per_ip,
             py::arg("h2_ping_interval_ms") = ms(defaults.http2_limits.ping_interval),
             py::arg("h2_ping_timeout_ms") = ms(defaults.http2_limits.ping_timeout))
        // A copy of the settings the server runs with (what the keywords and configure_tls set).
        .def_property_readonly("config", &NativeServer::config)
        .def("add_route", &NativeServer::add_route, py::arg("method"), py::arg("pattern"), py::arg("route_id"),
             py::arg("max_body_bytes") = 0)
        .def("add_constant_route", &NativeServer::add_constant_route, py::arg("method"), py::arg("pattern"),
             py::arg("status"), py::arg("content_type"), py::arg("body"), py::arg("headers"))
        .def("configure_tls", &NativeServer::configure_tls, py::arg("certfile"), py::arg("keyfile"),
             py::arg("ca_certs") = "", py::arg("client_auth") = "none", py::arg("allow_tls12") = true,
             py::arg("ciphers") = "", py::arg("sni_certs") = std::vector<std::pair<std::string, std::string>>{})
        .def("configure_proxy_headers", &NativeServer::configure_proxy_headers, py::arg("enabled"),
             py::arg("forwarded_allow_ips"))
        .def("configure_proxy_protocol", &NativeServer::configure_proxy_protocol, py::arg("trusted"))
        .def("reload_tls", &NativeServer::reload_tls)
        .def_property("http2", &NativeServer::http2, &NativeServer::set_http2)
        // HTTP/3 over QUIC on the TLS port's number (UDP); needs configure_tls (covet/http3/server.hpp).
        .def_property("http3", &NativeServer::http3, &NativeServer::set_http3)
        .def("adopt_http3_sockets", &NativeServer::adopt_http3_sockets, py::arg("fds"), py::arg("cid_base"),
             py::arg("cid_tag"))
        .def_property_readonly("tls", &NativeServer::tls)
        .def("start", &NativeServer::start)
        .def("stop", &NativeServer::stop)
        .def("wait", &NativeServer::wait)
        .def_property_readonly("port", &NativeServer::port)
        .def_property_readonly("backend", &NativeServer::backend)
        .def_property_readonly("embedded", &NativeServer::embedded)
        .def("poll", &NativeServer::poll)
        .def("flush", &NativeServer::flush)
        .def("set_output_hook", &NativeServer::set_output_hook, py::arg("hook"))
        .def("fileno", &NativeServer::fileno)
        .def("add_websocket_route", &NativeServer::add_websocket_route, py::arg("pattern"), py::arg("route_id"),
             py::arg("max_message_bytes") = 1024 * 1024, py::arg("idle_timeout_ms") = 60'000,
             py::arg("ping_interval_ms") = 20'000, py::arg("max_send_buffer") = 4 * 1024 * 1024,
             py::arg("permessage_deflate") = true, py::arg("subprotocols") = std::vector<std::string>{},
             py::arg("defer_accept") = false)
        // [(route_id, kind, NativeWebSocket, data, code)]: kind 0 open, 1 message (data str or bytes),
        // 2 close (data: the reason), 3 drain.
        .def("take_ws",
             [](NativeServer& s) {
                 auto events = s.take_ws();
                 py::list out(events.size());
                 for (std::size_t i = 0; i < events.size(); ++i) {
                     auto& e = events[i];
                     py::object data = py::none();
                     if (e.kind == covet_py::WsEventKind::message && e.binary)
                         data = py::bytes(e.data);
                     else if (e.kind == covet_py::WsEventKind::message || e.kind == covet_py::WsEventKind::close) {
                         PyObject* o =
                             PyUnicode_DecodeUTF8(e.data.data(), static_cast<Py_ssize_t>(e.data.size()), "replace");
                         if (!o) throw py::error_already_set();
                         data = py::reinterpret_steal<py::object>(o);
                     }
                     out[i] = py::make_tuple(e.route_id, static_cast<int>(e.kind),
                                             NativeWebSocket{std::move(e.connection)}, data, e.code);
                 }
                 return out;
             })
        .def("ws_subscribe", [](NativeServer& s, const NativeWebSocket& w,
                                const std::string& topic) { s.ws_subscribe(w.c, topic, true); })
        .def("ws_unsubscribe", [](NativeServer& s, const NativeWebSocket& w,
                                  const std::string& topic) { s.ws_subscribe(w.c, topic, false); })
        .def("ws_publish",
             [](NativeServer& s, const std::string& topic, py::object data) {
                 if (PyBytes_Check(data.ptr())) {
                     std::string_view v = data.cast<py::bytes>();
                     return s.ws_publish(topic, v, true);
                 }
                 const std::string text = data.cast<std::string>();
                 return s.ws_publish(topic, text, false);
             })
        .def("take_body",
             [](NativeServer& s) {
                 auto ids = s.take_body();
                 py::list out(ids.size());
                 for (std::size_t i = 0; i < ids.size(); ++i) out[i] = py::int_(ids[i]);
                 return out;
             })
        .def(
            "take",
            [](NativeServer& s, std::size_t max_items) {
                auto items = s.take(max_items);
                py::list out(items.size());
                for (std::size_t i = 0; i < items.size(); ++i)
                    out[i] = py::make_tuple(items[i].first, NativeRequest{items[i].second},
                                            NativeResponder{items[i].second});
                return out;
            },
            py::arg("max_items") = 256);

    m.def(
        "configure_logging",
        [](const std::string& level, const std::string& format) {
            covet::configure_logging(level, format == "json" ? covet::LogFormat::json : covet::LogFormat::text);
        },
        py::arg("level") = "warn", py::arg("format") = "text");
    covet_py::register_middleware(m, [](py::handle s) -> covet::App& { return s.cast<NativeServer&>().app(); });
    covet_py::register_tracing(m, [](py::handle s) -> covet::App& { return s.cast<NativeServer&>().app(); });
    covet_py::register_model_json(m);
    covet_py::register_jwt(m);
    covet_py::register_metrics(m, [](py::handle s) -> covet::App& { return s.cast<NativeServer&>().app(); });
    covet_py::register_runtime_metrics(m);
}
