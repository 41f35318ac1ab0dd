"""The meta-game of a tournament: agents are the strategies, match results the payoffs.

- ``scores[i, j]``: agent i's expected match score against agent j, over both seats and all
  seeds: 1 for a match won on reward, ½ for a draw, 0 for a loss, and a forfeit is a loss for
  the agent that forfeited (a win for the other), as in the ratings. Pairs that never met
  score ½ (no information, flagged in ``counts``).
- ``advantage = scores - scores.T``: the symmetric zero-sum game "who beats whom", in [-1, 1].
- Nash equilibrium of the advantage game by linear programming (open_spiel's LP solver), and
  Nash averaging (Balduzzi et al., 2018: the maximum-entropy Nash, open_spiel) with each
  agent's Nash-averaged skill.
- α-Rank (Omidshafiei et al., 2019; open_spiel) of the single-population game ``scores``.
- ``payoffs[i, j]``: agent i's mean reward against agent j over the completed matches (NaN
  where none completed), the heatmap of the report. Forfeits have no rewards, so they count
  in the scores, never here: an agent that forfeits everything is dominated in the meta-game.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sparring.arenas.store import MatchRecord


@dataclass
class MetaGame:
    agents: list[str]
    payoffs: np.ndarray
    """Mean reward of each agent (row) against each opponent (column), completed matches only."""
    counts: np.ndarray
    """Completed matches behind each payoff entry."""
    scores: np.ndarray
    """Expected match score of each agent against each opponent, forfeits as losses."""
    met: np.ndarray
    """Matches (completed or forfeited) behind each score entry."""

    @property
    def advantage(self) -> np.ndarray:
        return self.scores - self.scores.T


def payoff_matrix(agents: Sequence[str], matches: Sequence[MatchRecord]) -> MetaGame:
    from sparring.arenas.ratings import games_from_matches

    index = {a: i for i, a in enumerate(agents)}
    n = len(agents)
    total = np.zeros((n, n))
    counts = np.zeros((n, n), dtype=int)
    won = np.zeros((n, n))
    met = np.zeros((n, n), dtype=int)
    for g in games_from_matches(matches):
        i, j = index[g.a], index[g.b]
        won[i, j] += g.score
        won[j, i] += 1.0 - g.score
        met[i, j] += 1
        met[j, i] += 1
    for m in matches:
        if m.status != "done":
            continue
        present = list(dict.fromkeys(m.seats.values()))
        if len(present) == 1:
            a = present[0]
            total[index[a], index[a]] += m.agent_reward(a)  # its own seats only, not the fixed ones
            counts[index[a], index[a]] += 1
            continue
        a, b = present
        total[index[a], index[b]] += m.agent_reward(a)
        total[index[b], index[a]] += m.agent_reward(b)
        counts[index[a], index[b]] += 1
        counts[index[b], index[a]] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        payoffs = np.where(counts > 0, total / np.maximum(counts, 1), np.nan)
    scores = np.where(met > 0, won / np.maximum(met, 1), 0.5)
    np.fill_diagonal(scores, 0.5)
    return MetaGame(list(agents), payoffs, counts, scores, met)


def nash_lp(advantage: np.ndarray) -> np.ndarray:
    """A Nash equilibrium (the row player's mixture) of the zero-sum game ``advantage``."""
    import pyspiel
    from open_spiel.python.algorithms.lp_solver import solve_zero_sum_matrix_game

    game = pyspiel.create_matrix_game(advantage.tolist(), (-advantage).tolist())
    row, _, _, _ = solve_zero_sum_matrix_game(game)
    return _distribution(np.asarray(row, dtype=float).reshape(-1))


def nash_averaging(advantage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The maximum-entropy Nash of the antisymmetric ``advantage`` and each agent's
    Nash-averaged skill (its expected advantage against that mixture)."""
    import pyspiel
    from open_spiel.python.algorithms.nash_averaging import nash_averaging as maxent

    antisymmetric = (advantage - advantage.T) / 2  # exact antisymmetry, as open_spiel demands
    game = pyspiel.create_matrix_game(antisymmetric.tolist(), (-antisymmetric).tolist())
    mixture, skill = maxent(game)
    return _distribution(np.asarray(mixture, dtype=float).reshape(-1)), np.asarray(skill, dtype=float).reshape(-1)


def alpharank(payoffs: np.ndarray, alpha: float = 10.0, population: int = 50) -> np.ndarray:
    """α-Rank's stationary distribution over agents (single population, local selection) of
    the symmetric game ``payoffs`` (a tournament's: its ``scores``)."""
    from open_spiel.python.egt import alpharank as ar

    table = np.nan_to_num(payoffs)
    with np.errstate(over="ignore"):  # fixation probabilities saturate to 0 or 1 at large alpha
        _, _, pi, _, _ = ar.compute([table], m=population, alpha=alpha)
    return _distribution(np.asarray(pi, dtype=float).reshape(-1))


def _distribution(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.0, None)
    return p / p.sum() if p.sum() > 0 else np.full(len(p), 1.0 / len(p))
