"""The pool as Ray actors: several replicas, each an :class:`InferencePool` batching its own
requests, behind one client with the pool's contract.

Routing: a request without a session, or the first request of a session (a game), goes to
the replica with the fewest requests in flight; the session's later requests go to the same
replica (its KV-cache-friendly home, and one place for a game's weights version). A replica
that dies fails its requests with :class:`BackendError`; its sessions move on to the others.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparring.pool.pool import InferencePool, PoolConfig
from sparring.pool.types import (
    BackendError,
    Generation,
    GenerationRequest,
    InvalidRequestError,
    PoolError,
)


class _Replica:
    """Runs inside a Ray actor process."""

    def __init__(self, models: dict[str, str], config: PoolConfig, device: str):
        self.pool = InferencePool(config)
        for name, path in models.items():
            self.pool.add_policy(name, path, device=device)

    async def generate(self, request: GenerationRequest) -> Generation:
        return await self.pool.generate(request)

    def update_weights(self, policy: str, weights: Any) -> int:
        return self.pool.update_weights(policy, weights)

    async def score(self, policy: str, prompt: str, continuations: list[str]) -> list[float]:
        return await self.pool.score(policy, prompt, continuations)

    def ping(self) -> str:
        return "ok"


@dataclass
class _Handle:
    actor: Any
    in_flight: int = 0
    alive: bool = True


class RayPool:
    """``replicas`` copies of a pool serving ``models`` (policy name → model path or id)."""

    def __init__(self, models: dict[str, str | Path], replicas: int = 2, config: PoolConfig | None = None,
                 device: str = "cpu", num_cpus_per_replica: float = 1.0):
        import ray

        if replicas < 1:
            raise ValueError(f"replicas={replicas} must be >= 1")
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        actor_class = ray.remote(num_cpus=num_cpus_per_replica, max_restarts=0)(_Replica)
        paths = {name: str(path) for name, path in models.items()}
        self.replicas = [_Handle(actor_class.options(max_concurrency=1024).remote(paths, config or PoolConfig(), device))
                         for _ in range(replicas)]
        ray.get([r.actor.ping.remote() for r in self.replicas])  # surface load errors here
        self.policies = list(models)
        self.sessions: dict[str, int] = {}

    def _route(self, session: str | None) -> int:
        if session is not None:
            index = self.sessions.get(session)
            if index is not None and self.replicas[index].alive:
                return index
        live = [i for i, r in enumerate(self.replicas) if r.alive]
        if not live:
            raise BackendError("every replica of the pool has died")
        index = min(live, key=lambda i: self.replicas[i].in_flight)
        if session is not None:
            self.sessions[session] = index
        return index

    async def generate(self, request: GenerationRequest) -> Generation:
        return await self._call(request.policy, request.session, "generate", request)

    async def score(self, policy: str, prompt: str, continuations: list[str]) -> list[float]:
        """Log-probabilities of ``continuations`` after ``prompt`` (see InferencePool.score),
        on the least-loaded replica."""
        return await self._call(policy, None, "score", policy, prompt, continuations)

    async def _call(self, policy: str, session: str | None, method: str, *args: Any) -> Any:
        import ray

        if policy not in self.policies:
            raise InvalidRequestError(f"unknown policy {policy!r}; served: {self.policies}")
        index = self._route(session)
        replica = self.replicas[index]
        replica.in_flight += 1
        try:
            return await getattr(replica.actor, method).remote(*args)
        except ray.exceptions.RayTaskError as error:
            cause = error.as_instanceof_cause()
            raise (cause if isinstance(cause, PoolError) else BackendError(str(error))) from None
        except ray.exceptions.RayActorError as error:
            replica.alive = False
            raise BackendError(f"replica {index} died while serving policy {policy!r}: {error}") from None
        finally:
            replica.in_flight -= 1

    def update_weights(self, policy: str, weights: Any) -> list[int]:
        """Push weights to every live replica; returns their new weights versions."""
        import ray

        live = [r for r in self.replicas if r.alive]
        return ray.get([r.actor.update_weights.remote(policy, weights) for r in live])

    def kill_replica(self, index: int) -> None:
        """Kill one replica (for failure drills); its requests fail, the others continue."""
        import ray

        ray.kill(self.replicas[index].actor, no_restart=True)

    async def aclose(self) -> None:
        import ray

        for replica in self.replicas:
            if replica.alive:
                ray.kill(replica.actor, no_restart=True)
                replica.alive = False
        await asyncio.sleep(0)
