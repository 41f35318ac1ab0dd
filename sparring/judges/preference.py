"""Preference oracles: P(a ≻ b | prompt), the referee of the preference game.

- :class:`TableOracle`: a fixed table over canned responses (tabular games, including
  non-transitive ones such as rock-paper-scissors preferences).
- :class:`BradleyTerryOracle`: P = σ(r(a) − r(b)) from any scalar reward.
- :class:`RuleOracle`: a transparent heuristic reward (on-topic, well-formed, concise) through
  Bradley–Terry: the CPU default, documented as a heuristic, not a judge of quality.
- :class:`PairwiseLMOracle`: a pairwise preference model served by the pool; softmax over the
  "A"/"B" next-token log-probabilities, averaged over both orderings to cancel position bias.

Every oracle has ``prefer(prompt, a, b)``; the LM oracle also ``aprefer`` for async callers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sparring.errors import ConfigError
from sparring.sync import run_sync


@runtime_checkable
class PreferenceOracle(Protocol):
    def prefer(self, prompt: str, a: str, b: str) -> float:
        """P(a ≻ b | prompt), in [0, 1]."""


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class TableOracle:
    """P(a ≻ b) read from ``table[i][j]`` where ``responses[i] == a`` and ``responses[j] == b``
    (after stripping whitespace). Responses outside the table lose to those in it and tie
    among themselves. The table must satisfy P(a ≻ b) + P(b ≻ a) = 1."""

    def __init__(self, responses: Sequence[str], table: Sequence[Sequence[float]]):
        self.responses = [r.strip() for r in responses]
        self.table = np.asarray(table, dtype=float)
        n = len(self.responses)
        if self.table.shape != (n, n):
            raise ConfigError(f"table of shape {self.table.shape} for {n} responses; it must be {n}x{n}")
        if not np.allclose(self.table + self.table.T, 1.0) or ((self.table < 0) | (self.table > 1)).any():
            raise ConfigError("table must hold probabilities with table[i][j] + table[j][i] = 1")
        self.index = {r: i for i, r in enumerate(self.responses)}

    def prefer(self, prompt: str, a: str, b: str) -> float:
        i, j = self.index.get(a.strip()), self.index.get(b.strip())
        if i is None or j is None:
            return 0.5 if i is None and j is None else (1.0 if j is None else 0.0)
        return float(self.table[i, j])


class BradleyTerryOracle:
    """P(a ≻ b) = σ((r(prompt, a) − r(prompt, b)) / temperature) for a scalar reward ``r``."""

    def __init__(self, reward: Callable[[str, str], float], temperature: float = 1.0):
        if temperature <= 0:
            raise ConfigError(f"temperature={temperature} must be > 0")
        self.reward = reward
        self.temperature = temperature

    def prefer(self, prompt: str, a: str, b: str) -> float:
        return sigmoid((self.reward(prompt, a) - self.reward(prompt, b)) / self.temperature)


_WORD = re.compile(r"[a-z]{3,}")
_STOP = frozenset("the and for with that this you your are can how what why when who which from into about "
                  "please give write explain describe tell".split())


def rule_reward(prompt: str, response: str, target_words: int = 24) -> float:
    """A heuristic reward in about [-2, 2]: twice the share of the prompt's content words that
    the response uses (on topic), minus a penalty for straying from ``target_words`` words
    (concise but not empty)."""
    prompt_words = {w for w in _WORD.findall(prompt.lower()) if w not in _STOP}
    answer_words = set(_WORD.findall(response.lower()))
    on_topic = len(prompt_words & answer_words) / max(1, len(prompt_words))
    length = abs(math.log((len(response.split()) + 1) / (target_words + 1)))
    return 2.0 * on_topic - 0.5 * length


class RuleOracle(BradleyTerryOracle):
    """Bradley–Terry over :func:`rule_reward`: transparent and cheap, a heuristic for tests and
    CPU runs (it rewards topicality and concision, not quality)."""

    def __init__(self, temperature: float = 0.5, target_words: int = 24):
        self.target_words = target_words
        super().__init__(self._reward, temperature)

    def _reward(self, prompt: str, response: str) -> float:
        return rule_reward(prompt, response, self.target_words)

    def __getstate__(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "target_words": self.target_words}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)


PAIRWISE_TEMPLATE = ("[CONTEXT] {prompt}\n[RESPONSE A] {a}\n[RESPONSE B] {b}\n"
                     "Which response is better? Answer A or B.\n")


class PairwiseLMOracle:
    """A pairwise preference LM through the pool: P(a ≻ b) is the softmax of the "A" and "B"
    continuations' log-probabilities after ``template``, averaged over both orderings."""

    awaits_model = True

    def __init__(self, pool: Any, policy: str, template: str = PAIRWISE_TEMPLATE, labels: tuple[str, str] = ("A", "B")):
        self.pool = pool
        self.policy = policy
        self.template = template
        self.labels = labels

    async def _p_first(self, prompt: str, first: str, second: str) -> float:
        text = self.template.format(prompt=prompt, a=first, b=second)
        lp_a, lp_b = await self.pool.score(self.policy, text, list(self.labels))
        return sigmoid(lp_a - lp_b)

    async def aprefer(self, prompt: str, a: str, b: str) -> float:
        import asyncio

        forward, backward = await asyncio.gather(self._p_first(prompt, a, b), self._p_first(prompt, b, a))
        return 0.5 * (forward + (1.0 - backward))

    def prefer(self, prompt: str, a: str, b: str) -> float:
        return run_sync(self.aprefer(prompt, a, b))


ORACLES: Mapping[str, Callable[[], PreferenceOracle]] = {"rule": RuleOracle}
