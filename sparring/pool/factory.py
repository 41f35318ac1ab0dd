"""The one place pools are built: :func:`build_pool` from a :class:`PoolConfig`, and
:func:`serve_model` to serve a model (or a saved adapter) in a pool that is running.

Training, tournaments, evaluation, ``sparring serve`` and LLM policies all build their pools
here, so a config that says ``backend: vllm`` or ``backend: remote`` means the same thing
everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sparring.errors import ConfigError, InvalidRequestError
from sparring.pool.config import PoolConfig
from sparring.pool.types import Pool
from sparring.runs import resolve_model


def build_pool(config: PoolConfig | None = None, models: Mapping[str, str | Path] | None = None) -> Pool:
    """The pool ``config`` describes, serving ``models`` (policy name → anything
    :func:`~sparring.runs.resolve_model` takes: ``tiny``, a model directory, a checkpoint, a
    run, a saved LoRA adapter, a hub id). A remote pool serves whatever its server serves."""
    config = config or PoolConfig()
    models = dict(models or {})
    if config.backend == "remote":
        from sparring.pool.remote import RemotePool

        pool: Pool = RemotePool(config.base_url, api_key=config.api_key, timeout_s=config.timeout_s)
        missing = sorted(set(models) - set(pool.policies)) if models else []
        if missing:
            raise InvalidRequestError(f"{config.base_url} does not serve {missing}; it serves {pool.policies}")
        return pool
    if config.backend == "ray":
        from sparring.pool.ray_pool import RayPool

        pool = RayPool(config=config)
    elif config.backend == "vllm":
        from sparring.pool.vllm_pool import VLLMPool

        pool = VLLMPool(config)
    else:
        from sparring.pool.pool import InferencePool

        _check_device(config.device)
        pool = InferencePool(config)
    for name, model in models.items():
        serve_model(pool, model, name)
    return pool


def _check_device(device: str) -> None:
    """An in-process pool's device must exist here (Ray and vLLM place models themselves)."""
    if device == "cpu":
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"pool.device={device}: CUDA is not available on this machine (torch "
                          f"{torch.__version__}{'' if torch.version.cuda else ', a CPU-only build'}); use pool.device=cpu")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"pool.device={device}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                          f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})")


def serve_model(pool: Pool, model: str | Path, name: str | None = None, **load_kwargs: Any) -> str:
    """Serve ``model`` in ``pool`` as policy ``name`` (default: the model as written) unless
    it already serves that name; returns the name. A saved LoRA adapter is served on its
    base model (itself served under the base's own spec, so adapters of one base share it),
    started as the pool needs for adapters (``adapter_base_kwargs``: vLLM's engine needs
    LoRA on). ``load_kwargs`` go to the pool's ``add_policy``."""
    name = name or str(model)
    if name in pool.policies:
        return name
    if not hasattr(pool, "add_policy"):
        raise InvalidRequestError(f"policy {name!r} is not served by {pool!r}, which cannot load models; serve "
                                  f"it there first (it serves {pool.policies})")
    source = resolve_model(model)
    if source.is_adapter:
        needs = getattr(pool, "adapter_base_kwargs", None)
        base = serve_model(pool, source.base, **(needs(source.path) if needs else {}))
        pool.add_adapter(name, base, source.path)
    else:
        pool.add_policy(name, source.location, **load_kwargs)
    return name
