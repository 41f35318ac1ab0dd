"""The policy interface every agent implements, and the bridge for synchronous callers."""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


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


class ScriptedPolicy(Policy):
    """A policy whose move is a plain function of the observation and its own generator."""

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    @abstractmethod
    def respond(self, agent: str, observation: dict[str, Any]) -> str:
        """The text to emit."""

    async def act(self, agent: str, observation: dict[str, Any]) -> Action:
        return Action(self.respond(agent, observation))


_local = threading.local()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from synchronous code (Gymnasium views, RLlib wrappers, a terminal)
    on this thread's own event loop. Inside a running loop, ``await`` it instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise RuntimeError("run_sync() was called inside a running event loop; await the coroutine instead")
    loop = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coro)
