"""Where a FastAPI or Starlette name lives in CovetPy: the module map, the few renamed names, and the checks of a
call's keyword arguments against covet's signature.

The answers come from the installed covet package itself (``importlib``, ``inspect``), so a name that covet lacks
is reported as such instead of being guessed: ``from fastapi.foo import Bar`` maps to ``covet.foo.Bar`` only when
that module has ``Bar``. The covet modules are imported by name at run time, not by import statements: this module
sits below every covet layer (pyproject.toml, import-linter) and only inspects the package, as `inspect` would.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any, Optional

__all__ = ["SOURCE_ROOTS", "Target", "covet_module", "instance_lacks", "renamed", "resolve", "resolve_dotted",
           "unsupported_keywords", "run_keywords"]

#: The top-level packages whose names are rewritten.
SOURCE_ROOTS = ("fastapi", "starlette")

#: Modules whose covet counterpart is not the same path under ``covet``.
_MODULES = {
    "fastapi": "covet",
    "starlette": "covet",
    "fastapi.applications": "covet.app",
    "starlette.applications": "covet.app",
    "fastapi.testclient": "covet.testing",
    "starlette.testclient": "covet.testing",
    "fastapi.param_functions": "covet.params",
    "starlette.types": "covet.asgi.types",
    "starlette.exceptions": "covet.exceptions",
}

#: Names that differ: the application class.
_RENAMES = {
    "FastAPI": "CovetPy",
}


#: Names covet has, but for something else: mapping them by name would change the program.
_DIFFERENT = {
    ("starlette.applications", "Starlette"): "a Starlette() app (routes=[Route(...)]) has no CovetPy counterpart: "
                                             "CovetPy's application class is FastAPI's; make a CovetPy() and declare "
                                             "the routes with @app.get(...)/app.add_api_route(...)",
    ("starlette.routing", "Route"): "covet.routing.Route is covet's route-table entry, not Starlette's "
                                    "Route(path, endpoint): declare the route with @app.get(...)/@app.api_route(...) "
                                    "or app.add_api_route(path, endpoint, methods=[...])",
}


def renamed(name: str) -> Optional[str]:
    """covet's name for `name` when it differs (``FastAPI`` -> ``CovetPy``), else None."""
    return _RENAMES.get(name)


@dataclass(frozen=True)
class Target:
    """Where a source name goes: ``module`` and ``name`` (``name`` is empty for a module itself)."""

    module: str
    name: str = ""

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}" if self.name else self.module


def is_source(dotted: str) -> bool:
    return dotted.split(".", 1)[0] in SOURCE_ROOTS


@cache
def _module(name: str) -> Optional[ModuleType]:
    try:
        if importlib.util.find_spec(name) is None:
            return None
    except (ImportError, ValueError):  # a parent that is not a package
        return None
    return importlib.import_module(name)


@cache
def covet_module(source_module: str) -> Optional[str]:
    """The covet module standing for `source_module` (``fastapi.responses`` -> ``covet.responses``), or None."""
    mapped = _MODULES.get(source_module)
    if mapped is None:
        root, _, rest = source_module.partition(".")
        if root not in SOURCE_ROOTS:
            return None
        mapped = f"covet.{rest}" if rest else "covet"
    return mapped if _module(mapped) is not None else None


def _has(module: str, name: str) -> bool:
    mod = _module(module)
    return mod is not None and not name.startswith("_") and hasattr(mod, name)


def resolve(source_module: str, name: str) -> tuple[Optional[Target], str]:
    """(target, "") for ``from source_module import name``, or (None, why) when covet has no such name."""
    different = _DIFFERENT.get((source_module, name))
    if different is not None:
        return None, different
    new_name = _RENAMES.get(name, name)
    module = covet_module(source_module)
    if module is not None and _has(module, new_name):
        return Target(module, new_name), ""
    if _has("covet", new_name):  # e.g. a name FastAPI re-exports from a module covet does not have
        return Target("covet", new_name), ""
    if module is not None and _module(f"{module}.{new_name}") is not None:  # a submodule: from fastapi import status
        return Target(module, new_name), ""
    if module is None:
        return None, f"covet has no module for {source_module}, nor a {new_name} of its own{_why(source_module, name)}"
    where = f"neither {module} nor covet has" if module != "covet" else "covet has no"
    return None, f"{where} {new_name}{_why(source_module, name)}"


def _why(source_module: str, name: str) -> str:
    """The compatibility shim's reason and alternative for a name covet lacks (covet.compat's table, when this
    covet has it), as ``" (reason)"``; else ""."""
    table = _module("covet.compat._table")
    why = getattr(table, "why", None)
    if why is None:
        return ""
    try:
        text = str(why(source_module, name))
    except Exception:  # another covet's table: its reason is optional here
        return ""
    return "" if not text or text == getattr(table, "DEFAULT_WHY", None) else f" ({text})"


def resolve_dotted(dotted: str) -> tuple[Optional[Target], str, str]:
    """A dotted use such as ``fastapi.responses.JSONResponse.media_type``: (target, rest, why) where `target` is
    the covet module or name, `rest` the attributes after it (``.media_type``), `why` the reason when None."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):  # the longest prefix that is a module with a covet counterpart
        source_module = ".".join(parts[:i])
        module = covet_module(source_module)
        if module is None:
            continue
        if i == len(parts):
            return Target(module), "", ""
        target, why = resolve(source_module, parts[i])
        if target is None:
            return None, "", why
        rest = "".join(f".{p}" for p in parts[i + 1:])
        return target, rest, ""
    return None, "", f"{dotted}: covet has no module for {parts[0] if len(parts) == 1 else '.'.join(parts[:2])}"


def _object(target: Target) -> Any:
    mod = _module(target.module)
    return getattr(mod, target.name, None) if target.name else mod


@cache
def _parameters(target: Target) -> Optional[frozenset[str]]:
    """The keyword names `target` accepts when called, or None when any goes (``**kwargs``) or unknown."""
    obj = _object(target)
    if obj is None or not callable(obj):
        return None
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = sig.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY)


def unsupported_keywords(target: Target, keywords: list[str]) -> list[str]:
    """The keyword arguments of a call to `target` that covet's signature does not take."""
    accepted = _parameters(target)
    if accepted is None:
        return []
    return [k for k in keywords if k not in accepted]


#: Classes whose instances' attributes are checked (``app.frontend(...)`` on a CovetPy): made once with no arguments.
_INSTANCE_CHECKED = frozenset({"covet.CovetPy", "covet.app.CovetPy", "covet.APIRouter", "covet.routing.APIRouter"})


@cache
def _instance(target: Target) -> Any:
    if target.dotted not in _INSTANCE_CHECKED:
        return None
    try:
        return _object(target)()
    except Exception:  # no default instance: nothing is checked
        return None


def instance_lacks(target: Target, attribute: str) -> bool:
    """True when an instance of `target` (an app or router class) has no `attribute`; False when it has, or when
    `target` is not one of the classes checked."""
    instance = _instance(target)
    return instance is not None and not hasattr(instance, attribute)


@cache
def run_keywords() -> frozenset[str]:
    """The keyword arguments ``CovetPy.run`` takes (its own, the transport's and the engine limits)."""
    names = {"host", "port", "workers", "threads", "log_level", "root_path", "limit_concurrency",
             "limit_max_requests", "loop"}
    tls = _module("covet.tls")
    transport = getattr(tls, "TransportOptions", None)
    if transport is not None:
        names.update(inspect.signature(transport).parameters)
    options = _module("covet.server.options")
    for option in getattr(options, "ENGINE_OPTIONS", ()):
        names.add(option.kwarg)
    return frozenset(names)
