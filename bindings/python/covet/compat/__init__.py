"""The FastAPI compatibility shim: an unchanged FastAPI app imports CovetPy's own classes.

::

    import covet.compat
    covet.compat.install("fastapi")   # before the app's first `import fastapi` (covet run --compat fastapi does it)
    from main import app              # `from fastapi import FastAPI` is covet.CovetPy now

While installed, ``fastapi``, its submodules and the ``starlette`` modules FastAPI apps import are served by a
meta-path finder placed first in ``sys.meta_path`` (so it wins over a real FastAPI installed in the environment):
each such module offers the covet module of the same role (``fastapi.responses`` → ``covet.responses``,
``starlette.requests`` → ``covet.requests``, ``fastapi.FastAPI`` → ``covet.CovetPy``; the table is
covet/compat/_table.py). The app then is a CovetPy app and runs on CovetPy's native path, not as a generic ASGI
app. A name CovetPy does not provide fails at import with an ImportError that names it, says why and what to use
instead, or how to serve the app unchanged (``covet run --interface asgi3``).
"""

from __future__ import annotations

import dis
import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence
from typing import Any, Optional

from ._table import MODULES, UNCHANGED, VERSIONS, why

__all__ = ["FRAMEWORKS", "install", "installed", "uninstall", "unsupported_message"]

#: What install() accepts: both install the same shim (FastAPI apps import starlette modules too).
FRAMEWORKS = ("fastapi", "starlette")
_TOPS = ("fastapi", "starlette")
_LABEL = {"fastapi": "FastAPI", "starlette": "Starlette"}
_IMPORT_FROM = dis.opmap["IMPORT_FROM"]
_PACKAGES = frozenset(name.rpartition(".")[0] for name in MODULES)


def _shimmed(fullname: str) -> bool:
    return fullname.partition(".")[0] in _TOPS


def unsupported_message(module: str, name: str = "") -> str:
    """Why `module.name` (or the module `module`) cannot be imported under the shim, and what to do instead."""
    what = f"{module}.{name}" if name else module
    top = module.partition(".")[0]
    return (f"{what} is not provided by CovetPy's compatibility shim (covet run --compat fastapi, "
            f"covet.compat.install): {why(module, name)}. Change the app not to use it, "
            + UNCHANGED.format(top=_LABEL.get(top, top)))


def _imported_by_from(frame: Optional[types.FrameType]) -> bool:
    """Whether `frame` is executing ``from module import name`` (its current instruction is IMPORT_FROM)."""
    if frame is None:
        return True
    code = frame.f_code.co_code
    return 0 <= frame.f_lasti < len(code) and code[frame.f_lasti] == _IMPORT_FROM


def _missing_name(module_name: str) -> Any:
    """The shim module's ``__getattr__`` (PEP 562): its submodules on first use, else a named error — an
    ImportError under ``from module import name`` (so that the message reaches the user), an AttributeError for
    attribute access (so that getattr(module, name, default) and hasattr keep working)."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        if f"{module_name}.{name}" in MODULES:
            return importlib.import_module(f"{module_name}.{name}")
        message = unsupported_message(module_name, name)
        if _imported_by_from(sys._getframe(1)):
            raise ImportError(message, name=module_name)
        raise AttributeError(message)

    return __getattr__


class _ShimLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[types.ModuleType]:
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:
        name = module.__name__
        target = MODULES[name]
        exported: list[str] = []
        if target.module:
            covet_module = importlib.import_module(target.module)
            names: Sequence[str] = getattr(covet_module, "__all__", None) or [
                n for n in vars(covet_module)
                if not n.startswith("_") and n != "annotations"
                and not isinstance(getattr(covet_module, n), types.ModuleType)]
            for attr in [*names, *target.extras]:
                if f"{name}.{attr}" not in MODULES:  # a submodule: the shim's own (imported on first use)
                    setattr(module, attr, getattr(covet_module, attr))
                    exported.append(attr)
            for shim_name, covet_name in target.renames.items():
                setattr(module, shim_name, getattr(covet_module, covet_name))
                exported.append(shim_name)
            module.__covet_module__ = target.module  # type: ignore[attr-defined]
        if "." not in name:
            module.__version__ = VERSIONS[name]  # type: ignore[attr-defined]
        module.__all__ = sorted(set(exported))  # type: ignore[attr-defined]
        module.__getattr__ = _missing_name(name)  # type: ignore[method-assign]


class _ShimFinder(importlib.abc.MetaPathFinder):
    """Serves ``fastapi``, ``fastapi.*`` and ``starlette.*`` from the table, before any other finder."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None,
                  target: Optional[types.ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
        if not _shimmed(fullname):
            return None
        if fullname not in MODULES:
            raise ModuleNotFoundError(unsupported_message(fullname), name=fullname)
        return importlib.machinery.ModuleSpec(fullname, _LOADER, origin="covet.compat",
                                              is_package=fullname in _PACKAGES)

    def __repr__(self) -> str:
        return "<covet.compat shim finder>"


_LOADER = _ShimLoader()
_FINDER = _ShimFinder()


def _is_shim(module: object) -> bool:
    spec = getattr(module, "__spec__", None)
    return spec is not None and spec.loader is _LOADER


def install(framework: str = "fastapi") -> None:
    """Makes ``import fastapi`` / ``import starlette...`` give CovetPy's implementation from now on (idempotent).

    Call it before the app imports FastAPI: a real FastAPI or Starlette imported already is an error (the app
    would mix both)."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"covet.compat.install: no shim for {framework!r}; the shim covers "
                         f"{' and '.join(FRAMEWORKS)} (install('fastapi'))")
    real = sorted(name for name, module in list(sys.modules.items())
                  if _shimmed(name) and module is not None and not _is_shim(module))
    if real:
        raise RuntimeError(
            f"covet.compat.install: {', '.join(real[:3])}{' ...' if len(real) > 3 else ''} was imported before the "
            "shim was installed, so the app would mix the real framework with CovetPy's: install the shim before "
            "anything imports fastapi or starlette (`covet run --compat fastapi module:app` does)")
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def installed() -> bool:
    """Whether the shim is installed in this interpreter."""
    return _FINDER in sys.meta_path


def uninstall() -> None:
    """Removes the shim and the shim modules imported so far (apps that imported them keep their references)."""
    while _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name in [n for n, m in list(sys.modules.items()) if _shimmed(n) and _is_shim(m)]:
        del sys.modules[name]
