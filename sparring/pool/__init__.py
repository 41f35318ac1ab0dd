"""The shared inference pool: every LLM request of every game goes through one pool that
batches across games, agents and policies. :func:`build_pool` builds any of its deployments
from a :class:`PoolConfig`."""

from sparring.errors import BackendError, InvalidRequestError, PoolClosedError, PoolError
from sparring.pool.config import PoolConfig
from sparring.pool.factory import build_pool, serve_model
from sparring.pool.pool import InferencePool, PoolStats
from sparring.pool.remote import RemotePool
from sparring.pool.types import Generation, GenerationRequest, PolicyInfo, Pool, SamplingParams

__all__ = [
    "BackendError", "Generation", "GenerationRequest", "InferencePool", "InvalidRequestError", "PolicyInfo",
    "Pool", "PoolClosedError", "PoolConfig", "PoolError", "PoolStats", "RemotePool", "SamplingParams",
    "build_pool", "serve_model",
]
