"""LLM policies: agents that generate through the shared inference pool.

The observation text becomes the user message of a chat; when the game asks for the
hidden-CoT format (``observation["hidden_cot"]``) the prompt is pre-filled with ``<think>``
and the model continues with ``reasoning </think> <answer> … </answer>``. The returned
:class:`~sparring.agents.Action` carries the pool's :class:`~sparring.pool.Generation`
(token ids, logprobs) for learners.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from sparring.agents.base import Action, Policy
from sparring.envs.parsing import cot_prefill
from sparring.pool import GenerationRequest, Pool, SamplingParams, build_pool, serve_model

DEFAULT_SAMPLING = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=96)

_default_pool: Pool | None = None


def default_pool() -> Pool:
    """The process-wide in-process pool that LLM policies share unless handed another one."""
    global _default_pool
    if _default_pool is None:
        _default_pool = build_pool()
    return _default_pool


class LLMPolicy(Policy):
    """A policy served by a pool (:class:`~sparring.pool.Pool`).

    ``model``: a name the pool serves, or anything :func:`~sparring.runs.resolve_model` takes
    (``tiny``, a model directory, checkpoint, run or saved adapter, a hub id), which is then
    loaded into ``pool`` (the process-wide default pool if none is given) unless the pool
    already serves it. ``sampling.seed=None`` draws a seed per request from the policy's own
    generator, so a seeded game replays exactly however requests are batched. The requests
    between two reseeds (a game's) share a ``session``: a Ray pool keeps them on one replica.
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
        self.policy = serve_model(self.pool, model)
        self.sampling = sampling
        self.system_prompt = system_prompt
        self.prefill = prefill
        self.name = name or f"llm({Path(self.policy).name})"
        self.rng = np.random.default_rng(seed)
        self.session = uuid.uuid4().hex

    def seed(self, seed: int | None) -> None:
        """Start a new game: a generator of its own and a session of its own."""
        self.rng = np.random.default_rng(seed)
        self.session = uuid.uuid4().hex

    def request(self, observation: dict[str, Any]) -> GenerationRequest:
        text = observation["text"]
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages.append({"role": "user", "content": text})
        prefill = cot_prefill(observation) if self.prefill == "auto" else self.prefill
        sampling = self.sampling
        if sampling.seed is None and not sampling.greedy:
            sampling = dataclasses.replace(sampling, seed=int(self.rng.integers(2**31)))
        return GenerationRequest(self.policy, tuple(messages), sampling, prefill=prefill, session=self.session)

    async def act(self, agent: str, observation: dict[str, Any]) -> Action:
        generation = await self.pool.generate(self.request(observation))
        return Action(generation.text, generation)
