"""Dependency injection as in FastAPI: ``Depends(callable)``.

A dependency is a callable — ``async def``, ``def``, a class, a callable object — whose own parameters are
resolved like a handler's (path, query, header, cookie and body parameters, `Request`, other
dependencies). Its result is passed to the parameter that declared it::

    async def current_user(token: str = Header(alias="x-token")) -> User: ...

    @app.get("/me")
    async def me(user: Annotated[User, Depends(current_user)]) -> User:
        return user

A generator dependency (``yield``, sync or async) provides the value it yields; the code after the
``yield`` runs once the handler's result has been rendered. An exception raised by the handler is thrown
into the generator at the ``yield``, so ``try/except/finally`` around it works as in FastAPI.

Per request, each dependency is called once and its value reused wherever it is declared again (unless
``use_cache=False``). ``app.dependency_overrides[original] = replacement`` swaps a dependency (tests).

The plan for a dependency is built with the route's plan, when the route is added
(`covet.params.build_plan`); per request, `DependencyScope` (`covet.params.plan`) solves the tree. The
dispatcher uses it as::

    async with route.plan.solve(request, executor) as kwargs:   # executor: for sync dependencies
        result = await endpoint(**kwargs)
        return render(result)

This module is where FastAPI users look for them; they live in the `covet.params` package.
"""

from __future__ import annotations

from .params.markers import Depends
from .params.plan import CallKind, Dependency, DependencyScope, call_kind

__all__ = ["Depends", "Dependency", "DependencyScope", "CallKind", "call_kind"]
