"""Helpers of the security schemes (FastAPI's `fastapi.security.utils`)."""

from __future__ import annotations

from typing import Optional

__all__ = ["get_authorization_scheme_param"]


def get_authorization_scheme_param(authorization_header_value: Optional[str]) -> tuple[str, str]:
    """``"Bearer abc"`` → ``("Bearer", "abc")``: the scheme and its parameter (``("", "")`` for no header)."""
    if not authorization_header_value:
        return "", ""
    scheme, _, param = authorization_header_value.partition(" ")
    return scheme, param.strip()
