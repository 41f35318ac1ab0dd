"""The pool as Ray actors: several replicas, each an :class:`InferencePool` batching its own
requests, behind one client with the pool's contract.

Routing: a request without a session, or the first request of a session (a game), goes to
the replica with the fewest requests in flight; the session's later requests go to the same
replica (its KV-cache-friendly home, and one place for a game's weights version). A replica
that dies fails its requests with :class:`BackendError`; its sessions move on to the others.
Policies added or updated later reach every live replica.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparring.errors import BackendError, InvalidRequestError, PoolClosedError, PoolError
from sparring.pool.config import PoolConfig
from sparring.pool.pool import InferencePool
from sparring.pool.types import Generation, GenerationRequest, PolicyInfo
from sparring.runs import resolve_model

MAX_SESSIONS = 100_000
"""Sessions whose replica the pool remembers (the least recently used are forgotten)."""


class _Replica:
    """Runs inside a Ray actor process."""

    def __init__(self, config: PoolConfig):
        self.pool = InferencePool(config)

    def add_policy(self, name: str, model: str) -> None:
        self.pool.add_policy(name, model)

    def add_adapter(self, name: str, base: str, adapter: str) -> None:
        self.pool.add_adapter(name, base, adapter)

    async def generate(self, request: GenerationRequest) -> Generation:
        return await self.pool.generate(request)

    async def score(self, policy: str, prompt: str, continuations: list[str]) -> list[float]:
        return await self.pool.score(policy, prompt, continuations)

    async def prompt_logprobs(self, policy: str, text: str) -> tuple[list[int], list[float]]:
        return await self.pool.prompt_logprobs(policy, text)

    def info(self, policy: str) -> PolicyInfo:
        return self.pool.info(policy)

    def update_weights(self, policy: str, weights: Any) -> int:
        return self.pool.update_weights(policy, weights)

    def ping(self) -> int:
        """The replica's sampler seed (an answer at all says it started)."""
        return self.pool.config.seed


@dataclass
class _Handle:
    actor: Any
    in_flight: int = 0
    alive: bool = True


def replica_seed(seed: int, replica: int) -> int:
    """Replica ``replica`` 's sampler seed in a pool seeded ``seed`` (distinct per replica)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, replica]).generate_state(1)[0])


def _pool_error(error: Any) -> PoolError:
    """A replica's error (a ``RayTaskError``) as the pool's: its own PoolError, else a BackendError."""
    cause = error.as_instanceof_cause()
    return cause if isinstance(cause, PoolError) else BackendError(str(error))


def settle_update(policy: str, outcomes: list[int | PoolError]) -> tuple[int, list[int]]:
    """A weight update's version and the replicas (by place in ``outcomes``) that failed to
    load it while others did; raises when every replica failed, or when those that loaded it
    disagree on its version."""
    failed = [k for k, outcome in enumerate(outcomes) if isinstance(outcome, PoolError)]
    if len(failed) == len(outcomes):
        raise outcomes[0]
    versions = sorted({outcome for outcome in outcomes if not isinstance(outcome, PoolError)})
    if len(versions) > 1:
        raise BackendError(f"policy {policy!r}: the replicas disagree on its weights version ({versions})")
    return versions[0], failed


class RayPool:
    """``config.replicas`` copies of a pool serving ``models`` (policy name → anything
    :func:`~sparring.runs.resolve_model` takes), each replica an actor with
    ``num_cpus_per_replica`` CPUs. ``replicas`` and ``device`` override the config's."""

    def __init__(self, models: Mapping[str, str | Path] | None = None, config: PoolConfig | None = None, *,
                 replicas: int | None = None, device: str | None = None, num_cpus_per_replica: float = 1.0):
        import dataclasses

        import ray

        config = config or PoolConfig(backend="ray")
        overrides = {k: v for k, v in (("replicas", replicas), ("device", device)) if v is not None}
        self.config = dataclasses.replace(config, **overrides)
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        actor_class = ray.remote(num_cpus=num_cpus_per_replica, max_restarts=0)(_Replica)
        # each replica its own sampler seed: unseeded requests on two replicas must not draw alike
        self.replicas = [_Handle(actor_class.options(max_concurrency=1024).remote(
            dataclasses.replace(self.config, seed=replica_seed(self.config.seed, i))))
            for i in range(self.config.replicas)]
        self._locations: dict[str, str] = {}
        self._tokenizers: dict[str, Any] = {}
        self.sessions: OrderedDict[str, int] = OrderedDict()
        """Session → its replica, the most recently used last (at most ``MAX_SESSIONS``)."""
        self._closed = False
        self._everywhere("ping")  # surface start-up errors here
        for name, model in (models or {}).items():
            self.add_policy(name, model)

    # -- policies and weights --------------------------------------------------------------
    @property
    def policies(self) -> list[str]:
        return list(self._locations)

    def add_policy(self, name: str, model: str | Path) -> None:
        """Serve ``name`` on every replica (a model directory or hub id, as they can reach it)."""
        if name in self._locations:
            raise InvalidRequestError(f"policy {name!r} is already served by this pool")
        location = resolve_model(model).location
        self._everywhere("add_policy", name, location)
        self._locations[name] = location

    def add_adapter(self, name: str, base: str, adapter: str | Path) -> None:
        """Serve a saved LoRA adapter (its directory) on ``base`` in every replica."""
        if base not in self._locations:
            raise InvalidRequestError(f"base={base!r} must be a policy of this pool; served: {self.policies}")
        self._everywhere("add_adapter", name, base, str(adapter))
        self._locations[name] = self._locations[base]

    def update_weights(self, policy: str, weights: Any) -> int:
        """Push weights (a state dict, or a checkpoint path every replica can read) to every
        live replica; returns the weights version they serve next.

        When every replica refuses the weights, nothing changed and the first refusal is
        raised. When only some do (a checkpoint path that one node cannot read), those are
        stopped with a warning, so that no request is served on the old weights."""
        import warnings

        self._known(policy)
        outcomes = self._outcomes("update_weights", policy, weights)
        version, stale = settle_update(policy, [outcome for _, outcome in outcomes])
        for k in stale:
            replica, error = outcomes[k]
            self._retire(replica)
            warnings.warn(f"policy {policy!r}: replica {self.replicas.index(replica)} could not load weights "
                          f"version {version} ({error}); it was stopped so that every replica runs the same "
                          f"weights ({sum(r.alive for r in self.replicas)} serve on)", RuntimeWarning, stacklevel=2)
        return version

    def info(self, policy: str) -> PolicyInfo:
        self._known(policy)
        return self._everywhere("info", policy)[0]

    def tokenizer(self, policy: str) -> Any:
        self._known(policy)
        if policy not in self._tokenizers:
            from transformers import AutoTokenizer

            self._tokenizers[policy] = AutoTokenizer.from_pretrained(self._locations[policy])
        return self._tokenizers[policy]

    def _everywhere(self, method: str, *args: Any) -> list[Any]:
        """``method`` on every live replica: their results, or the first replica's error."""
        results = []
        for _, outcome in self._outcomes(method, *args):
            if isinstance(outcome, PoolError):
                raise outcome
            results.append(outcome)
        return results

    def _outcomes(self, method: str, *args: Any) -> list[tuple[_Handle, Any]]:
        """``method`` on every live replica, each answering with its result or its error (a
        PoolError); replicas found dead are marked so and left out."""
        import ray

        if self._closed:
            raise PoolClosedError("the pool is closed")
        calls = [(r, getattr(r.actor, method).remote(*args)) for r in self.replicas if r.alive]
        outcomes = []
        for replica, call in calls:
            try:
                outcomes.append((replica, ray.get(call)))
            except ray.exceptions.RayTaskError as error:
                outcomes.append((replica, _pool_error(error)))
            except ray.exceptions.RayActorError:
                replica.alive = False
        if not outcomes:
            raise BackendError("every replica of the pool has died")
        return outcomes

    def _retire(self, replica: _Handle) -> None:
        import ray

        ray.kill(replica.actor, no_restart=True)
        replica.alive = False

    def _known(self, policy: str) -> None:
        if self._closed:
            raise PoolClosedError("the pool is closed")
        if policy not in self._locations:
            raise InvalidRequestError(f"unknown policy {policy!r}; served: {self.policies}")

    # -- requests ----------------------------------------------------------------------------
    def _route(self, session: str | None) -> int:
        if session is not None:
            index = self.sessions.get(session)
            if index is not None and self.replicas[index].alive:
                self.sessions.move_to_end(session)
                return index
        live = [i for i, r in enumerate(self.replicas) if r.alive]
        if not live:
            raise BackendError("every replica of the pool has died")
        index = min(live, key=lambda i: self.replicas[i].in_flight)
        if session is not None:
            self.sessions[session] = index
            self.sessions.move_to_end(session)
            if len(self.sessions) > MAX_SESSIONS:  # games long over: a new game starts on the least loaded
                self.sessions.popitem(last=False)
        return index

    async def generate(self, request: GenerationRequest) -> Generation:
        return await self._call(request.policy, request.session, "generate", request)

    async def score(self, policy: str, prompt: str, continuations: list[str]) -> list[float]:
        """See :meth:`InferencePool.score`; on the least-loaded replica."""
        return await self._call(policy, None, "score", policy, prompt, continuations)

    async def prompt_logprobs(self, policy: str, text: str) -> tuple[list[int], list[float]]:
        return await self._call(policy, None, "prompt_logprobs", policy, text)

    async def _call(self, policy: str, session: str | None, method: str, *args: Any) -> Any:
        import ray

        self._known(policy)
        index = self._route(session)
        replica = self.replicas[index]
        replica.in_flight += 1
        try:
            return await getattr(replica.actor, method).remote(*args)
        except ray.exceptions.RayTaskError as error:
            raise _pool_error(error) from None
        except ray.exceptions.RayActorError as error:
            if self._closed:  # stopped by aclose, not dead
                raise PoolClosedError("the pool was closed while the request ran") from None
            replica.alive = False
            raise BackendError(f"replica {index} died while serving policy {policy!r}: {error}") from None
        finally:
            replica.in_flight -= 1

    def kill_replica(self, index: int) -> None:
        """Kill one replica (for failure drills); its requests fail, the others continue."""
        import ray

        ray.kill(self.replicas[index].actor, no_restart=True)

    async def aclose(self) -> None:
        """Stop every replica: requests in flight and every later call raise PoolClosedError."""
        self._closed = True
        for replica in self.replicas:
            if replica.alive:
                self._retire(replica)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"RayPool(policies={self.policies}, replicas={len(self.replicas)})"
