// Logging configuration (spdlog underneath).
#pragma once

#include <string_view>

#include "covet/middleware/access_log.hpp"

namespace covet {

// level: trace|debug|info|warn|error|critical|off. Throws std::invalid_argument naming the accepted values.
// format: text lines, or JSON lines ({"time":..,"level":..,"msg":..}) for log shippers.
void configure_logging(std::string_view level, LogFormat format = LogFormat::text);

}  // namespace covet
