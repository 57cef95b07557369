// The text of an errno value, safe on any thread (std::strerror may share one static buffer between threads).
#pragma once

#include <string>
#include <system_error>

namespace covet::io {

inline std::string errno_text(int error) { return std::generic_category().message(error); }

}  // namespace covet::io
