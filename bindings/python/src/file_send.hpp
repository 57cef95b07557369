// NativeResponder.send_file: a Python response whose body is one region of a file (FileResponse's
// _file_region(), see covet/server/filesend.py) is sent by the engine from the file — sendfile on plain TCP,
// bounded reads under TLS and HTTP/2 — instead of being read and streamed through Python. Defined in
// file_send.cpp; module.cpp registers it on NativeResponder.
//
// Also body_bytes(): a Python `bytes` response body copied into a reused per-thread buffer (io::LargeBuffers)
// when it is large, so a thread answering with 1 MB bodies stops paying page faults and trims per response.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "covet/http/response.hpp"
#include "covet/io/file_region.hpp"

namespace covet_py {

// Opens `path` (GIL released) and checks the region against it. Raises OSError (missing file, no
// permission) or ValueError (not a regular file; the region runs past the end of the file).
covet::io::FileRegion open_file_region(const std::string& path, std::uint64_t offset, std::uint64_t count);

// The body of a Python response as a std::string; large ones go into a reused buffer (see above).
std::string body_bytes(const pybind11::bytes& body);

using Headers = std::vector<std::pair<std::string, std::string>>;

// Adds send_file(status, headers, path, offset, count) to the NativeResponder class. `make_response` builds
// the native head from Python's (status, headers) as send() does (Content-Length is the engine's: `count`).
template <class Responder, class MakeResponse>
void def_send_file(pybind11::class_<Responder>& cls, MakeResponse make_response) {
    namespace py = pybind11;
    cls.def(
        "send_file",
        [make_response](Responder& r, int status, const Headers& headers, const std::string& path, std::uint64_t offset,
                        std::uint64_t count) {
            if (r.ex->answered) throw std::runtime_error("this request has already been answered");
            covet::Response resp = make_response(status, headers, std::string());
            if (count > 0) resp.set_file_body(open_file_region(path, offset, count));
            r.ex->answered = true;
            r.ex->responder.send(std::move(resp));
        },
        py::arg("status"), py::arg("headers"), py::arg("path"), py::arg("offset"), py::arg("count"),
        "Answers with `headers` and, as the body, `count` bytes of the file at `path` from `offset`, sent by the "
        "engine from the file (sendfile on plain TCP). A HEAD request gets the head only.");
}

}  // namespace covet_py
