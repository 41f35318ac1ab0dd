"""Agents a newcomer might write, named by import path in tournament tests."""

import asyncio

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
