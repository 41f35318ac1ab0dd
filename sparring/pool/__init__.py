"""The shared inference pool: every LLM request of every game goes through one pool that
batches across games, agents and policies."""

from sparring.pool.pool import InferencePool, PoolConfig, PoolStats
from sparring.pool.remote import RemotePool
from sparring.pool.types import (
    BackendError,
    Generation,
    GenerationRequest,
    InvalidRequestError,
    Pool,
    PoolClosedError,
    PoolError,
    SamplingParams,
)

__all__ = [
    "BackendError", "Generation", "GenerationRequest", "InferencePool", "InvalidRequestError",
    "Pool", "PoolClosedError", "PoolConfig", "PoolError", "PoolStats", "RemotePool", "SamplingParams",
]
