"""Ratings from pairwise results: Elo, OpenSkill (Plackett–Luce) and Bradley–Terry maximum
likelihood, with bootstrap intervals.

A match between two agents scores 1 for the one with the higher reward, ½ each on equal
rewards, and 0 for an agent that forfeited. Ratings replay matches in schedule order, so a
resumed tournament rates exactly like an uninterrupted one. Bradley–Terry and Elo are on the
Elo scale (400 points = 10:1 odds), centred on 1000.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sparring.arenas.store import MatchRecord

ELO_K = 16.0
BASE = 1000.0
SCALE = 400.0 / math.log(10.0)


@dataclass(frozen=True)
class Game:
    """One rated result: ``a`` scored ``score`` against ``b`` (1 win, ½ draw, 0 loss)."""

    a: str
    b: str
    score: float


@dataclass(frozen=True)
class Rating:
    value: float
    lo: float | None = None
    hi: float | None = None


def games_from_matches(matches: Sequence[MatchRecord]) -> list[Game]:
    games = []
    for m in matches:
        agents = list(dict.fromkeys(m.seats.values()))
        if len(agents) != 2:
            continue  # self-matches carry no rating information
        a, b = agents
        if m.status == "forfeit":
            score = 0.0 if m.forfeit_by == a else 1.0
        else:
            ra, rb = m.agent_reward(a), m.agent_reward(b)
            score = 1.0 if ra > rb else 0.0 if ra < rb else 0.5
        games.append(Game(a, b, score))
    return games


def elo(agents: Sequence[str], games: Sequence[Game], k: float = ELO_K) -> dict[str, float]:
    ratings = dict.fromkeys(agents, BASE)
    for g in games:
        expected = 1.0 / (1.0 + 10 ** ((ratings[g.b] - ratings[g.a]) / 400.0))
        delta = k * (g.score - expected)
        ratings[g.a] += delta
        ratings[g.b] -= delta
    return ratings


def elo_history(agents: Sequence[str], games: Sequence[Game], k: float = ELO_K) -> list[dict[str, float]]:
    """Each agent's Elo after every game (for the rating-over-matches plot)."""
    ratings = dict.fromkeys(agents, BASE)
    history = [dict(ratings)]
    for g in games:
        expected = 1.0 / (1.0 + 10 ** ((ratings[g.b] - ratings[g.a]) / 400.0))
        delta = k * (g.score - expected)
        ratings[g.a] += delta
        ratings[g.b] -= delta
        history.append(dict(ratings))
    return history


def bradley_terry(agents: Sequence[str], games: Sequence[Game], prior: float = 0.01,
                  iterations: int = 200) -> dict[str, float]:
    """Maximum-likelihood Bradley–Terry strengths (a draw counts half a win each way) with a
    weak Gaussian prior on log-strengths, so an unbeaten agent still gets a finite rating.
    Newton's method on the concave log-posterior."""
    index = {a: i for i, a in enumerate(agents)}
    n = len(agents)
    if not games:
        return dict.fromkeys(agents, BASE)
    i = np.array([index[g.a] for g in games])
    j = np.array([index[g.b] for g in games])
    s = np.array([g.score for g in games])
    theta = np.zeros(n)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(theta[j] - theta[i]))
        residual = s - p
        grad = np.bincount(i, residual, n) - np.bincount(j, residual, n) - prior * theta
        w = p * (1 - p)
        hess = np.diag(np.bincount(i, w, n) + np.bincount(j, w, n) + prior)
        np.subtract.at(hess, (i, j), w)
        np.subtract.at(hess, (j, i), w)
        step = np.linalg.solve(hess, grad)
        theta += step
        if np.max(np.abs(step)) < 1e-10:
            break
    theta -= theta.mean()
    return {a: BASE + SCALE * theta[index[a]] for a in agents}


def openskill(agents: Sequence[str], games: Sequence[Game]) -> dict[str, tuple[float, float]]:
    """OpenSkill Plackett–Luce: each agent's (mu, sigma), in OpenSkill's own units."""
    from openskill.models import PlackettLuce

    model = PlackettLuce()
    ratings = {a: model.rating(name=a) for a in agents}
    for g in games:
        ranks = [1, 1] if g.score == 0.5 else [1, 2] if g.score == 1.0 else [2, 1]
        [[ra], [rb]] = model.rate([[ratings[g.a]], [ratings[g.b]]], ranks=ranks)
        ratings[g.a], ratings[g.b] = ra, rb
    return {a: (r.mu, r.sigma) for a, r in ratings.items()}


def with_intervals(method, agents: Sequence[str], games: Sequence[Game], resamples: int, seed: int = 0,
                   level: float = 0.95, point_from_resamples: bool = False) -> dict[str, Rating]:
    """Point ratings from ``method`` plus percentile intervals over bootstrap resamples of the
    games (drawn with replacement, in a random order). ``point_from_resamples`` takes the
    point as the resamples' median instead: for Elo, whose single pass depends on the order of
    the games, that is the steadier estimate."""
    point = method(agents, games)
    if not games:
        return {a: Rating(point[a]) for a in agents}
    rng = np.random.default_rng(seed)
    draws = np.empty((resamples, len(agents)))
    for r in range(resamples):
        sample = [games[k] for k in rng.integers(len(games), size=len(games))]
        values = method(agents, sample)
        draws[r] = [values[a] for a in agents]
    tail = (1 - level) / 2 * 100
    lo, mid, hi = np.percentile(draws, [tail, 50, 100 - tail], axis=0)
    if point_from_resamples:
        point = {a: float(mid[k]) for k, a in enumerate(agents)}
    return {a: Rating(point[a], float(lo[k]), float(hi[k])) for k, a in enumerate(agents)}


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (draws count as half a success)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def win_rates(agents: Sequence[str], games: Sequence[Game]) -> dict[tuple[str, str], tuple[float, float, float, int]]:
    """(a, b) → (a's score rate against b, 95% Wilson interval low, high, games)."""
    totals: dict[tuple[str, str], list[float]] = {}
    for g in games:
        totals.setdefault((g.a, g.b), []).append(g.score)
        totals.setdefault((g.b, g.a), []).append(1.0 - g.score)
    out = {}
    for (a, b), scores in totals.items():
        lo, hi = wilson(sum(scores), len(scores))
        out[(a, b)] = (sum(scores) / len(scores), lo, hi, len(scores))
    return out
