// covet._native.add_middleware(server, kind, options): see middleware_bindings.hpp. The options arrive as
// covet.middleware built them (checked there); a key this side does not know is a TypeError all the same.
#include "middleware_bindings.hpp"

#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "covet/log.hpp"
#include "covet/middleware/compression.hpp"
#include "covet/middleware/cors.hpp"
#include "covet/middleware/csrf.hpp"
#include "covet/middleware/hosts.hpp"
#include "covet/middleware/performance.hpp"
#include "covet/middleware/request_id.hpp"
#include "covet/middleware/security_headers.hpp"
#include "covet/ratelimit/middleware.hpp"

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
    } else if (kind == "performance") {
        double sla_ms = 0, log_interval_ms = 1000;
        std::vector<std::pair<std::string, double>> routes;
        std::string format = "text";
        o.get("sla_ms", sla_ms);
        o.get("routes", routes);
        o.get("log_interval_ms", log_interval_ms);
        o.get("format", format);
        o.check_all_used();
        const auto micros = [](double ms) { return std::chrono::microseconds(std::llround(ms * 1000.0)); };
        covet::PerformanceOptions c;
        c.sla = micros(sla_ms);
        for (const auto& [route, ms] : routes) c.routes.emplace_back(route, micros(ms));
        c.log_interval = std::chrono::milliseconds(std::llround(log_interval_ms));
        c.format = format == "json" ? covet::LogFormat::json : covet::LogFormat::text;
        try {
            out = std::make_unique<covet::PerformanceMiddleware>(std::move(c));
        } catch (const std::invalid_argument& e) {
            throw py::value_error(e.what());
        }
    } else if (kind == "rate_limit") {
        namespace rl = covet::ratelimit;
        rl::RateLimitOptions c;
        std::vector<py::dict> rules;
        o.get("rules", rules);
        o.get("table", c.table);
        o.get("capacity", c.capacity);
        o.get("headers", c.headers);
        o.check_all_used();
        for (const py::dict& d : rules) {
            Options r("rate_limit rule", d);
            rl::RateLimitRule rule;
            double period_s = 60;
            std::string key = "ip";
            r.get("name", rule.name);
            r.get("limit", rule.limit);
            r.get("period", period_s);
            r.get("burst", rule.burst);
            r.get("key", key);
            r.get("header", rule.header);
            r.get("ipv4_prefix", rule.ipv4_prefix);
            r.get("ipv6_prefix", rule.ipv6_prefix);
            r.get("routes", rule.routes);
            r.check_all_used();
            rule.period = std::chrono::nanoseconds(std::llround(period_s * 1e9));
            if (key == "ip")
                rule.key = rl::KeyKind::client_ip;
            else if (key == "header")
                rule.key = rl::KeyKind::header;
            else if (key == "route")
                rule.key = rl::KeyKind::route;
            else if (key == "global")
                rule.key = rl::KeyKind::global;
            else
                throw py::value_error("rate limit key must be ip, header, route or global, not '" + key + "'");
            c.rules.push_back(std::move(rule));
        }
        try {
            out = std::make_unique<rl::RateLimitMiddleware>(std::move(c));
        } catch (const std::invalid_argument& e) {
            throw py::value_error(e.what());
        }
    } else if (kind == "request_id") {
        o.check_all_used();
        out = std::make_unique<covet::RequestIdMiddleware>();
    } else if (kind == "security_headers") {
        covet::SecurityHeadersOptions c;
        o.get("hsts_max_age", c.hsts_max_age);
        o.get("hsts_include_subdomains", c.hsts_include_subdomains);
        o.get("hsts_preload", c.hsts_preload);
        o.get("content_security_policy", c.content_security_policy);
        o.get("csp_report_only", c.csp_report_only);
        o.get("content_type_options", c.content_type_options);
        o.get("referrer_policy", c.referrer_policy);
        o.get("frame_options", c.frame_options);
        o.get("cross_origin_opener_policy", c.cross_origin_opener_policy);
        o.check_all_used();
        try {
            out = std::make_unique<covet::SecurityHeadersMiddleware>(std::move(c));
        } catch (const std::invalid_argument& e) {
            throw py::value_error(e.what());
        }
    } else if (kind == "csrf") {
        covet::CsrfOptions c;
        o.get("secret", c.secret);
        o.get("trusted_origins", c.trusted_origins);
        o.get("exempt_paths", c.exempt_paths);
        o.get("exempt_bearer", c.exempt_bearer);
        o.get("check_token", c.check_token);
        o.get("cookie_name", c.cookie_name);
        o.get("header_name", c.header_name);
        o.get("form_field", c.form_field);
        o.get("cookie_samesite", c.cookie_samesite);
        o.check_all_used();
        try {
            out = std::make_unique<covet::CsrfMiddleware>(std::move(c));
        } catch (const std::invalid_argument& e) {
            throw py::value_error(e.what());
        }
    } else if (kind == "https_redirect") {
        o.check_all_used();
        out = std::make_unique<covet::HttpsRedirectMiddleware>();
    } else {
        throw py::value_error(
            "unknown native middleware " + kind +
            ": expected cors, compression, trusted_host, https_redirect, access_log, request_id, performance, "
            "security_headers, csrf or rate_limit");
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
        "(outermost). kind: cors, compression, trusted_host, https_redirect, access_log (format: text or json), "
        "request_id, performance, security_headers, csrf or rate_limit; options as covet.middleware (covet.ratelimit) "
        "passes them.");
    m.def(
        "sla_violation", [](const std::string& route) { covet::PerformanceMiddleware::count_violation(route); },
        py::arg("route"),
        "Counts one answer over its SLA threshold in covet_sla_violations_total{http_route} (PerformanceMiddleware "
        "run in Python).");
}

}  // namespace covet_py
