// NativeServer.add_static_mount: a StaticFiles mount (covet/app/static_files.hpp) served by the engine, with
// no Python on the request path. Defined in static_binding.cpp; module.cpp registers it on NativeServer.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "covet/app/app.hpp"

namespace covet_py {

struct StaticMountSpec {
    std::string prefix;
    std::vector<std::string> directories;
    bool html = false;
    bool follow_symlink = false;
    bool precompressed = false;
    std::string fallback;
    // Python's mimetypes tables (types_map, suffix_map, encodings_map keys), so types match Starlette's.
    std::vector<std::pair<std::string, std::string>> types;
    std::vector<std::pair<std::string, std::string>> suffixes;
    std::vector<std::string> encodings;
};

// Throws ValueError naming the cause (a missing directory, a conflicting route).
void add_static_mount(covet::App& app, StaticMountSpec spec);

// Adds the method to the NativeServer class (whose app() is the covet::App it serves).
template <class Server>
void def_static_mount(pybind11::class_<Server>& cls) {
    namespace py = pybind11;
    cls.def(
        "add_static_mount",
        [](Server& s, std::string prefix, std::vector<std::string> directories, bool html, bool follow_symlink,
           bool precompressed, std::string fallback, std::vector<std::pair<std::string, std::string>> types,
           std::vector<std::pair<std::string, std::string>> suffixes, std::vector<std::string> encodings) {
            add_static_mount(s.app(), StaticMountSpec{std::move(prefix), std::move(directories), html, follow_symlink,
                                                      precompressed, std::move(fallback), std::move(types),
                                                      std::move(suffixes), std::move(encodings)});
        },
        py::arg("prefix"), py::arg("directories"), py::arg("html") = false, py::arg("follow_symlink") = false,
        py::arg("precompressed") = false, py::arg("fallback") = "",
        py::arg("types") = std::vector<std::pair<std::string, std::string>>{},
        py::arg("suffixes") = std::vector<std::pair<std::string, std::string>>{},
        py::arg("encodings") = std::vector<std::string>{});
}

}  // namespace covet_py
