"""FastAPI's OpenAPI constants (``fastapi.openapi.constants``)."""

from __future__ import annotations

__all__ = ["METHODS_WITH_BODY", "REF_PREFIX", "REF_TEMPLATE"]

METHODS_WITH_BODY = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"}
"""The methods whose operations may document a request body."""
REF_PREFIX = "#/components/schemas/"
REF_TEMPLATE = "#/components/schemas/{model}"
"""The ``$ref`` of a model's schema, with ``{model}`` its name (pydantic's ``ref_template``)."""
