"""``module:attribute``, the way ``covet run`` and ``covet compare`` name an application."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from .options import UsageError

__all__ = ["import_app"]


def import_app(spec: str, app_dir: str = ".") -> Any:
    """Imports ``module:attribute`` (attribute may be dotted) with ``app_dir`` first on sys.path; a bad spec, a
    module that does not import or a missing attribute is a UsageError naming it."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"expected APP as 'module:attribute' (e.g. 'main:app'), got {spec!r}")
    path = os.path.abspath(app_dir)
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise UsageError(f"cannot import module {module_name!r}: {e}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj
