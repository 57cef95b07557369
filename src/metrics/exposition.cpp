// The text formats. Prometheus 0.0.4: `# HELP`, `# TYPE`, then samples (counters named *_total); OpenMetrics
// 1.0: the same samples, counter families typed under the name without `_total`, `# EOF` at the end.
#include "covet/metrics/exposition.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "covet/http/ascii.hpp"
#include "covet/http/qvalue.hpp"
#include "covet/metrics/http_metrics.hpp"

namespace covet::metrics {
namespace {

void append_number(std::string& out, double v) {
    if (std::isnan(v)) {
        out.append("NaN");
        return;
    }
    if (std::isinf(v)) {
        out.append(v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char buf[32];
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
        std::snprintf(buf, sizeof buf, "%.0f", v);
    } else {
        // The shortest form that reads back the same (%.17g shows binary noise: 0.10000000000000001).
        for (int precision = 6; precision <= 17; ++precision) {
            std::snprintf(buf, sizeof buf, "%.*g", precision, v);
            if (std::strtod(buf, nullptr) == v) break;
        }
    }
    out.append(buf);
}

// A bucket bound as the `le` label: OpenMetrics wants canonical floats ("1.0", not "1").
std::string le_text(double bound, Format format) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", bound);
    std::string s(buf);
    // %.17g shows binary noise (0.10000000000000001): take the shortest form that reads back the same.
    for (int precision = 1; precision <= 17; ++precision) {
        std::snprintf(buf, sizeof buf, "%.*g", precision, bound);
        if (std::strtod(buf, nullptr) == bound) {
            s = buf;
            break;
        }
    }
    if (format == Format::openmetrics && s.find_first_of(".e") == std::string::npos) s.append(".0");
    return s;
}

void append_help(std::string& out, std::string_view help) {
    for (const char c : help) {
        if (c == '\\')
            out.append("\\\\");
        else if (c == '\n')
            out.append("\\n");
        else
            out.push_back(c);
    }
}

void sample(std::string& out, std::string_view name, std::string_view suffix, std::string_view labels,
            std::string_view extra_label, double value) {
    out.append(name).append(suffix);
    if (!labels.empty() || !extra_label.empty()) {
        out.push_back('{');
        out.append(labels);
        if (!labels.empty() && !extra_label.empty()) out.push_back(',');
        out.append(extra_label);
        out.push_back('}');
    }
    out.push_back(' ');
    append_number(out, value);
    out.push_back('\n');
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    out.append("# HELP ").append(name).push_back(' ');
    append_help(out, help);
    out.append("\n# TYPE ").append(name).append(" ").append(type).push_back('\n');
}

// utime + stime (seconds) and RSS (bytes) of a process, from /proc/<pid>/stat.
bool read_stat(int pid, double& cpu, double& rss) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(f, text)) return false;
    const std::size_t paren = text.rfind(')');
    if (paren == std::string::npos) return false;
    std::istringstream rest(text.substr(paren + 2));
    std::string field;
    // Fields after the command: state(3) ... utime(14) stime(15) ... rss(24).
    double utime = 0, stime = 0, pages = 0;
    for (int i = 3; i <= 24 && rest >> field; ++i) {
        if (i == 14) utime = std::strtod(field.c_str(), nullptr);
        if (i == 15) stime = std::strtod(field.c_str(), nullptr);
        if (i == 24) pages = std::strtod(field.c_str(), nullptr);
    }
    static const auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    static const auto page = static_cast<double>(::sysconf(_SC_PAGESIZE));
    cpu += (utime + stime) / ticks;
    rss += pages * page;
    return true;
}

}  // namespace

Format negotiate(std::string_view accept) noexcept {
    // The q offered for each format (thousandths; -1: not offered): text/plain's from its most specific range
    // (text/plain, else text/*, else */*); OpenMetrics only by its name (Prometheus names it, above text/plain).
    int openmetrics = -1, text_plain = -1, text_any = -1, any = -1;
    for_each_weighted(accept, [&](std::string_view media, int q) {  // a malformed q-value: the member is ignored
        if (iequals(media, "application/openmetrics-text"))
            openmetrics = std::max(openmetrics, q);
        else if (iequals(media, "text/plain"))
            text_plain = std::max(text_plain, q);
        else if (iequals(media, "text/*"))
            text_any = std::max(text_any, q);
        else if (media == "*/*")
            any = std::max(any, q);
    });
    const int text = text_plain >= 0 ? text_plain : text_any >= 0 ? text_any : any;
    return openmetrics > 0 && openmetrics >= text ? Format::openmetrics : Format::prometheus;
}

std::string_view content_type(Format format) noexcept {
    return format == Format::openmetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                         : "text/plain; version=0.0.4; charset=utf-8";
}

ProcessStats process_stats(std::span<const int> pids) {
    ProcessStats s;
    for (const int pid : pids)
        if (read_stat(pid, s.cpu_seconds, s.resident_bytes)) s.known = true;
    return s;
}

std::string render(const Registry::Snapshot& snapshot, Format format, const ProcessStats& process) {
    std::string out;
    out.reserve(std::size_t{16} * 1024);
    const bool om = format == Format::openmetrics;
    for (const Registry::MergedFamily& f : snapshot.families) {
        // A family without a label set yet still shows as one zero sample (counters and gauges), so that
        // queries and alerts find it before the first event.
        switch (f.kind) {
            case Kind::counter: {
                header(out, om ? f.name : f.name + "_total", "counter", f.help);
                if (f.series.empty()) sample(out, f.name, "_total", {}, {}, 0);
                for (const auto& s : f.series) sample(out, f.name, "_total", s.labels, {}, s.value);
                break;
            }
            case Kind::gauge: {
                header(out, f.name, "gauge", f.help);
                if (f.series.empty()) sample(out, f.name, {}, {}, {}, 0);
                for (const auto& s : f.series) sample(out, f.name, {}, s.labels, {}, s.value);
                break;
            }
            case Kind::histogram: {
                header(out, f.name, "histogram", f.help);
                for (const auto& s : f.series) {
                    std::uint64_t cumulative = 0;
                    for (std::size_t b = 0; b < f.bounds.size(); ++b) {
                        cumulative += s.buckets[b];
                        sample(out, f.name, "_bucket", s.labels, "le=\"" + le_text(f.bounds[b], format) + "\"",
                               static_cast<double>(cumulative));
                    }
                    cumulative += s.buckets[f.bounds.size()];
                    sample(out, f.name, "_bucket", s.labels, "le=\"+Inf\"", static_cast<double>(cumulative));
                    sample(out, f.name, "_sum", s.labels, {}, s.sum);
                    sample(out, f.name, "_count", s.labels, {}, static_cast<double>(cumulative));
                }
                break;
            }
        }
    }
    if (process.known) {
        header(out, om ? "process_cpu_seconds" : "process_cpu_seconds_total", "counter",
               "User and system CPU time of the process group, exited processes included, in seconds.");
        sample(out, "process_cpu_seconds", "_total", {}, {}, process.cpu_seconds);
        header(out, "process_resident_memory_bytes", "gauge", "Resident memory of the live worker processes.");
        sample(out, "process_resident_memory_bytes", {}, {}, {}, process.resident_bytes);
    }
    if (snapshot.start_time > 0) {
        header(out, "process_start_time_seconds", "gauge", "Start of the earliest live process (Unix seconds).");
        sample(out, "process_start_time_seconds", {}, {}, {}, std::floor(snapshot.start_time));
    }
    header(out, om ? "covet_metrics_dropped_series" : "covet_metrics_dropped_series_total", "counter",
           "Label sets not recorded because a thread's metric table was full.");
    sample(out, "covet_metrics_dropped_series", "_total", {}, {}, static_cast<double>(snapshot.dropped));
    if (om) out.append("# EOF\n");
    return out;
}

std::string scrape(Format format) {
    EngineFamilies::get();  // declared even before the first request, so that they show as zeros
    const Registry::Snapshot snapshot = Registry::global().snapshot();
    ProcessStats process = process_stats(snapshot.live_pids);
    process.cpu_seconds = snapshot.cpu_seconds;  // exited workers' included: never goes backwards
    return render(snapshot, format, process);
}

}  // namespace covet::metrics
