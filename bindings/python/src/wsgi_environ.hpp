// The WSGI environ of a hosted app's request (PEP 3333), built natively in one call (covet.wsgi.environ): what
// the Python version did with seven property reads, a loop over the headers and a few string operations per
// request. One WsgiEnviron per dispatcher holds the server's constant keys (copied into each environ) and caches
// (method strings, the environ keys of the header names seen, the last Host split); the caller adds wsgi.input.
#pragma once

#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "covet/covet.hpp"

namespace covet_py {

class WsgiEnviron {
public:
    // `base`: the constant keys (SCRIPT_NAME, SERVER_NAME, SERVER_PORT, wsgi.*); `root_path`: SCRIPT_NAME, taken
    // off PATH_INFO when the path is under it.
    WsgiEnviron(pybind11::dict base, pybind11::str root_path);

    pybind11::dict build(const covet::Request& r) const;

private:
    // The environ key of a header name (HTTP_USER_AGENT, CONTENT_TYPE), or None for a name holding "_" (dropped,
    // as gunicorn). Names with non-ASCII bytes go to covet.wsgi.environ.header_key (str.upper()'s rules).
    pybind11::object header_key(std::string_view name) const;

    pybind11::dict base_;
    std::string root_;  // latin-1
    pybind11::object python_header_key_;
    std::array<pybind11::object, covet::method_count> methods_;
    pybind11::object http_, https_, protocol_11_, protocol_10_, protocol_2_, port_80_, port_443_;
    struct Key {
        std::string name;
        pybind11::object key;
    };
    mutable std::array<Key, 32> keys_;  // the first header names seen (a client's requests repeat them)
    mutable std::size_t key_count_ = 0;
    mutable std::string host_;  // the last Host header and its split
    mutable pybind11::object host_name_, host_port_;
};

void register_wsgi_environ(pybind11::module_& m);

}  // namespace covet_py
