// covet._native.JwtKeySet / JwtVerifier: the native JWT verification (covet/security) for covet.security.jwt.
// Defined in jwt_binding.cpp; module.cpp registers them.
#pragma once

#include <pybind11/pybind11.h>

namespace covet_py {

void register_jwt(pybind11::module_& m);

}  // namespace covet_py
