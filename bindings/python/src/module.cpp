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
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "covet/covet.hpp"
#include "covet/net/tls_context.hpp"

namespace py = pybind11;

namespace {

// One request handed to Python: the request stays valid (the connection keeps it) until answered.
struct Exchange {
    covet::Request* request = nullptr;
    covet::Responder responder;
    covet::StreamWriter stream;
    bool answered = false;
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
    void push(int route_id, covet::Request& request, covet::Responder responder) {
        auto ex = std::make_shared<Exchange>();
        ex->request = &request;
        ex->responder = std::move(responder);
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
        out.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + static_cast<std::ptrdiff_t>(count)));
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(count));
        if (!queue_.empty() && !polled_) {  // more than max_items: stay readable
            const std::uint64_t one = 1;
            [[maybe_unused]] ssize_t w = ::write(fd_, &one, sizeof one);
        }
        return out;
    }
    int fileno() const noexcept { return fd_; }
    bool pending() {
        std::lock_guard lock(mutex_);
        return !queue_.empty();
    }

private:
    int fd_;
    bool polled_ = false;
    std::mutex mutex_;
    std::vector<std::pair<int, ExchangePtr>> queue_;
};

const covet::Request& live_request(const ExchangePtr& ex) {
    if (ex->answered || !ex->request)
        throw std::runtime_error("this request has already been answered; copy what you need before responding");
    return *ex->request;
}

py::str latin1(std::string_view s) {
    PyObject* o = PyUnicode_DecodeLatin1(s.data(), static_cast<Py_ssize_t>(s.size()), nullptr);
    if (!o) throw py::error_already_set();
    return py::reinterpret_steal<py::str>(o);
}

// Python (name, value) pairs → a native response head; Content-Type goes where the serializer expects it.
covet::Response make_response(int status, const std::vector<std::pair<std::string, std::string>>& headers, std::string body) {
    covet::Response r(status);
    r.set_body(std::move(body));
    for (const auto& [name, value] : headers) {
        if (name.find_first_of("\r\n:") != std::string::npos || value.find_first_of("\r\n") != std::string::npos)
            throw py::value_error("header names and values must not contain CR, LF (or ':' in names): " + name);
        if (covet::iequals(name, "content-type")) r.set_content_type(value);
        else if (covet::iequals(name, "content-length") || covet::iequals(name, "transfer-encoding")) continue;  // framing is ours
        else r.add_header(name, value);
    }
    return r;
}

class NativeServer {
public:
    NativeServer(std::string host, std::uint16_t port, unsigned threads, const std::string& backend,
                 std::size_t max_body_bytes, long header_timeout_ms, long keep_alive_timeout_ms,
                 long shutdown_timeout_ms, std::size_t max_connections, bool shared_port) {
        app_.json_errors();  // 404/405/500 bodies as FastAPI writes them
        auto& c = app_.config();
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
        c.shared_port = shared_port;
        c.timeouts.header = std::chrono::milliseconds(header_timeout_ms);
        c.timeouts.keep_alive = std::chrono::milliseconds(keep_alive_timeout_ms);
        c.timeouts.shutdown = std::chrono::milliseconds(shutdown_timeout_ms);
    }
    ~NativeServer() {
        if (embedded_) app_.server()->on_output(nullptr);
        py::gil_scoped_release unlocked;
        app_.stop();
        app_.wait();
    }

    void add_route(const std::string& method, const std::string& pattern, int route_id) {
        auto m = covet::parse_method(method);
        if (!m) throw py::value_error("unknown HTTP method '" + method + "'");
        try {
            app_.route(*m, pattern, covet::AsyncHandler([this, route_id](covet::Request& r, covet::Responder responder) {
                bridge_.push(route_id, r, std::move(responder));
            }));
        } catch (const covet::RouteError& e) {
            throw py::value_error(e.what());
        }
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

    // TLS on every connection (h2 or http/1.1 by ALPN). The files are loaded here, so that a wrong path
    // or key fails now with its reason rather than at start().
    void configure_tls(const std::string& certfile, const std::string& keyfile, const std::string& ca_certs,
                       const std::string& client_auth, bool allow_tls12, const std::string& ciphers,
                       const std::vector<std::pair<std::string, std::string>>& sni_certs) {
        covet::net::TlsConfig tls;
        tls.certificates.push_back({certfile, keyfile});
        for (const auto& [cert, key] : sni_certs) tls.certificates.push_back({cert, key});
        tls.ca_file = ca_certs;
        if (client_auth == "none") tls.client_auth = covet::net::ClientAuth::none;
        else if (client_auth == "optional") tls.client_auth = covet::net::ClientAuth::optional;
        else if (client_auth == "required") tls.client_auth = covet::net::ClientAuth::required;
        else throw py::value_error("client_auth must be 'none', 'optional' or 'required', not '" + client_auth + "'");
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
        py::gil_scoped_release unlocked;
        if (threads_ == 0) {
            try {
                app_.start_embedded();
                embedded_ = true;
                bridge_.set_polled(true);
                return;
            } catch (const std::exception& e) {
                spdlog::info("the engine runs on its own I/O thread: {}", e.what());
            }
            app_.config().threads = 1;
        }
        app_.start();
    }
    void stop() { app_.stop(); }
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
    bool http2() const { return app_.config().http2; }
    void set_http2(bool on) { app_.config().http2 = on; }
    bool tls() const { return app_.config().tls.has_value(); }
    std::string backend() const { return std::string(covet::io::to_string(app_.backend())); }
    int fileno() const { return embedded_ ? app_.server()->poll_fd() : bridge_.fileno(); }
    std::vector<std::pair<int, ExchangePtr>> take(std::size_t max_items) { return bridge_.take(max_items); }

private:
    void require_embedded(const char* what) const {
        if (!embedded_) throw std::runtime_error(std::string(what) + "() is for a server started with threads=0 on io_uring");
    }

    py::object output_hook_;  // declared first: outlives the engine
    covet::App app_;
    Bridge bridge_;
    unsigned threads_ = 1;
    bool embedded_ = false;
};

// Python-visible wrappers around one Exchange.
struct NativeRequest {
    ExchangePtr ex;
};
struct NativeResponder {
    ExchangePtr ex;
};

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "CovetPy native engine (C++20, io_uring/epoll, HTTP/1.1, HTTP/2, TLS)";

    py::class_<NativeRequest>(m, "NativeRequest")
        .def_property_readonly("method", [](const NativeRequest& r) { return latin1(live_request(r.ex).method_name()); })
        .def_property_readonly("target", [](const NativeRequest& r) { return latin1(live_request(r.ex).target()); })
        .def_property_readonly("path", [](const NativeRequest& r) { return latin1(live_request(r.ex).path()); })
        .def_property_readonly("query_string", [](const NativeRequest& r) { return latin1(live_request(r.ex).query_string()); })
        .def_property_readonly("headers", [](const NativeRequest& r) {
            const covet::Request& req = live_request(r.ex);
            py::list out(req.headers().size());
            std::size_t i = 0;
            for (const covet::Header& h : req.headers()) out[i++] = py::make_tuple(latin1(h.name), latin1(h.value));
            return out;
        })
        .def_property_readonly("body", [](const NativeRequest& r) {
            const std::string_view b = live_request(r.ex).body();
            return py::bytes(b.data(), b.size());
        })
        .def_property_readonly("params", [](const NativeRequest& r) {
            py::dict out;
            for (const covet::PathParam& p : live_request(r.ex).params()) out[latin1(p.name)] = latin1(p.value);
            return out;
        })
        .def_property_readonly("client", [](const NativeRequest& r) {
            const covet::Request& req = live_request(r.ex);
            return py::make_tuple(latin1(req.client_address()), req.client_port());
        })
        .def_property_readonly("http_version", [](const NativeRequest& r) {
            const covet::Request& req = live_request(r.ex);
            if (req.version_major() == 2) return std::string("2");  // as ASGI servers write it
            return std::to_string(req.version_major()) + "." + std::to_string(req.version_minor());
        })
        .def_property_readonly("scheme", [](const NativeRequest& r) { return std::string(live_request(r.ex).scheme()); })
        // The TLS session as a dict (ASGI's TLS extension names where there is one), or None.
        .def_property_readonly("tls", [](const NativeRequest& r) -> py::object {
            const covet::net::TlsInfo* t = live_request(r.ex).tls();
            if (!t) return py::none();
            py::dict d;
            d["tls_version"] = std::string(t->version);
            d["cipher_suite"] = std::string(t->cipher);
            d["alpn_protocol"] = std::string(t->alpn);
            d["server_name"] = t->server_name;
            d["session_reused"] = t->session_reused;
            d["client_cert_verified"] = t->client_verified;
            d["client_cert_name"] = t->client_verified ? py::object(py::str(t->client_subject)) : py::object(py::none());
            d["client_cert_common_name"] = t->client_verified ? py::object(py::str(t->client_common_name)) : py::object(py::none());
            return d;
        });

    py::class_<NativeResponder>(m, "NativeResponder")
        .def("send", [](NativeResponder& r, int status, const std::vector<std::pair<std::string, std::string>>& headers, py::bytes body) {
            if (r.ex->answered) throw std::runtime_error("this request has already been answered");
            covet::Response resp = make_response(status, headers, std::string(body));
            r.ex->answered = true;
            r.ex->responder.send(std::move(resp));
        }, py::arg("status"), py::arg("headers"), py::arg("body"))
        .def("start_stream", [](NativeResponder& r, int status, const std::vector<std::pair<std::string, std::string>>& headers) {
            if (r.ex->answered) throw std::runtime_error("this request has already been answered");
            r.ex->answered = true;
            r.ex->stream = r.ex->responder.stream(make_response(status, headers, {}));
        })
        .def("write", [](NativeResponder& r, py::bytes chunk) {
            if (!r.ex->stream) throw std::runtime_error("write() needs start_stream() first (or the stream has ended)");
            r.ex->stream.write(std::string_view(chunk));
        })
        .def("end", [](NativeResponder& r) { r.ex->stream.end(); })
        .def("abort", [](NativeResponder& r) { r.ex->stream.abort(); },
             "Cuts a started stream short: the connection closes without the terminating chunk, so the "
             "client sees an incomplete response (for a producer that failed midway).")
        .def_property_readonly("answered", [](const NativeResponder& r) { return r.ex->answered; });

    py::class_<NativeServer>(m, "NativeServer")
        .def(py::init<std::string, std::uint16_t, unsigned, const std::string&, std::size_t, long, long, long, std::size_t, bool>(),
             py::arg("host") = "127.0.0.1", py::arg("port") = 8000, py::arg("threads") = 1, py::arg("backend") = "auto",
             py::arg("max_body_bytes") = 1 << 20, py::arg("header_timeout_ms") = 10000,
             py::arg("keep_alive_timeout_ms") = 60000, py::arg("shutdown_timeout_ms") = 10000,
             py::arg("max_connections") = 10000, py::arg("shared_port") = false)
        .def("add_route", &NativeServer::add_route, py::arg("method"), py::arg("pattern"), py::arg("route_id"))
        .def("add_constant_route", &NativeServer::add_constant_route, py::arg("method"), py::arg("pattern"),
             py::arg("status"), py::arg("content_type"), py::arg("body"), py::arg("headers"))
        .def("configure_tls", &NativeServer::configure_tls, py::arg("certfile"), py::arg("keyfile"),
             py::arg("ca_certs") = "", py::arg("client_auth") = "none", py::arg("allow_tls12") = true,
             py::arg("ciphers") = "", py::arg("sni_certs") = std::vector<std::pair<std::string, std::string>>{})
        .def("reload_tls", &NativeServer::reload_tls)
        .def_property("http2", &NativeServer::http2, &NativeServer::set_http2)
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
        .def("take", [](NativeServer& s, std::size_t max_items) {
            auto items = s.take(max_items);
            py::list out(items.size());
            for (std::size_t i = 0; i < items.size(); ++i)
                out[i] = py::make_tuple(items[i].first, NativeRequest{items[i].second}, NativeResponder{items[i].second});
            return out;
        }, py::arg("max_items") = 256);

    m.def("configure_logging", [](const std::string& level, const std::string& format) {
        covet::configure_logging(level, format == "json" ? covet::LogFormat::json : covet::LogFormat::text);
    }, py::arg("level") = "warn", py::arg("format") = "text");
}
