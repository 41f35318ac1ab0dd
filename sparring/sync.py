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

:func:`call_in_daemon_thread` runs a synchronous call that may block for long, or for good (a
user's scripted policy under a move timeout) off the loop, in a daemon thread.
:class:`LoopThread` is an event loop in a thread of its own, for engines that stay bound to
the loop they first ran on (vLLM) and serve callers on any loop or thread. :class:`Coalesced`
joins concurrent calls on one loop into one batched call (a classifier judge scores the
exchanges of every game in flight at once).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import queue
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

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


class _DaemonWorkers:
    """Daemon threads for calls that may never return (a user's synchronous policy that
    hangs). A call always finds a free thread (a new one when every thread is busy), so calls
    stuck for good never make the others wait, and the process does not wait for them at exit.
    A thread that finishes its call waits for the next one."""

    def __init__(self, name: str):
        self.name = name
        self._jobs: queue.SimpleQueue[Callable[[], Callable[[], None]]] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], Callable[[], None]]) -> None:
        """Run ``job`` in a thread. It returns the step that hands its result over, taken once
        the thread counts as free again, so that the caller's next call finds it free."""
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1  # that idle thread will take this job
        if spawn:
            threading.Thread(target=self._work, name=self.name, daemon=True).start()
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            hand_over = self._jobs.get()()
            with self._lock:
                self._idle += 1
            hand_over()


class _Results:
    """Results of daemon-thread calls on their way back to their callers' loops. Results that
    are ready together wake a loop once, not once each: with many fast calls in flight (every
    scripted move of a tournament) a wake-up per call would cost more than the calls."""

    def __init__(self) -> None:
        self._ready: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any, BaseException | None]]] = {}
        self._lock = threading.Lock()

    def put(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future, result: Any,
            error: BaseException | None) -> None:
        with self._lock:
            first = loop not in self._ready
            self._ready.setdefault(loop, []).append((future, result, error))
        if first:
            try:
                loop.call_soon_threadsafe(self._settle, loop)
            except RuntimeError:  # the loop has closed: nobody waits for these results
                with self._lock:
                    self._ready.pop(loop, None)

    def _settle(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            ready = self._ready.pop(loop, [])
        for future, result, error in ready:
            if future.done():  # the caller stopped waiting (a timeout, a cancelled game)
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)


_daemon_workers = _DaemonWorkers("sparring-sync-call")
_results = _Results()


async def call_in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a daemon thread, with this loop registered for :func:`run_sync` (as
    :func:`call_off_loop`), for a call that may block for long or for good: the caller can stop
    waiting (``asyncio.wait_for``) and go on, the call holds no shared worker while it runs on,
    and an unfinished call does not keep the process alive at exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()
    context.run(ROLLOUT_LOOP.set, loop)

    def job() -> Callable[[], None]:
        try:
            result, error = context.run(fn, *args), None
        except BaseException as e:  # the caller's to handle, whatever it is
            result, error = None, e
        return lambda: _results.put(loop, future, result, error)

    _daemon_workers.submit(job)
    return await future


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


class Coalesced(Generic[T, R]):
    """``await coalesced(item)`` from many tasks of one event loop: the items that arrive within
    ``window_s`` of each other (and while a batch is being computed) are handed to
    ``fn(items) -> results`` together, in a worker thread, one batch at a time per loop. An
    error in ``fn`` reaches every caller of its batch."""

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], window_s: float = 0.002):
        self.fn, self.window_s = fn, window_s
        self._waiting: dict[asyncio.AbstractEventLoop, list[tuple[T, asyncio.Future[R]]]] = {}
        self._draining: set[asyncio.AbstractEventLoop] = set()

    async def __call__(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.setdefault(loop, []).append((item, future))
        if loop not in self._draining:
            self._draining.add(loop)
            loop.create_task(self._drain(loop))
        return await future

    async def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            await asyncio.sleep(self.window_s)
            while self._waiting.get(loop):
                batch = self._waiting.pop(loop)
                try:
                    results = await asyncio.to_thread(self.fn, [item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"{self.fn!r} returned {len(results)} results for {len(batch)} items")
                except Exception as e:  # every caller of the batch sees the error
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(e)
                    continue
                for (_, future), result in zip(batch, results):
                    if not future.done():  # its caller may have been cancelled
                        future.set_result(result)
        except asyncio.CancelledError:  # the loop is closing: nothing waits any more
            for _, future in self._waiting.pop(loop, []):
                future.cancel()
            raise
        finally:
            self._draining.discard(loop)
