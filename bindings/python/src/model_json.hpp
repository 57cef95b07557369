// ModelJson: a JSON writer for pydantic v2 models (FastAPI's response_model path), driven by a plan that
// covet/_model_json.py compiles once per (response type, dump options) from the type's core schema. It writes
// the same bytes as pydantic-core's dump_json for the subset it covers (models, lists, tuples, sets, dicts with
// str keys, Optional, str, int, float, bool, None); whatever it cannot prove identical at run time (a value of an
// unexpected type, inf/nan, a str subclass, ...) makes dump() return None so that the caller uses pydantic.
// Defined in model_json.cpp; module.cpp registers it.
#pragma once

#include <pybind11/pybind11.h>

namespace covet_py {

void register_model_json(pybind11::module_& m);

}  // namespace covet_py
