"""Parameter markers: ``Query()``, ``Path()``, ``Header()``, ``Cookie()``, ``Body()``, ``Form()``, ``File()``
and ``Depends()``, as the default of a handler's argument or inside ``Annotated[...]`` (see `covet.params`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Optional

__all__ = ["Param", "Query", "Path", "Header", "Cookie", "Body", "Form", "File", "Depends", "Security",
           "SecurityScopes", "SecurityBase", "REQUIRED"]

REQUIRED: Any = ...  # the marker default meaning "no default": the parameter is required

# Passed to pydantic's Field for the value's validation.
_CONSTRAINTS = ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length", "pattern", "strict",
                "allow_inf_nan", "max_digits", "decimal_places", "union_mode", "fail_fast", "discriminator")


class Param:
    """A parameter marker; use the `Query`/`Path`/`Header`/`Cookie`/`Body` functions to make one.

    Besides `alias` (or `validation_alias`, a str: the key read), `default_factory` (called for each request
    without the value) and the constraints (``gt ge lt le multiple_of min_length max_length pattern strict
    allow_inf_nan max_digits decimal_places union_mode fail_fast discriminator``; ``regex`` is the deprecated
    name of ``pattern``), every marker takes FastAPI's OpenAPI-only keywords ``title``, ``description``,
    ``deprecated``, ``examples``, ``example``, ``openapi_examples``, ``include_in_schema``,
    ``json_schema_extra``, ``serialization_alias``, ``alias_priority``, ``media_type`` and
    ``validate_default``: stored on the marker for the schema, nothing else.
    """

    location = "query"

    def __init__(
        self,
        default: Any = REQUIRED,
        *,
        alias: Optional[str] = None,
        convert_underscores: bool = True,
        embed: bool = False,
        title: Optional[str] = None,
        description: Optional[str] = None,
        deprecated: Optional[bool] = None,
        examples: Optional[list[Any]] = None,
        openapi_examples: Optional[dict[str, Any]] = None,
        include_in_schema: bool = True,
        json_schema_extra: Optional[dict[str, Any]] = None,
        default_factory: Optional[Callable[[], Any]] = None,
        validation_alias: Optional[str] = None,
        serialization_alias: Optional[str] = None,
        alias_priority: Optional[int] = None,
        regex: Optional[str] = None,
        example: Any = None,
        media_type: Optional[str] = None,
        validate_default: Optional[bool] = None,
        **constraints: Any,
    ) -> None:
        unknown = set(constraints) - set(_CONSTRAINTS)
        if unknown:
            raise TypeError(f"unknown {type(self).__name__} option(s): {', '.join(sorted(unknown))}")
        if validation_alias is not None and not isinstance(validation_alias, str):
            raise TypeError(f"{type(self).__name__}(validation_alias=...) must be a str (the key to read), not "
                            f"{validation_alias!r}: AliasPath/AliasChoices are not supported on parameters")
        if regex is not None:
            import warnings

            warnings.warn("`regex` has been deprecated, please use `pattern` instead", DeprecationWarning,
                          stacklevel=3)
            constraints.setdefault("pattern", regex)
        if default_factory is not None and default is not REQUIRED:
            raise TypeError(f"{type(self).__name__}(): give either a default or a default_factory, not both")
        self.default = default
        self.default_factory = default_factory
        self.alias = validation_alias or alias
        self.convert_underscores = convert_underscores
        self.embed = embed
        self.title = title
        self.description = description
        # OpenAPI only (FastAPI's keywords): kept for the schema, they change nothing in how the value is read.
        self.deprecated = deprecated
        self.examples = examples
        self.openapi_examples = openapi_examples
        self.include_in_schema = include_in_schema
        self.json_schema_extra = json_schema_extra
        self.serialization_alias = serialization_alias
        self.alias_priority = alias_priority
        self.example = example
        self.media_type = media_type
        self.validate_default = validate_default
        self.constraints = {k: v for k, v in constraints.items() if v is not None}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({'' if self.default is REQUIRED else repr(self.default)})"


class _QueryParam(Param):
    location = "query"


class _PathParam(Param):
    location = "path"


class _HeaderParam(Param):
    location = "header"


class _CookieParam(Param):
    location = "cookie"


class _BodyParam(Param):
    location = "body"


class _FormParam(_BodyParam):
    """A field of a form body (URL-encoded or multipart)."""


class _FileParam(_FormParam):
    """A file of a multipart form body."""


def Query(default: Any = REQUIRED, *, alias: Optional[str] = None, **kwargs: Any) -> Any:
    """A query-string parameter (``?limit=10``); `alias` names the key when it differs from the argument."""
    return _QueryParam(default, alias=alias, **kwargs)


def Path(default: Any = REQUIRED, **kwargs: Any) -> Any:
    """A path parameter with constraints (``Path(ge=1)``); path parameters are always required."""
    return _PathParam(default, **kwargs)


def Header(
    default: Any = REQUIRED, *, alias: Optional[str] = None, convert_underscores: bool = True, **kwargs: Any
) -> Any:
    """A request header; ``user_agent`` reads ``User-Agent`` (underscores become hyphens)."""
    return _HeaderParam(default, alias=alias, convert_underscores=convert_underscores, **kwargs)


def Cookie(default: Any = REQUIRED, *, alias: Optional[str] = None, **kwargs: Any) -> Any:
    """A cookie from the ``Cookie`` header."""
    return _CookieParam(default, alias=alias, **kwargs)


def Body(default: Any = REQUIRED, *, embed: bool = False, alias: Optional[str] = None, **kwargs: Any) -> Any:
    """A JSON body value; with ``embed=True`` (or several body arguments) it is read from ``body[name]``."""
    return _BodyParam(default, alias=alias, embed=embed, **kwargs)


def Form(default: Any = REQUIRED, *, alias: Optional[str] = None, **kwargs: Any) -> Any:
    """A field of a form body (``application/x-www-form-urlencoded`` or ``multipart/form-data``).

    On a pydantic model (``Annotated[Model, Form()]``) the model's fields are read from the form's fields.
    An empty value counts as missing, as in FastAPI.
    """
    return _FormParam(default, alias=alias, **kwargs)


def File(default: Any = REQUIRED, *, alias: Optional[str] = None, **kwargs: Any) -> Any:
    """A file of a ``multipart/form-data`` body: annotate `UploadFile` for the file object, ``bytes`` for its
    content (``list[...]`` of either for several files under one name)."""
    return _FileParam(default, alias=alias, **kwargs)


class Depends:
    """Declares a dependency: ``param: T = Depends(callable)`` or ``param: Annotated[T, Depends(callable)]``.

    ``Depends()`` without a callable uses the parameter's annotation (a class). ``use_cache=False`` calls
    the dependency again even if it already ran for this request. In ``dependencies=[Depends(f)]`` on a
    route, only the side effects count (the value is discarded). `scope` is for ``yield`` dependencies, as in
    FastAPI: ``"request"`` (the default) runs the code after ``yield`` once the response is sent (after a
    streamed body), ``"function"`` once the handler's result is rendered, before sending. An exception
    from the handler reaches both before the response is chosen. ``"lifespan"`` (beyond FastAPI) makes the
    value once, at the first request needing it, and keeps it while the app serves (a connection pool, a
    client); the code after its ``yield`` runs at shutdown. Such a dependency cannot read the request.
    """

    __slots__ = ("dependency", "use_cache", "scope")

    def __init__(
        self,
        dependency: Optional[Callable[..., Any]] = None,
        *,
        use_cache: bool = True,
        scope: Optional[Literal["function", "request", "lifespan"]] = None,
    ) -> None:
        if dependency is not None and not callable(dependency):
            raise TypeError(f"Depends() needs a callable, not {dependency!r}")
        if scope not in (None, "function", "request", "lifespan"):
            raise ValueError(f"Depends(scope={scope!r}): scope must be 'function', 'request', 'lifespan' or None")
        self.dependency = dependency
        self.use_cache = use_cache
        self.scope = scope

    def __repr__(self) -> str:
        name = getattr(self.dependency, "__name__", type(self.dependency).__name__) if self.dependency else ""
        return f"Depends({name}{'' if self.use_cache else ', use_cache=False'})"


class Security(Depends):
    """A dependency on a security scheme (or on a function using one) that needs OAuth2 `scopes`:
    ``user: Annotated[User, Security(current_user, scopes=["items"])]``.

    The scopes add up along the dependency chain (a route's, then its dependencies'); a dependency reads the
    scopes declared on the way to it with a `SecurityScopes` parameter, and OpenAPI lists them in the
    operation's ``security`` requirement."""

    __slots__ = ("scopes",)

    def __init__(
        self,
        dependency: Optional[Callable[..., Any]] = None,
        *,
        scopes: Optional[Sequence[str]] = None,
        use_cache: bool = True,
    ) -> None:
        super().__init__(dependency, use_cache=use_cache)
        self.scopes: tuple[str, ...] = tuple(scopes or ())

    def __repr__(self) -> str:
        return f"Security({super().__repr__()[len('Depends('):-1]}, scopes={list(self.scopes)!r})"


class SecurityScopes:
    """A dependency's parameter annotated ``SecurityScopes`` receives the OAuth2 scopes declared with
    ``Security(..., scopes=[...])`` on the way to it (the route's first, without repeats): `scopes` (a list)
    and `scope_str` (space separated, for a ``WWW-Authenticate`` header)."""

    def __init__(self, scopes: Optional[list[str]] = None) -> None:
        self.scopes: list[str] = scopes or []
        self.scope_str: str = " ".join(self.scopes)

    def __repr__(self) -> str:
        return f"SecurityScopes({self.scopes!r})"


class SecurityBase:
    """The base of the security schemes (`covet.security`): `model` (the OpenAPI security scheme object, a
    plain dict in FastAPI's shape: ``{"type": "http", "scheme": "bearer"}``) and `scheme_name` (its key under
    ``components.securitySchemes``). Defined here, below `covet.security`, so that plans know a scheme when
    they see one (a scheme's value is cached per set of scopes, as in FastAPI)."""

    model: dict[str, Any]
    scheme_name: str

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scheme_name={self.scheme_name!r})"
