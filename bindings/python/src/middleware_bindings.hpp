// covet._native.add_middleware: the engine's native middleware (CORS, compression, trusted hosts, HTTPS
// redirect) configured from Python (covet.middleware), registered by module.cpp.
#pragma once

#include <pybind11/pybind11.h>

#include <functional>

#include "covet/app/app.hpp"

namespace covet_py {

// `app_of(server)`: the covet::App of a NativeServer (module.cpp owns that type).
void register_middleware(pybind11::module_& m, std::function<covet::App&(pybind11::handle)> app_of);

}  // namespace covet_py
