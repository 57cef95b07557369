"""`Jinja2Templates`: HTML pages from Jinja2 templates, as ``fastapi.templating`` / ``starlette.templating``.

    templates = Jinja2Templates(directory="templates")

    @app.get("/items/{id}")
    async def item(request: Request, id: str):
        return templates.TemplateResponse(request, "item.html", {"id": id})

Templates get ``request`` and ``url_for(name, **path_params)`` (``request.url_for``: a route's or a mount's
URL, e.g. ``url_for('static', path='site.css')``). jinja2 is an optional dependency: ``pip install covet[templates]``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, Union

from .requests import Request
from .responses import HTMLResponse

try:
    import jinja2
except ImportError as _import_error:  # pragma: no cover - exercised without jinja2 only
    raise ImportError(
        "jinja2 must be installed to use Jinja2Templates: pip install jinja2 (or covet[templates])"
    ) from _import_error

__all__ = ["Jinja2Templates"]

PathLike = Union[str, "os.PathLike[str]"]
ContextProcessor = Callable[[Request], dict[str, Any]]


class _TemplateResponse(HTMLResponse):
    """The rendered page; ``.template`` and ``.context`` stay on it for tests (as in Starlette)."""

    def __init__(self, template: jinja2.Template, context: dict[str, Any], status_code: int = 200,
                 headers: Optional[Mapping[str, str]] = None, media_type: Optional[str] = None) -> None:
        self.template = template
        self.context = context
        super().__init__(template.render(context), status_code=status_code, headers=headers, media_type=media_type)


class Jinja2Templates:
    """Templates from `directory` (one or several) or a ready `env`; `context_processors` add variables per request."""

    def __init__(
        self,
        directory: Union[PathLike, Sequence[PathLike], None] = None,
        *,
        context_processors: Optional[list[ContextProcessor]] = None,
        env: Optional[jinja2.Environment] = None,
    ) -> None:
        if bool(directory) == bool(env):
            raise TypeError("Jinja2Templates needs either directory= or env= (one of them)")
        self.context_processors: list[ContextProcessor] = list(context_processors or [])
        if env is not None:
            self.env = env
        else:
            self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(directory),  # type: ignore[arg-type]
                                          autoescape=jinja2.select_autoescape())
        self.env.globals.setdefault("url_for", _url_for)

    def get_template(self, name: str) -> jinja2.Template:
        return self.env.get_template(name)

    def TemplateResponse(  # Starlette's name
        self,
        request: Request,
        name: str,
        context: Optional[dict[str, Any]] = None,
        status_code: int = 200,
        headers: Optional[Mapping[str, str]] = None,
        media_type: Optional[str] = None,
        background: Any = None,
    ) -> HTMLResponse:
        """Renders template `name` with `context` (plus ``request``) into an HTML response (Starlette 1.x order:
        the request first)."""
        if not isinstance(request, Request):
            raise TypeError(
                f"TemplateResponse(request, name, context): the first argument must be the Request, not "
                f"{type(request).__name__} (the old TemplateResponse(name, {{'request': request}}) form is gone "
                "in Starlette 1.x too)")
        context = dict(context or {})
        context.setdefault("request", request)
        for processor in self.context_processors:
            context.update(processor(request))
        response = _TemplateResponse(self.get_template(name), context, status_code=status_code, headers=headers,
                                     media_type=media_type)
        if background is not None:
            if not hasattr(HTMLResponse, "background"):
                raise TypeError("TemplateResponse(background=...) needs background tasks on responses")
            response.background = background  # type: ignore[attr-defined,unused-ignore]
        return response


@jinja2.pass_context
def _url_for(context: Mapping[str, Any], name: str, /, **path_params: Any) -> Any:
    request = context["request"]
    url_for = getattr(request, "url_for", None)
    if url_for is None:
        raise RuntimeError(f"url_for({name!r}) in a template needs Request.url_for, which this CovetPy lacks")
    return url_for(name, **path_params)
