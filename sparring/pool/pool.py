"""The shared inference pool: one place where every game's LLM requests are batched.

Many games run as asyncio tasks; each awaits :meth:`InferencePool.generate`. A batcher task
gathers the outstanding requests (up to ``max_batch_size``, waiting at most ``max_wait_ms``
for more once the first arrives), groups them per policy and runs each group as one batch in
a worker thread, so the event loop keeps collecting the next batch meanwhile. Weight updates
are applied between batches: a batch in flight finishes on the weights it started with.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sparring.errors import BackendError, InvalidRequestError, PoolClosedError, SparringError
from sparring.pool.config import PoolConfig
from sparring.pool.transformers_backend import (
    LoadedModel,
    check_state_fits,
    generate_batch,
    load_model,
    prompt_token_logprobs,
    request_prompt_ids,
    score_continuations,
)
from sparring.pool.types import Generation, GenerationRequest, PolicyInfo
from sparring.runs import read_safetensors


@dataclass
class _Pending:
    request: GenerationRequest
    future: asyncio.Future


@dataclass
class PoolStats:
    batches: int = 0
    requests: int = 0
    completion_tokens: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    busy_s: float = 0.0
    """Seconds the backend spent generating (batches served)."""

    @property
    def mean_batch_size(self) -> float:
        return sum(self.batch_sizes) / len(self.batch_sizes) if self.batch_sizes else 0.0


@dataclass
class _Served:
    """A policy: a loaded model, optionally one LoRA adapter on it, and its weights version."""

    loaded: LoadedModel
    adapter: str | None = None
    version: int = 0


class InferencePool:
    """In-process pool over the ``transformers`` backend (CPU or CUDA).

    Policies are models (:meth:`add_policy`) or LoRA adapters on a served model
    (:meth:`add_adapter`); the requests of a model and all its adapters run in one batch.
    """

    def __init__(self, config: PoolConfig | None = None):
        self.config = config or PoolConfig()
        self.served: dict[str, _Served] = {}
        self.stats = PoolStats()
        self._generator = torch.Generator().manual_seed(self.config.seed)
        self._updates: dict[str, tuple[int, dict[str, torch.Tensor]]] = {}
        """Policy → the newest weights queued and the version they will be (an update queued
        while another waits replaces it, and takes the next version number)."""
        self._updates_lock = threading.Lock()
        # One queue and batcher per event loop: a pool may serve an async rollout and, at the
        # same time, a synchronous caller that runs its own loop in another thread.
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[asyncio.Queue, asyncio.Task]] = (
            weakref.WeakKeyDictionary()
        )
        self._closed = False
        # One worker thread runs every batch: torch's CPU thread pool is per calling thread,
        # and several idle pools spinning beside the busy one would fight over the cores.
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparring-pool")

    # -- policies and weights --------------------------------------------------------------
    def add_policy(self, name: str, model: str | Path | Any, tokenizer: Any = None,
                   device: str | None = None, dtype: torch.dtype | None = None) -> None:
        """Serve ``name`` from a model id, a local path or a loaded model (with tokenizer), on
        ``device`` (default: the pool config's)."""
        self._check_new(name)
        self.served[name] = _Served(load_model(name, model, tokenizer, device or self.config.device, dtype))

    def add_adapter(self, name: str, base: str, adapter: str | Path | Any) -> None:
        """Serve ``name`` as a LoRA adapter on policy ``base``'s model: a saved peft adapter
        (directory) or a ``peft.LoraConfig`` for a fresh one (e.g. a learner's). Call it
        before serving or between batches."""
        from sparring.pool.adapters import attach_adapter

        self._check_new(name)
        if base not in self.served or self.served[base].adapter is not None:
            raise InvalidRequestError(f"base={base!r} must be a policy served as a full model; served: {self.policies}")
        loaded = self.served[base].loaded
        attach_adapter(loaded, name, adapter)
        self.served[name] = _Served(loaded, adapter=name)

    def _check_new(self, name: str) -> None:
        if name in self.served:
            raise InvalidRequestError(f"policy {name!r} is already served by this pool")

    @property
    def policies(self) -> list[str]:
        return list(self.served)

    def info(self, policy: str) -> PolicyInfo:
        served = self._served(policy)
        with self._updates_lock:
            version = self._updates[policy][0] if policy in self._updates else served.version  # queued: next batch
            return PolicyInfo(policy, served.loaded.context_length, version)

    def tokenizer(self, policy: str) -> Any:
        return self._served(policy).loaded.tokenizer

    @property
    def models(self) -> dict[str, LoadedModel]:
        """Each policy's loaded model (adapters share their base's)."""
        return {name: served.loaded for name, served in self.served.items()}

    def memory_bytes(self) -> int:
        """Bytes of every distinct tensor the pool holds (shared weights counted once)."""
        seen: dict[int, int] = {}
        for served in self.served.values():
            for tensor in list(served.loaded.model.parameters()) + list(served.loaded.model.buffers()):
                seen[tensor.data_ptr()] = tensor.numel() * tensor.element_size()
        return sum(seen.values())

    def update_weights(self, policy: str, weights: dict[str, torch.Tensor] | str | Path) -> int:
        """Queue new weights (a state dict or a checkpoint directory) for ``policy``. They
        apply before the next batch; requests already running finish on the old weights.
        For an adapter policy, the weights are the adapter's (peft state dict or saved
        adapter). Returns the weights version that generations from the new weights carry."""
        from sparring.pool.adapters import check_adapter_fits

        served = self._served(policy)
        if isinstance(weights, (str, Path)):
            weights = read_safetensors(weights)
        elif not isinstance(weights, dict):
            raise InvalidRequestError(f"weights must be a state dict or a checkpoint path, got {type(weights).__name__}")
        if served.adapter is not None:
            check_adapter_fits(served.loaded, served.adapter, weights)
        elif any(s.adapter for s in self.served.values() if s.loaded is served.loaded):
            raise InvalidRequestError(
                f"policy {policy!r} carries LoRA adapters: update the adapters, or serve the "
                "full model under another name without adapters"
            )
        else:
            _check_fits(policy, served.loaded.model, weights)
        state = {k: v.detach().to("cpu", copy=True) for k, v in weights.items()}
        with self._updates_lock:
            version = (self._updates[policy][0] if policy in self._updates else served.version) + 1
            self._updates[policy] = (version, state)
        if not any(not task.done() for _, task in self._batchers.values()):
            self._apply_updates()
        return version

    def _apply_updates(self) -> None:
        """Load the queued weights (from the worker before each batch or scoring pass, or
        from :meth:`update_weights` when nothing is batching; the lock keeps them apart)."""
        from sparring.pool.adapters import load_adapter_state

        with self._updates_lock:
            while self._updates:
                policy, (version, state) = self._updates.popitem()
                served = self.served[policy]
                with served.loaded.lock:  # never under a batch that is running
                    if served.adapter is None:
                        served.loaded.model.load_state_dict(state, strict=False)
                    else:
                        load_adapter_state(served.loaded, served.adapter, state)
                    served.version = version

    def _served(self, policy: str) -> _Served:
        served = self.served.get(policy)
        if served is None:
            raise InvalidRequestError(f"unknown policy {policy!r}; served: {self.policies}")
        return served

    def run_on_backend_thread(self, fn, *args):
        """Run ``fn(*args)`` on the thread that runs this pool's batches and return its
        result (benchmarks compare direct backend calls on the same torch thread pool)."""
        return self._worker.submit(fn, *args).result()

    # -- requests ----------------------------------------------------------------------------
    async def score(self, policy: str, prompt: str, continuations: list[str]) -> list[float]:
        """Log-probabilities of ``continuations`` after a raw-text ``prompt`` under
        ``policy`` (e.g. a guard model's "unsafe" vs "safe")."""
        served = self._served(policy)
        return await self._on_worker(score_continuations, served.loaded, prompt, continuations, served.adapter)

    async def prompt_logprobs(self, policy: str, text: str) -> tuple[list[int], list[float]]:
        """The token ids of a raw-text prompt and each token's logprob given those before it
        (none for the first: one fewer than ids), under ``policy``'s model distribution. The
        server echoes these, so that clients over HTTP can score continuations."""
        served = self._served(policy)
        return await self._on_worker(prompt_token_logprobs, served.loaded, text, served.adapter)

    async def _on_worker(self, fn, *args):
        """Run a forward pass outside the batches on the worker thread, which they share:
        one torch thread pool, and the event loop stays free. Weights queued by an update
        apply first, as they do before a batch."""
        if self._closed:
            raise PoolClosedError("the pool is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, self._after_updates, fn, *args)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed and not (task is not None and task.cancelling()):  # the pass was dropped by aclose
                raise PoolClosedError("the pool was closed") from None
            raise
        except SparringError:
            raise
        except Exception as error:  # the model failed (out of memory, a broken adapter): typed as generate's are
            raise BackendError(f"{fn.__name__}: {type(error).__name__}: {error}") from error

    def _after_updates(self, fn, *args):
        self._apply_updates()
        return fn(*args)

    def _generate(self, loaded: LoadedModel, requests: list[GenerationRequest], adapters: list[str | None] | None,
                  served: list[_Served]) -> list[Generation]:
        """One batch on the worker: queued weights first, then each row tagged with the version
        it ran on."""
        self._apply_updates()
        return generate_batch(loaded, requests, self._generator, adapters, [s.version for s in served])

    async def generate(self, request: GenerationRequest) -> Generation:
        if self._closed:
            raise PoolClosedError("the pool is closed")
        self._served(request.policy)
        future = asyncio.get_running_loop().create_future()
        await self._queue_of_this_loop().put(_Pending(request, future))
        return await future

    def _queue_of_this_loop(self) -> asyncio.Queue:
        loop = asyncio.get_running_loop()
        entry = self._batchers.get(loop)
        if entry is None or entry[1].done():
            queue: asyncio.Queue = asyncio.Queue()
            entry = self._batchers[loop] = (queue, loop.create_task(self._run_batches(queue)))
        return entry[0]

    async def _run_batches(self, queue: asyncio.Queue) -> None:
        batch: list[_Pending] = []
        try:
            while True:
                batch = [await queue.get()]
                await self._gather_and_serve(queue, batch)
        except asyncio.CancelledError:  # closed: what this batcher had taken fails, not waits forever
            for pending in batch:
                _fail_closed(pending)
            raise

    async def _gather_and_serve(self, queue: asyncio.Queue, batch: list[_Pending]) -> None:
        """Add to ``batch`` (its first request taken) what else comes soon, and serve it."""
        wait = self.config.max_wait_ms / 1000
        # Linger while requests keep coming (games resumed by the last batch submit their
        # next turns one after another), but never more than 20 waits in all.
        cap = time.monotonic() + 20 * wait
        limit = self.config.max_batch_size * len({id(s.loaded) for s in self.served.values()})
        while len(batch) < limit:
            timeout = min(wait, cap - time.monotonic())
            try:
                batch.append(queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(queue.get(), timeout))
            except (TimeoutError, asyncio.QueueEmpty):
                break
        groups: dict[int, list[_Pending]] = defaultdict(list)
        for pending in batch:  # a model and its adapters batch together
            if not pending.future.cancelled():
                groups[id(self.served[pending.request.policy].loaded)].append(pending)
        for group in groups.values():
            for start in range(0, len(group), self.config.max_batch_size):
                await self._serve(group[start: start + self.config.max_batch_size])

    async def _serve(self, group: list[_Pending]) -> None:
        requests = [p.request for p in group]
        served = [self.served[r.policy] for r in requests]
        loaded = served[0].loaded
        adapters = [s.adapter for s in served] if loaded.has_adapters else None
        started = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._worker, self._generate, loaded, requests, adapters, served)
        except InvalidRequestError as error:
            if len(group) == 1:
                if not group[0].future.done():
                    group[0].future.set_exception(error)
                return
            # Fail the requests that cannot be served and batch the rest again; an error no
            # prompt explains is found by serving each request alone.
            bad = await asyncio.get_running_loop().run_in_executor(self._worker, _bad_requests, loaded, requests)
            for k, problem in bad.items():
                if not group[k].future.done():
                    group[k].future.set_exception(problem)
            if not bad:
                for pending in group:
                    await self._serve([pending])
            elif len(bad) < len(group):
                await self._serve([p for k, p in enumerate(group) if k not in bad])
            return
        except Exception as error:
            failure = BackendError(f"policy {loaded.name!r}: {type(error).__name__}: {error}")
            failure.__cause__ = error
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(failure)
            return
        self.stats.busy_s += time.perf_counter() - started
        self.stats.batches += 1
        self.stats.requests += len(group)
        self.stats.batch_sizes.append(len(group))
        for pending, result in zip(group, results):
            self.stats.completion_tokens += len(result.completion_ids)
            if not pending.future.done():
                pending.future.set_result(result)

    async def aclose(self) -> None:
        """Stop serving: requests still queued or in a batch fail with PoolClosedError (a batch
        the worker is running finishes first). Batchers on other event loops (a server's
        thread) are stopped on their own loops."""
        self._closed = True
        self._worker.shutdown(wait=False, cancel_futures=True)
        for loop, (queue, task) in list(self._batchers.items()):
            if loop.is_closed():
                continue
            if loop is asyncio.get_running_loop():
                _drain_closed(queue, task)
            else:
                loop.call_soon_threadsafe(_drain_closed, queue, task)


def _bad_requests(loaded: LoadedModel, requests: list[GenerationRequest]) -> dict[int, InvalidRequestError]:
    """The requests of a batch that cannot be served, by their place in it."""
    bad = {}
    for k, request in enumerate(requests):
        try:
            request_prompt_ids(loaded, request)
        except InvalidRequestError as error:
            bad[k] = error
    return bad


def _drain_closed(queue: asyncio.Queue, task: asyncio.Task) -> None:
    """On the batcher's own loop: stop it and fail what is still queued."""
    task.cancel()
    while not queue.empty():
        _fail_closed(queue.get_nowait())


def _fail_closed(pending: _Pending) -> None:
    if not pending.future.done():
        pending.future.set_exception(PoolClosedError("the pool was closed"))


def _check_fits(policy: str, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    # Tied weights (an LM head sharing the embedding) appear once among the parameters, so a
    # checkpoint may leave them out.
    check_state_fits(f"policy {policy!r}", dict(model.named_parameters()), model.state_dict(), state)


