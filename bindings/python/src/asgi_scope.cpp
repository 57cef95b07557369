#include "asgi_scope.hpp"

#include <string>
#include <utility>

namespace py = pybind11;

namespace covet_py {
namespace {

py::object steal(PyObject* o) {
    if (!o) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(o);
}

py::object latin1(std::string_view s) {
    return steal(PyUnicode_DecodeLatin1(s.data(), static_cast<Py_ssize_t>(s.size()), nullptr));
}

py::object bytes(std::string_view s) {
    return steal(PyBytes_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size())));
}

py::object interned(const char* s) { return steal(PyUnicode_InternFromString(s)); }

// The scope's keys, interned once: an app's literal scope["path"] finds them by identity.
struct Keys {
    py::object type = interned("type"), asgi = interned("asgi"), http_version = interned("http_version"),
               scheme = interned("scheme"), method = interned("method"), path = interned("path"),
               raw_path = interned("raw_path"), query_string = interned("query_string"),
               root_path = interned("root_path"), headers = interned("headers"), client = interned("client"),
               server = interned("server"), state = interned("state"), extensions = interned("extensions");
};
const Keys& keys() {
    static const Keys* const k = new Keys();  // leaked: the objects must not be freed after the interpreter ends
    return *k;
}

void set(PyObject* dict, const py::object& key, PyObject* value) {
    if (PyDict_SetItem(dict, key.ptr(), value) < 0) throw py::error_already_set();
}

// A header name as the scope has it: lower-cased as Python's str.lower() does to its latin-1 text (ASCII A-Z
// and the latin-1 capitals À-Þ but ×), as bytes.
py::object lowered(std::string_view name) {
    py::object out = steal(PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(name.size())));
    char* dst = PyBytes_AS_STRING(out.ptr());
    for (std::size_t i = 0; i < name.size(); ++i) {
        const auto c = static_cast<unsigned char>(name[i]);
        const bool upper = (c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7);
        dst[i] = static_cast<char>(upper ? c + 0x20 : c);
    }
    return out;
}

template <class Range, class Lower, class Name, class Value>
py::object header_list(const Range& headers, Lower lower, Name name, Value value) {
    py::object out = steal(PyList_New(static_cast<Py_ssize_t>(std::size(headers))));
    Py_ssize_t i = 0;
    for (const auto& h : headers) {
        py::object pair = steal(PyTuple_New(2));
        PyTuple_SET_ITEM(pair.ptr(), 0, lower(name(h)).release().ptr());
        PyTuple_SET_ITEM(pair.ptr(), 1, bytes(value(h)).release().ptr());
        PyList_SET_ITEM(out.ptr(), i++, pair.release().ptr());
    }
    return out;
}

int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

AsgiScope::AsgiScope(py::str root_path, py::object server, py::dict state, py::dict extensions, py::dict asgi)
    : root_(std::move(root_path)),
      server_(std::move(server)),
      state_(std::move(state)),
      extensions_(std::move(extensions)),
      asgi_(std::move(asgi)),
      unquote_(py::module_::import("urllib.parse").attr("unquote")),
      http_(interned("http")),
      websocket_(interned("websocket")) {
    PyObject* encoded = PyUnicode_AsLatin1String(root_.ptr());
    if (!encoded) {
        PyErr_Clear();
        throw py::value_error("root_path must be latin-1 text (a URL path, percent-encoded), not " +
                              py::repr(root_).cast<std::string>());
    }
    root_bytes_.assign(PyBytes_AS_STRING(encoded), static_cast<std::size_t>(PyBytes_GET_SIZE(encoded)));
    Py_DECREF(encoded);
    for (std::size_t i = 0; i < covet::method_count; ++i) {
        methods_[i] = latin1(covet::method_names[i]);
        PyUnicode_InternInPlace(&methods_[i].ptr());
    }
    versions_ = {interned("1.1"), interned("1.0"), interned("2"), interned("3")};
    schemes_ = {interned("http"), interned("https"), interned("ws"), interned("wss")};
    (void)keys();
}

py::dict AsgiScope::http(const covet::Request& r) const {
    std::string_view version;
    std::string other;
    if (r.version_major() == 2)
        version = "2";  // as ASGI servers write it
    else if (r.version_major() == 3)
        version = "3";
    else if (r.version_major() == 1 && (r.version_minor() == 1 || r.version_minor() == 0))
        version = r.version_minor() == 1 ? "1.1" : "1.0";
    else
        version = other = std::to_string(r.version_major()) + "." + std::to_string(r.version_minor());
    py::object headers = header_list(
        r.headers(), [this](std::string_view n) { return header_name(n); },
        [](const covet::Header& h) { return h.name; }, [](const covet::Header& h) { return h.value; });
    return common(methods_[static_cast<std::size_t>(r.method())].ptr(), version, r.scheme(), r.path(), r.query_string(),
                  headers, r.client_address(), r.client_port());
}

py::dict AsgiScope::websocket(const WsConnection& c) const {
    using Pair = std::pair<std::string, std::string>;
    py::object headers = header_list(
        c.headers, [this](std::string_view n) { return header_name(n); },
        [](const Pair& h) -> std::string_view { return h.first; },
        [](const Pair& h) -> std::string_view { return h.second; });
    return common(nullptr, c.http_version, c.scheme, c.path, c.query, headers, c.client_address, c.client_port);
}

py::object AsgiScope::header_name(std::string_view raw) const {
    for (std::size_t i = 0; i < name_count_; ++i)
        if (names_[i].raw == raw) return names_[i].lowered;
    py::object out = lowered(raw);
    if (name_count_ < names_.size()) names_[name_count_++] = Name{std::string(raw), out};
    return out;
}

py::object AsgiScope::client(std::string_view address, std::uint16_t port) const {
    if (client_ && port == client_port_ && address == client_address_) return client_;
    py::object out = steal(PyTuple_New(2));
    PyTuple_SET_ITEM(out.ptr(), 0, latin1(address).release().ptr());
    PyTuple_SET_ITEM(out.ptr(), 1, steal(PyLong_FromLong(port)).release().ptr());
    client_address_.assign(address);
    client_port_ = port;
    client_ = out;
    return out;
}

py::object AsgiScope::cached(std::string_view text, const py::object* table, const std::string_view* names,
                             std::size_t count) const {
    for (std::size_t i = 0; i < count; ++i)
        if (names[i] == text) return table[i];
    return latin1(text);
}

py::dict AsgiScope::common(PyObject* method, std::string_view version, std::string_view scheme, std::string_view path,
                           std::string_view query, py::handle headers, std::string_view client_address,
                           std::uint16_t client_port) const {
    static constexpr std::string_view version_names[] = {"1.1", "1.0", "2", "3"};
    static constexpr std::string_view scheme_names[] = {"http", "https", "ws", "wss"};
    const Keys& k = keys();
    const bool http = method != nullptr;  // else a WebSocket scope
    std::string joined;
    std::string_view raw = path;
    if (!root_bytes_.empty()) {
        joined.reserve(root_bytes_.size() + path.size());
        joined.append(root_bytes_).append(path);
        raw = joined;
    }
    // "path": raw_path percent-decoded as urllib.parse.unquote does (%XX runs as UTF-8, invalid bytes replaced);
    // a path with raw non-ASCII bytes (rare) goes through unquote itself, which decodes each ASCII run apart.
    py::object decoded;
    if (raw.find('%') == std::string_view::npos) {
        decoded = latin1(raw);
    } else {
        bool ascii = true;
        for (const char ch : raw) ascii = ascii && static_cast<unsigned char>(ch) < 0x80;
        if (!ascii) {
            decoded = unquote_(latin1(raw));
        } else {
            std::string out;
            out.reserve(raw.size());
            for (std::size_t i = 0; i < raw.size(); ++i) {
                int hi = -1, lo = -1;
                if (raw[i] == '%' && i + 2 < raw.size() && (hi = hex_digit(raw[i + 1])) >= 0 &&
                    (lo = hex_digit(raw[i + 2])) >= 0) {
                    out.push_back(static_cast<char>(hi * 16 + lo));
                    i += 2;
                } else {
                    out.push_back(raw[i]);
                }
            }
            decoded = steal(PyUnicode_DecodeUTF8(out.data(), static_cast<Py_ssize_t>(out.size()), "replace"));
        }
    }
    py::object client_tuple = client(client_address, client_port);
    PyObject* state = state_.ptr();
    py::object state_copy = steal(PyDict_GET_SIZE(state) ? PyDict_Copy(state) : PyDict_New());

    py::dict scope = py::reinterpret_steal<py::dict>(steal(_PyDict_NewPresized(14)).release());  // no resizes
    PyObject* d = scope.ptr();
    set(d, k.type, http ? http_.ptr() : websocket_.ptr());
    set(d, k.asgi, asgi_.ptr());
    set(d, k.http_version, cached(version, versions_.data(), version_names, std::size(version_names)).ptr());
    set(d, k.scheme, cached(scheme, schemes_.data(), scheme_names, std::size(scheme_names)).ptr());
    if (http) set(d, k.method, method);
    set(d, k.path, decoded.ptr());
    set(d, k.raw_path, bytes(raw).ptr());
    set(d, k.query_string, bytes(query).ptr());
    set(d, k.root_path, root_.ptr());
    set(d, k.headers, headers.ptr());
    set(d, k.client, client_tuple.ptr());
    set(d, k.server, server_.ptr());
    set(d, k.state, state_copy.ptr());
    if (http) set(d, k.extensions, steal(PyDict_Copy(extensions_.ptr())).ptr());
    return scope;
}

void register_asgi_scope(py::module_& m) {
    py::class_<AsgiScope>(m, "AsgiScope",
                          "What every ASGI scope of one server shares; NativeRequest.asgi_scope() and "
                          "NativeWebSocket.asgi_scope() build a request's scope with it.")
        .def(py::init<py::str, py::object, py::dict, py::dict, py::dict>(), py::arg("root_path"), py::arg("server"),
             py::arg("state"), py::arg("extensions"), py::arg("asgi"));
}

}  // namespace covet_py
