"""Scripted policies that fit any game, and the strategies of discrete views."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sparring.agents.base import ScriptedPolicy
from sparring.envs.parsing import answer_in_format
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


_REQUEST = re.compile(r"^Request: (.*)$", re.MULTILINE)


class CannedPolicy(ScriptedPolicy):
    """A fixed answer, with ``{request}`` filled from the observation's ``Request:`` line, in
    the hidden-CoT format whenever the game asks for it."""

    def __init__(self, name: str, answer: str, reasoning: str, seed: int | None = None):
        super().__init__(seed)
        self.name, self.answer, self.reasoning = name, answer, reasoning

    def respond(self, agent: str, observation: dict[str, Any]) -> str:
        found = _REQUEST.search(observation["text"])
        request = found.group(1).strip().rstrip("?.!") if found else "your question"
        answer = self.answer.format(request=request[:1].lower() + request[1:])
        return answer_in_format(observation, self.reasoning, answer)


@dataclass(frozen=True)
class Strategy:
    """One action of a game's discrete view: a scripted policy that writes the move as text,
    so every strategy is a move any text agent could have made."""

    name: str
    policy: ScriptedPolicy

    def render(self, agent: str, observation: dict[str, Any]) -> str:
        return self.policy.respond(agent, dict(observation))
