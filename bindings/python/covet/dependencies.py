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
(`covet.params.build_plan`); per request, `DependencyScope` solves the tree. The dispatcher uses it as::

    async with route.plan.solve(request, executor) as kwargs:   # executor: for sync dependencies
        result = await endpoint(**kwargs)
        return render(result)
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import inspect
from collections.abc import Callable
from concurrent.futures import Executor
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Optional

from .exceptions import RequestValidationError

if TYPE_CHECKING:
    from .params import RequestPlan
    from .requests import Request

__all__ = ["Depends", "Dependency", "DependencyScope"]

CallKind = Literal["async", "sync", "asyncgen", "gen"]


class Depends:
    """Declares a dependency: ``param: T = Depends(callable)`` or ``param: Annotated[T, Depends(callable)]``.

    ``Depends()`` without a callable uses the parameter's annotation (a class). ``use_cache=False`` calls
    the dependency again even if it already ran for this request. In ``dependencies=[Depends(f)]`` on a
    route, only the side effects count (the value is discarded). `scope` is accepted for FastAPI
    compatibility: the teardown of a generator dependency always runs once the result is rendered.
    """

    __slots__ = ("dependency", "use_cache", "scope")

    def __init__(
        self,
        dependency: Optional[Callable[..., Any]] = None,
        *,
        use_cache: bool = True,
        scope: Optional[Literal["function", "request"]] = None,
    ) -> None:
        if dependency is not None and not callable(dependency):
            raise TypeError(f"Depends() needs a callable, not {dependency!r}")
        if scope not in (None, "function", "request"):
            raise ValueError("scope must be 'function', 'request' or None")
        self.dependency = dependency
        self.use_cache = use_cache
        self.scope = scope

    def __repr__(self) -> str:
        name = getattr(self.dependency, "__name__", type(self.dependency).__name__) if self.dependency else ""
        return f"Depends({name}{'' if self.use_cache else ', use_cache=False'})"


def call_kind(call: Callable[..., Any]) -> CallKind:
    """How `call` is run: awaited, called (in the thread pool), or entered as an (async) generator."""
    target: Any = call
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.isclass(target):
        return "sync"
    for candidate in (target, getattr(target, "__call__", None)):
        if inspect.isasyncgenfunction(candidate):
            return "asyncgen"
        if inspect.isgeneratorfunction(candidate):
            return "gen"
        if inspect.iscoroutinefunction(candidate):
            return "async"
    return "sync"


@dataclasses.dataclass(frozen=True, eq=False)
class Dependency:
    """One declared dependency of a plan (built when the route is added)."""

    name: Optional[str]  # the parameter receiving the value; None for a route's dependencies=[...]
    call: Callable[..., Any]
    use_cache: bool
    plan: RequestPlan  # how to fill the dependency's own parameters
    kind: CallKind
    path_names: tuple[str, ...]  # the route's path parameters (for plans of overrides)
    embed_body: bool = False  # several body parameters in the route's tree: each is a field of the body
    _override_plans: dict[Any, tuple[RequestPlan, CallKind]] = dataclasses.field(
        default_factory=dict, repr=False)

    def overridden(self, replacement: Callable[..., Any]) -> tuple[RequestPlan, CallKind]:
        """The plan and kind of `replacement` (from ``app.dependency_overrides``), built on first use."""
        found = self._override_plans.get(replacement)
        if found is None:
            from .params import build_dependency_plan

            found = (build_dependency_plan(replacement, self.path_names, self.embed_body), call_kind(replacement))
            self._override_plans[replacement] = found
        return found


_SWALLOWED = (
    "No response object was returned: the handler raised an exception and a dependency with yield caught it "
    "without raising it again (a bare 'except:' or 'except Exception:' around the yield must re-raise)"
)


class _ThreadedContext:
    """A sync context manager (a ``def`` generator dependency) entered and exited in the thread pool."""

    __slots__ = ("_cm", "_executor")

    def __init__(self, cm: contextlib.AbstractContextManager[Any], executor: Executor) -> None:
        self._cm = cm
        self._executor = executor

    async def _run(self, func: Callable[..., Any], *args: Any) -> Any:
        call = functools.partial(contextvars.copy_context().run, func, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def __aenter__(self) -> Any:
        return await self._run(self._cm.__enter__)

    async def __aexit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> Optional[bool]:
        return await self._run(self._cm.__exit__, exc_type, exc, tb)  # type: ignore[no-any-return]


class DependencyScope:
    """The dependencies of one request: ``async with plan.solve(request, executor) as kwargs``.

    Entering calls the dependencies (sub-dependencies first, each once unless ``use_cache=False``) and
    returns the handler's keyword arguments, or raises `RequestValidationError` with every parameter
    problem of the whole tree, or what a dependency raised (an `HTTPException` ...). Exiting runs the
    teardown of generator dependencies, last entered first, with the exception the body raised, if any.
    Sync dependencies run in `executor`, or directly when it is None.
    """

    __slots__ = ("_plan", "_request", "_executor", "_stack")

    def __init__(self, plan: RequestPlan, request: Request, executor: Optional[Executor] = None) -> None:
        self._plan = plan
        self._request = request
        self._executor = executor
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> dict[str, Any]:
        try:
            return await self._solve_root()
        except BaseException as exc:
            if await self._stack.__aexit__(type(exc), exc, exc.__traceback__) and isinstance(exc, Exception):
                raise RuntimeError(_SWALLOWED) from exc
            raise

    async def __aexit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        if await self._stack.__aexit__(exc_type, exc, tb) and isinstance(exc, Exception):
            raise RuntimeError(_SWALLOWED) from exc
        # A swallowed BaseException (a cancellation) is re-raised: this method never suppresses.

    async def _solve_root(self) -> dict[str, Any]:
        plan = self._plan
        request = self._request
        body = plan.read_tree_body(request)  # parsed once for the whole tree; invalid JSON raises here
        app = request._app
        overrides = getattr(app, "dependency_overrides", None) if app is not None else None
        errors: list[dict[str, Any]] = []
        kwargs = await self._solve(plan, body, {}, overrides or None, errors)
        if errors:
            raise RequestValidationError(errors, body=plan.error_body(request, body))
        return kwargs

    async def _solve(self, plan: RequestPlan, body: Any, cache: dict[Any, Any],
                     overrides: Optional[dict[Any, Any]], errors: list[dict[str, Any]]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for dependency in plan.dependencies:
            call = dependency.call
            sub_plan = dependency.plan
            kind = dependency.kind
            if overrides is not None:
                replacement = overrides.get(call)
                if replacement is not None:
                    call = replacement
                    sub_plan, kind = dependency.overridden(replacement)
            reported = len(errors)
            values = await self._solve(sub_plan, body, cache, overrides, errors)
            if len(errors) != reported:
                continue  # its parameters are invalid: not called (the errors are reported together)
            key = dependency.call
            if dependency.use_cache and key in cache:
                value = cache[key]
            else:
                value = await self._call(call, kind, values)
                cache.setdefault(key, value)
            if dependency.name is not None:
                kwargs[dependency.name] = value
        plan.fill(self._request, kwargs, errors, body)
        return kwargs

    async def _call(self, call: Callable[..., Any], kind: CallKind, values: dict[str, Any]) -> Any:
        if kind == "async":
            return await call(**values)
        executor = self._executor
        if kind == "sync":
            if executor is None:
                return call(**values)
            run = functools.partial(contextvars.copy_context().run, call, **values)
            return await asyncio.get_running_loop().run_in_executor(executor, run)
        if kind == "asyncgen":
            return await self._stack.enter_async_context(contextlib.asynccontextmanager(call)(**values))
        cm = contextlib.contextmanager(call)(**values)
        if executor is None:
            return self._stack.enter_context(cm)
        return await self._stack.enter_async_context(_ThreadedContext(cm, executor))
