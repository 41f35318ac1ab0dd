"""The one configuration of an inference pool, for every backend and deployment.

``configs/pool/*.yaml`` compose to it; :func:`sparring.pool.build_pool` builds the pool it
describes. Fields a backend does not use are ignored by it (``replicas`` outside Ray).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sparring.config import Config, above, at_least, check
from sparring.errors import did_you_mean

BACKENDS = ("transformers", "ray", "vllm", "remote")


@dataclass(frozen=True)
class PoolConfig(Config):
    where = "pool"

    backend: str = "transformers"
    """``transformers`` (in-process, CPU or CUDA), ``ray`` (replicas of it as Ray actors),
    ``vllm`` (vLLM's engine on a CUDA GPU; the ``vllm`` extra) or ``remote`` (an
    OpenAI-compatible server at ``base_url``: ``sparring serve`` or ``vllm serve``)."""
    device: str = "cpu"
    """Where models run: ``cpu`` or ``cuda`` (``transformers`` and ``ray``)."""
    max_batch_size: int = 64
    """Most requests of one model run in one batch."""
    max_wait_ms: float = 5.0
    """Run a batch once no new request has arrived for this long (at most 20 times this after
    the first request)."""
    seed: int = 0
    """Seeds the sampler of requests that carry no seed of their own."""
    replicas: int = 2
    """Ray replicas (``backend=ray``)."""
    gpu_memory_utilization: float = 0.3
    """Share of the GPU the engine of each served model takes (``backend=vllm``)."""
    base_url: str | None = None
    """The server (``backend=remote``), e.g. ``http://127.0.0.1:8000/v1``."""
    api_key: str | None = None
    """Sent as ``Authorization: Bearer`` (``backend=remote``)."""
    timeout_s: float = 300.0
    """Bound on each HTTP attempt (``backend=remote``)."""

    def __post_init__(self) -> None:
        problems = []
        if self.backend not in BACKENDS:
            problems.append(f"pool.backend={self.backend!r} is unknown; use one of {', '.join(BACKENDS)}."
                            f"{did_you_mean(self.backend, BACKENDS)}")
        problems += at_least(self, 1, "max_batch_size", "replicas", where=self.where)
        problems += at_least(self, 0, "max_wait_ms", where=self.where)
        if self.max_wait_ms == float("inf"):  # a batch that is not full would never run
            problems.append("pool.max_wait_ms=inf must be finite")
        problems += above(self, 0, "timeout_s", where=self.where)
        if not 0 < self.gpu_memory_utilization <= 1:  # NaN too
            problems.append(f"pool.gpu_memory_utilization={self.gpu_memory_utilization} must lie in (0, 1]")
        if self.backend == "remote" and not self.base_url:
            problems.append("pool.backend=remote needs pool.base_url (e.g. http://127.0.0.1:8000/v1)")
        if not re.fullmatch(r"cpu|cuda(:[0-9]+)?", str(self.device)):
            problems.append(f"pool.device={self.device!r} must be cpu, cuda or cuda:N")
        check(problems)
