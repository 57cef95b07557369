// The Python runtime's metrics that only native code measures honestly (covet.observability.runtime uses them):
// GC pauses by generation (a gc.callbacks entry timing each collection) and the GIL wait of a thread that
// wakes up (a native probe thread, timed from its wake-up to holding the GIL), registered by module.cpp.
#pragma once

#include <pybind11/pybind11.h>

namespace covet_py {

void register_runtime_metrics(pybind11::module_& m);

}  // namespace covet_py
