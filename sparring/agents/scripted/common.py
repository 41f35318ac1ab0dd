"""Scripted policies that fit any game."""

from __future__ import annotations

from typing import Any

from sparring.agents.base import ScriptedPolicy
from sparring.envs.spaces import Utterance


class RandomTextPolicy(ScriptedPolicy):
    """Emits random strings as ``Utterance.sample`` does: a fuzzer for parsers and judges."""

    name = "random"

    def __init__(self, seed: int | None = None, max_length: int = 64):
        super().__init__(seed)
        self.space = Utterance(sample_max_length=max_length)

    def respond(self, agent: str, observation: dict[str, Any]) -> str:
        self.space.seed(int(self.rng.integers(2**31)))
        return self.space.sample()
