// covet._native.RequestContexts: the contexts the dispatcher runs requests in when their ids are wanted (tracing,
// the access log), reused instead of made per request.
//
// Each request runs in a context of its own holding it in one variable (covet.logger.request_ids), so that its
// log records, its OpenTelemetry span and whatever its context is copied into (child tasks, thread-pool calls)
// find its ids. Made per request, that is a copy of the base context and a ContextVar.set: a HAMT node, a HAMT,
// a Token, about 1,000 instructions, which was half of what tracing cost a Python request. Here the variable holds a
// RequestRef (a small object pointing at the engine's request), and a context whose request is over goes back
// into the pool when nothing can see it any more: no other reference to the context, none to its variables (no
// copy: a copy shares them), none to its RequestRef, and no variable set or reset in it (its variables are still
// the object it was made with; the base's changing empties the pool). The next request then gets
// the same context with its RequestRef pointed at it: no allocation. Whenever a check fails (the request's Task
// still runs, a child task copied the context, the handler set a variable) the context is simply not reused, and
// lives as long as whoever holds it, with its request: a later request can never be seen through it.
#pragma once

#include <pybind11/pybind11.h>

namespace covet_py {

// Registers covet._native.RequestContexts and covet._native.RequestRef.
void register_request_contexts(pybind11::module_& m);

}  // namespace covet_py
