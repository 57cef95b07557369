"""FastAPI's ``fastapi.utils`` names CovetPy offers: `generate_unique_id`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .routing import Route

__all__ = ["generate_unique_id"]

_NON_WORD = re.compile(r"\W")


def generate_unique_id(route: Route) -> str:
    """FastAPI's default operation id: the route's name and path with every non-word character made ``_``, then
    its first method in lower case (``read_item_items__item_id__get``)."""
    return f"{_NON_WORD.sub('_', route.name + route.path_format)}_{route.methods[0].lower()}"
