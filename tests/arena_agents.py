"""Agents a newcomer might write, named by import path in tournament tests."""

import asyncio
import time

from sparring.agents import Action, Policy, ScriptedPolicy


class SlowConstant(Policy):
    """Plays one move after a short wait (so a tournament takes long enough to be killed)."""

    def __init__(self, move: str = "rock", delay_s: float = 0.05):
        self.move = move
        self.delay_s = delay_s
        self.name = f"slow-{move}"

    async def act(self, agent, observation):
        await asyncio.sleep(self.delay_s)
        return Action(f"[{self.move}]")


class Crasher(ScriptedPolicy):
    def respond(self, agent, observation):
        raise RuntimeError("this agent has a bug")


class Sleeper(Policy):
    name = "sleeper"

    async def act(self, agent, observation):
        await asyncio.sleep(30)
        return Action("[rock]")


class CrashesOnPaper(ScriptedPolicy):
    """Plays rock, and has a bug that shows only once an opponent has played paper: it passes
    its probe game against itself and forfeits in matches (iterated games)."""

    def respond(self, agent, observation):
        if "[paper]" in observation["text"].partition("History:")[2]:
            raise RuntimeError("this agent has a bug")
        return "[rock]"


class PoolDiesOnPaper(ScriptedPolicy):
    """Plays rock until an opponent has played paper; then its inference backend fails."""

    def respond(self, agent, observation):
        if "[paper]" in observation["text"].partition("History:")[2]:
            from sparring.errors import BackendError

            raise BackendError("policy 'model': RuntimeError: CUDA out of memory")
        return "[rock]"


class Blocker(ScriptedPolicy):
    """A synchronous policy that blocks its thread on every move (it never awaits)."""

    def __init__(self, delay_s: float = 2.0, seed=None):
        super().__init__(seed)
        self.delay_s = delay_s

    def respond(self, agent, observation):
        time.sleep(self.delay_s)
        return "[rock]"
