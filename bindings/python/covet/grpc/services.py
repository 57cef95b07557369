"""The standard services: ``grpc.health.v1.Health`` tied to the server's readiness, and server reflection.

Both are grpcio's own servicers (the packages ``grpcio-health-checking`` and ``grpcio-reflection``), their async
versions, registered like any other servicer. The health service reports SERVING while /_ready would answer 200
(the readiness checks pass, the server is not draining) and NOT_SERVING otherwise, for the server ("") and for
every service registered; once the server drains, NOT_SERVING stays (grpcio's graceful shutdown).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional

from covet.server.ops import READINESS

if TYPE_CHECKING:
    from .server import GrpcServer

__all__ = ["enable_health", "enable_reflection", "HEALTH_SERVICE", "REFLECTION_SERVICES"]

HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICES = ("grpc.reflection.v1alpha.ServerReflection",)  # grpcurl falls back to it from v1


def _require(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is needed for this gRPC service: pip install {package}") from exc


def enable_health(server: GrpcServer) -> Any:
    """Adds ``grpc.health.v1.Health`` (grpcio-health-checking's async servicer) to `server`; returns the servicer
    (its ``set(service, status)`` marks one service apart from the readiness)."""
    health = _require("grpc_health.v1.health", "grpcio-health-checking")
    health_pb2 = _require("grpc_health.v1.health_pb2", "grpcio-health-checking")
    health_pb2_grpc = _require("grpc_health.v1.health_pb2_grpc", "grpcio-health-checking")
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING

    def names() -> list[str]:
        return ["", *server.service_names()]

    status = serving if READINESS.ready else not_serving
    for name in names():
        _set_now(servicer, name, status)

    def changed(ready: bool) -> None:
        loop = _running_loop()
        if loop is None:
            return
        if READINESS.draining:
            loop.create_task(servicer.enter_graceful_shutdown())
            return
        for name in names():
            loop.create_task(servicer.set(name, serving if ready else not_serving))

    server._unsubscribe.append(READINESS.subscribe(changed))
    server.health = servicer
    return servicer


def enable_reflection(server: GrpcServer, service_names: Optional[Iterable[str]] = None, pool: Any = None) -> None:
    """Adds server reflection (v1alpha: grpcio-reflection's async servicer), so that grpcurl and other
    tools list and call the services without their .proto files. `service_names` defaults to every service
    registered on `server` (at the time of the call, and the reflection services themselves)."""
    reflection = _require("grpc_reflection.v1alpha.reflection", "grpcio-reflection")
    names = list(service_names) if service_names is not None else [*server.service_names(), *REFLECTION_SERVICES]
    servicer = reflection.aio.ReflectionServicer(names, pool=pool)
    generated = _require("grpc_reflection.v1alpha.reflection_pb2_grpc", "grpcio-reflection")
    generated.add_ServerReflectionServicer_to_server(servicer, server)


def _set_now(servicer: Any, name: str, status: Any) -> None:
    """``await servicer.set(name, status)`` outside a loop: before serving no Watch call waits, so the
    coroutine finishes without suspending."""
    step = servicer.set(name, status)
    try:
        step.send(None)
    except StopIteration:
        return
    step.close()
    raise RuntimeError("the health servicer's set() waited: call enable_health() before serving")


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
