"""Handler parameters: where each argument comes from and how it is converted.

The handler's signature is read ONCE, when the route is added, into a `RequestPlan` (`build`): one small spec
per argument (its source, its key, a converter). Per request, `RequestPlan.collect` runs those specs — the
one extraction path, reached through `RequestPlan.extract` (a plan without dependencies, synchronously) or
``async with plan.solve(request, executor) as kwargs`` (with dependencies, see `covet.dependencies`).
Failures are collected and raised together as `RequestValidationError` with FastAPI's error shape.

The package: `markers` (``Query()``, ``Body()``, ``Depends()`` ...), `types` (annotations → kinds and
converters), `plan` (`RequestPlan`, `DependencyScope`), `build` (signature → plan).
"""

from __future__ import annotations

from .markers import Body, Cookie, Depends, File, Form, Header, Param, Path, Query, Security, SecurityScopes
from .plan import Dependency, DependencyScope, LifespanValues, ParamSpec, RequestPlan
from .planner import build_dependency_plan, build_plan
from .types import native_path_type, resolve_hints, validation_error

__all__ = [
    "Query", "Path", "Header", "Cookie", "Body", "Form", "File", "Depends", "Security", "SecurityScopes", "Param",
    "RequestPlan", "ParamSpec", "Dependency", "DependencyScope", "LifespanValues",
    "build_plan", "build_dependency_plan", "native_path_type", "resolve_hints", "validation_error",
]
