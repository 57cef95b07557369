"""`get_openapi`: the OpenAPI 3.1 document of a list of routes, the one FastAPI generates for the same app.

The rules are FastAPI's (0.165), applied to covet's own structures: each `covet.routing.Route` with its
`RequestPlan` (`covet.params`) — the handler's parameters, its body and its dependencies' — and the OpenAPI
keywords stored on the route. JSON Schemas come from pydantic, the way FastAPI asks for them: every field of
every route in ONE ``GenerateJsonSchema.generate_definitions`` call (request fields in "validation" mode,
response models in "serialization" mode, ``$ref``s to ``#/components/schemas/{model}``), so that model names,
``-Input``/``-Output`` variants and collisions come out the same.

The finished document goes through the same normalisation as FastAPI's (which validates it with its OpenAPI
pydantic models and dumps it with ``exclude_none``): keys whose value is None are dropped everywhere, the
numeric bounds of schemas are floats, contact/licence/external-docs URLs are normalised.
"""

from __future__ import annotations

import collections.abc
import copy
import http
import inspect
import re
import typing
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from enum import Enum
from typing import Annotated, Any, Literal, Optional

from covet.params.markers import Depends, Param, _FileParam, _FormParam
from covet.params.plan import ParamSpec, RequestPlan
from covet.params.planner import _hints_of, _marker_of
from covet.params.types import mentions_upload, resolve_hints, unalias
from covet.responses import JSONResponse, Response
from covet.routing import FROM_ANNOTATION, Route

if typing.TYPE_CHECKING:
    from pydantic.fields import FieldInfo

__all__ = ["get_openapi", "REF_PREFIX", "REF_TEMPLATE", "METHODS_WITH_BODY"]

REF_PREFIX = "#/components/schemas/"
REF_TEMPLATE = REF_PREFIX + "{model}"
METHODS_WITH_BODY = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"})
Mode = Literal["validation", "serialization"]

_VALIDATION_ERROR: dict[str, Any] = {
    "title": "ValidationError",
    "type": "object",
    "properties": {
        "loc": {"title": "Location", "type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "msg": {"title": "Message", "type": "string"},
        "type": {"title": "Error Type", "type": "string"},
        "input": {"title": "Input"},
        "ctx": {"title": "Context", "type": "object"},
    },
    "required": ["loc", "msg", "type"],
}
_HTTP_VALIDATION_ERROR: dict[str, Any] = {
    "title": "HTTPValidationError",
    "type": "object",
    "properties": {"detail": {"title": "Detail", "type": "array", "items": {"$ref": REF_PREFIX + "ValidationError"}}},
}
_STATUS_RANGES = {"1XX": "Information", "2XX": "Success", "3XX": "Redirection", "4XX": "Client Error",
                  "5XX": "Server Error", "DEFAULT": "Default Response"}
_SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}, "id": {"type": "string"},
                   "retry": {"type": "integer", "minimum": 0}},
}
_STREAM_ORIGINS = (collections.abc.AsyncIterable, collections.abc.AsyncIterator, collections.abc.AsyncGenerator,
                   collections.abc.Iterable, collections.abc.Iterator, collections.abc.Generator)
_MEDIA_TYPES = {"body": "application/json", "form": "application/x-www-form-urlencoded",
                "file": "multipart/form-data"}


# --- fields: what pydantic makes a JSON Schema of ---------------------------------------------------------

class _Field:
    """One schema-bearing value (a parameter, a request body, a response model), like FastAPI's ModelField:
    a type with its pydantic `Field` attributes, a name, an alias and the schema mode."""

    __slots__ = ("name", "alias", "annotation", "kwargs", "info", "mode", "typeform", "config")

    def __init__(self, name: str, annotation: Any, kwargs: Optional[dict[str, Any]] = None, *,
                 alias: Optional[str] = None, mode: Mode = "validation") -> None:
        from pydantic import Field

        self.name = name
        self.alias = alias or name
        self.annotation = annotation
        self.kwargs = kwargs or {}
        self.info: FieldInfo = Field(**self.kwargs)
        self.mode: Mode = mode
        self.typeform: Any = None  # a field of a model (`of_model`): its own annotation, metadata and attributes
        self.config: Any = None

    @classmethod
    def of_model(cls, model: Any, name: str, info: FieldInfo) -> _Field:
        """A field of a pydantic model used as a group of query/header/cookie parameters (FastAPI flattens
        them into one parameter each)."""
        from pydantic import BaseModel, Field

        described = info.asdict()
        field = cls(name, info.annotation, alias=info.validation_alias if isinstance(info.validation_alias, str)
                    else info.alias or name)
        field.info = info
        base, metadata, attributes = described["annotation"], described["metadata"], described["attributes"]
        field.typeform = Annotated[(base, *metadata, Field(**attributes))]
        nested = isinstance(info.annotation, type) and issubclass(info.annotation, (BaseModel, dict))
        field.config = None if nested else model.model_config
        return field

    def core_schema(self, cache: dict[Any, Any]) -> Any:
        """The pydantic core schema of the field's type with its `Field` attributes — shared by the fields that
        have the same ones (a 300-route app repeats ``limit: int = 10`` and its models many times)."""
        try:
            key: Any = (self.annotation, repr(sorted(self.kwargs.items())))
            found = cache.get(key)
        except TypeError:  # an unhashable annotation
            key, found = None, None
        if self.typeform is not None:
            key, found = None, None
        if found is None:
            from pydantic import TypeAdapter

            with warnings.catch_warnings():  # Field(alias=...) in a TypeAdapter: unused there, and said so
                warnings.simplefilter("ignore")
                if self.typeform is not None:
                    found = TypeAdapter(self.typeform, config=self.config).core_schema
                else:
                    found = TypeAdapter(typing.cast(Any, Annotated[self.annotation, self.info])).core_schema
            if key is not None:
                cache[key] = found
        return found

    def required(self) -> bool:
        return bool(self.info.is_required())

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


def _field_kwargs(marker: Optional[Param], required: bool, default: Any, *, alias: bool = False) -> dict[str, Any]:
    """The pydantic `Field` arguments a FastAPI marker would be: default, title, description, examples,
    deprecated and the constraints (`alias` only where it names a property: fields of a combined body model)."""
    kwargs: dict[str, Any] = {}
    factory = getattr(marker, "default_factory", None)
    if not required:
        if factory is not None:  # Query(default_factory=...): optional, its default not shown (as FastAPI)
            kwargs["default_factory"] = factory
        else:
            kwargs["default"] = default
    if marker is not None:
        if alias and marker.alias:
            kwargs["alias"] = marker.alias
        for key in ("title", "description", "examples", "deprecated", "json_schema_extra"):
            value = getattr(marker, key, None)
            if value is not None:
                kwargs[key] = value
        kwargs.update(marker.constraints)
    return kwargs


def _without_markers(annotation: Any) -> Any:
    """`annotation` with covet's markers taken out of ``Annotated[...]`` (pydantic metadata kept)."""
    if typing.get_origin(annotation) is not Annotated:
        return annotation
    base, *metadata = typing.get_args(annotation)
    kept = [m for m in metadata if not isinstance(m, (Param, Depends))]
    base = _without_markers(base)
    return Annotated[(base, *kept)] if kept else base


_SignatureInfo = dict[str, tuple[Any, Any, Any]]


def _signature_info(call: Callable[..., Any], cache: dict[int, tuple[Any, _SignatureInfo]]) -> _SignatureInfo:
    """name → (annotation without markers, marker, default) for `call`'s parameters, read as the planner does
    (`cache`: by callable, for one generation — dependencies recur across routes)."""
    found = cache.get(id(call))
    if found is not None and found[0] is call:
        return found[1]
    info = _read_signature(call)
    cache[id(call)] = (call, info)
    return info


def _read_signature(call: Callable[..., Any]) -> _SignatureInfo:
    try:
        parameters = inspect.signature(call).parameters
        hints = _hints_of(call)
    except (TypeError, ValueError):
        return {}
    out: dict[str, tuple[Any, Any, Any]] = {}
    for param in parameters.values():
        annotation = unalias(hints.get(param.name, inspect.Parameter.empty))  # a type alias: its value (FastAPI)
        marker, default = _marker_of(annotation, param.default)
        base = _without_markers(annotation)
        out[param.name] = (Any if base is inspect.Parameter.empty else base, marker, default)
    return out


# --- what a route contributes ---------------------------------------------------------------------------

class _Parameter:
    """One parameter of the operation: its field (for the schema), its name in the request and its OpenAPI
    attributes."""

    __slots__ = ("field", "name", "location", "required", "shown", "description", "examples", "deprecated")

    def __init__(self, field: _Field, name: str, location: str, *, required: bool, shown: bool,
                 description: Optional[str], examples: Any, deprecated: Any) -> None:
        self.field, self.name, self.location, self.required, self.shown = field, name, location, required, shown
        self.description, self.examples, self.deprecated = description, examples, deprecated


class _Operation:
    """A route read for the schema: its parameters (the dependency tree's, deduplicated), body, responses and
    security requirements."""

    def __init__(self, route: Route, security_base: Optional[type],
                 signatures: dict[int, tuple[Any, _SignatureInfo]]) -> None:
        self.route = route
        self._signatures = signatures
        self.path_format = re.sub(r"{([^}:]+):[^}]*}", r"{\1}", route.path)
        unique_id = getattr(route, "unique_id", None)  # set by the routing layer when it computes one
        generate = getattr(route, "generate_unique_id_function", None)  # or a user's function to call
        if unique_id is None and callable(generate):
            unique_id = generate(route)
        self.unique_id: str = unique_id or _generate_unique_id(route, self.path_format)
        # operationId: route.operation_id (also when set after the route was made, as FastAPI reads it)
        self.operation_id: str = route.operation_id or self.unique_id
        self.parameters: list[_Parameter] = []
        self.security: list[tuple[Any, list[str]]] = []
        self.body_field: Optional[_Field] = None
        self.body_media_type = _MEDIA_TYPES["body"]
        self.body_examples: Optional[dict[str, Any]] = None
        self._walk(route.endpoint, route.plan, route_markers=list(route.dependencies),
                   security_base=security_base)
        self._body(route)
        self.stream: Optional[Literal["jsonl", "sse"]] = None  # a ``yield`` handler: JSON Lines or SSE
        self.stream_item_field: Optional[_Field] = None
        self.response_field = self._response_field(route)
        self.response_fields: dict[Any, _Field] = {
            code: _Field(f"Response_{code}_{self.unique_id}", response["model"], mode="serialization")
            for code, response in route.responses.items() if response.get("model")
        }

    def body_fields(self) -> list[_Field]:
        return [self.body_field] if self.body_field is not None else []

    def response_fields_all(self) -> list[_Field]:
        out = [self.response_field] if self.response_field is not None else []
        out.extend(self.response_fields.values())
        if self.stream_item_field is not None:
            out.append(self.stream_item_field)
        return out

    # The dependency tree, depth first, each (dependency, scopes) once — FastAPI's traversal.
    def _walk(self, endpoint: Callable[..., Any], plan: RequestPlan, *, route_markers: list[Any],
              security_base: Optional[type]) -> None:
        visited: set[tuple[Any, tuple[str, ...]]] = set()
        stack: list[tuple[Callable[..., Any], RequestPlan, list[str], bool, list[Any]]] = [
            (endpoint, plan, [], True, route_markers)]
        by_location: dict[str, list[_Parameter]] = {"path": [], "query": [], "header": [], "cookie": []}
        while stack:
            call, current, scopes, is_root, unnamed_markers = stack.pop()
            is_security = security_base is not None and isinstance(_unwrapped(call), security_base)
            key = (call, tuple(sorted(set(scopes))) if scopes or is_security else ())
            if key in visited:
                continue
            visited.add(key)
            info = _signature_info(call, self._signatures)
            for spec in current.specs:
                if spec.location in by_location:
                    by_location[spec.location].extend(self._parameter(spec, info.get(spec.name)))
            if not is_root and is_security:
                self.security.append((_unwrapped(call), scopes))
            children: list[tuple[Callable[..., Any], RequestPlan, list[str], bool, list[Any]]] = []
            unnamed = iter(unnamed_markers)
            for dependency in current.dependencies:
                marker = next(unnamed, None) if dependency.name is None else _marker(info, dependency.name)
                own = list(getattr(dependency, "scopes", None) or getattr(marker, "scopes", None) or ())
                child_scopes = list(scopes)
                child_scopes.extend(s for s in own if s not in child_scopes)
                children.append((dependency.call, dependency.plan, child_scopes, False, []))
            stack.extend(reversed(children))
        for location in ("path", "query", "header", "cookie"):
            self.parameters.extend(by_location[location])

    def _parameter(self, spec: ParamSpec, info: Optional[tuple[Any, Any, Any]]) -> list[_Parameter]:
        annotation, marker, _ = info if info is not None else (spec.annotation, None, spec.default)
        param_marker = marker if isinstance(marker, Param) else None
        model = _param_model(annotation) if spec.location in ("query", "header", "cookie") else None
        if model is not None:
            return self._model_parameters(spec, annotation, model, param_marker)
        alias = (param_marker.alias if param_marker is not None else None) or spec.name
        if spec.location == "header" and param_marker is not None and not param_marker.alias \
                and param_marker.convert_underscores:
            alias = alias.replace("_", "-")  # FastAPI's header alias: the schema's title comes from it too
        required = spec.location == "path" or spec.required
        field = _Field(spec.name, annotation, _field_kwargs(param_marker, required, spec.default), alias=alias)
        m = param_marker
        return [_Parameter(field, alias, spec.location, required=field.required(),
                           shown=m is None or m.include_in_schema, description=m.description if m else None,
                           examples=m.openapi_examples if m else None, deprecated=m.deprecated if m else None)]

    def _model_parameters(self, spec: ParamSpec, annotation: Any, model: Any,
                          marker: Optional[Param]) -> list[_Parameter]:
        """A pydantic model as a group of parameters: one per field (FastAPI's rules for names and titles)."""
        optional_model = annotation is not model and not spec.required
        convert = marker.convert_underscores if marker is not None else True
        out = []
        for name, info in model.model_fields.items():
            field = _Field.of_model(model, name, info)
            request_name = field.alias
            if spec.location == "header" and convert and field.alias == name:
                request_name = name.replace("_", "-")
            out.append(_Parameter(field, request_name, spec.location,
                                  required=info.is_required() and not optional_model,
                                  shown=marker is None or marker.include_in_schema, description=info.description,
                                  examples=None, deprecated=info.deprecated))
        return out

    def _body(self, route: Route) -> None:
        specs: list[tuple[ParamSpec, Any, Optional[Param], str]] = []

        def collect(call: Callable[..., Any], plan: RequestPlan) -> None:
            info = _signature_info(call, self._signatures)
            for spec in plan.body:
                annotation, marker, _ = info.get(spec.name, (spec.annotation, None, spec.default))
                param_marker = marker if isinstance(marker, Param) else None
                if isinstance(param_marker, _FileParam) or (param_marker is None and mentions_upload(annotation)):
                    kind = "file"
                elif isinstance(param_marker, _FormParam) or spec.form:
                    kind = "form"
                else:
                    kind = "body"
                specs.append((spec, annotation, param_marker, kind))
            for dependency in plan.dependencies:
                collect(dependency.call, dependency.plan)

        collect(route.endpoint, route.plan)
        if not specs:
            return
        first, first_annotation, first_marker, first_kind = specs[0]
        embed = (len({s.name for s, *_ in specs}) > 1
                 or bool(first_marker is not None and first_marker.embed)
                 or (first_kind != "body" and not _is_model(first_annotation)))
        if not embed:
            self.body_field = _Field(first.name, first_annotation,
                                     _field_kwargs(first_marker, first.required, first.default),
                                     alias=(first_marker.alias if first_marker is not None else None) or first.name)
            self.body_media_type = _MEDIA_TYPES[first_kind]
            self.body_examples = first_marker.openapi_examples if first_marker is not None else None
            return
        from pydantic import Field, create_model

        definitions: dict[str, Any] = {
            spec.name: (annotation, Field(**_field_kwargs(marker, spec.required, spec.default, alias=True)))
            for spec, annotation, marker, _ in specs}
        model = create_model("Body_" + self.unique_id, **definitions)
        required = any(spec.required for spec, *_ in specs)
        kinds = {kind for *_, kind in specs}
        self.body_media_type = _MEDIA_TYPES["file" if "file" in kinds else "form" if "form" in kinds else "body"]
        self.body_field = _Field("body", model, _field_kwargs(None, required, None), alias="body")

    def _response_field(self, route: Route) -> Optional[_Field]:
        stream = getattr(route, "stream", None)
        if stream in ("jsonl", "sse"):  # a ``yield`` handler (covet.routing read its items' declared type)
            self.stream = typing.cast(Literal["jsonl", "sse"], stream)
            item = getattr(route, "stream_item_type", None)
            if item is not None:
                self.stream_item_field = _Field("StreamItem_" + self.unique_id, item, mode="serialization")
            return None
        if stream is not None:  # another response_class receives the generator itself: no model
            return None
        declared = getattr(route, "response_model", FROM_ANNOTATION)
        if declared is FROM_ANNOTATION:
            try:
                declared = resolve_hints(route.endpoint).get("return", None)
            except Exception:
                declared = None
        endpoint = _unwrapped(route.endpoint)
        if (inspect.isasyncgenfunction(endpoint) or inspect.isgeneratorfunction(endpoint)) \
                and typing.get_origin(declared) in _STREAM_ORIGINS:
            return None
        if declared is None or declared is type(None) or _mentions_response(declared):
            return None
        return _Field("Response_" + self.unique_id, declared, mode="serialization")


def _marker(info: Mapping[str, tuple[Any, Any, Any]], name: str) -> Any:
    found = info.get(name)
    return found[1] if found is not None else None


def _unwrapped(call: Any) -> Any:
    import functools

    while isinstance(call, functools.partial):
        call = call.func
    return inspect.unwrap(call) if callable(call) else call


def _param_model(annotation: Any) -> Any:
    """The pydantic model of a parameter group: ``Model`` or ``Optional[Model]`` (FastAPI's rule), else None."""
    args = typing.get_args(annotation)
    if args and len(args) == 2 and type(None) in args and typing.get_origin(annotation) is not Annotated:
        annotation = next(a for a in args if a is not type(None))
    return annotation if _is_model(annotation) else None


def _is_model(annotation: Any) -> bool:
    from pydantic import BaseModel

    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _mentions_response(tp: Any) -> bool:
    if isinstance(tp, type) and issubclass(tp, Response):
        return True
    return any(_mentions_response(a) for a in typing.get_args(tp) or ())


def _generate_unique_id(route: Route, path_format: str) -> str:
    """FastAPI's default operation id: ``{name}{path}`` with non-word characters as ``_``, then ``_{method}``."""
    return f"{re.sub(r'[^0-9A-Za-z_]', '_', f'{route.name}{path_format}')}_{route.methods[0].lower()}"


# --- schemas --------------------------------------------------------------------------------------------

def _schema_generator() -> Any:
    from pydantic.json_schema import GenerateJsonSchema

    class _Generator(GenerateJsonSchema):
        """pydantic's generator, with ``bytes`` as OpenAPI 3.1 has it (a string of octets, as FastAPI)."""

        def bytes_schema(self, schema: Any) -> Any:
            json_schema: dict[str, Any] = {"type": "string", "contentMediaType": "application/octet-stream"}
            mode = self._config.ser_json_bytes if self.mode == "serialization" else self._config.val_json_bytes
            if mode == "base64":
                json_schema["contentEncoding"] = "base64"
            self.update_with_validations(json_schema, schema, self.ValidationsMapping.bytes)
            return json_schema

    return _Generator(ref_template=REF_TEMPLATE)


def _flat_models(annotation: Any, known: dict[Any, None]) -> None:
    """The models and enums `annotation` mentions, nested ones included (FastAPI's "flat models")."""
    from pydantic import BaseModel

    def visit_model(model: Any) -> None:
        for field in model.model_fields.values():
            walk(field.annotation, top=True)

    def walk(tp: Any, top: bool) -> None:
        if top and isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp not in known:
                known[tp] = None
                visit_model(tp)
            return
        if top and isinstance(tp, type) and issubclass(tp, Enum):
            known[tp] = None
            return
        if typing.get_origin(tp) is None:
            return
        for arg in typing.get_args(tp):
            if isinstance(arg, type) and issubclass(arg, (BaseModel, Enum)):
                if arg not in known:
                    known[arg] = None
                    if issubclass(arg, BaseModel):
                        visit_model(arg)
            else:
                walk(arg, top=False)

    walk(annotation, top=True)


def _has_computed_fields(annotation: Any, seen: Optional[set[Any]] = None) -> bool:
    from pydantic import BaseModel

    seen = set() if seen is None else seen
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return False
        seen.add(annotation)
        return bool(annotation.model_computed_fields) or any(
            _has_computed_fields(f.annotation, seen) for f in annotation.model_fields.values())
    return any(_has_computed_fields(a, seen) for a in typing.get_args(annotation))


class _Schemas:
    """The JSON Schemas of every field, generated together, and the component definitions they refer to."""

    def __init__(self, fields: Sequence[_Field], separate_input_output_schemas: bool) -> None:
        self.separate = separate_input_output_schemas
        known: dict[Mode, dict[Any, None]] = {"validation": {}, "serialization": {}}
        for field in fields:
            _flat_models(field.annotation, known[field.mode])
        annotations = {id(f.annotation) for f in fields}
        extra = [_Field(model.__name__, model, mode=mode) for mode in ("validation", "serialization")
                 for model in known[mode] if id(model) not in annotations]
        cache: dict[Any, Any] = {}
        inputs = [(field, self._mode(field), field.core_schema(cache)) for field in [*fields, *extra]]
        mapping, definitions = _schema_generator().generate_definitions(inputs=inputs)
        self.mapping: dict[tuple[_Field, Mode], dict[str, Any]] = mapping
        self.definitions: dict[str, dict[str, Any]] = dict(definitions)
        for definition in self.definitions.values():
            if isinstance(definition.get("description"), str):
                definition["description"] = definition["description"].split("\f")[0]

    def _mode(self, field: _Field) -> Mode:
        if self.separate or _has_computed_fields(field.annotation):
            return field.mode
        return "validation"

    def of(self, field: _Field, alias: Optional[str] = None) -> dict[str, Any]:
        schema = dict(self.mapping[(field, self._mode(field))])
        if "$ref" not in schema:
            schema["title"] = field.info.title or (alias or field.alias).title().replace("_", " ")
        return schema


# --- the document ---------------------------------------------------------------------------------------

def _security_base() -> Optional[type]:
    """`covet.security.base.SecurityBase` when the security package is present."""
    try:
        from covet.security.base import SecurityBase  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return typing.cast(type, SecurityBase)


def _jsonable(value: Any) -> Any:
    """`value` as JSON data: models dumped by alias, enums by value, None-valued keys dropped."""
    kind = type(value)
    if kind is dict:  # the bulk of a schema: plain dicts, lists and scalars
        return {k: _jsonable(v) for k, v in value.items() if v is not None}
    if kind is list:
        return [_jsonable(v) for v in value]
    if kind is str or kind is int or kind is float or kind is bool:
        return value
    if hasattr(value, "model_dump") and not isinstance(value, type):
        value = value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, Enum):
        return _jsonable(value.value)
    if isinstance(value, Mapping):
        return {_jsonable(k): _jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return value


def _deep_update(main: dict[Any, Any], update: Mapping[Any, Any]) -> None:
    """FastAPI's merge (``openapi_extra``, ``responses=``): dicts merged, lists concatenated, else replaced."""
    for key, value in update.items():
        if key in main and isinstance(main[key], dict) and isinstance(value, Mapping):
            _deep_update(main[key], value)
        elif key in main and isinstance(main[key], list) and isinstance(value, list):
            main[key] = main[key] + value
        else:
            main[key] = value


def _body_allowed(status_code: Any) -> bool:
    if status_code is None or status_code in {"default", "1XX", "2XX", "3XX", "4XX", "5XX"}:
        return True
    code = int(status_code)
    return not (code < 200 or code in {204, 205, 304})


def _response_class(route: Route) -> tuple[Optional[type], Optional[str], bool]:
    """The route's response class (None: the default), its media type and whether it is JSON."""
    cls = getattr(route, "response_class", None)
    value = getattr(cls, "value", None)  # a default placeholder, as FastAPI has them
    if isinstance(value, type):
        cls = value
    if not isinstance(cls, type):
        return None, JSONResponse.media_type, True
    return cls, getattr(cls, "media_type", None), issubclass(cls, JSONResponse)


def _default_status(cls: Optional[type]) -> str:
    """The status code of a route without ``status_code=``: its response class's default (FastAPI's rule)."""
    if cls is not None:
        declared = getattr(cls, "default_status", None)  # covet's response classes say it so
        if isinstance(declared, int):
            return str(declared)
        with suppress(TypeError, ValueError):
            default = inspect.signature(cls).parameters.get("status_code")
            if default is not None and isinstance(default.default, int):
                return str(default.default)
    return "200"


class _Builder:
    def __init__(self, schemas: _Schemas) -> None:
        self.schemas = schemas
        self.operation_ids: set[str] = set()
        self.security_schemes: dict[str, Any] = {}
        self.definitions: dict[str, Any] = {}

    def path_item(self, op: _Operation, callbacks: Mapping[int, list[_Operation]]) -> dict[str, Any]:
        route = op.route
        out: dict[str, Any] = {}
        cls, media_type, is_json = _response_class(route)
        for method in route.methods:
            operation = self._metadata(op)
            self._security(operation, op)
            parameters = self._parameters(op)
            if parameters:
                every = {(p["in"], p["name"]): p for p in parameters}
                every.update({(p["in"], p["name"]): p for p in parameters if p.get("required")})
                operation["parameters"] = list(every.values())
            if method in METHODS_WITH_BODY and op.body_field is not None:
                content: dict[str, Any] = {"schema": self.schemas.of(op.body_field)}
                if op.body_examples:
                    content["examples"] = _jsonable(op.body_examples)
                body: dict[str, Any] = {}
                if op.body_field.required():
                    body["required"] = True
                body["content"] = {op.body_media_type: content}
                operation["requestBody"] = body
            if callbacks.get(id(route)):
                operation["callbacks"] = {
                    cb.route.name: {cb.route.path: self.path_item(cb, callbacks)} for cb in callbacks[id(route)]}
            responses = operation.setdefault("responses", {})
            status_code = route.status_code if getattr(route, "status_code_set", True) else None
            status = str(status_code) if status_code is not None else _default_status(cls)
            responses.setdefault(status, {})["description"] = route.response_description
            item = self.schemas.of(op.stream_item_field) if op.stream_item_field is not None else None
            if not _body_allowed(status_code):
                pass
            elif op.stream == "jsonl":
                responses[status].setdefault("content", {})["application/jsonl"] = {"itemSchema": item or {}}
            elif op.stream == "sse":
                event = copy.deepcopy(_SSE_EVENT_SCHEMA)
                if item is not None:
                    event["required"] = ["data"]
                    event["properties"]["data"] = {"type": "string", "contentMediaType": "application/json",
                                                   "contentSchema": item}
                responses[status].setdefault("content", {})["text/event-stream"] = {"itemSchema": event}
            elif media_type:
                schema: dict[str, Any] = {"type": "string"}
                if is_json:
                    schema = self.schemas.of(op.response_field) if op.response_field is not None else {}
                responses[status].setdefault("content", {}).setdefault(media_type, {})["schema"] = schema
            self._additional_responses(responses, op, media_type)
            if (op.parameters or op.body_field is not None) and not any(
                    s in responses for s in ("422", "4XX", "default")):
                responses["422"] = {"description": "Validation Error", "content": {
                    "application/json": {"schema": {"$ref": REF_PREFIX + "HTTPValidationError"}}}}
                self.definitions.setdefault("ValidationError", _VALIDATION_ERROR)
                self.definitions.setdefault("HTTPValidationError", _HTTP_VALIDATION_ERROR)
            if route.openapi_extra:
                _deep_update(operation, copy.deepcopy(route.openapi_extra))
            out[method.lower()] = operation
        return out

    def _metadata(self, op: _Operation) -> dict[str, Any]:
        route = op.route
        operation: dict[str, Any] = {}
        if route.tags:
            operation["tags"] = [t.value if isinstance(t, Enum) else t for t in route.tags]
        operation["summary"] = route.summary or route.name.replace("_", " ").title()
        description = route.description or inspect.cleandoc(getattr(route.endpoint, "__doc__", None) or "")
        description = description.split("\f")[0].strip()
        if description:
            operation["description"] = description
        if op.operation_id in self.operation_ids:
            name = getattr(route.endpoint, "__name__", "<unnamed_endpoint>")
            message = f"Duplicate Operation ID {op.operation_id} for function {name}"
            file_name = getattr(route.endpoint, "__globals__", {}).get("__file__")
            warnings.warn(message + (f" at {file_name}" if file_name else ""), stacklevel=3)
        self.operation_ids.add(op.operation_id)
        operation["operationId"] = op.operation_id
        if route.deprecated:
            operation["deprecated"] = route.deprecated
        return operation

    def _security(self, operation: dict[str, Any], op: _Operation) -> None:
        requirements: dict[str, list[str]] = {}
        for scheme, scopes in op.security:
            name = scheme.scheme_name
            self.security_schemes[name] = _jsonable(scheme.model)
            merged = requirements.setdefault(name, [])
            merged.extend(s for s in scopes if s not in merged)
        if requirements:
            operation.setdefault("security", []).extend({name: scopes} for name, scopes in requirements.items())

    def _parameters(self, op: _Operation) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for param in op.parameters:
            if not param.shown:
                continue
            parameter: dict[str, Any] = {"name": param.name, "in": param.location, "required": param.required,
                                         "schema": self.schemas.of(param.field, param.field.alias)}
            if param.description:
                parameter["description"] = param.description
            if param.examples:
                parameter["examples"] = _jsonable(param.examples)
            if param.deprecated:
                parameter["deprecated"] = True
            out.append(parameter)
        return out

    def _additional_responses(self, responses: dict[str, Any], op: _Operation, media_type: Optional[str]) -> None:
        for code, additional in op.route.responses.items():
            response = copy.deepcopy(dict(additional))
            response.pop("model", None)
            key = str(code).upper()
            if key == "DEFAULT":
                key = "default"
            target = responses.setdefault(key, {})
            field = op.response_fields.get(code)
            if field is not None:
                schema = response.setdefault("content", {}).setdefault(media_type or "application/json", {}) \
                    .setdefault("schema", {})
                _deep_update(schema, self.schemas.of(field))
            status_text = _STATUS_RANGES.get(str(code).upper())
            if status_text is None:
                try:
                    status_text = http.HTTPStatus(int(code)).phrase  # not http.client: 12 ms of import at start-up
                except ValueError:  # not a number, or a status without a standard phrase
                    status_text = None
            description = response.get("description") or target.get("description") or status_text \
                or "Additional Response"
            _deep_update(target, response)
            target["description"] = description


def _routes(routes: Iterable[Any]) -> list[Route]:
    return [r for r in routes if isinstance(r, Route) and r.include_in_schema]


def get_openapi(
    *,
    title: str,
    version: str,
    openapi_version: str = "3.1.0",
    summary: Optional[str] = None,
    description: Optional[str] = None,
    routes: Sequence[Any],
    webhooks: Optional[Sequence[Any]] = None,
    tags: Optional[list[dict[str, Any]]] = None,
    servers: Optional[list[dict[str, Any]]] = None,
    terms_of_service: Optional[str] = None,
    contact: Optional[dict[str, Any]] = None,
    license_info: Optional[dict[str, Any]] = None,
    separate_input_output_schemas: bool = True,
    external_docs: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """The OpenAPI document of `routes` (`covet.routing.Route` objects; others, and routes with
    ``include_in_schema=False``, are skipped) and `webhooks`, with the given ``info`` metadata — FastAPI's
    ``fastapi.openapi.utils.get_openapi``, same keywords, same output."""
    info: dict[str, Any] = {"title": title, "version": version}
    if summary:
        info["summary"] = summary
    if description:
        info["description"] = description
    if terms_of_service:
        info["termsOfService"] = terms_of_service
    if contact:
        info["contact"] = contact
    if license_info:
        info["license"] = license_info
    output: dict[str, Any] = {"openapi": openapi_version, "info": info}
    if servers:
        output["servers"] = servers

    security_base = _security_base()
    callbacks: dict[int, list[_Operation]] = {}
    signatures: dict[int, tuple[Any, _SignatureInfo]] = {}

    def fields_of(ops: list[_Operation]) -> list[_Field]:
        """FastAPI's order: the callbacks' fields, then every body, every response, every parameter."""
        out = [f for op in ops for f in fields_of(callbacks.get(id(op.route), []))]
        out += [f for op in ops for f in op.body_fields()]
        out += [f for op in ops for f in op.response_fields_all()]
        out += [p.field for op in ops for p in op.parameters]
        return out

    def operations(items: Iterable[Any]) -> list[_Operation]:
        ops = []
        for route in _routes(items):
            op = _Operation(route, security_base, signatures)
            ops.append(op)
            route_callbacks = getattr(route, "callbacks", None)
            if route_callbacks:
                callbacks[id(route)] = operations(route_callbacks)
        return ops

    path_ops = operations(routes)
    webhook_ops = operations(webhooks or ())
    schemas = _Schemas(fields_of([*path_ops, *webhook_ops]), separate_input_output_schemas)
    builder = _Builder(schemas)
    definitions = dict(schemas.definitions)
    paths: dict[str, dict[str, Any]] = {}
    webhook_paths: dict[str, dict[str, Any]] = {}
    for target, ops in ((paths, path_ops), (webhook_paths, webhook_ops)):
        for op in ops:
            item = builder.path_item(op, callbacks)
            if item:
                target.setdefault(op.path_format, {}).update(item)
    definitions.update(builder.definitions)
    components: dict[str, Any] = {}
    if builder.security_schemes:
        components["securitySchemes"] = builder.security_schemes
    if definitions:
        components["schemas"] = {k: definitions[k] for k in sorted(definitions)}
    if components:
        output["components"] = components
    output["paths"] = paths
    if webhook_paths:
        output["webhooks"] = webhook_paths
    if tags:
        output["tags"] = tags
    if external_docs:
        output["externalDocs"] = external_docs
    return _normalized(_jsonable(output))


# --- FastAPI's final pass: its OpenAPI models validate the document, then dump it without None values -----

_NUMBER_KEYS = ("multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum")
_SUBSCHEMA = ("not", "if", "then", "else", "items", "contains", "additionalProperties", "propertyNames",
              "unevaluatedItems", "unevaluatedProperties", "contentSchema")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SUBSCHEMA_MAPS = ("$defs", "dependentSchemas", "properties", "patternProperties")
_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _schema(schema: Any) -> None:
    """A Schema object as FastAPI's model leaves it: numeric bounds as floats (its fields are ``float``)."""
    if not isinstance(schema, dict):
        return
    for key in _NUMBER_KEYS:
        value = schema.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            schema[key] = float(value)
    for key in _SUBSCHEMA:
        _schema(schema.get(key))
    for key in _SUBSCHEMA_LISTS:
        for item in schema.get(key) or ():
            _schema(item)
    for key in _SUBSCHEMA_MAPS:
        value = schema.get(key)
        if isinstance(value, dict):
            for item in value.values():
                _schema(item)


def _content(content: Any) -> None:
    if isinstance(content, dict):
        for media in content.values():
            if isinstance(media, dict):
                _schema(media.get("schema"))


def _path_item(item: Any) -> None:
    """A webhook's PathItem as FastAPI's models leave it (its ``paths`` are not validated, its ``webhooks``
    are; responses, typed ``Response | Any``, stay as they are)."""
    if not isinstance(item, dict):
        return
    for parameter in item.get("parameters") or ():
        if isinstance(parameter, dict):
            _schema(parameter.get("schema"))
            _content(parameter.get("content"))
    for method in _HTTP_METHODS:
        operation = item.get(method)
        if not isinstance(operation, dict):
            continue
        for parameter in operation.get("parameters") or ():
            if isinstance(parameter, dict):
                _schema(parameter.get("schema"))
                _content(parameter.get("content"))
        body = operation.get("requestBody")
        if isinstance(body, dict):
            _content(body.get("content"))
        for callback in (operation.get("callbacks") or {}).values():
            if isinstance(callback, dict):
                for nested in callback.values():
                    _path_item(nested)


def _url(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    from pydantic import AnyUrl

    try:
        return str(AnyUrl(value))
    except Exception:
        return value


def _normalized(document: dict[str, Any]) -> dict[str, Any]:
    info = document["info"]
    for key in ("contact", "license"):
        if isinstance(info.get(key), dict) and "url" in info[key]:
            info[key]["url"] = _url(info[key]["url"])
    for holder in [document, *(document.get("tags") or ())]:
        docs = holder.get("externalDocs") if isinstance(holder, dict) else None
        if isinstance(docs, dict) and "url" in docs:
            docs["url"] = _url(docs["url"])
    for item in (document.get("webhooks") or {}).values():
        _path_item(item)
    for schema in (document.get("components", {}).get("schemas") or {}).values():
        _schema(schema)
    return document
