"""Exact soft (entropy-regularised) solutions of small two-player Markov games given as tables.

A :class:`TabularGame` holds a game's deterministic dynamics over enumerated states: the next
state ``next[s, a, b]`` of every joint move, each player's reward ``reward[i, s, a, b]``, whether
the move ends the game (``done``) and the distribution of first states (``start``).

The solution concepts are the ones multi-agent inverse Q-learning assumes of its experts:

- the marginal soft-Q of player i against the other's policy π₋ᵢ,
  Q̄ᵢ(s, aᵢ) = Σ_{a₋ᵢ} π₋ᵢ(a₋ᵢ|s) [rᵢ(s, a) + γ (1 − done) V̄ᵢ(s′)], with the soft value
  V̄ᵢ(s) = (1/λ) log Σ_a exp(λ Q̄ᵢ(s, a)), computed by :func:`marginal_soft_q`;
- the Boltzmann (logit) equilibrium where each πᵢ ∝ exp(λ Q̄ᵢ) against the other
  (:func:`soft_equilibrium`): every player soft-optimal in the MDP the other's policy leaves it;
- the true finite-horizon return of a policy pair (:func:`policy_return`) and the discounted
  state occupancy (:func:`occupancy`), for evaluation;
- the part of a reward that demonstrations can identify (:func:`without_shaping`): a reward
  rᵢ(s, aᵢ) and rᵢ + Φ(s) − γ E[Φ(s′)] explain a soft-rational expert equally well, so reward
  recovery is judged after projecting both rewards off the potential-shaping directions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve

from sparring.config import check
from sparring.errors import ConfigError


@dataclass(frozen=True)
class TabularGame:
    next: np.ndarray
    """``(S, A, B)`` next-state index of each joint move."""
    reward: np.ndarray
    """``(2, S, A, B)`` each player's reward."""
    done: np.ndarray
    """``(S, A, B)``: the move ends the game (the next state's value is 0)."""
    start: np.ndarray
    """``(S,)`` first-state distribution."""

    def __post_init__(self) -> None:
        s, a, b = self.next.shape
        if self.reward.shape != (2, s, a, b) or self.done.shape != (s, a, b) or self.start.shape != (s,):
            raise ConfigError(f"tabular game shapes disagree: next {self.next.shape}, reward {self.reward.shape}, "
                              f"done {self.done.shape}, start {self.start.shape}")

    @classmethod
    def from_tables(cls, tables: dict[str, np.ndarray]) -> TabularGame:
        return cls(tables["next"], tables["reward"], tables["done"], tables["start"])

    @property
    def num_states(self) -> int:
        return self.next.shape[0]

    @property
    def num_actions(self) -> tuple[int, int]:
        return self.next.shape[1], self.next.shape[2]


def soft_value(q: np.ndarray, lam: float) -> np.ndarray:
    """(1/λ) log Σ_a exp(λ q[..., a])."""
    top = q.max(axis=-1, keepdims=True)
    return (top + np.log(np.exp(lam * (q - top)).sum(axis=-1, keepdims=True)) / lam)[..., 0]


def boltzmann(q: np.ndarray, lam: float) -> np.ndarray:
    z = np.exp(lam * (q - q.max(axis=-1, keepdims=True)))
    return z / z.sum(axis=-1, keepdims=True)


def marginalise(joint: np.ndarray, player: int, other: np.ndarray) -> np.ndarray:
    """Player ``player``'s ``(S, A_i)`` expectation of a ``(S, A, B)`` table over the other's policy."""
    return np.einsum("sab,sb->sa", joint, other) if player == 0 else np.einsum("sab,sa->sb", joint, other)


def joint_backup(game: TabularGame, reward: np.ndarray, value: np.ndarray, gamma: float) -> np.ndarray:
    """rᵢ(s, a, b) + γ (1 − done) Vᵢ(next(s, a, b)) for one player's reward and value."""
    return reward + gamma * np.where(game.done, 0.0, value[game.next])


def marginal_soft_q(game: TabularGame, player: int, reward: np.ndarray, other: np.ndarray, gamma: float,
                    lam: float, tol: float = 1e-10, max_iter: int = 100_000) -> np.ndarray:
    """Player ``player``'s exact marginal soft-Q ``(S, A_i)`` for ``reward`` ``(S, A, B)`` against
    the fixed policy ``other`` ``(S, A_-i)``: soft value iteration to ``tol``."""
    value = np.zeros(game.num_states)
    for _ in range(max_iter):
        q = marginalise(joint_backup(game, reward, value, gamma), player, other)
        new = soft_value(q, lam)
        if np.abs(new - value).max() < tol:
            return q
        value = new
    raise ConfigError(f"soft value iteration did not converge in {max_iter} sweeps (gamma={gamma})")


@dataclass(frozen=True)
class SoftSolution:
    policies: tuple[np.ndarray, np.ndarray]
    """Each player's ``(S, A_i)`` Boltzmann policy."""
    q: tuple[np.ndarray, np.ndarray]
    """Each player's marginal soft-Q ``(S, A_i)`` against the other's policy."""
    value: np.ndarray
    """``(2, S)`` soft values."""
    sweeps: int


def check_soft(gamma: float, lam: float) -> None:
    """A discount in [0, 1) (soft value iteration diverges at 1 and beyond) and a rationality
    λ > 0 (λ ≤ 0 would play the worst moves, or uniformly)."""
    problems = []
    if not (isinstance(gamma, (int, float)) and 0.0 <= gamma < 1.0):
        problems.append(f"gamma={gamma!r} must lie in [0, 1)")
    if not (isinstance(lam, (int, float)) and lam > 0.0):
        problems.append(f"lam={lam!r} must be > 0 (the rationality: larger plays closer to the best move)")
    check(problems)


def soft_equilibrium(game: TabularGame, gamma: float, lam: float, tol: float = 1e-8, max_iter: int = 20_000,
                     damping: float = 0.5) -> SoftSolution:
    """The Boltzmann equilibrium: both players' policies πᵢ ∝ exp(λ Q̄ᵢ), each Q̄ᵢ the marginal
    soft-Q against the other's policy. Joint soft value iteration with damped policy updates,
    until the policies and values move by less than ``tol``."""
    check_soft(gamma, lam)
    a, b = game.num_actions
    pis = [np.full((game.num_states, a), 1 / a), np.full((game.num_states, b), 1 / b)]
    value = np.zeros((2, game.num_states))
    for sweep in range(1, max_iter + 1):
        qs = [marginalise(joint_backup(game, game.reward[i], value[i], gamma), i, pis[1 - i]) for i in range(2)]
        new_value = np.stack([soft_value(q, lam) for q in qs])
        new_pis = [(1 - damping) * boltzmann(q, lam) + damping * pi for q, pi in zip(qs, pis)]
        change = max(np.abs(new_value - value).max(), *(np.abs(n - p).max() for n, p in zip(new_pis, pis)))
        value, pis = new_value, new_pis
        if change < tol:
            qs = [marginalise(joint_backup(game, game.reward[i], value[i], gamma), i, pis[1 - i]) for i in range(2)]
            return SoftSolution((pis[0], pis[1]), (qs[0], qs[1]), value, sweep)
    raise ConfigError(f"the soft equilibrium did not converge in {max_iter} sweeps (gamma={gamma}, lambda={lam})")


def _joint_expectation(table: np.ndarray, pis: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return np.einsum("sab,sa,sb->s", table, pis[0], pis[1])


def policy_return(game: TabularGame, pis: tuple[np.ndarray, np.ndarray], horizon: int) -> np.ndarray:
    """Each player's expected undiscounted return over ``horizon`` steps from ``start``."""
    value = np.zeros((2, game.num_states))
    for _ in range(horizon):
        value = np.stack([_joint_expectation(joint_backup(game, game.reward[i], value[i], 1.0), pis)
                          for i in range(2)])
    return value @ game.start


def occupancy(game: TabularGame, pis: tuple[np.ndarray, np.ndarray], gamma: float, tol: float = 1e-12,
              max_iter: int = 100_000) -> np.ndarray:
    """The normalised discounted state occupancy (1 − γ) Σ_t γᵗ P(s_t = s) of a policy pair (the
    game's end absorbs the rest of the mass)."""
    joint = np.einsum("sa,sb->sab", pis[0], pis[1]) * ~game.done
    total = current = game.start.astype(float)
    weight = 1.0
    for _ in range(max_iter):
        nxt = np.bincount(game.next.reshape(-1), weights=(current[:, None, None] * joint).reshape(-1),
                          minlength=game.num_states)
        weight *= gamma
        current = nxt
        total = total + weight * current
        if weight * current.sum() < tol:
            return total / total.sum()
    raise ConfigError(f"the occupancy did not converge in {max_iter} steps (gamma={gamma})")


def shaping_matrix(game: TabularGame, player: int, other: np.ndarray, gamma: float) -> sparse.csr_matrix:
    """The ``(S·Aᵢ, S)`` map from a potential Φ to its shaping term Φ(s) − γ Σ_{a₋ᵢ} π₋ᵢ(a₋ᵢ|s)
    (1 − done) Φ(s′) at every (s, aᵢ) of ``player``, the other playing ``other``."""
    joint = other[:, None, :] if player == 0 else other[:, :, None]
    weights = -gamma * np.broadcast_to(joint, game.next.shape) * ~game.done
    mine = np.arange(game.num_actions[player])
    rows = game.num_actions[player] * np.arange(game.num_states)[:, None, None]
    rows = rows + (mine[None, :, None] if player == 0 else mine[None, None, :])
    size = game.num_states * game.num_actions[player]
    shaping = sparse.coo_matrix((weights.reshape(-1), (np.broadcast_to(rows, game.next.shape).reshape(-1),
                                                       game.next.reshape(-1))), shape=(size, game.num_states))
    own = sparse.coo_matrix((np.ones(size), (np.arange(size), np.repeat(np.arange(game.num_states),
                                                                          game.num_actions[player]))))
    return (shaping + own).tocsr()


def without_shaping(game: TabularGame, player: int, reward: np.ndarray, other: np.ndarray,
                    gamma: float) -> np.ndarray:
    """``reward`` ``(S, Aᵢ)`` (or a stack ``(K, S, Aᵢ)``) minus its least-squares potential-shaping
    part, uniform over every (s, aᵢ): a fixed linear projection, so two rewards that differ only
    by shaping come out equal. What is left is what a soft-rational expert's behaviour
    determines."""
    shaping = shaping_matrix(game, player, other, gamma)
    reward = np.asarray(reward, dtype=float)
    flat = reward.reshape(-1, game.num_states * game.num_actions[player]).T
    normal = (shaping.T @ shaping).tocsc() + sparse.identity(game.num_states, format="csc") * 1e-9
    phi = spsolve(normal, shaping.T @ flat).reshape(game.num_states, -1)
    return (flat - shaping @ phi).T.reshape(reward.shape)
