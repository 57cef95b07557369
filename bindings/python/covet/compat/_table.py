"""The compatibility shim's name table: which FastAPI/Starlette module is which covet module, and why the others
are not provided.

Follows FastAPI 0.165.0 / Starlette 1.10.0 (the differential test's pinned reference: tests/differential). A shim
module offers its covet module's ``__all__`` (covet keeps FastAPI's module paths and names; the few renames are in
`Target.renames`); a name it lacks fails at import with its reason from `NAMES` (else the module's in `WHY`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The framework releases whose names the table follows (the shim modules' ``__version__``).
VERSIONS = {"fastapi": "0.165.0", "starlette": "1.10.0"}

#: `covet run --interface asgi3` (helper P1's ASGI hosting): the app as it is, on real FastAPI/Starlette.
UNCHANGED = ("or serve the app unchanged, on the real {top} installed in the environment, as an ASGI app: "
             "`covet run --interface asgi3 module:app` (without --compat)")


@dataclass(frozen=True)
class Target:
    module: str                                            # the covet module whose __all__ the shim module offers
    #                                                        ("": none, a namespace such as `starlette` itself)
    renames: dict[str, str] = field(default_factory=dict)  # shim name -> covet name in `module`
    extras: tuple[str, ...] = ()                           # names of `module` offered besides its __all__


_FASTAPI = {"FastAPI": "CovetPy"}

#: Shim module -> the covet module it is.
MODULES: dict[str, Target] = {
    # fastapi
    "fastapi": Target("covet", _FASTAPI),
    "fastapi.applications": Target("covet.app", _FASTAPI),
    "fastapi.background": Target("covet.background"),
    "fastapi.cli": Target("covet.cli"),
    "fastapi.concurrency": Target("covet.concurrency", extras=("asynccontextmanager",)),
    "fastapi.datastructures": Target("covet.datastructures"),
    "fastapi.dependencies": Target("covet.dependencies"),
    "fastapi.encoders": Target("covet.encoders"),
    "fastapi.exception_handlers": Target("covet.exception_handlers"),
    "fastapi.exceptions": Target("covet.exceptions"),
    "fastapi.logger": Target("covet.logger"),
    "fastapi.middleware": Target("covet.middleware"),
    "fastapi.middleware.cors": Target("covet.middleware.cors"),
    "fastapi.middleware.gzip": Target("covet.middleware.gzip"),
    "fastapi.middleware.httpsredirect": Target("covet.middleware.httpsredirect"),
    "fastapi.middleware.trustedhost": Target("covet.middleware.trustedhost"),
    "fastapi.openapi": Target("covet.openapi"),
    "fastapi.openapi.constants": Target("covet.openapi.constants"),
    "fastapi.openapi.docs": Target("covet.openapi.docs"),
    "fastapi.openapi.models": Target("covet.openapi.models"),
    "fastapi.openapi.utils": Target("covet.openapi.utils"),
    "fastapi.param_functions": Target("covet.params"),
    "fastapi.params": Target("covet.params"),
    "fastapi.requests": Target("covet.requests", extras=("HTTPConnection",)),
    "fastapi.responses": Target("covet.responses"),
    "fastapi.routing": Target("covet.routing"),
    "fastapi.security": Target("covet.security"),
    "fastapi.security.api_key": Target("covet.security.api_key"),
    "fastapi.security.base": Target("covet.security.base"),
    "fastapi.security.http": Target("covet.security.http"),
    "fastapi.security.oauth2": Target("covet.security.oauth2"),
    "fastapi.security.open_id_connect_url": Target("covet.security.open_id_connect_url"),
    "fastapi.security.utils": Target("covet.security.utils"),
    "fastapi.sse": Target("covet.sse"),
    "fastapi.staticfiles": Target("covet.staticfiles"),
    "fastapi.status": Target("covet.status"),
    "fastapi.templating": Target("covet.templating"),
    "fastapi.testclient": Target("covet.testing"),
    "fastapi.utils": Target("covet.utils"),
    "fastapi.websockets": Target("covet.websockets"),
    # starlette (the modules FastAPI apps import besides fastapi's)
    "starlette": Target(""),
    "starlette.background": Target("covet.background"),
    "starlette.concurrency": Target("covet.concurrency"),
    "starlette.datastructures": Target("covet.datastructures", extras=("URLPath",)),
    "starlette.exceptions": Target("covet.exceptions"),
    "starlette.middleware": Target("covet.middleware"),
    "starlette.middleware.base": Target("covet.middleware.base"),
    "starlette.middleware.cors": Target("covet.middleware.cors"),
    "starlette.middleware.gzip": Target("covet.middleware.gzip"),
    "starlette.middleware.httpsredirect": Target("covet.middleware.httpsredirect"),
    "starlette.middleware.sessions": Target("covet.compat.starlette_sessions"),
    "starlette.middleware.trustedhost": Target("covet.middleware.trustedhost"),
    "starlette.requests": Target("covet.requests", extras=("HTTPConnection",)),
    "starlette.responses": Target("covet.responses"),
    "starlette.routing": Target("covet.routing"),
    "starlette.staticfiles": Target("covet.staticfiles"),
    "starlette.status": Target("covet.status"),
    "starlette.templating": Target("covet.templating"),
    "starlette.testclient": Target("covet.testing", extras=("WebSocketTestSession",)),
    "starlette.types": Target("covet.asgi.types"),
    "starlette.websockets": Target("covet.websockets"),
}

_INTERNAL = "FastAPI's internals"
_RANGE = "FileResponse answers a bad Range itself (400 when malformed, 416 when not satisfiable)"
_ASGI_APP = ("an ASGI app made from a handler: CovetPy's engine calls routes itself (mount an ASGI app with "
             "app.mount(path, asgi_app))")

#: Modules (and their submodules) the shim does not provide: why, and what to use instead.
WHY: dict[str, str] = {
    "fastapi.cli": "`fastapi run/dev` is FastAPI's command: use `covet run --compat fastapi module:app`",
    "fastapi.dependencies.models": f"{_INTERNAL} (dependency analysis); CovetPy plans parameters in covet.params",
    "fastapi.dependencies.utils": f"{_INTERNAL} (dependency analysis); CovetPy plans parameters in covet.params",
    "fastapi.middleware.asyncexitstack": "FastAPI's internal middleware; CovetPy closes dependencies itself",
    "fastapi.middleware.wsgi": "WSGIMiddleware is deprecated in Starlette (use a2wsgi), and CovetPy's own app "
                               "cannot mount a WSGI app",
    "fastapi.telemetry": "FastAPI's usage telemetry; CovetPy collects none",
    "fastapi.types": "FastAPI's internal type aliases",
    "fastapi.utils": "FastAPI's internal helpers",
    "fastapi.openapi.utils": "FastAPI's internal helper of get_openapi (covet's get_openapi builds the same schema "
                             "its own way)",
    "fastapi.routing": "FastAPI's internals of request handling",
    "starlette.applications": "Starlette() apps: CovetPy's application class is FastAPI's (fastapi.FastAPI)",
    "starlette.authentication": "no AuthenticationMiddleware/requires(): use the security dependencies "
                                "(fastapi.security, Depends)",
    "starlette.config": "no Config: read os.environ (or use pydantic-settings)",
    "starlette.convertors": "no custom path convertors: CovetPy parses path parameters from their annotations",
    "starlette.endpoints": "no class-based HTTPEndpoint/WebSocketEndpoint: use @app.get/@app.websocket functions",
    "starlette.formparsers": "Starlette's internal form parsers: use request.form()",
    "starlette.middleware.authentication": "no AuthenticationMiddleware: use the security dependencies "
                                           "(fastapi.security, Depends)",
    "starlette.middleware.body_limit": "no body-limit middleware: the engine limits bodies "
                                       "(`covet run --limit-max-body SIZE`)",
    "starlette.middleware.errors": "Starlette's internal middleware: CovetPy answers errors itself "
                                   "(@app.exception_handler(Exception) for your own 500 page)",
    "starlette.middleware.exceptions": "Starlette's internal middleware: CovetPy calls the exception handlers "
                                       "itself",
    "starlette.middleware.opentelemetry": "no OpenTelemetry middleware (write it as @app.middleware('http'))",
    "starlette.middleware.wsgi": "WSGIMiddleware is deprecated in Starlette (use a2wsgi), and CovetPy's own app "
                                 "cannot mount a WSGI app",
    "starlette.schemas": "no docstring schemas: CovetPy builds the OpenAPI schema from the routes (app.openapi())",
    "starlette.routing": "Starlette's routing internals (CovetPy's router is its own)",
}

#: Names a provided module lacks: why, and what to use instead (else the module's reason in WHY).
NAMES: dict[str, str] = {
    "fastapi.utils.is_body_allowed_for_status_code": "it is covet.exception_handlers.is_body_allowed_for_status_code",
    "fastapi.concurrency.run_until_first_complete": "deprecated in Starlette; use asyncio.wait(..., "
                                                    "return_when=FIRST_COMPLETED)",
    "starlette.concurrency.run_until_first_complete": "deprecated in Starlette; use asyncio.wait(..., "
                                                      "return_when=FIRST_COMPLETED)",
    "fastapi.exceptions.PydanticV1NotSupportedError": "pydantic v1 models are not supported at all",
    "fastapi.exceptions.FastAPIDeprecationWarning": "CovetPy warns with DeprecationWarning",
    "starlette.exceptions.StarletteDeprecationWarning": "CovetPy warns with DeprecationWarning",
    "fastapi.exceptions.EndpointContext": "no endpoint context in validation errors",
    "fastapi.exceptions.RequestErrorModel": "FastAPI's internal pydantic model for error bodies",
    "fastapi.exceptions.WebSocketErrorModel": "FastAPI's internal pydantic model for error bodies",
    "fastapi.encoders.ENCODERS_BY_TYPE": "FastAPI's internal table; pass custom_encoder= to jsonable_encoder",
    "fastapi.encoders.encoders_by_class_tuples": "FastAPI's internal table",
    "fastapi.encoders.generate_encoders_by_class_tuples": "FastAPI's internal helper",
    "fastapi.encoders.decimal_encoder": "FastAPI's internal helper (jsonable_encoder applies it)",
    "fastapi.encoders.isoformat": "FastAPI's internal helper (jsonable_encoder applies it)",
    "fastapi.params.ParamTypes": "FastAPI's internal enum",
    "fastapi.routing.request_response": _ASGI_APP,
    "fastapi.routing.websocket_session": _ASGI_APP,
    "starlette.routing.request_response": _ASGI_APP,
    "starlette.routing.websocket_session": _ASGI_APP,
    "starlette.routing.Router": "no standalone Router: use APIRouter (fastapi.APIRouter)",
    "starlette.routing.Host": "no host-based routing: check request.url.hostname in a dependency",
    "starlette.datastructures.Secret": "no Secret (starlette.config's): use pydantic.SecretStr",
    "starlette.datastructures.CommaSeparatedStrings": "no CommaSeparatedStrings (starlette.config's): "
                                                      "split the string yourself",
    "starlette.datastructures.MultiDict": "no mutable MultiDict: QueryParams and FormData are the read-only ones",
    "starlette.datastructures.ImmutableMultiDict": "use QueryParams or FormData (covet's multi-dicts)",
    "starlette.responses.MalformedRangeHeader": _RANGE,
    "starlette.responses.RangeNotSatisfiable": _RANGE,
    "starlette.testclient.WebSocketDenialResponse": "a refused WebSocket upgrade raises WebSocketDisconnect(1006) in "
                                                    "covet's TestClient",
}

DEFAULT_WHY = "CovetPy has no counterpart (yet)"


def why(module: str, name: str = "") -> str:
    """The reason `module.name` (or `module`, without a name) is not provided."""
    if name and f"{module}.{name}" in NAMES:
        return NAMES[f"{module}.{name}"]
    for prefix in sorted(WHY, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return WHY[prefix]
    return DEFAULT_WHY
