"""The runtime: serving an app on the native engine.

Modules, from the engine up:
  engine     `Engine` / `EngineModule` Protocols (what ``covet._native`` and stand-ins offer), `native_module`
  interface  `ServedApp`: what the runtime needs from an app (routes, middleware, handlers, lifespan, options)
  websockets `WebSocketDispatch`: the engine's WebSocket events → `covet.websockets.WebSocket` objects
  dispatch   `Dispatcher`: takes queued requests, runs the pipeline (middleware → parameters → handler →
             rendering) and hands the response back to the engine
  serve      `Worker` (one native server + one asyncio loop), `serve`, `serve_worker`, `ThreadedWorker`
  options    the engine's limits and timeouts as flags / environment variables
  supervisor the multi-process master (``covet run --workers N``)
  cli        the ``covet`` command

Nothing here imports `covet.app`: the app reaches the runtime as a `ServedApp`.
"""

from __future__ import annotations

from .engine import Engine, EngineModule, native_module, use_native
from .interface import ServedApp
from .serve import ThreadedWorker, Worker, configure_logging, exit_on_listen_error, new_event_loop, serve, serve_worker

__all__ = [
    "Engine",
    "EngineModule",
    "ServedApp",
    "ThreadedWorker",
    "Worker",
    "configure_logging",
    "exit_on_listen_error",
    "native_module",
    "new_event_loop",
    "serve",
    "serve_worker",
    "use_native",
]
