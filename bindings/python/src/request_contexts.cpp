#include "request_contexts.hpp"

#include <cstddef>
#include <cstring>

namespace py = pybind11;

namespace covet_py {
namespace {

// The value of a pooled context's variable: the engine's request while it is the context's (null between
// requests, when nothing can see it).
struct RequestRef {
    PyObject ob_base;     // PyObject_HEAD
    PyObject* request;    // the engine's request, or null
    PyObject* trace_ids;  // the callable that gives a request's ids (covet._native.trace_ids)
};

PyTypeObject* request_ref_type = nullptr;  // made once by register_request_contexts, kept for the process

void request_ref_dealloc(PyObject* self) {
    auto* ref = reinterpret_cast<RequestRef*>(self);
    Py_CLEAR(ref->request);
    Py_CLEAR(ref->trace_ids);
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

PyObject* request_ref_request(PyObject* self, void* /*closure*/) {
    PyObject* request = reinterpret_cast<RequestRef*>(self)->request;
    PyObject* out = request != nullptr ? request : Py_None;
    Py_INCREF(out);
    return out;
}

PyObject* request_ref_trace_ids(PyObject* self, void* /*closure*/) {
    const auto* ref = reinterpret_cast<RequestRef*>(self);
    if (ref->request == nullptr || ref->trace_ids == nullptr) Py_RETURN_NONE;
    return PyObject_CallOneArg(ref->trace_ids, ref->request);
}

PyGetSetDef request_ref_getset[] = {
    {"request", request_ref_request, nullptr, "The engine's request (None between requests).", nullptr},
    {"trace_ids", request_ref_trace_ids, nullptr,
     "The request's (trace_id, span_id, request_id, trace_flags, tracestate), as NativeRequest.trace_ids.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot request_ref_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(request_ref_dealloc)},
    {Py_tp_getset, request_ref_getset},
    {Py_tp_doc, const_cast<char*>("A pooled request context's covet.logger.request_ids value: the engine's request "
                                  "whose code runs in that context (RequestContexts).")},
    {0, nullptr}};

PyType_Spec request_ref_spec{"covet._native.RequestRef", sizeof(RequestRef), 0, Py_TPFLAGS_DEFAULT, request_ref_slots};

constexpr std::size_t pool_capacity = 64;  // contexts ready; in a steady stream one or two are in use

// A context of the pool: itself, the variables (HAMT) it was made with, and its RequestRef (held by them).
struct Entry {
    PyObject* context;    // strong
    PyObject* variables;  // strong: the object, so that a context whose variables changed never matches again
    RequestRef* ref;      // borrowed from `variables`
};

struct Pool {
    PyObject ob_base;  // PyObject_HEAD
    PyObject* base;
    PyObject* var;
    PyObject* trace_ids;
    PyObject* base_variables;  // strong: the base's variables when the free contexts were made from it
    Entry last;                // the last take()'s, until settle()
    std::size_t reused;        // takes answered with a context from the pool
    std::size_t free_count;
    Entry free[pool_capacity];  // NOLINT(modernize-avoid-c-arrays): zeroed by tp_alloc
};

// A context's variables (its HAMT), found through its tp_traverse (a context visits them, and the context it was
// entered from while entered): borrowed; null if not found (another interpreter's layout: nothing is reused).
PyTypeObject* hamt_type = nullptr;  // known after the first context's variables are found by name

struct Found {
    PyObject* variables = nullptr;
};

int find_variables(PyObject* object, void* found) {
    PyTypeObject* type = Py_TYPE(object);
    if (type != hamt_type) {
        if (hamt_type != nullptr || std::strcmp(type->tp_name, "hamt") != 0) return 0;
        hamt_type = type;
    }
    static_cast<Found*>(found)->variables = object;
    return 0;
}

PyObject* variables_of(PyObject* context) {
    Found found;
    const traverseproc traverse = Py_TYPE(context)->tp_traverse;
    if (traverse == nullptr || traverse(context, find_variables, &found) != 0) return nullptr;
    return found.variables;
}

// The HAMT's node types (a bitmap node holds entries and sub-nodes, an array node sub-nodes, a collision node
// entries whose hashes collide), known by name after the first of each is seen.
PyTypeObject* node_types[3] = {};  // NOLINT(modernize-avoid-c-arrays)
constexpr const char* node_names[3] = {"hamt_bitmap_node", "hamt_array_node", "hamt_collision_node"};

bool is_node(PyTypeObject* type) {
    if (type == node_types[0] || type == node_types[1] || type == node_types[2]) return true;
    if (type->tp_name[0] != 'h') return false;  // the keys (ContextVar) and most values: no name compared
    for (std::size_t i = 0; i < 3; ++i) {
        if (node_types[i] == nullptr && std::strcmp(type->tp_name, node_names[i]) == 0) {
            node_types[i] = type;
            return true;
        }
    }
    return false;
}

// Visits a node's children: a sub-node must be referenced by its parent alone (another HAMT sharing it, as a
// copy's HAMT does after a variable is set in the copy, could reach the RequestRef through it), and its own
// children are visited in turn; keys and values are not followed.
int visit_child(PyObject* object, void* /*arg*/) {
    PyTypeObject* type = Py_TYPE(object);
    if (!is_node(type)) return 0;
    if (Py_REFCNT(object) != 1) return 1;  // shared: stop, not reusable
    return type->tp_traverse(object, visit_child, nullptr);
}

// Visits a HAMT's root: it must be a node, referenced by this HAMT alone, and so must every node under it.
int visit_root(PyObject* object, void* /*arg*/) {
    PyTypeObject* type = Py_TYPE(object);
    if (!is_node(type) || Py_REFCNT(object) != 1) return 1;  // unknown layout, or shared: not reusable
    return type->tp_traverse(object, visit_child, nullptr);
}

// Whether no node of `variables` (a HAMT) is shared with another HAMT.
bool unshared_nodes(PyObject* variables) {
    const traverseproc traverse = Py_TYPE(variables)->tp_traverse;
    return traverse != nullptr && traverse(variables, visit_root, nullptr) == 0;
}

void release(Entry& entry) {
    Py_CLEAR(entry.context);
    Py_CLEAR(entry.variables);
    entry.ref = nullptr;
}

void empty_pool(Pool* pool) {
    while (pool->free_count > 0) release(pool->free[--pool->free_count]);
}

PyObject* pool_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
    PyObject *base = nullptr, *var = nullptr, *trace_ids = nullptr;
    static const char* names[] = {"base", "var", "trace_ids", nullptr};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O:RequestContexts", const_cast<char**>(names), &PyContext_Type,
                                     &base, &PyContextVar_Type, &var, &trace_ids))
        return nullptr;
    if (!PyCallable_Check(trace_ids)) {
        PyErr_SetString(PyExc_TypeError, "RequestContexts: trace_ids must be callable (covet._native.trace_ids)");
        return nullptr;
    }
    auto* pool = reinterpret_cast<Pool*>(type->tp_alloc(type, 0));
    if (pool == nullptr) return nullptr;
    Py_INCREF(base);
    Py_INCREF(var);
    Py_INCREF(trace_ids);
    pool->base = base;
    pool->var = var;
    pool->trace_ids = trace_ids;
    return reinterpret_cast<PyObject*>(pool);
}

void pool_dealloc(PyObject* self) {
    auto* pool = reinterpret_cast<Pool*>(self);
    release(pool->last);
    empty_pool(pool);
    Py_CLEAR(pool->base_variables);
    Py_CLEAR(pool->base);
    Py_CLEAR(pool->var);
    Py_CLEAR(pool->trace_ids);
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

// A copy of the base with the variable set to a new RequestRef (null request).
bool new_context(const Pool* pool, Entry& entry) {
    auto* made = PyObject_New(RequestRef, request_ref_type);
    if (made == nullptr) return false;
    made->request = nullptr;
    Py_INCREF(pool->trace_ids);
    made->trace_ids = pool->trace_ids;
    PyObject* context = PyContext_Copy(pool->base);
    if (context == nullptr || PyContext_Enter(context) < 0) {  // a new copy is never entered: only no memory
        Py_XDECREF(context);
        Py_DECREF(made);
        return false;
    }
    PyObject* token = PyContextVar_Set(pool->var, reinterpret_cast<PyObject*>(made));
    const int exited = PyContext_Exit(context);
    const bool failed = token == nullptr || exited < 0;
    Py_XDECREF(token);
    Py_DECREF(made);  // the context's variables hold it now (or, on failure, nothing: freed)
    if (failed) {
        Py_DECREF(context);
        return false;
    }
    PyObject* variables = variables_of(context);
    Py_XINCREF(variables);  // null: such a context is never reused (settle compares against it)
    entry = {context, variables, made};
    return true;
}

// Whether nothing but the pool can see the entry's context now, so that its RequestRef may point at another
// request: the pool holds the only reference to the context, to its variables (a copy, a child task's or a
// thread-pool call's, would share them), to each of their nodes (a copy in which a variable was set has variables
// of its own that share the untouched nodes) and to its RequestRef; and its variables are still the ones it was
// made with (any variable set in it, or reset, gives a context new ones).
bool unseen(const Entry& entry) {
    return Py_REFCNT(entry.context) == 1 && entry.variables != nullptr &&
           variables_of(entry.context) == entry.variables && Py_REFCNT(entry.variables) == 2 &&
           Py_REFCNT(reinterpret_cast<PyObject*>(entry.ref)) == 1 && unshared_nodes(entry.variables);
}

// The last context taken goes back into the pool if nothing else can see it; otherwise it is left to whoever holds
// it, with its request. True when kept.
bool settle_last(Pool* pool) {
    Entry entry = pool->last;
    pool->last = Entry{};
    if (entry.context == nullptr) return false;
    if (pool->free_count == pool_capacity || !unseen(entry)) {
        release(entry);
        return false;
    }
    Py_CLEAR(entry.ref->request);
    pool->free[pool->free_count++] = entry;
    return true;
}

PyObject* pool_take(PyObject* self, PyObject* request) {
    auto* pool = reinterpret_cast<Pool*>(self);
    settle_last(pool);  // the previous request's context, first: usually the one handed out again
    // The free contexts hold the base's variables as they were: if the base has changed since, they go.
    PyObject* base_variables = variables_of(pool->base);
    if (base_variables != pool->base_variables) {
        empty_pool(pool);
        Py_XINCREF(base_variables);
        Py_XSETREF(pool->base_variables, base_variables);
    }
    Entry entry{};
    if (pool->free_count > 0) {
        entry = pool->free[--pool->free_count];
        pool->free[pool->free_count] = Entry{};
        ++pool->reused;
    } else if (!new_context(pool, entry)) {
        return nullptr;
    }
    Py_INCREF(request);
    Py_XSETREF(entry.ref->request, request);
    pool->last = entry;
    Py_INCREF(entry.context);
    return entry.context;
}

PyObject* pool_settle(PyObject* self, PyObject* /*unused*/) {
    if (settle_last(reinterpret_cast<Pool*>(self))) Py_RETURN_TRUE;
    Py_RETURN_FALSE;
}

PyObject* pool_free(PyObject* self, void* /*closure*/) {
    return PyLong_FromSize_t(reinterpret_cast<Pool*>(self)->free_count);
}

PyObject* pool_reused(PyObject* self, void* /*closure*/) {
    return PyLong_FromSize_t(reinterpret_cast<Pool*>(self)->reused);
}

PyMethodDef pool_methods[] = {
    {"take", pool_take, METH_O,
     "take(request) -> Context: a context whose variable gives `request` (a reused one when one is free), after "
     "settling the one taken before (settle()). Keep no reference to it once its request's first step has run."},
    {"settle", pool_settle, METH_NOARGS,
     "settle() -> bool: the last context taken goes back into the pool if nothing else can see it (True); "
     "otherwise it is left to whoever holds it, with its request (False). take() does it first; call it after "
     "the last request of a batch."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef pool_getset[] = {{"free", pool_free, nullptr, "Contexts ready for reuse.", nullptr},
                             {"reused", pool_reused, nullptr, "Contexts handed out again so far.", nullptr},
                             {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot pool_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(pool_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(pool_dealloc)},
    {Py_tp_methods, pool_methods},
    {Py_tp_getset, pool_getset},
    {Py_tp_doc, const_cast<char*>("RequestContexts(base, var, trace_ids): the dispatcher's per-request contexts "
                                  "(copies of `base` with `var` set to a RequestRef of the request), reused when "
                                  "nothing can see them any more.")},
    {0, nullptr}};

PyType_Spec pool_spec{"covet._native.RequestContexts", sizeof(Pool), 0, Py_TPFLAGS_DEFAULT, pool_slots};

}  // namespace

void register_request_contexts(py::module_& m) {
    PyObject* ref_type = PyType_FromSpec(&request_ref_spec);
    if (ref_type == nullptr) throw py::error_already_set();
    Py_INCREF(ref_type);  // ours, for the process: pooled values are checked against it
    request_ref_type = reinterpret_cast<PyTypeObject*>(ref_type);
    m.add_object("RequestRef", py::reinterpret_steal<py::object>(ref_type));
    PyObject* pool_type = PyType_FromSpec(&pool_spec);
    if (pool_type == nullptr) throw py::error_already_set();
    m.add_object("RequestContexts", py::reinterpret_steal<py::object>(pool_type));
}

}  // namespace covet_py
