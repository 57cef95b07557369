"""`CORSMiddleware` (``fastapi.middleware.cors``): Starlette's semantics, run natively (see docs/python.md).

``allow_origin_regex`` is matched by the engine (C++ ``std::regex``, ECMAScript syntax) against the whole
origin: the usual patterns (``https://.*\\.example\\.com``) mean the same as in Python's ``re``; Python-only
syntax (``(?P<name>...)``, inline flags) is refused when the app starts."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Optional

from .native import NativeMiddleware
from .python_cors import ALL_METHODS, SAFELISTED_HEADERS, PythonCORS

if TYPE_CHECKING:
    from covet.server.interface import Middleware

__all__ = ["ALL_METHODS", "SAFELISTED_HEADERS", "CORSMiddleware"]



class CORSMiddleware(NativeMiddleware):
    native_kind = "cors"

    def __init__(
        self,
        app: Any,
        allow_origins: Collection[str] = (),
        allow_methods: Collection[str] = ("GET",),
        allow_headers: Collection[str] = (),
        allow_credentials: bool = False,
        allow_origin_regex: Optional[str] = None,
        allow_private_network: bool = False,
        expose_headers: Collection[str] = (),
        max_age: int = 600,
    ) -> None:
        super().__init__(app)
        if allow_origin_regex is not None:
            try:
                re.compile(allow_origin_regex)
            except re.error as exc:
                raise ValueError(f"CORSMiddleware: allow_origin_regex {allow_origin_regex!r} does not compile: "
                                 f"{exc}") from exc
        for name, values in (("allow_origins", allow_origins), ("allow_methods", allow_methods),
                             ("allow_headers", allow_headers), ("expose_headers", expose_headers)):
            if isinstance(values, str):
                raise TypeError(f"CORSMiddleware: {name} must be a list of strings, not the string {values!r}")
        self.allow_origins = list(allow_origins)
        self.allow_methods = list(ALL_METHODS) if "*" in allow_methods else list(allow_methods)
        self.allow_headers = list(allow_headers)
        self.allow_credentials = bool(allow_credentials)
        self.allow_origin_regex = allow_origin_regex
        self.allow_private_network = bool(allow_private_network)
        self.expose_headers = list(expose_headers)
        self.max_age = int(max_age)

    def native_options(self) -> dict[str, Any]:
        return {
            "allow_origins": self.allow_origins,
            "allow_methods": self.allow_methods,
            "allow_headers": self.allow_headers,
            "allow_credentials": self.allow_credentials,
            "allow_origin_regex": self.allow_origin_regex or "",
            "allow_private_network": self.allow_private_network,
            "expose_headers": self.expose_headers,
            "max_age": self.max_age,
        }

    def python_middleware(self) -> Middleware:
        return PythonCORS(self)
