// The ASGI scope of a hosted app's request, built natively in one call (covet.asgi.server): what the Python
// version did with a dozen attribute reads, string conversions and a comprehension over the headers per request.
// One AsgiScope per dispatcher holds what every scope shares (the interned keys, the cached method, version and
// scheme strings, root_path, the server tuple, the asgi dict); each call makes a new dict (apps mutate theirs)
// with its own copy of the lifespan state and of the extensions.
#pragma once

#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "covet/covet.hpp"
#include "ws_bridge.hpp"

namespace covet_py {

class AsgiScope {
public:
    // `root_path`: the server's (latin-1 text, in path and raw_path); `server`: the scope's (host, port) or None;
    // `state`: the lifespan state (each scope gets a shallow copy; read at each call, so filled later is seen);
    // `extensions`: the HTTP scope's (copied per scope); `asgi`: the shared {"version", "spec_version"} dict.
    AsgiScope(pybind11::str root_path, pybind11::object server, pybind11::dict state, pybind11::dict extensions,
              pybind11::dict asgi);

    // The "http" scope of `r` (the extensions without "tls": the caller adds it on a TLS server).
    pybind11::dict http(const covet::Request& r) const;
    // The "websocket" scope of an accepted upgrade, without "subprotocols" and "extensions" (the caller adds them).
    pybind11::dict websocket(const WsConnection& c) const;

private:
    // `method`: the HTTP scope's (None: a WebSocket scope).
    pybind11::dict common(PyObject* method, std::string_view version, std::string_view scheme, std::string_view path,
                          std::string_view query, pybind11::handle headers, std::string_view client_address,
                          std::uint16_t client_port) const;
    pybind11::object cached(std::string_view text, const pybind11::object* table, const std::string_view* names,
                            std::size_t count) const;

    pybind11::str root_;
    std::string root_bytes_;  // root_ as latin-1
    pybind11::object server_, state_, extensions_, asgi_, unquote_;
    pybind11::object http_, websocket_;  // the "type" values
    std::array<pybind11::object, covet::method_count> methods_;
    std::array<pybind11::object, 4> versions_;  // "1.1", "1.0", "2", "3"
    std::array<pybind11::object, 4> schemes_;   // "http", "https", "ws", "wss"

    // Reused between scopes (immutable objects; the GIL serialises the calls): the lower-cased bytes of the first
    // header names seen (a client's requests repeat them; the table does not grow past its size), and the last
    // client tuple (the requests of one connection share it).
    struct Name {
        std::string raw;
        pybind11::object lowered;
    };
    pybind11::object header_name(std::string_view raw) const;
    pybind11::object client(std::string_view address, std::uint16_t port) const;
    mutable std::array<Name, 24> names_;
    mutable std::size_t name_count_ = 0;
    mutable std::string client_address_;
    mutable std::uint16_t client_port_ = 0;
    mutable pybind11::object client_;
};

// Registers covet._native.AsgiScope (the constructor; module.cpp adds the request methods that use it).
void register_asgi_scope(pybind11::module_& m);

}  // namespace covet_py
