"""Calling the async pool from synchronous code without losing batching.

A game's ``resolve`` is synchronous, yet an LM judge or preference oracle inside it must ask
the pool. Run naively, each such call would block the rollout's event loop (stalling every
other game) and be served alone. Instead the rollout engine runs such a step in a worker
thread with its event loop registered in :data:`ROLLOUT_LOOP`; :func:`run_blocking` then
submits the judge's request to that loop, where it is batched with the requests of every
other game in flight.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

ROLLOUT_LOOP: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "sparring_rollout_loop", default=None)

_workers: concurrent.futures.ThreadPoolExecutor | None = None


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code: on the rollout's loop when called from
    a step it runs off-loop (see :func:`call_off_loop`), else on a private loop."""
    loop = ROLLOUT_LOOP.get()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is not None and loop.is_running() and running is not loop:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()
    if running is None:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(asyncio.run, coro).result()


async def call_off_loop(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread, with this loop registered for :func:`run_blocking`."""
    global _workers
    if _workers is None:  # enough threads for every game of a large rollout to wait on its judge
        _workers = concurrent.futures.ThreadPoolExecutor(max_workers=256, thread_name_prefix="sparring-step")
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    context.run(ROLLOUT_LOOP.set, loop)
    return await loop.run_in_executor(_workers, context.run, fn, *args)
