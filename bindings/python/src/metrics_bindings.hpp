// covet._native's metrics and operations functions (covet.observability.metrics, covet.server): the
// operations endpoints of a NativeServer, its readiness, the scrape, and Python's own metric families in
// the same native registry (so that `covet run --workers N` merges them like the engine's). Registered by
// module.cpp.
#pragma once

#include <pybind11/pybind11.h>

#include <functional>

#include "covet/app/app.hpp"

namespace covet_py {

// `app_of(server)`: the covet::App of a NativeServer (module.cpp owns that type).
void register_metrics(pybind11::module_& m, std::function<covet::App&(pybind11::handle)> app_of);

}  // namespace covet_py
