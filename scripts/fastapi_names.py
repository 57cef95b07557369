#!/usr/bin/env python3
"""Every public name FastAPI offers, and whether CovetPy has it: the table in docs/python.md ("FastAPI names").

Two steps, so that the docs never need the FastAPI reference venv:

1. ``collect`` (run with the FastAPI reference python: build/differential-venv, tests/differential/run.sh
   builds it) reads FastAPI's source — nothing is imported, so optional packages (jinja2 ...) are not
   needed — and writes tests/differential/fastapi_names.json: for ``fastapi`` and each public submodule,
   the names it defines (functions, classes, module-level constants; not type variables) or re-exports
   explicitly (``from x import Y as Y``, PEP 484's re-export form, which FastAPI uses for its public names);
   ``fastapi.status`` is Starlette's ``__all__``.
2. ``render`` (the default; run with the covet venv) looks each name up under covet's module path
   (``fastapi.x`` → ``covet.x``; the few other paths are in `MODULES`/`RENAMED`) and writes the table into
   docs/python.md between ``<!-- fastapi-names:begin -->`` and ``<!-- fastapi-names:end -->``: *supported*
   (the name resolves), *differs* (it resolves, and `DIFFERS` says how it behaves differently), *not
   supported* (it does not resolve; why: `NOT_SUPPORTED`, else the module's reason in `MODULE_WHY`).
   ``--check`` writes nothing and exits 1 when the docs' table is not what ``render`` would write
   (tests/python/test_fastapi_names_doc.py runs it).

After merging new names: ``.venv/bin/python scripts/fastapi_names.py`` (and commit docs/python.md).
After a FastAPI upgrade: ``build/differential-venv/bin/python scripts/fastapi_names.py collect`` first.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
NAMES_JSON = ROOT / "tests" / "differential" / "fastapi_names.json"
DOC = ROOT / "docs" / "python.md"
BEGIN, END = "<!-- fastapi-names:begin -->", "<!-- fastapi-names:end -->"

# FastAPI module → covet module, where the path is not simply fastapi.x → covet.x.
MODULES = {
    "fastapi": "covet",
    "fastapi.applications": "covet.app",
    "fastapi.testclient": "covet.testing",
    "fastapi.param_functions": "covet.params",
    "fastapi.status": "covet.status",
}
# (FastAPI module, name) → covet's name for it, where it differs.
RENAMED = {
    ("fastapi", "FastAPI"): "CovetPy",
    ("fastapi.applications", "FastAPI"): "CovetPy",
}
# Modules whose names are shown as one row (many uniform constants).
GROUPED = {"fastapi.status": "every HTTP_* and WS_* constant"}

# Names that exist in covet but behave differently: why (one line, shown in the table).
DIFFERS: dict[str, str] = {
    "fastapi.FastAPI": "named CovetPy; serves on the native engine, and is an ASGI app too (under "
                       "uvicorn or mounted: no StaticFiles mounts or native middleware there)",
    "fastapi.applications.FastAPI": "named CovetPy; serves on the native engine, and is an ASGI app too (under "
                                    "uvicorn or mounted: no StaticFiles mounts or native middleware there)",
    "fastapi.testclient.TestClient": "a real server on a free port, driven over HTTP/1.1 (not ASGI in-process); "
                                     "https:// URLs are sent as http; per-request cookies= give no warning",
    "fastapi.logger.logger": "the logger named \"covet\" (FastAPI's is \"fastapi\")",
    "fastapi.cli.main": "`covet run app:app` (uvicorn's flags), not `fastapi run/dev`",
    "fastapi.exceptions.ValidationException": "no endpoint_ctx (file/line of the endpoint) in the message",
    "fastapi.exceptions.RequestValidationError": "no endpoint_ctx (file/line of the endpoint) in the message",
    "fastapi.exceptions.ResponseValidationError": "no endpoint_ctx (file/line of the endpoint) in the message",
    "fastapi.exceptions.WebSocketRequestValidationError": "WebSocket parameter errors close with 1008 "
                                                          "(no exception handler is called)",
    "fastapi.exception_handlers.websocket_request_validation_exception_handler":
        "the close reason is the errors as JSON, cut to the 123-byte limit",
    "fastapi.routing.APIRoute": "covet's Route fields (path, endpoint, methods, name, response_model ...; not "
                                "FastAPI's dependant/body_field/response_field/app); route_class= subclasses "
                                "override get_route_handler(), not __init__",
    "fastapi.routing.APIWebSocketRoute": "covet's WebSocketRoute (path, endpoint, name): for isinstance() over "
                                         "app.routes",
    "fastapi.routing.Mount": "covet's StaticMount: app.routes' entry of a StaticFiles mount only (a mounted "
                             "CovetPy app adds its routes; another ASGI app two catch-all routes)",
    "fastapi.openapi.models.Contact": "email is a plain string (FastAPI checks it with email-validator when "
                                      "installed)",
    "fastapi.status": "the pre-RFC 9110 names (HTTP_422_UNPROCESSABLE_ENTITY ...) give no deprecation warning",
}
# Names covet does not have: why (when the module's reason in MODULE_WHY does not say it).
NOT_SUPPORTED: dict[str, str] = {
    "fastapi.utils.is_body_allowed_for_status_code": "in covet.exception_handlers",
    "fastapi.concurrency.run_until_first_complete": "deprecated in Starlette; use asyncio.wait(..., "
                                                    "return_when=FIRST_COMPLETED)",
    "fastapi.exceptions.PydanticV1NotSupportedError": "pydantic v1 models are not supported at all",
    "fastapi.exceptions.FastAPIDeprecationWarning": "CovetPy warns with DeprecationWarning",
    "fastapi.exceptions.EndpointContext": "no endpoint context in validation errors",
    "fastapi.exceptions.RequestErrorModel": "FastAPI's internal pydantic model for error bodies",
    "fastapi.exceptions.WebSocketErrorModel": "FastAPI's internal pydantic model for error bodies",
    "fastapi.middleware.wsgi.WSGIMiddleware": "deprecated in Starlette (use a2wsgi); CovetPy serves no WSGI apps",
    "fastapi.middleware.asyncexitstack.AsyncExitStackMiddleware": "FastAPI's internal middleware; CovetPy "
                                                                  "closes dependencies itself",
    "fastapi.encoders.ENCODERS_BY_TYPE": "FastAPI's internal table; pass custom_encoder= to jsonable_encoder",
    "fastapi.encoders.encoders_by_class_tuples": "FastAPI's internal table",
    "fastapi.encoders.generate_encoders_by_class_tuples": "FastAPI's internal helper",
    "fastapi.encoders.decimal_encoder": "FastAPI's internal helper (jsonable_encoder applies it)",
    "fastapi.encoders.isoformat": "FastAPI's internal helper (jsonable_encoder applies it)",
    "fastapi.params.Param": "FastAPI's base class of Query/Path/...; covet's markers have their own base",
    "fastapi.params.ParamTypes": "FastAPI's internal enum",
    "fastapi.routing.RouteContext": "FastAPI's internal view of a route with its routers' settings (covet "
                                    "applies them to the route when a router is included)",
    "fastapi.routing.iter_route_contexts": "FastAPI's internal view of a route with its routers' settings (covet "
                                           "applies them to the route when a router is included)",
    "fastapi.routing.request_response": "an ASGI app from a request handler: CovetPy's engine calls routes "
                                        "itself (ASGI hosting: issue 15)",
    "fastapi.routing.websocket_session": "an ASGI app from a WebSocket handler: CovetPy's engine calls routes "
                                         "itself (ASGI hosting: issue 15)",
    "fastapi.routing.get_request_handler": "FastAPI's internal handler of an APIRoute (a route_class= subclass "
                                           "wraps super().get_route_handler() instead)",
    "fastapi.routing.get_websocket_app": "FastAPI's internal ASGI handler of an APIWebSocketRoute (the engine and "
                                         "covet.server.dispatch handle WebSockets)",
    "fastapi.routing.run_endpoint_function": "FastAPI's internal helper (covet.server.dispatch calls endpoints)",
    "fastapi.routing.serialize_response": "FastAPI's internal helper (response_model serialising happens in "
                                          "covet.server.dispatch)",
    "fastapi.openapi.utils.status_code_ranges": "FastAPI's internal table of get_openapi",
    "fastapi.openapi.utils.validation_error_definition": "FastAPI's internal table of get_openapi "
                                                         "(the ValidationError schema)",
    "fastapi.openapi.utils.validation_error_response_definition": "FastAPI's internal table of get_openapi "
                                                                  "(the HTTPValidationError schema)",
}
# Why a name of this module (or its submodules) is missing, when NOT_SUPPORTED has no line for it.
MODULE_WHY: dict[str, str] = {
    "fastapi.dependencies": "FastAPI's internals (dependency analysis); CovetPy plans parameters in covet.params",
    "fastapi.routing": "FastAPI's internals of request handling",
    "fastapi.openapi.utils": "FastAPI's internal helper of get_openapi (covet.openapi.utils.get_openapi builds the "
                             "same schema its own way)",
    "fastapi.telemetry": "FastAPI's usage telemetry; CovetPy collects none",
    "fastapi.utils": "FastAPI's internal helpers",
    "fastapi.types": "FastAPI's internal type aliases",
}
DEFAULT_WHY = "not in CovetPy yet"


# -- collect (FastAPI's python) ----------------------------------------------------------------------------
def _is_type_variable(value: ast.expr) -> bool:
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and \
        value.func.id in ("TypeVar", "ParamSpec", "TypeVarTuple")


def _public_names(source: str) -> list[str]:
    """What a module defines or re-exports as ``from x import Y as Y`` (``__all__`` when it has one)."""
    tree = ast.parse(source)
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign) and not _is_type_variable(node.value):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    if target.id == "__all__" and isinstance(node.value, (ast.List, ast.Tuple)):
                        return sorted(ast.literal_eval(node.value))
                    names.add(target.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and \
                not (node.value is not None and _is_type_variable(node.value)):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(a.asname for a in node.names if a.asname and a.asname == a.name.rsplit(".", 1)[-1])
    return sorted(n for n in names if not n.startswith("_"))


def collect() -> dict[str, Any]:
    import importlib.metadata
    import importlib.util

    spec = importlib.util.find_spec("fastapi")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("collect: run this with a python that has FastAPI (build/differential-venv/bin/python)")
    package = Path(next(iter(spec.submodule_search_locations)))
    modules: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(p.startswith("_") for p in parts):
            continue
        name = ".".join(("fastapi", *parts))
        modules[name] = _public_names(path.read_text(encoding="utf-8"))
    starlette = importlib.util.find_spec("starlette")
    assert starlette is not None and starlette.submodule_search_locations
    status = Path(next(iter(starlette.submodule_search_locations))) / "status.py"
    modules["fastapi.status"] = _public_names(status.read_text(encoding="utf-8"))
    return {"fastapi": importlib.metadata.version("fastapi"), "modules": dict(sorted(modules.items()))}


# -- render (covet's python) ---------------------------------------------------------------------------------
def _covet_module(module: str) -> str:
    if module in MODULES:
        return MODULES[module]
    return "covet" + module[len("fastapi"):]


def _resolve(module: str, name: str) -> Optional[str]:
    """covet's dotted path for FastAPI's `module.name`, or None when covet has no such name there."""
    target = _covet_module(module)
    covet_name = RENAMED.get((module, name), name)
    try:
        loaded = importlib.import_module(target)
    except ImportError as exc:
        # A module that needs an optional package this python lacks (jinja2 ...): read its source instead,
        # so that the table does not depend on what is installed.
        if exc.name is None or exc.name == "covet" or exc.name.startswith("covet."):
            return None
        return f"{target}.{covet_name}" if covet_name in _defined_names(target) else None
    except Exception:  # a module another change left broken: its names are not available
        return None
    return f"{target}.{covet_name}" if hasattr(loaded, covet_name) else None


def _defined_names(module: str) -> set[str]:
    """Every name `module`'s source binds at its top level (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return set()
    names: set[str] = set()
    for node in ast.parse(Path(spec.origin).read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _module_why(module: str) -> str:
    for prefix in sorted(MODULE_WHY, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return MODULE_WHY[prefix]
    return DEFAULT_WHY


def rows(names: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(FastAPI name, covet path, status, why) for every name in the collected JSON."""
    out: list[tuple[str, str, str, str]] = []
    for module, members in names["modules"].items():
        if module in GROUPED:
            missing = [m for m in members if _resolve(module, m) is None]
            label = f"`{module}` ({GROUPED[module]}, {len(members)})"
            if missing:
                out.append((label, f"`{_covet_module(module)}`", "not supported",
                            f"missing: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}"))
            else:
                why = DIFFERS.get(module, "")
                out.append((label, f"`{_covet_module(module)}`", "differs" if why else "supported", why))
            continue
        for member in members:
            full = f"{module}.{member}"
            path = _resolve(module, member)
            if path is None:
                out.append((f"`{full}`", "—", "not supported", NOT_SUPPORTED.get(full) or _module_why(module)))
            elif full in DIFFERS:
                out.append((f"`{full}`", f"`{path}`", "differs", DIFFERS[full]))
            else:
                out.append((f"`{full}`", f"`{path}`", "supported", ""))
    return out


def render_table(names: dict[str, Any]) -> str:
    table = rows(names)
    counts = {s: sum(1 for r in table if r[2] == s) for s in ("supported", "differs", "not supported")}
    lines = [
        BEGIN,
        f"<!-- generated by scripts/fastapi_names.py from tests/differential/fastapi_names.json "
        f"(FastAPI {names['fastapi']}); edit the script's tables, then re-run it -->",
        "",
        f"{len(table)} names: {counts['supported']} supported, {counts['differs']} differ, "
        f"{counts['not supported']} not supported.",
        "",
        "| FastAPI name | CovetPy | Status | Why |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d.replace('|', '&#124;')} |" for a, b, c, d in table]
    lines.append(END)
    return "\n".join(lines)


def updated_doc(doc: str, table: str) -> str:
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{DOC}: the markers {BEGIN} ... {END} are missing; put them where the table goes")
    return doc[:start] + table + doc[end + len(END):]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("mode", nargs="?", choices=("render", "collect"), default="render")
    parser.add_argument("--check", action="store_true", help="render: exit 1 if docs/python.md is stale")
    args = parser.parse_args(argv)
    if args.mode == "collect":
        NAMES_JSON.write_text(json.dumps(collect(), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {NAMES_JSON.relative_to(ROOT)}")
        return 0
    sys.path.insert(0, str(ROOT / "bindings" / "python"))
    names = json.loads(NAMES_JSON.read_text(encoding="utf-8"))
    doc = DOC.read_text(encoding="utf-8")
    new = updated_doc(doc, render_table(names))
    if args.check:
        if new != doc:
            print(f"{DOC.relative_to(ROOT)}: the FastAPI names table is stale; run: "
                  ".venv/bin/python scripts/fastapi_names.py", file=sys.stderr)
            return 1
        return 0
    if new != doc:
        DOC.write_text(new, encoding="utf-8")
        print(f"updated {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
