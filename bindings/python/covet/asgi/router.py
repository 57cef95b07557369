"""The engine's routing, in Python: for an app served as an ASGI application (no engine in front) and for the
app behind pure ASGI middleware (which may rewrite the path, so routing happens after them).

It takes the same registrations the engine gets (`covet.routing.RouteTable.native_registrations`) and matches
as the engine does: literal segments first, then ``int``, ``float``, ``uuid``, ``str`` and ``path`` parameters,
depth first, falling back when a branch has no route for the method; GET routes answer HEAD; a path some
route matches for other methods is a 405 with ``Allow``, else a 404.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Optional

from covet.routing import parse_path

__all__ = ["PythonRouter"]

_ORDER = ("int", "float", "uuid", "str", "path")
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
_INT = re.compile(r"-?[0-9]+\Z")
_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")

def _fits(type_: str, segment: str) -> bool:
    if type_ == "int":
        return bool(_INT.match(segment)) and -(2**63) <= int(segment) < 2**63
    if type_ == "float":
        return bool(_FLOAT.match(segment))
    if type_ == "uuid":
        return bool(_UUID.match(segment))
    return segment != ""  # str


class _Endpoint:
    __slots__ = ("by_method",)

    def __init__(self) -> None:
        self.by_method: dict[str, tuple[Any, list[str]]] = {}  # method -> (target, parameter names)

    def accepting(self, method: str) -> Optional[tuple[Any, list[str]]]:
        hit = self.by_method.get(method)
        if hit is None and method == "HEAD":
            hit = self.by_method.get("GET")
        return hit

    def allow(self) -> str:
        methods = set(self.by_method)
        if "GET" in methods:
            methods.add("HEAD")
        return ", ".join(m for m in _METHOD_ORDER if m in methods)


class _Node:
    __slots__ = ("literals", "params", "endpoint")

    def __init__(self) -> None:
        self.literals: dict[str, _Node] = {}
        self.params: dict[str, _Node] = {}  # by parameter type
        self.endpoint = _Endpoint()


class PythonRouter:
    """Registrations ``(method, pattern, target)`` matched as the engine matches them; the first registration of
    a method on a route shape wins (later ones, fallbacks the engine would refuse, are dropped)."""

    def __init__(self, registrations: Iterable[tuple[str, str, Any]] = ()) -> None:
        self._root = _Node()
        for method, pattern, target in registrations:
            self.add(method, pattern, target)

    def add(self, method: str, pattern: str, target: Any) -> None:
        segments = parse_path(pattern)
        node = self._root
        names: list[str] = []
        parts = pattern[1:].split("/") if segments is None else None
        if parts is not None:
            for text in parts:
                node = node.literals.setdefault(text, _Node())
        else:
            assert segments is not None
            for segment in segments:
                if segment.is_param:
                    node = node.params.setdefault(segment.type or "str", _Node())
                    names.append(segment.text)
                else:
                    node = node.literals.setdefault(segment.text, _Node())
        node.endpoint.by_method.setdefault(method, (target, names))

    def match(self, method: str, path: str) -> tuple[str, Any, dict[str, str]]:
        """``("found", target, params)``, ``("method_not_allowed", allow, {})`` or ``("not_found", None, {})``
        for `path` (raw, percent-encoded, as the engine sees it)."""
        values: list[str] = []
        found: list[tuple[Any, list[str], list[str]]] = []
        partial: list[_Endpoint] = []

        def visit(endpoint: _Endpoint) -> bool:
            hit = endpoint.accepting(method)
            if hit is not None:
                found.append((hit[0], hit[1], list(values)))
                return True
            if not partial and endpoint.by_method:
                partial.append(endpoint)
            return False

        def descend(node: _Node, rest: Optional[str]) -> bool:
            if rest is None:
                return visit(node.endpoint)
            segment, slash, tail = rest.partition("/")
            following = tail if slash else None
            child = node.literals.get(segment)
            if child is not None and descend(child, following):
                return True
            for type_ in _ORDER:
                child = node.params.get(type_)
                if child is None:
                    continue
                if type_ == "path":
                    values.append(rest)
                    if visit(child.endpoint):
                        return True
                    values.pop()
                elif _fits(type_, segment):
                    values.append(segment)
                    if descend(child, following):
                        return True
                    values.pop()
            return False

        if path.startswith("/"):
            descend(self._root, path[1:])
        if found:
            target, names, got = found[0]
            return "found", target, dict(zip(names, got, strict=False))
        if partial:
            return "method_not_allowed", partial[0].allow(), {}
        return "not_found", None, {}
