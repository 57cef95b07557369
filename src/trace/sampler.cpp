#include "covet/trace/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace covet::trace {

Sampler::Sampler(Root root, double ratio, bool parent_based) noexcept
    : root_(root), ratio_(std::isnan(ratio) ? 0.0 : std::clamp(ratio, 0.0, 1.0)), parent_based_(parent_based) {
    all_ = ratio_ >= 1.0;
    // ratio * 2^64, as OpenTelemetry's TraceIdRatioBased (its bound), exact for the ratios people use.
    bound_ = all_ ? 0 : static_cast<std::uint64_t>(std::ldexp(ratio_, 64));
}

Sampler Sampler::from_name(std::string_view name, double ratio) {
    if (std::isnan(ratio) || ratio < 0.0 || ratio > 1.0)
        throw std::invalid_argument("sampler ratio must be between 0 and 1, not " + std::to_string(ratio));
    if (name == "always_on") return {Root::always_on, 1.0, false};
    if (name == "always_off") return {Root::always_off, 0.0, false};
    if (name == "traceidratio") return {Root::ratio, ratio, false};
    if (name == "parentbased_always_on") return {Root::always_on, 1.0, true};
    if (name == "parentbased_always_off") return {Root::always_off, 0.0, true};
    if (name == "parentbased_traceidratio") return {Root::ratio, ratio, true};
    throw std::invalid_argument("unknown sampler '" + std::string(name) +
                                "': use always_on, always_off, traceidratio, parentbased_always_on, "
                                "parentbased_always_off or parentbased_traceidratio");
}

}  // namespace covet::trace
