// Which requests get a recorded span, decided natively per request: the OpenTelemetry samplers by their
// OTEL_TRACES_SAMPLER names. A ratio keeps a trace when the low 64 bits of its id are under ratio * 2^64
// (OpenTelemetry's TraceIdRatioBased), so every service using the same ratio keeps the same traces.
// Parent-based samplers follow an incoming traceparent's sampled flag and use the root rule otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "covet/trace/ids.hpp"

namespace covet::trace {

class Sampler {
public:
    enum class Root { always_on, always_off, ratio };

    Sampler() = default;  // parentbased_always_on, OpenTelemetry's default
    Sampler(Root root, double ratio, bool parent_based) noexcept;

    // name: always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off,
    // parentbased_traceidratio; `ratio` for the traceidratio ones, in [0, 1]. Throws std::invalid_argument
    // naming the accepted values.
    static Sampler from_name(std::string_view name, double ratio = 1.0);

    // parent_sampled: the incoming traceparent's sampled flag, or nullopt for a new trace.
    bool sample(const TraceId& trace_id, std::optional<bool> parent_sampled) const noexcept {
        if (parent_based_ && parent_sampled) return *parent_sampled;
        switch (root_) {
            case Root::always_on: return true;
            case Root::always_off: return false;
            case Root::ratio: return all_ || low64(trace_id) < bound_;
        }
        return false;
    }

    // The same for a new trace (no parent) whose id's low 64 bits are `trace_lo`.
    bool sample_root(std::uint64_t trace_lo) const noexcept {
        switch (root_) {
            case Root::always_on: return true;
            case Root::always_off: return false;
            case Root::ratio: return all_ || trace_lo < bound_;
        }
        return false;
    }

    Root root() const noexcept { return root_; }
    double ratio() const noexcept { return ratio_; }
    bool parent_based() const noexcept { return parent_based_; }

private:
    Root root_ = Root::always_on;
    double ratio_ = 1.0;
    bool parent_based_ = true;
    bool all_ = true;          // ratio >= 1
    std::uint64_t bound_ = 0;  // ratio * 2^64 when < 1
};

}  // namespace covet::trace
