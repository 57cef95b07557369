// ModelJson (see model_json.hpp): pydantic-core's dump_json bytes for a plan's subset of pydantic types.
//
// Plan format (built by covet/_model_json.py): a list of nodes, node 0 the root; each node a tuple
// (kind, child, cls, fields). `child` indexes the element/value node of a container or the inner node of a
// nullable; `cls` and `fields` are for models: fields is a list of (name, output key, child, has_default,
// default), only the fields the plan's include/exclude keep. The writer follows pydantic-core's model
// serialisation: it walks the instance's __dict__ in order (unset keys dropped with exclude_unset, None values with
// exclude_none, values equal to the field's default with exclude_defaults), skipping keys that are not fields.
#include "model_json.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace covet_py {
namespace {

namespace py = pybind11;

enum class Kind : int {
    str = 0,
    int_ = 1,
    float_ = 2,
    bool_ = 3,
    none = 4,
    nullable = 5,
    list = 6,
    tuple = 7,
    set = 8,
    dict = 9,
    model = 10,
};
constexpr int kind_count = 11;

struct Field {
    py::object name;  // the field's name (a str, usually the interned key of the instance's __dict__)
    std::string key;  // the output key, already as JSON ("\"name\":")
    std::size_t child = 0;
    bool has_default = false;
    py::object default_value;
    // The key object instances of a class put in their __dict__ (pydantic-core's own copy of the name): compared
    // by identity after the first match by value. Held (a freed key's address could be reused).
    mutable py::object seen;
};

struct Node {
    Kind kind = Kind::str;
    std::size_t child = 0;
    py::object cls;  // models: the class whose instances the node accepts (subclasses included, as pydantic)
    std::vector<Field> fields;
    // __dict__ keys met that are no field of the plan (a subclass's fields), held: skipped by identity.
    mutable std::vector<py::object> others;
};

constexpr std::size_t max_others = 8;
constexpr int max_depth = 200;  // deeper values go to pydantic (which has its own recursion guard)

// serde_json's escaping (what pydantic-core writes): \" \\ \b \f \n \r \t, other control characters as \u00xx
// (lowercase hex); everything else, non-ASCII included, as is (UTF-8).
constexpr std::array<char, 256> make_escapes() {
    std::array<char, 256> table{};
    for (int c = 0; c < 0x20; ++c) table[static_cast<std::size_t>(c)] = 'u';
    table['\b'] = 'b';
    table['\f'] = 'f';
    table['\n'] = 'n';
    table['\r'] = 'r';
    table['\t'] = 't';
    table['"'] = '"';
    table['\\'] = '\\';
    return table;
}
constexpr std::array<char, 256> escapes = make_escapes();

void write_escaped(std::string& out, std::string_view text) {
    out.push_back('"');
    std::size_t start = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char e = escapes[static_cast<unsigned char>(text[i])];
        if (e == 0) continue;
        out.append(text.data() + start, i - start);
        out.push_back('\\');
        out.push_back(e);
        if (e == 'u') {
            constexpr std::string_view hex = "0123456789abcdef";
            const auto c = static_cast<unsigned char>(text[i]);
            out.append("00");
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xF]);
        }
        start = i + 1;
    }
    out.append(text.data() + start, text.size() - start);
    out.push_back('"');
}

// A finite double as pydantic-core writes it (ryu's layout): the shortest round-trip digits, positional from
// 1e-5 up to below 1e16 (always with a fraction: "3.0"), else d.ddde<exp> ("1e+16", "1.5e-7").
void write_float(std::string& out, double value) {
    std::array<char, 40> buf{};
    const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value, std::chars_format::scientific);
    (void)ec;  // 40 characters always fit a double
    const char* p = buf.data();
    if (*p == '-') {
        out.push_back('-');
        ++p;
    }
    std::array<char, 20> digits{};
    int length = 0;
    for (; p < end && *p != 'e'; ++p) {
        if (*p != '.') digits[static_cast<std::size_t>(length++)] = *p;
    }
    int exponent = 0;
    std::from_chars(p + 1, end, exponent);  // the exponent after 'e' ("+16", "-07")
    if (p + 1 < end && p[1] == '+') std::from_chars(p + 2, end, exponent);
    const int k = exponent - length + 1;  // value = digits * 10^k
    const int kk = length + k;            // 10^(kk-1) <= value < 10^kk
    const std::string_view d(digits.data(), static_cast<std::size_t>(length));
    if (k >= 0 && kk <= 16) {
        out.append(d);
        out.append(static_cast<std::size_t>(kk - length), '0');
        out.append(".0");
    } else if (kk > 0 && kk <= 16) {
        out.append(d.substr(0, static_cast<std::size_t>(kk)));
        out.push_back('.');
        out.append(d.substr(static_cast<std::size_t>(kk)));
    } else if (kk > -5 && kk <= 0) {
        out.append("0.");
        out.append(static_cast<std::size_t>(-kk), '0');
        out.append(d);
    } else {
        out.push_back(d[0]);
        if (length > 1) {
            out.push_back('.');
            out.append(d.substr(1));
        }
        out.push_back('e');
        if (kk - 1 > 0) out.push_back('+');  // pydantic-core writes "1e+16" (and "1e-7")
        std::array<char, 8> exp{};
        const auto [exp_end, exp_ec] = std::to_chars(exp.data(), exp.data() + exp.size(), kk - 1);
        (void)exp_ec;
        out.append(exp.data(), static_cast<std::size_t>(exp_end - exp.data()));
    }
}

class ModelJson {
public:
    ModelJson(const py::list& nodes, bool exclude_unset, bool exclude_none, bool exclude_defaults)
        : exclude_unset_(exclude_unset), exclude_none_(exclude_none), exclude_defaults_(exclude_defaults) {
        if (nodes.empty()) throw py::value_error("ModelJson: the plan has no nodes");
        nodes_.reserve(nodes.size());
        for (const py::handle item : nodes) {
            const auto t = item.cast<py::tuple>();
            if (t.size() != 4) throw py::value_error("ModelJson: a plan node is (kind, child, cls, fields)");
            Node node;
            const int kind = t[0].cast<int>();
            if (kind < 0 || kind >= kind_count) throw py::value_error("ModelJson: unknown node kind");
            node.kind = static_cast<Kind>(kind);
            node.child = t[1].cast<std::size_t>();
            if (node.kind == Kind::model) {
                node.cls = py::reinterpret_borrow<py::object>(t[2]);
                if (!PyType_Check(node.cls.ptr())) throw py::type_error("ModelJson: a model node's cls is a class");
                for (const py::handle f : t[3].cast<py::list>()) {
                    const auto ft = f.cast<py::tuple>();
                    if (ft.size() != 5)
                        throw py::value_error("ModelJson: a field is (name, key, child, has_default, default)");
                    Field field;
                    field.name = py::reinterpret_borrow<py::object>(ft[0]);
                    if (!PyUnicode_CheckExact(field.name.ptr()))
                        throw py::type_error("ModelJson: a field name is a str");
                    field.key.clear();
                    write_escaped(field.key, ft[1].cast<std::string>());
                    field.key.push_back(':');
                    field.child = ft[2].cast<std::size_t>();
                    field.has_default = ft[3].cast<bool>();
                    field.default_value = py::reinterpret_borrow<py::object>(ft[4]);
                    node.fields.push_back(std::move(field));
                }
            }
            nodes_.push_back(std::move(node));
        }
        for (const Node& node : nodes_) {
            if (node.child >= nodes_.size()) throw py::value_error("ModelJson: a node's child is out of range");
            for (const Field& field : node.fields) {
                if (field.child >= nodes_.size()) throw py::value_error("ModelJson: a field's child is out of range");
            }
        }
    }

    // The JSON bytes of `value`, or None when the value is not what the plan covers (the caller uses pydantic).
    py::object dump(const py::handle value) const {
        // One buffer per thread, reused (no allocation per response once warm); a dump that Python code run by
        // another one starts (a default's __eq__ ...) gets its own.
        thread_local std::string shared;
        thread_local bool busy = false;
        std::string own;
        std::string& out = busy ? own : shared;
        const bool was_busy = busy;
        busy = true;
        out.clear();
        const bool ok = write(out, 0, value.ptr(), 0);
        busy = was_busy;
        py::object bytes;
        if (ok) {
            bytes = py::reinterpret_steal<py::object>(
                PyBytes_FromStringAndSize(out.data(), static_cast<Py_ssize_t>(out.size())));
        } else if (PyErr_Occurred()) {
            PyErr_Clear();  // pydantic, on the same value, raises its own error if any
        }
        if (out.capacity() > keep_capacity) std::string().swap(out);  // one huge response does not stay pinned
        if (!ok) return py::none();
        if (!bytes) throw py::error_already_set();
        return bytes;
    }

private:
    static constexpr std::size_t keep_capacity = std::size_t{1} << 20;

    bool write(std::string& out, std::size_t index, PyObject* value, int depth) const {
        if (depth > max_depth) return false;
        const Node& node = nodes_[index];
        switch (node.kind) {
            case Kind::str: return write_str(out, value);
            case Kind::int_: return write_int(out, value);
            case Kind::float_: {
                if (!PyFloat_CheckExact(value)) return false;
                const double d = PyFloat_AS_DOUBLE(value);
                if (!std::isfinite(d)) return false;  // ser_json_inf_nan decides: pydantic's
                write_float(out, d);
                return true;
            }
            case Kind::bool_:
                if (value == Py_True) {
                    out.append("true");
                } else if (value == Py_False) {
                    out.append("false");
                } else {
                    return false;
                }
                return true;
            case Kind::none:
                if (value != Py_None) return false;
                out.append("null");
                return true;
            case Kind::nullable:
                if (value == Py_None) {
                    out.append("null");
                    return true;
                }
                return write(out, node.child, value, depth + 1);
            case Kind::list:
                if (!PyList_CheckExact(value)) return false;
                return write_sequence(out, node.child, value, depth);
            case Kind::tuple:
                if (!PyTuple_CheckExact(value)) return false;
                return write_sequence(out, node.child, value, depth);
            case Kind::set: return write_set(out, node.child, value, depth);
            case Kind::dict: return write_dict(out, node.child, value, depth);
            case Kind::model: return write_model(out, node, value, depth);
        }
        return false;
    }

    static bool write_str(std::string& out, PyObject* value) {
        if (!PyUnicode_CheckExact(value)) return false;  // a str subclass (a str Enum ...): pydantic's rules
        Py_ssize_t size = 0;
        const char* data = PyUnicode_AsUTF8AndSize(value, &size);
        if (data == nullptr) return false;  // lone surrogates: pydantic's error
        write_escaped(out, std::string_view(data, static_cast<std::size_t>(size)));
        return true;
    }

    static bool write_int(std::string& out, PyObject* value) {
        if (!PyLong_CheckExact(value)) return false;  // bool, int subclasses (IntEnum): pydantic's rules
        int overflow = 0;
        const long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow != 0) return false;  // beyond 64 bits: pydantic's
        if (n == -1 && PyErr_Occurred()) return false;
        std::array<char, 24> buf{};
        const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), n);
        (void)ec;
        out.append(buf.data(), static_cast<std::size_t>(end - buf.data()));
        return true;
    }

    bool write_sequence(std::string& out, std::size_t child, PyObject* seq, int depth) const {
        out.push_back('[');
        PyObject* const fast = seq;  // an exact list or tuple: PySequence_Fast_* read it without a copy
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); ++i) {
            if (i > 0) out.push_back(',');
            // A borrowed item of a list can go away if a __eq__ (exclude_defaults) mutates the list: hold it.
            const py::object item = py::reinterpret_borrow<py::object>(PySequence_Fast_GET_ITEM(fast, i));
            if (!write(out, child, item.ptr(), depth + 1)) return false;
        }
        out.push_back(']');
        return true;
    }

    bool write_set(std::string& out, std::size_t child, PyObject* value, int depth) const {
        if (!PySet_CheckExact(value) && !PyFrozenSet_CheckExact(value)) return false;
        const py::object iter = py::reinterpret_steal<py::object>(PyObject_GetIter(value));
        if (!iter) return false;
        out.push_back('[');
        bool first = true;
        while (true) {
            const py::object item = py::reinterpret_steal<py::object>(PyIter_Next(iter.ptr()));
            if (!item) break;
            if (!first) out.push_back(',');
            first = false;
            if (!write(out, child, item.ptr(), depth + 1)) return false;
        }
        if (PyErr_Occurred()) return false;
        out.push_back(']');
        return true;
    }

    bool write_dict(std::string& out, std::size_t child, PyObject* value, int depth) const {
        if (!PyDict_CheckExact(value)) return false;
        // A copy of the items: a value's __eq__ (exclude_defaults in a nested model) could change the dict.
        const py::object items = py::reinterpret_steal<py::object>(PyDict_Items(value));
        if (!items) return false;
        out.push_back('{');
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items.ptr()); ++i) {
            PyObject* const pair = PyList_GET_ITEM(items.ptr(), i);
            PyObject* const key = PyTuple_GET_ITEM(pair, 0);
            if (i > 0) out.push_back(',');
            if (!write_str(out, key)) return false;
            out.push_back(':');
            if (!write(out, child, PyTuple_GET_ITEM(pair, 1), depth + 1)) return false;
        }
        out.push_back('}');
        return true;
    }

    static const Field* find_field(const Node& node, PyObject* key, std::size_t& cursor) {
        const std::size_t n = node.fields.size();
        for (std::size_t step = 0; step < n; ++step) {  // __dict__ order is usually the fields' order
            const std::size_t i = (cursor + step) % n;
            const Field& field = node.fields[i];
            if (field.seen.ptr() == key || field.name.ptr() == key) {
                cursor = i + 1;
                return &field;
            }
        }
        for (const py::object& other : node.others) {
            if (other.ptr() == key) return nullptr;
        }
        if (!PyUnicode_Check(key)) return nullptr;
        for (const Field& field : node.fields) {  // a key equal to the name but another object
            if (PyUnicode_Compare(field.name.ptr(), key) == 0) {
                field.seen = py::reinterpret_borrow<py::object>(key);
                return &field;
            }
        }
        if (PyErr_Occurred()) PyErr_Clear();
        if (node.others.size() < max_others) node.others.push_back(py::reinterpret_borrow<py::object>(key));
        return nullptr;
    }

    // The names the model serialisation reads, interned once (the module keeps them for the process's life).
    static PyObject* dict_name() {
        static PyObject* const name = PyUnicode_InternFromString("__dict__");
        return name;
    }
    static PyObject* fields_set_name() {
        static PyObject* const name = PyUnicode_InternFromString("__pydantic_fields_set__");
        return name;
    }

    // One __dict__ entry; false: not writable here (the caller hands the whole value to pydantic).
    bool write_entry(std::string& out, const Node& node, PyObject* fields_set, PyObject* key, PyObject* item,
                     std::size_t& cursor, bool& first, int depth) const {
        if (exclude_none_ && item == Py_None) return true;
        const Field* const field = find_field(node, key, cursor);
        if (field == nullptr) return true;  // not a field of the declared model (a subclass's), or left out
        if (fields_set != nullptr) {
            const int set = PySet_Contains(fields_set, key);
            if (set < 0) return false;
            if (set == 0) return true;
        }
        if (exclude_defaults_ && field->has_default) {
            const int equal = PyObject_RichCompareBool(item, field->default_value.ptr(), Py_EQ);
            if (equal < 0) return false;
            if (equal == 1) return true;
        }
        if (!first) out.push_back(',');
        first = false;
        out.append(field->key);
        return write(out, field->child, item, depth + 1);
    }

    bool write_model(std::string& out, const Node& node, PyObject* value, int depth) const {
        // The real subclass relation (no metaclass __instancecheck__: Python code, and pydantic's is slow).
        if (PyType_IsSubtype(Py_TYPE(value), reinterpret_cast<PyTypeObject*>(node.cls.ptr())) == 0) return false;
        const py::object dict = py::reinterpret_steal<py::object>(PyObject_GetAttr(value, dict_name()));
        if (!dict || !PyDict_Check(dict.ptr())) return false;
        py::object fields_set;
        if (exclude_unset_) {
            fields_set = py::reinterpret_steal<py::object>(PyObject_GetAttr(value, fields_set_name()));
            if (!fields_set || !PyAnySet_Check(fields_set.ptr())) return false;
        }
        out.push_back('{');
        bool first = true;
        std::size_t cursor = 0;
        if (exclude_defaults_) {
            // A default's __eq__ is Python code that could change the instance: walk a copy of the items (as
            // pydantic-core does).
            const py::object items = py::reinterpret_steal<py::object>(PyDict_Items(dict.ptr()));
            if (!items) return false;
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items.ptr()); ++i) {
                PyObject* const pair = PyList_GET_ITEM(items.ptr(), i);
                if (!write_entry(out, node, fields_set.ptr(), PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1),
                                 cursor, first, depth)) {
                    return false;
                }
            }
        } else {
            // Without exclude_defaults no Python code of the values runs (exact types, real subclass checks).
            Py_ssize_t pos = 0;
            PyObject* key = nullptr;
            PyObject* item = nullptr;
            while (PyDict_Next(dict.ptr(), &pos, &key, &item)) {
                const py::object held_key = py::reinterpret_borrow<py::object>(key);  // kept alive while written
                const py::object held_item = py::reinterpret_borrow<py::object>(item);
                if (!write_entry(out, node, fields_set.ptr(), key, item, cursor, first, depth)) return false;
            }
        }
        out.push_back('}');
        return true;
    }

    std::vector<Node> nodes_;
    bool exclude_unset_;
    bool exclude_none_;
    bool exclude_defaults_;
};

}  // namespace

void register_model_json(py::module_& m) {
    py::class_<ModelJson>(m, "ModelJson",
                          "pydantic-core's dump_json bytes for a plan of pydantic types (covet/_model_json.py "
                          "compiles it); dump() returns None for a value the plan does not cover.")
        .def(py::init<const py::list&, bool, bool, bool>(), py::arg("nodes"), py::arg("exclude_unset") = false,
             py::arg("exclude_none") = false, py::arg("exclude_defaults") = false)
        .def("dump", &ModelJson::dump, py::arg("value"));
    m.def(
        "model_instances",
        [](const py::handle value, const py::handle cls) {
            // 1: `value` is an instance of the class `cls` (a real subclass included); 2: an exact list of them
            // (empty included); 0: neither. No metaclass __instancecheck__ runs.
            if (!PyType_Check(cls.ptr())) throw py::type_error("model_instances: cls must be a class");
            auto* const type = reinterpret_cast<PyTypeObject*>(cls.ptr());
            if (PyType_IsSubtype(Py_TYPE(value.ptr()), type) != 0) return 1;
            if (!PyList_CheckExact(value.ptr())) return 0;
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value.ptr()); ++i) {
                if (PyType_IsSubtype(Py_TYPE(PyList_GET_ITEM(value.ptr(), i)), type) == 0) return 0;
            }
            return 2;
        },
        py::arg("value"), py::arg("cls"));
    m.def("write_json_float", [](double value) {
        std::string out;
        if (!std::isfinite(value)) throw py::value_error("write_json_float: inf and nan have no JSON number");
        write_float(out, value);
        return out;
    });
}

}  // namespace covet_py
