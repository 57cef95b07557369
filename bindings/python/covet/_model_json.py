"""The JSON body of a route with a declared result type: validation, then pydantic-core's ``dump_json`` bytes,
written natively (``covet._native.ModelJson``) where that is provably the same.

`response_renderer` compiles, once per (result type, dump options), a plan from the type's pydantic core schema:
models (nested, recursive), list, tuple[X, ...], set, dict[str, X], Optional, str, int, float, bool, None, with
by_alias, include/exclude (sets and nested dicts, ``"__all__"``), exclude_unset, exclude_none and
exclude_defaults resolved per field. A type the plan does not cover (custom serializers, computed fields,
extra='allow', unions, datetimes, RootModel, ser_json_* config ...) keeps pydantic's ``dump_json``; so does a value
the writer meets that is not what the schema says (a str subclass, inf/nan, an int beyond 64 bits ...): the
writer returns None and pydantic writes the body.

Validation is skipped when it is the identity: the result is already an instance of the declared model (or an
exact list of them), the model revalidates instances 'never' (pydantic's default) and nothing wraps its schema.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = ["compile_plan", "response_renderer"]

Renderer = Callable[[Any], bytes]

# Node kinds, as model_json.cpp numbers them.
_STR, _INT, _FLOAT, _BOOL, _NONE, _NULLABLE, _LIST, _TUPLE, _SET, _DICT, _MODEL = range(11)
_SCALARS = {"str": _STR, "int": _INT, "float": _FLOAT, "bool": _BOOL, "none": _NONE}
_OPTIONS = frozenset({"by_alias", "include", "exclude", "exclude_unset", "exclude_defaults", "exclude_none"})
# Model config keys that change validation only (anything else, ser_json_* or a future key, keeps pydantic's).
_VALIDATION_CONFIG = frozenset({
    "title", "extra_fields_behavior", "revalidate_instances", "strict", "from_attributes", "populate_by_name",
    "validate_by_alias", "validate_by_name", "loc_by_alias", "validate_default", "validate_assignment", "frozen",
    "str_strip_whitespace", "str_to_lower", "str_to_upper", "str_max_length", "str_min_length",
    "coerce_numbers_to_str", "regex_engine", "hide_input_in_errors", "validation_error_cause", "allow_inf_nan",
    "cache_strings", "serialize_by_alias",  # by_alias is always given explicitly
})
_FIELD_KEYS = frozenset({"type", "schema", "metadata", "validation_alias", "serialization_alias",
                         "serialization_exclude", "frozen"})
_MISSING: Any = object()
_DROP: Any = object()
_MAX_PLAN_DEPTH = 64


class Unsupported(Exception):
    """The type or options have a part the native writer does not reproduce exactly: pydantic writes the body."""


def _ellipsis_like(value: Any) -> bool:
    return value is ... or value is True


def _lookup(filters: dict[Any, Any], key: Any) -> Any:
    """pydantic-core's value of `key` in a dict filter, its ``"__all__"`` entry applied (the merge of both is
    not reproduced: Unsupported)."""
    item, everything = filters.get(key, _MISSING), filters.get("__all__", _MISSING)
    if item is not _MISSING and everything is not _MISSING:
        raise Unsupported("a filter with both a key and '__all__'")
    return item if item is not _MISSING else everything


def _check_filter(value: Any) -> None:
    if value is None:
        return
    if type(value) is set:
        if not all(type(k) is str for k in value):
            raise Unsupported("a filter set with non-str members")
        return
    if type(value) is not dict or not all(type(k) is str for k in value):
        raise Unsupported("a filter that is neither a set nor a dict of str keys")


def _key_filter(key: str, include: Any, exclude: Any) -> Any:
    """pydantic-core's filter for one key: _DROP, or the (include, exclude) passed to its value."""
    _check_filter(include)
    _check_filter(exclude)
    next_exclude = None
    if type(exclude) is dict:
        value = _lookup(exclude, key)
        if value is not _MISSING:
            if _ellipsis_like(value):
                return _DROP
            next_exclude = value
    elif exclude is not None and (key in exclude or "__all__" in exclude):
        return _DROP
    if type(include) is dict:
        value = _lookup(include, key)
        if value is _MISSING:
            return _DROP
        return (None if _ellipsis_like(value) else value), next_exclude
    if include is not None and not (key in include or "__all__" in include):
        return _DROP
    return None, next_exclude


class _Compiler:
    def __init__(self, by_alias: bool, exclude_defaults: bool) -> None:
        self.by_alias = by_alias
        self.exclude_defaults = exclude_defaults
        self.nodes: list[tuple[int, int, Any, list[tuple[str, str, int, bool, Any]]]] = []
        self.definitions: dict[str, Mapping[str, Any]] = {}
        self.refs: dict[str, int] = {}

    def add(self, kind: int, child: int = 0, cls: Any = None,
            fields: Optional[list[tuple[str, str, int, bool, Any]]] = None) -> int:
        self.nodes.append((kind, child, cls, fields or []))
        return len(self.nodes) - 1

    def node(self, schema: Mapping[str, Any], include: Any, exclude: Any, depth: int = 0) -> int:
        if depth > _MAX_PLAN_DEPTH:
            raise Unsupported("a schema nested too deep")
        if "serialization" in schema:
            raise Unsupported("a custom serializer")
        kind = schema.get("type")
        if kind == "definitions":
            for definition in schema["definitions"]:
                self.definitions[definition["ref"]] = definition
            return self.node(schema["schema"], include, exclude, depth + 1)
        if kind == "definition-ref":
            ref = schema["schema_ref"]
            if ref not in self.definitions:
                raise Unsupported(f"an unknown schema reference {ref}")
            if include is not None or exclude is not None:  # filters shrink with depth: no cycle
                return self.node(self.definitions[ref], include, exclude, depth + 1)
            if ref not in self.refs:
                # A placeholder first: a recursive model refers to its own node.
                index = self.refs[ref] = self.add(_NONE)
                compiled = self.node(self.definitions[ref], None, None, depth + 1)
                self.nodes[index] = self.nodes[compiled]
            return self.refs[ref]
        if kind in _SCALARS:
            return self.add(_SCALARS[kind])
        if kind in ("default", "function-after", "function-before", "function-wrap"):
            # A default is the field's business; a field validator leaves serialization to the inner schema.
            return self.node(schema["schema"], include, exclude, depth + 1)
        if kind == "nullable":
            return self.add(_NULLABLE, self.node(schema["schema"], include, exclude, depth + 1))
        if kind == "list":
            return self.add(_LIST, self._items(schema.get("items_schema"), include, exclude, depth))
        if kind == "tuple":
            items = schema.get("items_schema", [])
            if schema.get("variadic_item_index") != 0 or len(items) != 1:
                raise Unsupported("a tuple that is not tuple[X, ...]")
            return self.add(_TUPLE, self._items(items[0], include, exclude, depth))
        if kind == "set":
            if include is not None or exclude is not None:
                raise Unsupported("filters on a set")
            return self.add(_SET, self._items(schema.get("items_schema"), None, None, depth))
        if kind == "dict":
            keys = schema.get("keys_schema")
            if include is not None or exclude is not None:
                raise Unsupported("filters on a dict")
            if keys is None or keys.get("type") != "str" or "serialization" in keys:
                raise Unsupported("a dict whose keys are not str")
            return self.add(_DICT, self._items(schema.get("values_schema"), None, None, depth))
        if kind == "model":
            return self._model(schema, include, exclude, depth)
        raise Unsupported(f"a {kind} schema")

    def _items(self, schema: Optional[Mapping[str, Any]], include: Any, exclude: Any, depth: int) -> int:
        if schema is None:
            raise Unsupported("a container of Any")
        if include is None and exclude is None:
            return self.node(schema, None, None, depth + 1)
        # Every index gets the same filter when no key is an int (checked by _key_filter): "__all__"'s.
        filtered = _key_filter("\0index", include, exclude)
        if filtered is _DROP:
            raise Unsupported("a filter that drops every item")
        return self.node(schema, filtered[0], filtered[1], depth + 1)

    def _model(self, schema: Mapping[str, Any], include: Any, exclude: Any, depth: int) -> int:
        if schema.get("root_model"):
            raise Unsupported("a RootModel")
        config = schema.get("config") or {}
        if not set(config) <= _VALIDATION_CONFIG or config.get("extra_fields_behavior") == "allow":
            raise Unsupported("a model config that changes serialization")
        inner = schema["schema"]
        while inner.get("type") in ("function-after", "function-before", "function-wrap"):  # model validators
            if "serialization" in inner:
                raise Unsupported("a custom serializer")
            inner = inner["schema"]
        if inner.get("type") != "model-fields" or "serialization" in inner:
            raise Unsupported("a model without plain fields")
        if inner.get("computed_fields") or inner.get("extras_schema") is not None:
            raise Unsupported("computed fields or an extras schema")
        if inner.get("extra_behavior") == "allow":
            raise Unsupported("extra='allow'")
        fields: list[tuple[str, str, int, bool, Any]] = []
        for name, field in inner["fields"].items():
            if field.get("type") != "model-field" or not set(field) <= _FIELD_KEYS:
                raise Unsupported(f"field {name}: an option the writer does not know")
            if field.get("serialization_exclude"):
                continue
            filtered = _key_filter(name, include, exclude)
            if filtered is _DROP:
                continue
            field_schema = field["schema"]
            has_default, default = False, None
            if field_schema.get("type") == "default":
                if "default_factory" in field_schema:
                    if self.exclude_defaults:
                        raise Unsupported("exclude_defaults with a default_factory")
                else:
                    has_default, default = True, field_schema.get("default")
            alias = field.get("serialization_alias")
            key = alias if self.by_alias and alias is not None else name
            if type(key) is not str:
                raise Unsupported("a non-str alias")
            fields.append((name, key, self.node(field_schema, filtered[0], filtered[1], depth + 1), has_default,
                           default))
        return self.add(_MODEL, 0, schema["cls"], fields)


def compile_plan(core_schema: Mapping[str, Any], options: Mapping[str, Any]) -> list[Any]:
    """The writer's plan (model_json.cpp's node list) for a core schema and dump options; raises Unsupported."""
    if not set(options) <= _OPTIONS:
        raise Unsupported(f"dump options {sorted(set(options) - _OPTIONS)}")
    if type(options.get("by_alias")) is not bool:  # None: the model config's serialize_by_alias decides
        raise Unsupported("by_alias not given")
    compiler = _Compiler(options["by_alias"], bool(options.get("exclude_defaults", False)))
    root = compiler.node(core_schema, options.get("include"), options.get("exclude"))
    nodes = compiler.nodes
    if root != 0:  # node 0 is the root: swap it in front, renumbering references
        order = [root, *(i for i in range(len(nodes)) if i != root)]
        renumber = {old: new for new, old in enumerate(order)}
        nodes = [(kind, renumber[child], cls, [(n, k, renumber[c], h, d) for n, k, c, h, d in fields])
                 for kind, child, cls, fields in (nodes[i] for i in order)]
    return nodes


def _identity_check(core_schema: Mapping[str, Any], instances: Callable[[Any, Any], int]
                    ) -> Optional[Callable[[Any], bool]]:
    """A test for results whose validation returns them unchanged (or an equal list): an instance of the
    declared model, or an exact list of them, for a model that never revalidates instances. `instances` is
    ``covet._native.model_instances`` (1: an instance, 2: an exact list of instances)."""
    definitions = {d["ref"]: d for d in core_schema.get("definitions", ())}
    schema = core_schema["schema"] if core_schema.get("type") == "definitions" else core_schema

    def resolve(s: Mapping[str, Any]) -> Mapping[str, Any]:
        return definitions.get(s.get("schema_ref", ""), s) if s.get("type") == "definition-ref" else s

    def model_class(s: Mapping[str, Any]) -> Any:
        s = resolve(s)
        config = s.get("config") or {}
        if s.get("type") != "model" or config.get("revalidate_instances", "never") != "never":
            return None
        return s.get("cls")

    schema = resolve(schema)
    cls = model_class(schema)
    if cls is not None:
        return lambda value: instances(value, cls) == 1
    if schema.get("type") == "list" and set(schema) <= {"type", "items_schema", "metadata", "ref"}:
        item_cls = model_class(schema.get("items_schema") or {})
        if item_cls is not None:
            return lambda value: instances(value, item_cls) == 2
    return None


def _native_writer() -> Any:
    """``covet._native`` when it has the writer (None: not built, or an older engine: pydantic's dump_json)."""
    try:
        native = importlib.import_module("covet._native")
    except ImportError:
        return None
    return native if hasattr(native, "ModelJson") and hasattr(native, "model_instances") else None


def response_renderer(adapter: TypeAdapter[Any], options: Mapping[str, Any]) -> Renderer:
    """``result`` -> JSON bytes: validated by `adapter` (``from_attributes=True``; a ValidationError propagates),
    then dumped with pydantic's `options` (``dump_json`` keywords), natively where the plan allows."""
    validate, dump_json = adapter.validate_python, adapter.dump_json
    dump_options = dict(options)
    native = _native_writer()
    writer: Any = None
    identity: Optional[Callable[[Any], bool]] = None
    if native is not None:
        try:
            plan = compile_plan(adapter.core_schema, dump_options)
        except Unsupported:
            plan = None
        if plan is not None:
            writer = native.ModelJson(plan, exclude_unset=bool(dump_options.get("exclude_unset")),
                                  exclude_none=bool(dump_options.get("exclude_none")),
                                  exclude_defaults=bool(dump_options.get("exclude_defaults")))
        identity = _identity_check(adapter.core_schema, native.model_instances)

    if writer is None:
        def render(result: Any) -> bytes:
            value = result if identity is not None and identity(result) else validate(result, from_attributes=True)
            return dump_json(value, **dump_options)
        return render

    dump = writer.dump

    def render_native(result: Any) -> bytes:
        value = result if identity is not None and identity(result) else validate(result, from_attributes=True)
        body = dump(value)
        return body if body is not None else dump_json(value, **dump_options)

    return render_native
