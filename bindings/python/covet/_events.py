"""Waiting for the engine's news about one exchange on the asyncio thread.

The engine reports by id through ``server.take_body()`` (the dispatcher's ``on_readable`` hands the ids to
`wake`): a streamed request body with a chunk, its end or an error (id: the body's ``body_id``), and a
streamed response's flow control with room again or its exchange closed (id: the responder's ``flow_id``).
Each id is the address of a live native object, so the two kinds never collide.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

WAITERS: dict[int, asyncio.Future[None]] = {}


def wake(ids: Iterable[int]) -> None:
    """Resolves the waiters of `ids` (the dispatcher, with the engine's events)."""
    waiters = WAITERS
    for event_id in ids:
        future = waiters.pop(event_id, None)
        if future is not None and not future.done():
            future.set_result(None)


async def wait(event_id: int) -> None:
    """Waits for the engine's next event with `event_id` (the caller armed it first)."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    WAITERS[event_id] = future
    try:
        await future
    finally:
        if WAITERS.get(event_id) is future:
            del WAITERS[event_id]
