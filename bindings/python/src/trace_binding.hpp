// covet._native.enable_tracing and NativeTracer: the engine's request spans (covet/trace) for
// covet.observability, which drains them on its exporter thread. Registered by module.cpp.
#pragma once

#include <pybind11/pybind11.h>

#include <functional>

#include "covet/app/app.hpp"

namespace covet_py {

// `app_of(server)`: the covet::App of a NativeServer (module.cpp owns that type).
void register_tracing(pybind11::module_& m, std::function<covet::App&(pybind11::handle)> app_of);

}  // namespace covet_py
