"""MAMQL on a small general-sum Markov game where every quantity is exact."""

import numpy as np
import pytest

from sparring.agents.learners.mamql import (
    MAMQL,
    BehaviourCloning,
    Demonstrations,
    IndependentIQLearn,
    IRLConfig,
    env_rollout,
)
from sparring.agents.softq import (
    TabularGame,
    marginalise,
    occupancy,
    soft_equilibrium,
    without_shaping,
)
from sparring.errors import ConfigError, DataError

S, A, B, GAMMA, LAM = 4, 2, 3, 0.8, 1.0
AGENTS = ("p0", "p1")


def exact_game():
    rng = np.random.default_rng(0)
    game = TabularGame(rng.integers(S, size=(S, A, B)), rng.normal(size=(2, S, A, B)),
                       rng.random((S, A, B)) < 0.15, np.full(S, 1 / S))
    return game, soft_equilibrium(game, GAMMA, LAM, tol=1e-12)


def every_joint_move(game, solution):
    """One demonstration row per (s, a, b), weighted by the experts' exact discounted occupancy."""
    d = occupancy(game, solution.policies, GAMMA)
    rows = [(s, a, b) for s in range(S) for a in range(A) for b in range(B)]
    weights = np.array([d[s] * solution.policies[0][s, a] * solution.policies[1][s, b] for s, a, b in rows])
    eye = np.eye(S, dtype=np.float32)
    here, there = np.array([r[0] for r in rows]), np.array([game.next[r] for r in rows])
    zeros = np.zeros(len(rows))
    demos = Demonstrations(AGENTS, {a: eye[here] for a in AGENTS},
                           {"p0": np.array([r[1] for r in rows]), "p1": np.array([r[2] for r in rows])},
                           {a: zeros for a in AGENTS}, {a: eye[there] for a in AGENTS},
                           np.array([game.done[r] for r in rows]), zeros.astype(bool), zeros.astype(int))
    return demos, weights


def test_weighted_demonstrations_keep_their_weights_in_minibatches():
    """Minibatches draw the rows by their weights: the fit stays near the weighted full-batch
    one (the experts' policies), far from what the same rows unweighted give."""
    game, solution = exact_game()
    demos, weights = every_joint_move(game, solution)
    every = {a: np.eye(S, dtype=np.float32) for a in AGENTS}

    def policies(batch_size, weights):
        config = IRLConfig(gamma=GAMMA, lam=LAM, chi2_alpha=None, hidden=(), lr=0.1, steps=800,
                           batch_size=batch_size, equilibrium_iters=40)
        return MAMQL(config, AGENTS, {a: S for a in AGENTS}, {"p0": A, "p1": B}).fit(demos, weights=weights).policies(every)

    def gap(p, q):
        return max(np.abs(p[a] - q[a]).max() for a in AGENTS)

    experts = dict(zip(AGENTS, solution.policies))
    minibatched, unweighted = policies(len(demos) - 8, weights), policies(0, None)
    assert gap(minibatched, experts) < 0.1 < gap(unweighted, experts)


def shaping_residual(game, solution, player, recovered):
    """How far r̂ − r̄ is from potential shaping Φ(s) − γ E[Φ(s′)]: what is left of the gap once
    projected off the shaping directions."""
    other = solution.policies[1 - player]
    true = marginalise(game.reward[player], player, other)
    return np.abs(without_shaping(game, player, recovered - true, other, GAMMA)).max()


def test_mamql_recovers_the_exact_marginal_soft_q():
    """With exact expert occupancies, a table critic and φ(x) = x, MAMQL's policies are the
    experts', its Q̄ᵢ is the exact marginal soft-Q up to the per-state constant demonstrations
    cannot identify, and its reward is the true one up to potential shaping: all within 1e-4."""
    game, solution = exact_game()
    demos, weights = every_joint_move(game, solution)
    config = IRLConfig(gamma=GAMMA, lam=LAM, chi2_alpha=None, hidden=(), lr=0.1, steps=800, batch_size=0,
                       equilibrium_iters=40)
    learner = MAMQL(config, AGENTS, {a: S for a in AGENTS}, {"p0": A, "p1": B}).fit(demos, weights=weights)
    every = {a: np.eye(S, dtype=np.float32) for a in AGENTS}
    policies, q = learner.policies(every), learner.marginal_q(every)
    rewards = learner.recovered_reward(every, lambda a, b: {x: np.eye(S, dtype=np.float32)[game.next[:, a, b]]
                                                            for x in AGENTS}, game.done)
    for i, agent in enumerate(AGENTS):
        assert np.abs(policies[agent] - solution.policies[i]).max() < 1e-4
        gap = q[agent] - solution.q[i]
        assert np.abs(gap - gap.mean(axis=1, keepdims=True)).max() < 1e-4
        assert shaping_residual(game, solution, i, rewards[agent]) < 1e-4


def test_shaping_projection_keeps_what_behaviour_determines():
    """Projected off the shaping directions, a reward and its shaped copy agree, and so does a
    Boltzmann expert's log-policy (its reward up to the shaping Φ = −V̄) — the part a reward
    estimate must get right; an unrelated reward does not."""
    game, solution = exact_game()
    rng = np.random.default_rng(1)
    for i in range(2):
        other = solution.policies[1 - i]
        true = marginalise(game.reward[i], i, other)
        phi = rng.normal(size=S)
        shaped = true + phi[:, None] - GAMMA * marginalise(np.where(game.done, 0.0, phi[game.next]), i, other)
        base = without_shaping(game, i, true, other, GAMMA)
        assert np.abs(without_shaping(game, i, shaped, other, GAMMA) - base).max() < 1e-6
        assert np.abs(without_shaping(game, i, np.log(solution.policies[i]) / LAM, other, GAMMA) - base).max() < 1e-6
        assert np.abs(without_shaping(game, i, rng.normal(size=true.shape), other, GAMMA) - base).max() > 0.1


def test_the_chi2_regulariser_trades_exactness_for_small_residuals():
    game, solution = exact_game()
    demos, weights = every_joint_move(game, solution)
    config = IRLConfig(gamma=GAMMA, lam=LAM, chi2_alpha=0.5, hidden=(), lr=0.1, steps=400, batch_size=0,
                       equilibrium_iters=40)
    learner = MAMQL(config, AGENTS, {a: S for a in AGENTS}, {"p0": A, "p1": B}).fit(demos, weights=weights)
    policies = learner.policies({a: np.eye(S, dtype=np.float32) for a in AGENTS})
    gap = max(np.abs(policies[a] - solution.policies[i]).max() for i, a in enumerate(AGENTS))
    assert 1e-3 < gap < 0.3


def test_baselines_train_and_imitate():
    game, solution = exact_game()
    demos, weights = every_joint_move(game, solution)
    every = {a: np.eye(S, dtype=np.float32) for a in AGENTS}
    config = IRLConfig(gamma=GAMMA, lam=LAM, chi2_alpha=None, hidden=(), lr=0.1, steps=600, batch_size=0)
    for kind in (IndependentIQLearn, BehaviourCloning):
        learner = kind(config, AGENTS, {a: S for a in AGENTS}, {"p0": A, "p1": B}).fit(demos, weights=weights)
        policies = learner.policies(every)
        for i, agent in enumerate(AGENTS):
            assert np.abs(policies[agent] - solution.policies[i]).max() < 0.02, kind.__name__


def test_online_variant_trains_on_its_own_rollouts():
    from sparring.envs import make

    small = {"size": 3, "blue_gems": 1, "red_gems": 1, "purple_gems": 1, "layout_seed": 0, "horizon": 8}
    from sparring.agents import load_policy
    from sparring.agents.trajectories import record_transitions

    seats = {"blue": load_policy("gems.greedy"), "red": load_policy("gems.greedy")}
    demos = Demonstrations.from_transitions(record_transitions(lambda: make("gems-v0", parallel=True, **small),
                                                               seats, range(4)))
    config = IRLConfig(hidden=(16,), steps=30, batch_size=32, online=True, online_every=10, online_episodes=2)
    learner = MAMQL(config, demos.agents, {a: 45 for a in demos.agents}, {a: 5 for a in demos.agents})
    with pytest.raises(ConfigError, match="rollout"):
        learner.fit(demos)
    learner.fit(demos, rollout=env_rollout(lambda: make("gems-v0", parallel=True, **small), episodes=2))
    assert learner.history and np.isfinite(learner.history[-1]["loss"])


def test_demonstrations_must_be_simultaneous_and_numeric():
    from sparring.agents.trajectories import Transition

    with pytest.raises(DataError, match="empty"):
        Demonstrations.from_transitions([])
    lone = [Transition("e", 0, 0, "blue", "x", [0.0], 1, 0.0, [0.0], False),
            Transition("e", 0, 0, "red", "x", [0.0], 1, 0.0, [0.0], False),
            Transition("e", 0, 1, "blue", "x", [0.0], 1, 0.0, [0.0], True)]
    with pytest.raises(DataError, match="simultaneous"):
        Demonstrations.from_transitions(lone)
    text = [Transition("e", 0, 0, a, "x", "hello", "offer", 0.0, "bye", True) for a in ("blue", "red")]
    with pytest.raises(DataError, match="numeric"):
        Demonstrations.from_transitions(text)
    with pytest.raises(ConfigError, match="gamma"):
        IRLConfig(gamma=1.0)
