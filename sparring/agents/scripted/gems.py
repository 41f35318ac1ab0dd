"""Scripted players for ``sparring/gems-v0``: the soft-rational expert whose demonstrations
MAMQL learns from, and a greedy collector.

The expert knows the true rewards: on a fixed layout it plays the Boltzmann equilibrium of
:func:`~sparring.agents.softq.soft_equilibrium` (each agent πᵢ ∝ exp(λ Q̄ᵢ), Q̄ᵢ its marginal
soft-Q against the other's policy), solved exactly over the layout's tables once per layout
and kept for the process.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from sparring.agents.base import ScriptedPolicy
from sparring.agents.softq import SoftSolution, TabularGame, check_soft, soft_equilibrium
from sparring.envs.gems import MOVES, GemsConfig, GemsGame


@functools.lru_cache(maxsize=4)
def solve_gems(config: GemsConfig, gamma: float, lam: float) -> tuple[GemsGame, TabularGame, SoftSolution]:
    """The layout's rules, tables and Boltzmann equilibrium (cached per layout and parameters)."""
    game = GemsGame(config)
    tables = TabularGame.from_tables(game.tables())
    return game, tables, soft_equilibrium(tables, gamma, lam)


class SoftExpert(ScriptedPolicy):
    """The Boltzmann-equilibrium expert of one fixed layout (its arguments are the layout's
    :class:`~sparring.envs.gems.GemsConfig` fields, a small one by default, plus the discount
    ``gamma`` and the rationality ``lam``; it samples its move unless ``greedy``)."""

    name = "gems.expert"

    def __init__(self, size: int = 5, blue_gems: int = 2, red_gems: int = 2, purple_gems: int = 2,
                 layout_seed: int = 0, gem_reward: float = 1.0, purple_reward: float = 3.0,
                 gamma: float = 0.9, lam: float = 5.0, greedy: bool = False, seed: int | None = None):
        super().__init__(seed)
        self.config = GemsConfig(size=size, blue_gems=blue_gems, red_gems=red_gems, purple_gems=purple_gems,
                                 layout_seed=layout_seed, gem_reward=gem_reward, purple_reward=purple_reward)
        check_soft(gamma, lam)
        self.gamma, self.lam, self.greedy = gamma, lam, greedy
        self.solution()  # solved (once per layout, then cached) when built, not under a move's time limit

    def solution(self) -> tuple[GemsGame, TabularGame, SoftSolution]:
        return solve_gems(self.config, self.gamma, self.lam)

    def probabilities(self, agent: str, observation: Any) -> np.ndarray:
        game, _, solution = self.solution()
        return solution.policies[game.possible_agents.index(agent)][game.state_of(agent, observation)]

    def respond(self, agent: str, observation: Any) -> str:
        p = self.probabilities(agent, observation)
        move = int(p.argmax()) if self.greedy else int(self.rng.choice(len(p), p=p / p.sum()))
        return MOVES[move]


class GreedyCollector(ScriptedPolicy):
    """Walks to the nearest gem it is paid for (its own colour or purple) and waits on purple;
    any grid size, no solving."""

    name = "gems.greedy"

    def respond(self, agent: str, observation: Any) -> str:
        planes = np.asarray(observation).reshape(5, -1)
        size = int(round(planes.shape[1] ** 0.5))
        me = int(planes[0].argmax())
        targets = np.flatnonzero((planes[2] > 0.5) | (planes[4] > 0.5))
        if len(targets) == 0 or (planes[4, me] > 0.5):
            return "stay"
        row, col = divmod(me, size)
        rows, cols = np.divmod(targets, size)
        nearest = int(np.argmin(np.abs(rows - row) + np.abs(cols - col) + 1e-3 * self.rng.random(len(targets))))
        dr, dc = rows[nearest] - row, cols[nearest] - col
        if dr and (not dc or self.rng.random() < 0.5):
            return "down" if dr > 0 else "up"
        return "right" if dc > 0 else "left"
