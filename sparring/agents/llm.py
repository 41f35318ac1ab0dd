"""LLM policies: agents that generate through the shared inference pool.

The observation text becomes the user message of a chat; when the game asks for the
hidden-CoT format (its instructions mention ``</think>``) the prompt is pre-filled with
``<think>`` and the model continues with ``reasoning </think> <answer> … </answer>``. The
returned :class:`~sparring.agents.Action` carries the pool's
:class:`~sparring.pool.Generation` (token ids, logprobs) for learners.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from sparring.agents.base import Action, Policy
from sparring.envs.parsing import cot_prefill
from sparring.pool import GenerationRequest, InferencePool, Pool, SamplingParams

DEFAULT_SAMPLING = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=96)

_default_pool: InferencePool | None = None


def default_pool() -> InferencePool:
    """The process-wide pool that LLM policies share unless handed another one."""
    global _default_pool
    if _default_pool is None:
        _default_pool = InferencePool()
    return _default_pool


def resolve_model(model: str | Path) -> Path | str:
    """Where a model lives: ``tiny`` (the shipped model), a model directory, a saved LoRA
    adapter, a training checkpoint (its ``model/``) or a training run (its latest checkpoint);
    anything else is taken for a Hugging Face id."""
    if str(model) == "tiny":
        from sparring.models import TINY_MODEL

        return TINY_MODEL
    path = Path(model)
    if (path / "latest").is_file():
        path = path / "checkpoints" / (path / "latest").read_text(encoding="utf-8").strip()
    if (path / "model").is_dir():
        path = path / "model"
    if path.exists() and not ((path / "config.json").is_file() or (path / "adapter_config.json").is_file()):
        raise FileNotFoundError(f"{model}: no model here (expected config.json or adapter_config.json)")
    if not path.exists() and (str(model).count("/") != 1 or str(model).startswith((".", "/", "~"))):
        raise FileNotFoundError(f"model {str(model)!r} not found: not a directory here, and not a hub id "
                                "(hub ids look like 'org/name')")
    return path if path.exists() else str(model)


def ensure_policy(pool: Pool, model: str | Path, name: str | None = None, device: str = "cpu") -> str:
    """Serve ``model`` (anything :func:`resolve_model` takes) in ``pool`` as policy ``name``
    (default: the model as written); return the name. The same model asked for twice is
    loaded once, so its seats share batches. A saved LoRA adapter is served on its base model.
    A pool that cannot load models (Ray, remote) must already serve it under that name."""
    name = name or str(model)
    if name not in pool.policies:
        if not isinstance(pool, InferencePool):
            raise ValueError(f"policy {name!r} is not served by {type(pool).__name__}; serve it there first "
                             f"(served: {pool.policies})")
        source = resolve_model(model)
        if isinstance(source, Path) and (source / "adapter_config.json").is_file():
            config = json.loads((source / "adapter_config.json").read_text(encoding="utf-8"))
            base = ensure_policy(pool, config["base_model_name_or_path"], device=device)
            pool.add_adapter(name, base, source)
        else:
            pool.add_policy(name, source, device=device)
    return name


class LLMPolicy(Policy):
    """A policy served by an :class:`~sparring.pool.InferencePool`.

    ``model``: ``"tiny"`` (the shipped model), a local path or a Hugging Face id; it is
    loaded into ``pool`` (the process-wide default pool if none is given) unless that pool
    already serves it. ``sampling.seed=None`` draws a seed per request from the policy's own
    generator, so a seeded game replays exactly however requests are batched.
    """

    def __init__(
        self,
        model: str | Path = "tiny",
        pool: Pool | None = None,
        sampling: SamplingParams = DEFAULT_SAMPLING,
        system_prompt: str | None = None,
        prefill: str = "auto",
        seed: int | None = None,
        name: str | None = None,
    ):
        self.pool = pool or default_pool()
        self.policy = ensure_policy(self.pool, model)
        self.sampling = sampling
        self.system_prompt = system_prompt
        self.prefill = prefill
        self.name = name or f"llm({Path(self.policy).name})"
        self.rng = np.random.default_rng(seed)

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def request(self, observation: dict[str, Any]) -> GenerationRequest:
        text = observation["text"]
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages.append({"role": "user", "content": text})
        prefill = cot_prefill(text) if self.prefill == "auto" else self.prefill
        sampling = self.sampling
        if sampling.seed is None and not sampling.greedy:
            sampling = dataclasses.replace(sampling, seed=int(self.rng.integers(2**31)))
        return GenerationRequest(self.policy, tuple(messages), sampling, prefill=prefill)

    async def act(self, agent: str, observation: dict[str, Any]) -> Action:
        generation = await self.pool.generate(self.request(observation))
        return Action(generation.text, generation)
