#include "wsgi_environ.hpp"

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

py::object interned(std::string_view s) {
    py::object o = latin1(s);
    PyUnicode_InternInPlace(&o.ptr());
    return o;
}

// The environ's keys, interned once (PyDict_SetItemString would make and intern each one per call).
struct Keys {
    py::object request_method = interned("REQUEST_METHOD"), path_info = interned("PATH_INFO"),
               query_string = interned("QUERY_STRING"), raw_uri = interned("RAW_URI"),
               request_uri = interned("REQUEST_URI"), server_protocol = interned("SERVER_PROTOCOL"),
               url_scheme = interned("wsgi.url_scheme"), remote_addr = interned("REMOTE_ADDR"),
               remote_port = interned("REMOTE_PORT"), http_host = interned("HTTP_HOST"),
               server_name = interned("SERVER_NAME"), server_port = interned("SERVER_PORT");
};
const Keys& keys() {
    static const Keys* const k = new Keys();  // leaked: the objects must not be freed after the interpreter ends
    return *k;
}

void set(PyObject* dict, const py::object& key, PyObject* value) {
    if (PyDict_SetItem(dict, key.ptr(), value) < 0) throw py::error_already_set();
}

int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// urllib.parse.unquote(text, encoding="latin-1") of latin-1 text, on its bytes: %XX decoded, the rest kept.
std::string percent_decoded(std::string_view raw) {
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
    return out;
}

// str.isdigit() of latin-1 text: ASCII digits and the superscripts ² ³ ¹.
bool is_digits(std::string_view s) noexcept {
    if (s.empty()) return false;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (!((c >= '0' && c <= '9') || c == 0xB2 || c == 0xB3 || c == 0xB9)) return false;
    }
    return true;
}

}  // namespace

WsgiEnviron::WsgiEnviron(py::dict base, py::str root_path)
    : base_(std::move(base)),
      python_header_key_(py::module_::import("covet.wsgi.environ").attr("header_key")),
      http_(interned("http")),
      https_(interned("https")),
      protocol_11_(interned("HTTP/1.1")),
      protocol_10_(interned("HTTP/1.0")),
      protocol_2_(interned("HTTP/2")),
      port_80_(interned("80")),
      port_443_(interned("443")) {
    PyObject* encoded = PyUnicode_AsLatin1String(root_path.ptr());
    if (!encoded) {
        PyErr_Clear();
        throw py::value_error("root_path must be latin-1 text (a URL path, percent-encoded), not " +
                              py::repr(root_path).cast<std::string>());
    }
    root_.assign(PyBytes_AS_STRING(encoded), static_cast<std::size_t>(PyBytes_GET_SIZE(encoded)));
    Py_DECREF(encoded);
    for (std::size_t i = 0; i < covet::method_count; ++i) methods_[i] = interned(covet::method_names[i]);
    (void)keys();
}

py::object WsgiEnviron::header_key(std::string_view name) const {
    for (std::size_t i = 0; i < key_count_; ++i)
        if (keys_[i].name == name) return keys_[i].key;
    py::object key;
    bool ascii = true;
    for (const char ch : name) ascii = ascii && static_cast<unsigned char>(ch) < 0x80;
    if (!ascii) return python_header_key_(latin1(name));  // str.upper() of latin-1 letters: Python's rules
    if (name.find('_') != std::string_view::npos) {
        key = py::none();
    } else {
        std::string upper;
        upper.reserve(name.size() + 5);
        for (const char ch : name)
            upper.push_back(ch == '-' ? '_' : (ch >= 'a' && ch <= 'z') ? static_cast<char>(ch - 32) : ch);
        if (upper != "CONTENT_TYPE" && upper != "CONTENT_LENGTH") upper.insert(0, "HTTP_");
        key = interned(upper);
    }
    if (key_count_ < keys_.size()) keys_[key_count_++] = Key{std::string(name), key};
    return key;
}

py::dict WsgiEnviron::build(const covet::Request& r) const {
    const Keys& k = keys();
    py::dict environ = py::reinterpret_steal<py::dict>(steal(PyDict_Copy(base_.ptr())).release());
    PyObject* e = environ.ptr();
    set(e, k.request_method, methods_[static_cast<std::size_t>(r.method())].ptr());
    const std::string_view raw = r.path();
    std::string_view path = raw;
    if (!root_.empty() && path.starts_with(root_) && (path.size() == root_.size() || path[root_.size()] == '/'))
        path.remove_prefix(root_.size());
    // PEP 3333: PATH_INFO is the decoded path, its bytes as latin-1.
    set(e, k.path_info,
        (path.find('%') == std::string_view::npos ? latin1(path) : latin1(percent_decoded(path))).ptr());
    const std::string_view query = r.query_string();
    set(e, k.query_string, latin1(query).ptr());
    py::object uri;
    if (query.empty()) {
        uri = latin1(raw);
    } else {
        std::string joined;
        joined.reserve(raw.size() + 1 + query.size());
        joined.append(raw).append("?").append(query);
        uri = latin1(joined);
    }
    set(e, k.raw_uri, uri.ptr());
    set(e, k.request_uri, uri.ptr());
    py::object protocol;
    if (r.version_major() >= 2)  // "HTTP/2", "HTTP/3" (no minor version)
        protocol = r.version_major() == 2 ? protocol_2_ : latin1("HTTP/" + std::to_string(r.version_major()));
    else if (r.version_major() == 1 && r.version_minor() == 1)
        protocol = protocol_11_;
    else if (r.version_major() == 1 && r.version_minor() == 0)
        protocol = protocol_10_;
    else
        protocol = latin1("HTTP/" + std::to_string(r.version_major()) + "." + std::to_string(r.version_minor()));
    set(e, k.server_protocol, protocol.ptr());
    const std::string_view scheme = r.scheme();
    set(e, k.url_scheme, (scheme == "http" ? http_ : scheme == "https" ? https_ : latin1(scheme)).ptr());
    set(e, k.remote_addr, latin1(r.client_address()).ptr());
    set(e, k.remote_port, latin1(std::to_string(r.client_port())).ptr());
    // Headers: repeated ones joined with ", " (Cookie with "; ", as HTTP/2 splits it).
    for (const covet::Header& h : r.headers()) {
        py::object key = header_key(h.name);
        if (key.is_none()) continue;
        py::object value = latin1(h.value);
        PyObject* found = PyDict_GetItemWithError(e, key.ptr());
        if (found) {
            py::object joined = steal(
                PyUnicode_FromFormat("%U%s%U", found, covet::iequals(h.name, "cookie") ? "; " : ", ", value.ptr()));
            value = std::move(joined);
        } else if (PyErr_Occurred()) {
            throw py::error_already_set();
        }
        if (PyDict_SetItem(e, key.ptr(), value.ptr()) < 0) throw py::error_already_set();
    }
    PyObject* host = PyDict_GetItemWithError(e, k.http_host.ptr());  // borrowed
    if (!host && PyErr_Occurred()) throw py::error_already_set();
    if (host && PyUnicode_Check(host) && PyUnicode_KIND(host) == PyUnicode_1BYTE_KIND) {
        const std::string_view text(reinterpret_cast<const char*>(PyUnicode_1BYTE_DATA(host)),
                                    static_cast<std::size_t>(PyUnicode_GET_LENGTH(host)));
        if (!host_name_ || text != host_) {  // "example.com:8080" -> name, "8080"; no port: "" (the scheme's)
            const std::size_t colon = text.rfind(':');
            const std::string_view port = colon == std::string_view::npos ? std::string_view{} : text.substr(colon + 1);
            // No port when there is no colon, or it is inside an IPv6 literal's brackets, or not a number.
            if (colon == std::string_view::npos || port.find(']') != std::string_view::npos || !is_digits(port)) {
                host_name_ = py::reinterpret_borrow<py::object>(host);
                host_port_ = latin1("");
            } else {
                host_name_ = latin1(text.substr(0, colon));
                host_port_ = latin1(port);
            }
            host_.assign(text);
        }
        set(e, k.server_name, host_name_.ptr());
        set(e, k.server_port,
            PyUnicode_GET_LENGTH(host_port_.ptr()) ? host_port_.ptr()
            : scheme == "https"                    ? port_443_.ptr()
                                                   : port_80_.ptr());
    } else if (host) {  // not latin-1 text (cannot be: values are decoded from bytes); as the Python version did
        py::tuple split = py::module_::import("covet.wsgi.environ").attr("_split_host")(py::handle(host));
        set(e, k.server_name, split[0].ptr());
        py::object port = split[1];
        set(e, k.server_port,
            PyUnicode_GET_LENGTH(port.ptr()) ? port.ptr()
            : scheme == "https"              ? port_443_.ptr()
                                             : port_80_.ptr());
    }
    return environ;
}

void register_wsgi_environ(py::module_& m) {
    py::class_<WsgiEnviron>(m, "WsgiEnviron",
                            "A server's constant WSGI environ keys and caches; NativeRequest.wsgi_environ() builds a "
                            "request's environ with it (all but wsgi.input).")
        .def(py::init<py::dict, py::str>(), py::arg("base"), py::arg("root_path"));
}

}  // namespace covet_py
