#include "trace_binding.hpp"

#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "covet/trace/middleware.hpp"

namespace py = pybind11;

namespace covet_py {
namespace {

struct NativeTracer {
    std::shared_ptr<covet::trace::Tracer> tracer;
};

template <std::size_t N>
py::str hex(const std::array<std::uint8_t, N>& id) {
    char buf[2 * N];
    return py::str(std::string(covet::trace::to_hex(id, buf)));
}

py::str text(std::string_view s) {
    // Client-controlled bytes (the path) may not be UTF-8: replaced, never an exception on the exporter thread.
    PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
    if (!o) throw py::error_already_set();
    return py::reinterpret_steal<py::str>(o);
}

}  // namespace

void register_tracing(py::module_& m, std::function<covet::App&(py::handle)> app_of) {
    py::class_<NativeTracer>(m, "NativeTracer", "The engine's finished request spans (covet/trace/tracer.hpp).")
        .def(
            "drain",
            [](NativeTracer& t) {
                std::vector<covet::trace::SpanRecord> spans;
                {
                    py::gil_scoped_release unlocked;
                    t.tracer->drain(spans);
                }
                py::list out(spans.size());
                for (std::size_t i = 0; i < spans.size(); ++i) {
                    const auto& s = spans[i];
                    const bool root = covet::trace::is_zero(s.parent_span_id);
                    out[i] = py::make_tuple(hex(s.trace_id), hex(s.span_id), root ? py::str("") : hex(s.parent_span_id),
                                            s.flags, s.parent_remote, s.status, s.start_unix_ns, s.end_unix_ns,
                                            py::str(std::string(s.method)), py::str(std::string(s.protocol_version)),
                                            s.https ? "https" : "http", text(s.route.view()), text(s.path.view()),
                                            text(s.peer.view()), text(s.request_id.view()));
                }
                return out;
            },
            "Takes every finished span: (trace_id, span_id, parent_span_id or '', flags, parent_remote, status, "
            "start_unix_ns, end_unix_ns, method, protocol_version, scheme, route, path, peer, request_id) tuples.")
        .def_property_readonly("dropped", [](const NativeTracer& t) { return t.tracer->dropped(); })
        .def_property_readonly("recorded", [](const NativeTracer& t) { return t.tracer->recorded(); });

    m.def(
        "enable_tracing",
        [app_of = std::move(app_of)](py::handle server, const std::string& sampler, double ratio,
                                     std::size_t queue_capacity) {
            covet::trace::TracerOptions options;
            try {
                options.sampler = covet::trace::Sampler::from_name(sampler, ratio);
            } catch (const std::invalid_argument& e) {
                throw py::value_error(e.what());
            }
            options.queue_capacity = queue_capacity;
            auto tracer = std::make_shared<covet::trace::Tracer>(options);
            app_of(server).use(std::make_unique<covet::trace::TracingMiddleware>(tracer));
            return NativeTracer{tracer};
        },
        py::arg("server"), py::arg("sampler") = "parentbased_always_on", py::arg("ratio") = 1.0,
        py::arg("queue_capacity") = 2048,
        "A native span per request on a server that has not started (call it before add_middleware: it must run "
        "first). sampler: an OTEL_TRACES_SAMPLER name; ratio for the traceidratio ones. Returns the NativeTracer "
        "to drain.");
}

}  // namespace covet_py
