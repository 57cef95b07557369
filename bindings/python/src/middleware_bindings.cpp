// covet._native.add_middleware(server, kind, options): see middleware_bindings.hpp. The options arrive as
// covet.middleware built them (checked there); a key this side does not know is a TypeError all the same.
#include "middleware_bindings.hpp"

#include <pybind11/stl.h>

#include <set>
#include <string>
#include <vector>

#include "covet/log.hpp"
#include "covet/middleware/compression.hpp"
#include "covet/middleware/cors.hpp"
#include "covet/middleware/hosts.hpp"
#include "covet/middleware/request_id.hpp"

namespace py = pybind11;

namespace covet_py {

namespace {

class Options {
public:
    Options(std::string kind, py::dict d) : kind_(std::move(kind)), d_(std::move(d)) {}
    template <class T>
    void get(const char* key, T& into) {
        seen_.insert(key);
        if (d_.contains(key)) into = d_[key].cast<T>();
    }
    void check_all_used() const {
        for (const auto& item : d_) {
            const std::string key = py::str(item.first);
            if (!seen_.contains(key)) throw py::type_error("native middleware " + kind_ + ": unknown option " + key);
        }
    }

private:
    std::string kind_;
    py::dict d_;
    std::set<std::string> seen_;
};

std::unique_ptr<covet::Middleware> make(const std::string& kind, const py::dict& dict) {
    Options o(kind, dict);
    std::unique_ptr<covet::Middleware> out;
    if (kind == "cors") {
        covet::CorsOptions c;
        o.get("allow_origins", c.allow_origins);
        o.get("allow_methods", c.allow_methods);
        o.get("allow_headers", c.allow_headers);
        o.get("allow_credentials", c.allow_credentials);
        o.get("allow_origin_regex", c.allow_origin_regex);
        o.get("allow_private_network", c.allow_private_network);
        o.get("expose_headers", c.expose_headers);
        o.get("max_age", c.max_age);
        o.check_all_used();
        out = std::make_unique<covet::CorsMiddleware>(std::move(c));
    } else if (kind == "compression") {
        covet::CompressionOptions c;
        o.get("minimum_size", c.minimum_size);
        o.get("gzip_level", c.gzip_level);
        o.get("brotli_quality", c.brotli_quality);
        o.get("zstd_level", c.zstd_level);
        o.get("exclude_content_types", c.exclude_content_types);
        o.check_all_used();
        out = std::make_unique<covet::CompressionMiddleware>(std::move(c));
    } else if (kind == "trusted_host") {
        covet::TrustedHostOptions c;
        o.get("allowed_hosts", c.allowed_hosts);
        o.get("www_redirect", c.www_redirect);
        o.check_all_used();
        out = std::make_unique<covet::TrustedHostMiddleware>(std::move(c));
    } else if (kind == "access_log") {
        std::string format = "text";
        o.get("format", format);
        o.check_all_used();
        if (format != "text" && format != "json")
            throw py::value_error("access_log format must be 'text' or 'json', not '" + format + "'");
        out = std::make_unique<covet::AccessLogMiddleware>(format == "json" ? covet::LogFormat::json
                                                                            : covet::LogFormat::text);
    } else if (kind == "request_id") {
        o.check_all_used();
        out = std::make_unique<covet::RequestIdMiddleware>();
    } else if (kind == "https_redirect") {
        o.check_all_used();
        out = std::make_unique<covet::HttpsRedirectMiddleware>();
    } else {
        throw py::value_error("unknown native middleware " + kind +
                              ": expected cors, compression, trusted_host, https_redirect, access_log or request_id");
    }
    return out;
}

}  // namespace

void register_middleware(py::module_& m, std::function<covet::App&(py::handle)> app_of) {
    m.def(
        "add_middleware",
        [app_of = std::move(app_of)](py::handle server, const std::string& kind, const py::dict& options) {
            app_of(server).use(make(kind, options));
        },
        py::arg("server"), py::arg("kind"), py::arg("options"),
        "Adds a native middleware to a server that has not started: the first added runs first on the request "
        "(outermost). kind: cors, compression, trusted_host, https_redirect, access_log (format: text or json) or "
        "request_id; options as covet.middleware "
        "passes them.");
}

}  // namespace covet_py
