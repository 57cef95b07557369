"""CovetPy's logger (``fastapi.logger.logger`` is FastAPI's): the ``logging`` logger named ``"covet"``."""

from __future__ import annotations

import logging

__all__ = ["logger"]

logger = logging.getLogger("covet")
