// Rendering a merged snapshot (registry.hpp) as the Prometheus text format 0.0.4 or OpenMetrics 1.0, chosen by
// the scrape's Accept header, and the process metrics of the live processes of the group.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "covet/metrics/registry.hpp"

namespace covet::metrics {

enum class Format : std::uint8_t { prometheus, openmetrics };

// OpenMetrics when the Accept header offers application/openmetrics-text with a q above 0 and at least that of
// text/plain (or text/*, */*), else the Prometheus text format (also for no Accept at all).
Format negotiate(std::string_view accept) noexcept;
std::string_view content_type(Format format) noexcept;

// The process_* metrics: sums over `pids` (CPU, resident memory) and the earliest start.
struct ProcessStats {
    double cpu_seconds = 0;
    double resident_bytes = 0;
    double start_time = 0;
    bool known = false;  // /proc was readable
};
ProcessStats process_stats(std::span<const int> pids);

// The exposition of `snapshot` (plus `process` when known).
std::string render(const Registry::Snapshot& snapshot, Format format, const ProcessStats& process = {});

// Everything the global registry's group holds, rendered: what GET /_metrics answers.
std::string scrape(Format format);

}  // namespace covet::metrics
