"""StaticFiles mounts served in Python: when the app has Python HTTP middleware (``@app.middleware("http")``, a
BaseHTTPMiddleware), FastAPI runs it around its mounted StaticFiles, so CovetPy routes those mounts to Python
(`StaticFiles.get_response`: Starlette's rules, a FileResponse) instead of letting the engine answer them."""

from __future__ import annotations

from collections.abc import Iterator

from covet.requests import Request
from covet.responses import RedirectResponse, Response
from covet.routing import Route
from covet.staticfiles import StaticMount

__all__ = ["static_routes"]


def static_routes(mount: StaticMount) -> Iterator[tuple[str, Route]]:
    """(native pattern, route) answering `mount` in Python: everything below the mount path, and the mount path
    itself (which redirects to it with a slash, as Starlette's router does for a Mount)."""
    files = mount.app
    prefix = mount.path.rstrip("/")

    async def static_file(request: Request) -> Response:
        route_path = request._route_path()  # percent-decoded, as Starlette's scope["path"]
        below = route_path[len(prefix):] if route_path.startswith(prefix + "/") else "/"
        return await files.get_response(files.get_path(below), request)

    name = mount.name or "static"
    yield prefix + "/{covet_static:path}", Route.build(
        prefix + "/{covet_static:path}", static_file, ["GET"], name=name, response_model=None,
        include_in_schema=False)
    if prefix:
        async def mount_redirect(request: Request) -> Response:
            url = request.url
            query = f"?{url.query}" if url.query else ""
            return RedirectResponse(url=f"{url.scheme}://{url.netloc}{url.path}/{query}")

        yield prefix, Route.build(prefix, mount_redirect, ["GET"], name=f"{name}_slash", response_model=None,
                                  include_in_schema=False)
