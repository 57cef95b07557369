// See metrics_bindings.hpp. Python's series live in the registry's shared cell (any thread, relaxed
// fetch_add / compare-and-swap); their key is a hash of their rendered labels.
#include "metrics_bindings.hpp"

#include <pybind11/stl.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "covet/metrics/exposition.hpp"
#include "covet/metrics/http_metrics.hpp"
#include "covet/metrics/registry.hpp"

namespace py = pybind11;
namespace metrics = covet::metrics;

namespace covet_py {
namespace {

void copy_labels(const void* context, std::string& out) { out = *static_cast<const std::string*>(context); }

// The rendered label text of `names` = `values` and its key.
std::pair<std::string, std::uint64_t> label_key(const std::vector<std::string>& names,
                                                const std::vector<std::string>& values) {
    if (names.size() != values.size())
        throw py::value_error("expected " + std::to_string(names.size()) + " label values, got " +
                              std::to_string(values.size()));
    std::string text;
    for (std::size_t i = 0; i < names.size(); ++i) metrics::append_label(text, names[i], values[i]);
    if (text.size() > metrics::max_label_bytes)
        throw py::value_error("the label values are too long (" + std::to_string(text.size()) +
                              " bytes rendered; at most " + std::to_string(metrics::max_label_bytes) + ")");
    return {text, std::hash<std::string>{}(text)};
}

metrics::SeriesRef series(metrics::FamilyId family, const std::vector<std::string>& names,
                          const std::vector<std::string>& values) {
    const auto [text, key] = label_key(names, values);
    metrics::SeriesRef s = metrics::Registry::global().shared_series(family, key, copy_labels, &text);
    return s;
}

// The seed's summary view: totals over the whole process group (rates are computed by the caller).
py::dict totals() {
    const metrics::Registry::Snapshot snap = metrics::Registry::global().snapshot();
    std::uint64_t requests = 0;
    std::vector<std::uint64_t> buckets;
    std::vector<double> bounds;
    double connections = 0;
    for (const auto& f : snap.families) {
        if (f.name == "http_server_request_duration_seconds") {
            bounds = f.bounds;
            buckets.assign(bounds.size() + 1, 0);
            for (const auto& s : f.series)
                for (std::size_t b = 0; b < s.buckets.size(); ++b) buckets[b] += s.buckets[b];
        } else if (f.name == "covet_connections_open") {
            for (const auto& s : f.series) connections += s.value;
        }
    }
    for (const std::uint64_t b : buckets) requests += b;
    // p99: the upper bound of the bucket where 99% of the observations are reached (linear within it).
    double p99 = 0;
    if (requests > 0) {
        const double target = 0.99 * static_cast<double>(requests);
        double seen = 0;
        for (std::size_t b = 0; b < buckets.size(); ++b) {
            const double before = seen;
            seen += static_cast<double>(buckets[b]);
            if (seen >= target) {
                const double lower = b == 0 ? 0 : bounds[b - 1];
                const double upper = b < bounds.size() ? bounds[b] : bounds.back();
                p99 =
                    buckets[b] ? lower + (upper - lower) * (target - before) / static_cast<double>(buckets[b]) : upper;
                break;
            }
        }
    }
    const metrics::ProcessStats process = metrics::process_stats(snap.live_pids);
    py::dict d;
    d["requests"] = requests;
    d["latency_p99"] = p99;
    d["active_connections"] = connections;
    d["cpu_seconds"] = snap.cpu_seconds;  // exited workers' included: monotonic
    d["resident_bytes"] = process.resident_bytes;
    d["processes"] = snap.live_pids.size();
    return d;
}

}  // namespace

void register_metrics(py::module_& m, std::function<covet::App&(py::handle)> app_of) {
    m.def(
        "configure_ops",
        [app_of](py::handle server, bool endpoints, int port, const std::string& host, const std::string& token,
                 const std::string& metrics_path, long drain_delay_ms, bool record, int listen_fd,
                 long health_stall_ms) {
            if (port < 0 || port > 65535)
                throw py::value_error("ops_port must be 0..65535, not " + std::to_string(port));
            if (metrics_path.size() < 2 || metrics_path[0] != '/' || metrics_path[1] != '_')
                throw py::value_error("the metrics path must start with '/_' (the engine answers /_... paths), not '" +
                                      metrics_path + "'");
            if (drain_delay_ms < 0) throw py::value_error("drain_delay must be >= 0");
            if (health_stall_ms < 0) throw py::value_error("health_stall must be >= 0 (0: off)");
            covet::net::OpsConfig& ops = app_of(server).config().ops;
            ops.endpoints = endpoints;
            ops.port = static_cast<std::uint16_t>(port);
            ops.host = host;
            ops.token = token;
            ops.metrics_path = metrics_path;
            ops.drain_delay = std::chrono::milliseconds(drain_delay_ms);
            ops.record_metrics = record;
            ops.inherited_listener = listen_fd;
            ops.health_stall = std::chrono::milliseconds(health_stall_ms);
        },
        py::arg("server"), py::arg("endpoints") = false, py::arg("port") = 0, py::arg("host") = "127.0.0.1",
        py::arg("token") = "", py::arg("metrics_path") = "/_metrics", py::arg("drain_delay_ms") = 0,
        py::arg("record") = true, py::arg("listen_fd") = -1, py::arg("health_stall_ms") = 30'000,
        "Sets the server's operations endpoints (/_metrics, /_health, /_ready) before start: on its own port "
        "(`endpoints`), on a separate listener (`port`, `host`; `listen_fd`: a supervisor's socket already "
        "listening there, adopted instead of binding), the bearer `token` of /_metrics, and the drain delay during "
        "which /_ready answers 503 before the listeners close, and how long a loop may go without turning before "
        "/_health answers 503 (`health_stall_ms`, 0: never).");
    m.def("ops_port", [app_of](py::handle server) { return app_of(server).ops_port(); }, py::arg("server"));
    m.def(
        "set_ready", [app_of](py::handle server, bool ready) { app_of(server).set_ready(ready); }, py::arg("server"),
        py::arg("ready"));
    m.def(
        "set_checks_passing", [app_of](py::handle server, bool ok) { app_of(server).set_checks_passing(ok); },
        py::arg("server"), py::arg("passing"));
    m.def(
        "loop_turned", [app_of](py::handle server) { app_of(server).loop_turned(); }, py::arg("server"),
        "The host's event loop turns (call it a few times per health_stall): /_health watches it from now on.");
    m.def(
        "begin_drain", [app_of](py::handle server) { app_of(server).begin_drain(); }, py::arg("server"),
        "/_ready answers 503 from now on (the listeners stay open until stop()).");

    m.def(
        "metrics_scrape",
        [](bool openmetrics) {
            std::string text;
            {
                py::gil_scoped_release unlocked;
                text = metrics::scrape(openmetrics ? metrics::Format::openmetrics : metrics::Format::prometheus);
            }
            return text;
        },
        py::arg("openmetrics") = false, "The exposition of the whole process group, as GET /_metrics answers.");
    m.def("metrics_totals", &totals,
          "requests, latency_p99 (seconds), active_connections, cpu_seconds, resident_bytes, processes: the "
          "whole process group's.");
    m.def("metrics_directory", [] { return metrics::Registry::global().directory(); });
    m.def(
        "metrics_family",
        [](const std::string& name, const std::string& help, const std::string& kind,
           const std::vector<double>& buckets) {
            const metrics::Kind k = kind == "counter" ? metrics::Kind::counter
                                    : kind == "gauge" ? metrics::Kind::gauge
                                    : kind == "histogram"
                                        ? metrics::Kind::histogram
                                        : throw py::value_error("kind must be counter, gauge or histogram");
            try {
                return metrics::Registry::global().family(name, help, k, buckets, k != metrics::Kind::histogram);
            } catch (const std::invalid_argument& e) {
                throw py::value_error(e.what());
            } catch (const std::length_error& e) {
                throw py::value_error(e.what());
            }
        },
        py::arg("name"), py::arg("help"), py::arg("kind"), py::arg("buckets") = std::vector<double>{});
    m.def(
        "metrics_add",
        [](metrics::FamilyId family, const std::vector<std::string>& names, const std::vector<std::string>& values,
           double amount) {
            if (metrics::SeriesRef s = series(family, names, values)) s.add_double(amount);
        },
        py::arg("family"), py::arg("names"), py::arg("values"), py::arg("amount") = 1.0);
    m.def(
        "metrics_set",
        [](metrics::FamilyId family, const std::vector<std::string>& names, const std::vector<std::string>& values,
           double value) {
            if (metrics::SeriesRef s = series(family, names, values)) s.set_double(value);
        },
        py::arg("family"), py::arg("names"), py::arg("values"), py::arg("value"));
    m.def(
        "metrics_observe",
        [](metrics::FamilyId family, const std::vector<std::string>& names, const std::vector<std::string>& values,
           double value) {
            if (metrics::SeriesRef s = series(family, names, values))
                s.observe(metrics::Registry::global().bucket_of(family, value), value);
        },
        py::arg("family"), py::arg("names"), py::arg("values"), py::arg("value"));
    m.def(
        "metrics_worker_restart", [](const std::string& cause) { metrics::worker_restart(cause); }, py::arg("cause"),
        "covet_worker_restarts_total{cause}: the supervisor's.");
    m.def("metrics_set_workers_ready", [](long n) { metrics::set_workers_ready(n); }, py::arg("count"));
    m.def(
        "metrics_retire_dead", [] { metrics::Registry::global().retire_dead(); },
        "Folds the metrics regions of exited processes into the group's retired region and deletes their files "
        "(the supervisor's, after reaping a worker).");
}

}  // namespace covet_py
