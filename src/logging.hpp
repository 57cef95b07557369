// The engine's log calls: `logging::warn("... {}", x)` formats with fmt (checked at compile time) and hands the
// line to spdlog's default logger in src/log.cpp. Only that file includes spdlog: spdlog is header-only here (see
// src/CMakeLists.txt), and its headers cost every translation unit that includes them ~12 s of compiling under
// ASan, this one ~1 s.
#pragma once

#include <fmt/core.h>

#include <string_view>
#include <utility>

namespace covet::logging {

enum class Level { trace, debug, info, warn, error, critical };

// Whether the default logger writes lines of this level: the arguments are formatted only then.
bool enabled(Level level) noexcept;
// One line, as it is (no formatting), through the default logger.
void write(Level level, std::string_view line) noexcept;

// The line formatted in src/log.cpp: fmt's formatting code is compiled there once, not in every caller.
void vwrite(Level level, fmt::string_view format, fmt::format_args args) noexcept;

template <class... Args>
void at(Level level, fmt::format_string<Args...> format, Args&&... args) noexcept {
    if (enabled(level)) vwrite(level, format, fmt::make_format_args(args...));
}

template <class... Args>
void debug(fmt::format_string<Args...> format, Args&&... args) noexcept {
    at(Level::debug, format, std::forward<Args>(args)...);
}
template <class... Args>
void info(fmt::format_string<Args...> format, Args&&... args) noexcept {
    at(Level::info, format, std::forward<Args>(args)...);
}
template <class... Args>
void warn(fmt::format_string<Args...> format, Args&&... args) noexcept {
    at(Level::warn, format, std::forward<Args>(args)...);
}
template <class... Args>
void error(fmt::format_string<Args...> format, Args&&... args) noexcept {
    at(Level::error, format, std::forward<Args>(args)...);
}
template <class... Args>
void critical(fmt::format_string<Args...> format, Args&&... args) noexcept {
    at(Level::critical, format, std::forward<Args>(args)...);
}

// The "covet.performance" logger of PerformanceMiddleware (its lines are whole: text or JSON): whether a warning
// would be written (by it and by the default logger's level), and one warning line.
bool performance_warnings_enabled() noexcept;
void write_performance_warning(std::string_view line) noexcept;

}  // namespace covet::logging
