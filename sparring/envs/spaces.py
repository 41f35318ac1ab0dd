"""Spaces for language games.

Gymnasium's ``Text`` space only contains strings drawn from its (alphanumeric by default)
character set, so most things a language model writes would be "out of bounds". ``Utterance``
contains every Python string up to ``max_length`` characters, while its ``sample()`` still
draws short random strings (printable ASCII, the game's tag characters and some non-ASCII
letters) so random agents exercise the parsers.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import numpy as np
from gymnasium import spaces

#: What ``Utterance.sample`` draws from: printable ASCII plus a few non-ASCII characters.
SAMPLE_CHARSET = (
    "".join(chr(c) for c in range(32, 127)) + "\n\t" + "éüßçøλπΩжщ中文日本語한국어🙂…—“”"
)


class Utterance(spaces.Text):
    """Any string of at most ``max_length`` characters (the text a model may emit)."""

    def __init__(
        self,
        max_length: int = 1 << 20,
        *,
        sample_max_length: int = 64,
        seed: int | np.random.Generator | None = None,
    ):
        super().__init__(max_length, min_length=0, charset=SAMPLE_CHARSET, seed=seed)
        self.sample_max_length = min(sample_max_length, max_length)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        if mask is not None or probability is not None:
            return super().sample(mask=mask, probability=probability)
        length = int(self.np_random.integers(0, self.sample_max_length + 1))
        chars = self.character_list
        idx = self.np_random.integers(0, len(chars), size=length)
        return "".join(chars[i] for i in idx)

    def __repr__(self) -> str:
        return f"Utterance(max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Utterance) and other.max_length == self.max_length


@functools.lru_cache(maxsize=8)
def _prototype(max_length: int) -> Utterance:
    return Utterance(max_length)


def utterance(max_length: int) -> Utterance:
    """A fresh ``Utterance`` (own generator) without rebuilding its character tables: every
    env gets its own spaces, and games are made by the thousand in rollouts."""
    space = copy.copy(_prototype(max_length))
    space._np_random = None
    return space


def observation_space(max_turns: int) -> spaces.Dict:
    """The observation space shared by every language game.

    ``text`` is what the agent reads (its prompt); ``to_act`` is 1 when the env waits for this
    agent's move; ``turn`` counts resolved moves so far; ``hidden_cot`` is 1 when the game
    expects ``reasoning </think> <answer> TEXT </answer>`` (an LLM's prompt then pre-fills
    ``<think>``). PettingZoo's AEC ``api_test`` needs a ``Dict`` here: it compares dtypes, which
    a bare ``Text`` observation lacks.
    """
    return spaces.Dict(
        {
            "text": utterance(1 << 20),
            "to_act": spaces.Discrete(2),
            "turn": spaces.Discrete(max_turns + 1),
            "hidden_cot": spaces.Discrete(2),
        }
    )


def action_space(max_length: int = 1 << 16) -> Utterance:
    return utterance(max_length)
