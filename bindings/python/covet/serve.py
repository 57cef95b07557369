"""The single-process entry points under their first name (``from covet.serve import serve``); they live in
`covet.server.serve`."""

from __future__ import annotations

from .server.serve import (
           ThreadedWorker,
           Worker,
           configure_logging,
           exit_on_listen_error,
           new_event_loop,
           serve,
           serve_worker,
)

__all__ = ["serve", "serve_worker", "Worker", "ThreadedWorker", "new_event_loop", "configure_logging",
           "exit_on_listen_error"]
