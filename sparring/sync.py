"""The one bridge between synchronous code and the async pool and policies.

Policies act and pools generate asynchronously, so that many games can wait on one batching
pool at once. Some callers are synchronous: Gymnasium views, RLlib's env runners, a terminal,
a judge inside a game's ``step``. They all go through :func:`run_sync`, which picks the loop
that keeps batching intact:

- inside a game step that the rollout engine runs off its loop (:func:`call_off_loop`): the
  rollout's own loop, where the request is batched with every other game in flight;
- in a thread with no running loop: that thread's own event loop, kept between calls (a
  pool's batcher and an HTTP client's session live on it);
- inside a running loop (a blocking call from async code): a fresh loop in a worker thread.

:class:`LoopThread` is an event loop in a thread of its own, for engines that stay bound to
the loop they first ran on (vLLM) and serve callers on any loop or thread.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

ROLLOUT_LOOP: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "sparring_rollout_loop", default=None)

_local = threading.local()
_kept_loops: list[asyncio.AbstractEventLoop] = []
_step_workers: concurrent.futures.ThreadPoolExecutor | None = None


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code (see the module docstring)."""
    rollout = ROLLOUT_LOOP.get()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if rollout is not None and rollout.is_running() and running is not rollout:
        return asyncio.run_coroutine_threadsafe(coro, rollout).result()
    if running is not None:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparring-sync") as worker:
            return worker.submit(asyncio.run, coro).result()
    loop = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
        _kept_loops.append(loop)
    return loop.run_until_complete(coro)


@atexit.register
def _close_kept_loops() -> None:
    """At exit, finalise what lives on the kept loops (an HTTP client's session closes
    cleanly instead of warning) and close them."""
    for loop in _kept_loops:
        if loop.is_closed() or loop.is_running():
            continue
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


async def call_off_loop(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread, with this loop registered for :func:`run_sync`: a
    synchronous step that asks the pool (an LM judge) then batches with the other games."""
    global _step_workers
    if _step_workers is None:  # enough threads for every game of a large rollout to wait on its judge
        _step_workers = concurrent.futures.ThreadPoolExecutor(max_workers=256, thread_name_prefix="sparring-step")
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    context.run(ROLLOUT_LOOP.set, loop)
    return await loop.run_in_executor(_step_workers, context.run, fn, *args)


class LoopThread:
    """An event loop running in a daemon thread of its own. :meth:`run` blocks on a coroutine
    from synchronous code; ``await loop_thread.wrap(coro)`` runs it there from any other loop."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.submit(coro).result()

    async def wrap(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(self.submit(coro))

    async def astop(self) -> None:
        """Stop the loop and wait for its thread (call from another loop)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self._thread.join)
        self.loop.close()
