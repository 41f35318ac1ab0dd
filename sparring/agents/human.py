"""A human seat: the observation is printed and the move typed in the terminal."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sparring.agents.base import Action, Policy
from sparring.envs.parsing import format_cot
from sparring.errors import ConfigError
from sparring.sync import call_in_daemon_thread


class HumanPolicy(Policy):
    """Reads moves from ``input`` (stdin by default). In hidden-CoT games it asks for private
    reasoning and the visible answer separately and writes them in the game's format, so the
    human never has to type tags. An empty line or end of input is sent as an empty move."""

    name = "human"

    def __init__(self, input_fn: Callable[[str], str] = input, output_fn: Callable[[str], None] = print):
        self.input_fn = input_fn
        self.output_fn = output_fn

    def _ask(self, prompt: str) -> str:
        try:
            return self.input_fn(prompt)
        except EOFError:
            return ""

    def _turn(self, agent: str, observation: dict[str, Any]) -> str:
        if not isinstance(observation, Mapping) or "text" not in observation:
            raise ConfigError(f"{agent}'s observations are not text ({type(observation).__name__}): a human cannot "
                              "play this game's seat; seat a policy there")
        text = observation["text"]
        self.output_fn(f"\n--- your turn ({agent}) ---\n{text}\n")
        if observation.get("hidden_cot"):
            reasoning = self._ask("your private reasoning (hidden from the others)> ")
            answer = self._ask("your answer (visible)> ")
            return format_cot(reasoning, answer)
        return self._ask("your move> ")

    async def act(self, agent: str, observation: dict[str, Any]) -> Action:
        # A daemon thread: Ctrl-C at the prompt ends the game at once (a pool thread blocked
        # on input() would hold the process until Enter).
        return Action(await call_in_daemon_thread(self._turn, agent, observation))
