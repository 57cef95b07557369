"""FastAPI's ``fastapi.utils`` names CovetPy offers: `generate_unique_id`; and `check_root_path`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .routing import Route

__all__ = ["check_root_path", "generate_unique_id"]

_NON_WORD = re.compile(r"\W")


def generate_unique_id(route: Route) -> str:
    """FastAPI's default operation id: the route's name and path with every non-word character made ``_``, then
    its first method in lower case (``read_item_items__item_id__get``)."""
    return f"{_NON_WORD.sub('_', route.name + route.path_format)}_{route.methods[0].lower()}"


def check_root_path(root_path: str, source: str) -> str:
    """`root_path` if it is ``""`` or a path prefix such as ``/api/v1``; a ValueError naming `source` (the keyword or
    flag it came from) and the fix otherwise."""
    if not isinstance(root_path, str):
        raise TypeError(f"{source} must be a string such as '/api/v1', not {type(root_path).__name__}")
    if root_path and (not root_path.startswith("/") or root_path.endswith("/") or "?" in root_path
                      or "#" in root_path):
        fixed = "/" + root_path.strip("/").split("?")[0].split("#")[0]
        raise ValueError(f"{source} must be a path prefix starting with '/' and not ending with one (such as "
                         f"'/api/v1'), not {root_path!r}; use {fixed!r}")
    return root_path
