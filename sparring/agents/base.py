"""The policy interface every agent implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparring.errors import PolicyError, SparringError


@dataclass(frozen=True)
class Action:
    """What a policy answers: the text it emits, and (for LLM policies) the generation record
    learners need (token ids, logprobs)."""

    text: str | None
    generation: Any = None


class Policy(ABC):
    """An agent. ``act`` is async so that many games can await their agents at once while a
    shared inference pool batches the requests; scripted policies simply return."""

    name: str = "policy"

    @abstractmethod
    async def act(self, agent: str, observation: dict[str, Any]) -> Action:
        """Answer the observation of seat ``agent``."""

    def seed(self, seed: int | None) -> None:
        """Reseed the policy's own random generator (deterministic policies ignore it)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Reported(Policy):
    """``policy`` with any exception of its moves raised as a :class:`PolicyError` naming its
    ``seat`` and ``spec``: one line for a user's failing agent, where the traceback would
    mostly show the suite's rollout code."""

    def __init__(self, policy: Policy, seat: str, spec: Any):
        self.policy, self.seat, self.spec = policy, seat, spec
        self.name = policy.name

    def seed(self, seed: int | None) -> None:
        self.policy.seed(seed)

    async def act(self, agent: str, observation: dict[str, Any]) -> Action:
        try:
            return await self.policy.act(agent, observation)
        except (SparringError, KeyboardInterrupt):
            raise
        except Exception as error:
            raise PolicyError(f"the policy of seat {self.seat} ({self.spec}) raised {type(error).__name__}: "
                              f"{error}") from error

    def __repr__(self) -> str:
        return repr(self.policy)


class ScriptedPolicy(Policy):
    """A policy whose move is a plain function of the observation and its own generator.

    A tournament runs ``respond`` in a worker thread, so that its move time limit holds for
    it too; a policy bound to the thread it was built in (an ``sqlite3`` connection, signal
    handlers, thread-local state) sets ``off_loop = False`` to keep its moves on the caller's
    thread, where a move that blocks holds up every match."""

    off_loop: bool = True

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    @abstractmethod
    def respond(self, agent: str, observation: dict[str, Any]) -> str:
        """The text to emit."""

    async def act(self, agent: str, observation: dict[str, Any]) -> Action:
        return Action(self.respond(agent, observation))
