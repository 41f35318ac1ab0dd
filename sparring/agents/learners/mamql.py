"""Multi-agent inverse Q-learning from demonstrations (MAMQL), and its baselines.

From demonstrations of every agent of a general-sum Markov game, MAMQL learns for each agent i
a critic and, from it, a Boltzmann policy and a reward:

- the critic Qᵢ(s, aᵢ, a₋ᵢ) reads the state (agent i's observation) and scores every joint
  move; marginalised over the others' policies it gives Q̄ᵢ(s, aᵢ) = Σ π₋ᵢ(a₋ᵢ|s) Qᵢ(s, aᵢ, a₋ᵢ);
- the policy πᵢ(aᵢ|s) ∝ exp(λ Q̄ᵢ(s, aᵢ)) and the soft value V̄ᵢ(s) = (1/λ) log Σ exp(λ Q̄ᵢ);
- the IQ-Learn objective per agent, maximised: E_expert[φ(Qᵢ − γ V̄ᵢ(s′))] − E_ρ[V̄ᵢ(s) − γ V̄ᵢ(s′)]
  with φ(x) = x − x²/(4α) (the χ² regulariser; ``chi2_alpha=None`` is φ(x) = x);
- the recovered reward r̄ᵢ(s, aᵢ) = Q̄ᵢ(s, aᵢ) − γ E[V̄ᵢ(s′)].

The official code is not public; these choices are reconstructed from the paper and from
single-agent IQ-Learn, and are ours:

- **The equilibrium inside the marginalisation.** Each agent's policy depends on the others'
  (π₋ᵢ marginalises Q̄ᵢ, and π₋ᵢ itself comes from Q̄₋ᵢ). At every state the policies are the
  logit equilibrium of the one-shot game the critics define there, found by
  ``equilibrium_iters`` damped fixed-point sweeps from uniform. They are held fixed (no
  gradient) in agent i's objective: each agent best-responds to the others' current policies.
- **The expert term scores the marginal critic** at the demonstrated move, Q̄ᵢ(s, aᵢᴱ) − γ V̄ᵢ(s′),
  as the paper writes it: s′ is a sample of the averaged transition agent i faces. (Scoring
  the joint entry Qᵢ(s, aᵢᴱ, a₋ᵢᴱ) instead trains one of |A₋ᵢ| entries per sample and leaves
  the rest to the value term; measured on Gems it imitated far worse from few games.)
- **The value term.** Offline, ρ is the expert's own transitions (IQ-Learn's offline form of
  (1 − γ) E[V̄(s₀)], which needs no start-state sample). Online, ρ mixes expert transitions with
  the learner's own rollouts (half each), collected every ``online_every`` updates.
- **Time limits are not ends**: a truncated step bootstraps from V̄(s′); only a true end
  (``done``) zeroes it.
- **No target network**: V̄(s′) is the live critic's, as in IQ-Learn's default.
- Demonstrations cannot identify a reward beyond potential shaping: Q̄ᵢ is determined up to a
  per-state constant, r̄ᵢ up to Φ(s) − γ E[Φ(s′)]. The χ² term pins that freedom towards
  small Bellman residuals; with φ(x) = x and exact expert occupancies the recovered reward is
  the true one up to shaping, and the policies are the experts'.

Baselines: :class:`IndependentIQLearn` (single-agent IQ-Learn per agent: a critic Qᵢ(s, aᵢ)
that treats the others as part of the environment) and :class:`BehaviourCloning` (a softmax
policy per agent by maximum likelihood; its reward estimate is log πᵢ(aᵢ|s)).

Demonstrations come from :func:`~sparring.agents.trajectories.record_transitions` (``sparring
record``), as :class:`Demonstrations`: the simultaneous steps of every agent, joined.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from sparring.config import Config, above, at_least, check
from sparring.errors import ConfigError, DataError

METHODS = ("mamql", "iq_learn", "bc")


# -- data -------------------------------------------------------------------------------------
@dataclass
class Demonstrations:
    """Joint demonstration steps of a simultaneous-move game, as arrays (one row per step):
    each agent's observation, action, reward and next observation, whether the step ended the
    game (``done``) and whether it was a game's first (``first``)."""

    agents: tuple[str, ...]
    obs: dict[str, np.ndarray]
    actions: dict[str, np.ndarray]
    rewards: dict[str, np.ndarray]
    next_obs: dict[str, np.ndarray]
    done: np.ndarray
    first: np.ndarray
    episode: np.ndarray
    """Each row's game index (in order of first appearance)."""

    @classmethod
    def from_transitions(cls, transitions: Sequence[Any], agents: Sequence[str] | None = None) -> Demonstrations:
        """Join :class:`~sparring.agents.trajectories.Transition` rows by game and step. Every
        agent must have moved at every step (a simultaneous-move game) with a numeric
        observation and an integer action."""
        if not transitions:
            raise DataError("no demonstrations: the transition list is empty")
        agents = tuple(agents or sorted({t.agent for t in transitions}, key=[t.agent for t in transitions].index))
        steps: dict[tuple[str, int], dict[str, Any]] = {}
        for t in transitions:
            steps.setdefault((t.episode, t.step), {})[t.agent] = t
        games = {}
        rows = []
        for (episode, step), moved in steps.items():
            missing = [a for a in agents if a not in moved]
            if missing:
                raise DataError(f"demonstration {episode} step {step} has no move of {missing}: MAMQL here reads "
                                "simultaneous-move games, where every agent moves at every step")
            rows.append((games.setdefault(episode, len(games)), step, moved))
        rows.sort(key=lambda r: (r[0], r[1]))
        try:
            obs = {a: np.asarray([r[2][a].obs for r in rows], dtype=np.float32) for a in agents}
            next_obs = {a: np.asarray([r[2][a].next_obs for r in rows], dtype=np.float32) for a in agents}
            actions = {a: np.asarray([int(r[2][a].action) for r in rows], dtype=np.int64) for a in agents}
        except (TypeError, ValueError) as e:
            raise DataError(f"demonstrations need numeric observations and integer actions ({e}); a language "
                            "game's text needs an encoder first") from e
        return cls(
            agents, obs, actions,
            {a: np.asarray([r[2][a].reward for r in rows], dtype=np.float32) for a in agents}, next_obs,
            np.asarray([any(r[2][a].done for a in agents) for r in rows]),
            np.asarray([r[1] == 0 for r in rows]), np.asarray([r[0] for r in rows]),
        )

    def __len__(self) -> int:
        return len(self.done)

    @property
    def num_episodes(self) -> int:
        return int(self.episode.max()) + 1 if len(self) else 0

    def episodes(self, count: int) -> Demonstrations:
        """The first ``count`` games."""
        keep = self.episode < count
        pick = {a: v[keep] for a, v in self.obs.items()}
        return Demonstrations(self.agents, pick, {a: v[keep] for a, v in self.actions.items()},
                              {a: v[keep] for a, v in self.rewards.items()},
                              {a: v[keep] for a, v in self.next_obs.items()}, self.done[keep], self.first[keep],
                              self.episode[keep])


# -- configuration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class IRLConfig(Config):
    """The learners' settings (one config for MAMQL and its baselines, so they compare alike)."""

    gamma: float = 0.9
    lam: float = 5.0
    """Rationality λ of the Boltzmann policies (inverse temperature)."""
    chi2_alpha: float | None = 0.5
    """α of φ(x) = x − x²/(4α); None drops the regulariser (φ(x) = x)."""
    hidden: tuple[int, ...] = (128, 128)
    """Critic (or BC policy) layers; () is a linear map: a table on one-hot states."""
    lr: float = 1e-3
    """Adam's step size at the start; it decays to 0 over ``steps`` (cosine), so training ends
    settled rather than jittering around the optimum."""
    steps: int = 2000
    batch_size: int = 256
    """Rows per update; 0 uses every row (full batch)."""
    equilibrium_iters: int = 8
    """Damped fixed-point sweeps for the others' policies inside the marginalisation."""
    online: bool = False
    """Mix the learner's own rollouts into the value term (needs an env)."""
    online_every: int = 100
    online_episodes: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        problems = at_least(self, 1, "steps", "equilibrium_iters", "online_every", "online_episodes")
        problems += at_least(self, 0, "batch_size") + above(self, 0, "lam", "lr", "chi2_alpha")
        if not 0.0 <= self.gamma < 1.0:
            problems.append(f"gamma={self.gamma!r} must be in [0, 1)")
        if any(h < 1 for h in self.hidden):
            problems.append(f"hidden={list(self.hidden)} must be layer sizes >= 1")
        check(problems)


def _network(inputs: int, outputs: int, hidden: Sequence[int], zero_init: bool) -> nn.Module:
    layers: list[nn.Module] = []
    width = inputs
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    last = nn.Linear(width, outputs, bias=bool(hidden))
    if zero_init:
        nn.init.zeros_(last.weight)
    layers.append(last)
    return nn.Sequential(*layers)


def _soft_value(q: torch.Tensor, lam: float) -> torch.Tensor:
    return torch.logsumexp(lam * q, dim=-1) / lam


class _Learner(ABC):
    """What the three learners share: settings, data in tensors, the training loop, and the
    evaluation interface (policies, recovered rewards) over batches of observations."""

    method = ""

    def __init__(self, config: IRLConfig, agents: Sequence[str], obs_dims: dict[str, int],
                 num_actions: dict[str, int]):
        if len(agents) != 2:
            raise ConfigError(f"the learners here take two-agent games; got agents {list(agents)}")
        self.config = config
        self.agents = tuple(agents)
        self.obs_dims = dict(obs_dims)
        self.num_actions = dict(num_actions)
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.nets = nn.ModuleDict({a: self._build(a) for a in self.agents})
        self.optimizer = torch.optim.Adam(self.nets.parameters(), lr=config.lr)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._decay)
        self.steps_done = 0
        self.history: list[dict[str, float]] = []

    def _decay(self, step: int) -> float:
        """The step size's factor after ``step`` updates: a cosine from 1 to 0 over ``config.steps``
        (read at each update, so a resumed run with a new budget decays to its new end)."""
        return 0.5 * (1.0 + math.cos(math.pi * min(step, self.config.steps) / self.config.steps))

    def other(self, agent: str) -> str:
        return self.agents[1 - self.agents.index(agent)]

    @abstractmethod
    def _build(self, agent: str) -> nn.Module:
        """The network of ``agent`` (a critic, or BC's policy)."""

    # -- training -----------------------------------------------------------------------
    def fit(self, demos: Demonstrations, weights: np.ndarray | None = None,
            rollout: Callable[[_Learner], dict[str, np.ndarray]] | None = None) -> _Learner:
        """Train on ``demos`` until ``config.steps`` updates are done (a new learner: all of
        them). ``weights`` (one per row) turn the expectations into weighted ones (exact
        occupancies in tests); ``rollout`` (online variant) returns the learner's own
        transitions ``{obs_<agent>, next_obs_<agent>, done}``."""
        self.prepare(demos, weights, rollout)
        self.train_steps(self.config.steps)
        return self

    def prepare(self, demos: Demonstrations, weights: np.ndarray | None = None,
                rollout: Callable[[_Learner], dict[str, np.ndarray]] | None = None) -> None:
        """Hold the data (and the online rollout) that :meth:`train_steps` learns from."""
        if self.config.online and rollout is None:
            raise ConfigError("online=true needs a rollout of the learner's policies (an env)")
        self._data = self._tensors(demos)
        self._rows = len(demos)
        self._weights = None if weights is None else torch.as_tensor(np.asarray(weights) / np.sum(weights),
                                                                      dtype=torch.float32)
        self._rollout = rollout
        self._own: dict[str, torch.Tensor] | None = None

    def train_steps(self, count: int) -> dict[str, float]:
        """``count`` more updates (at most up to ``config.steps``, where the step size reaches
        0); returns the last update's logged numbers."""
        cfg = self.config
        logs: dict[str, float] = {}
        for _ in range(min(count, cfg.steps - self.steps_done)):
            step = self.steps_done
            if cfg.online and (step % cfg.online_every == 0 or self._own is None):
                self._own = {k: torch.as_tensor(v) for k, v in self._rollout(self).items()}
            if cfg.batch_size and cfg.batch_size < self._rows:
                rows = torch.as_tensor(self.rng.integers(self._rows, size=cfg.batch_size))
                batch, bw = {k: v[rows] for k, v in self._data.items()}, None
            else:
                batch, bw = self._data, self._weights
            extra = None
            if self._own is not None:
                take = torch.as_tensor(self.rng.integers(len(self._own["done"]), size=len(batch["done"])))
                extra = {k: v[take] for k, v in self._own.items()}
            loss, logs = self.loss(batch, bw, extra)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.schedule.step()
            self.steps_done += 1
            if step % 100 == 0 or step == cfg.steps - 1:
                self.history.append({"step": step, **logs})
        return logs

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: networks, optimiser, step count, generator, and the
        online variant's current rollout (plain values and tensors: loads with
        ``torch.load(weights_only=True)``)."""
        return {"nets": self.nets.state_dict(), "optimizer": self.optimizer.state_dict(),
                "steps_done": self.steps_done, "rng": self.rng.bit_generator.state, "history": self.history,
                "own": getattr(self, "_own", None)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.nets.load_state_dict(state["nets"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps_done = int(state["steps_done"])
        self.schedule.last_epoch = self.steps_done
        for group, base in zip(self.optimizer.param_groups, self.schedule.base_lrs):
            group["lr"] = base * self._decay(self.steps_done)  # the current budget's curve
        self.rng.bit_generator.state = state["rng"]
        self.history = list(state["history"])
        self._own = state.get("own")

    def load_networks(self, state: dict[str, Any]) -> None:
        """Only the networks of a :meth:`state_dict` (enough to play the learned policies)."""
        self.nets.load_state_dict(state["nets"])

    def _tensors(self, demos: Demonstrations) -> dict[str, torch.Tensor]:
        if tuple(demos.agents) != self.agents:
            raise DataError(f"demonstrations of agents {list(demos.agents)}; this learner was built for {list(self.agents)}")
        out = {"done": torch.as_tensor(demos.done, dtype=torch.float32)}
        for a in self.agents:
            out[f"obs_{a}"] = torch.as_tensor(demos.obs[a])
            out[f"next_obs_{a}"] = torch.as_tensor(demos.next_obs[a])
            out[f"action_{a}"] = torch.as_tensor(demos.actions[a])
        return out

    @abstractmethod
    def loss(self, batch: dict[str, torch.Tensor], weights: torch.Tensor | None,
             extra: dict[str, torch.Tensor] | None) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss to minimise on a batch, and numbers to log."""

    @staticmethod
    def _mean(x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        return x.mean() if weights is None else (x * weights).sum()

    def _phi(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.config.chi2_alpha
        return x if alpha is None else x - x * x / (4 * alpha)

    # -- evaluation ---------------------------------------------------------------------
    @abstractmethod
    def policies(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each agent's action probabilities ``(N, A)`` at the given observations."""

    @abstractmethod
    def recovered_reward(self, obs: dict[str, np.ndarray], next_states: Callable[[int, int], dict[str, np.ndarray]],
                         done: np.ndarray) -> dict[str, np.ndarray]:
        """Each agent's r̄ᵢ(s, aᵢ) ``(N, Aᵢ)`` at ``obs``; ``next_states(a_first, a_second)`` gives
        the observations after that joint move and ``done[N, A, B]`` whether it ends the game."""


class MAMQL(_Learner):
    """Multi-agent inverse Q-learning (see the module docstring)."""

    method = "mamql"

    def _build(self, agent: str) -> nn.Module:
        return _network(self.obs_dims[agent], self.num_actions[agent] * self.num_actions[self.other(agent)],
                        self.config.hidden, zero_init=not self.config.hidden)

    def joint_q(self, agent: str, obs: torch.Tensor) -> torch.Tensor:
        """Qᵢ(s, aᵢ, a₋ᵢ) as ``(N, Aᵢ, A₋ᵢ)``."""
        return self.nets[agent](obs).view(-1, self.num_actions[agent], self.num_actions[self.other(agent)])

    def equilibrium(self, q: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The logit equilibrium of the one-shot games ``q`` (each agent's ``(N, Aᵢ, A₋ᵢ)``):
        damped fixed-point sweeps from uniform, without gradient."""
        lam = self.config.lam
        first, second = self.agents
        qa, qb = q[first].detach(), q[second].detach()
        pa = torch.full(qa.shape[:2], 1.0 / qa.shape[1])
        pb = torch.full(qb.shape[:2], 1.0 / qb.shape[1])
        for _ in range(self.config.equilibrium_iters):
            new_a = torch.softmax(lam * torch.einsum("nab,nb->na", qa, pb), -1)
            new_b = torch.softmax(lam * torch.einsum("nba,na->nb", qb, pa), -1)
            pa, pb = 0.5 * pa + 0.5 * new_a, 0.5 * pb + 0.5 * new_b
        return {first: pa, second: pb}

    def marginal(self, agent: str, q: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nab,nb->na", q, other)

    def _state(self, obs: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        q = {a: self.joint_q(a, obs[a]) for a in self.agents}
        return q, self.equilibrium(q)

    def loss(self, batch, weights, extra):
        cfg = self.config
        now = {a: batch[f"obs_{a}"] for a in self.agents}
        after = {a: batch[f"next_obs_{a}"] for a in self.agents}
        q, pi = self._state(now)
        q_next, pi_next = self._state(after)
        keep = 1.0 - batch["done"]
        total, logs = torch.zeros(()), {}
        for a in self.agents:
            o = self.other(a)
            v = _soft_value(self.marginal(a, q[a], pi[o]), cfg.lam)
            v_next = _soft_value(self.marginal(a, q_next[a], pi_next[o]), cfg.lam)
            marginal = self.marginal(a, q[a], pi[o]).gather(1, batch[f"action_{a}"][:, None])[:, 0]
            residual = marginal - cfg.gamma * keep * v_next
            expert = self._mean(self._phi(residual), weights)
            value = self._mean(v - cfg.gamma * keep * v_next, weights)
            if extra is not None:
                value = 0.5 * value + 0.5 * self._own_value(a, extra)
            total = total - expert + value
            logs[f"residual_{a}"] = float(residual.detach().mean())
        logs["loss"] = float(total.detach())
        return total, logs

    def _own_value(self, agent: str, extra: dict[str, torch.Tensor]) -> torch.Tensor:
        cfg = self.config
        q, pi = self._state({a: extra[f"obs_{a}"] for a in self.agents})
        q_next, pi_next = self._state({a: extra[f"next_obs_{a}"] for a in self.agents})
        o = self.other(agent)
        v = _soft_value(self.marginal(agent, q[agent], pi[o]), cfg.lam)
        v_next = _soft_value(self.marginal(agent, q_next[agent], pi_next[o]), cfg.lam)
        return (v - cfg.gamma * (1.0 - extra["done"]) * v_next).mean()

    @torch.no_grad()
    def marginal_q(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each agent's Q̄ᵢ(s, ·) ``(N, Aᵢ)`` under the equilibrium of the others' policies."""
        q, pi = self._state({a: torch.as_tensor(obs[a]) for a in self.agents})
        return {a: self.marginal(a, q[a], pi[self.other(a)]).numpy() for a in self.agents}

    @torch.no_grad()
    def policies(self, obs):
        _, pi = self._state({a: torch.as_tensor(obs[a]) for a in self.agents})
        return {a: p.numpy() for a, p in pi.items()}

    @torch.no_grad()
    def recovered_reward(self, obs, next_states, done):
        return _bellman_reward(self, obs, next_states, done)


class IndependentIQLearn(_Learner):
    """Single-agent IQ-Learn for each agent: a critic Qᵢ(s, aᵢ) that treats the other agents as
    part of the environment; the same objective, settings and value term as :class:`MAMQL`."""

    method = "iq_learn"

    def _build(self, agent: str) -> nn.Module:
        return _network(self.obs_dims[agent], self.num_actions[agent], self.config.hidden,
                        zero_init=not self.config.hidden)

    def loss(self, batch, weights, extra):
        cfg = self.config
        keep = 1.0 - batch["done"]
        total, logs = torch.zeros(()), {}
        for a in self.agents:
            q = self.nets[a](batch[f"obs_{a}"])
            v, v_next = _soft_value(q, cfg.lam), _soft_value(self.nets[a](batch[f"next_obs_{a}"]), cfg.lam)
            residual = q.gather(1, batch[f"action_{a}"][:, None])[:, 0] - cfg.gamma * keep * v_next
            value = self._mean(v - cfg.gamma * keep * v_next, weights)
            if extra is not None:
                own_v = _soft_value(self.nets[a](extra[f"obs_{a}"]), cfg.lam)
                own_next = _soft_value(self.nets[a](extra[f"next_obs_{a}"]), cfg.lam)
                value = 0.5 * value + 0.5 * (own_v - cfg.gamma * (1.0 - extra["done"]) * own_next).mean()
            total = total - self._mean(self._phi(residual), weights) + value
            logs[f"residual_{a}"] = float(residual.detach().mean())
        logs["loss"] = float(total.detach())
        return total, logs

    @torch.no_grad()
    def marginal_q(self, obs):
        return {a: self.nets[a](torch.as_tensor(obs[a])).numpy() for a in self.agents}

    @torch.no_grad()
    def policies(self, obs):
        return {a: torch.softmax(self.config.lam * torch.as_tensor(q), -1).numpy()
                for a, q in self.marginal_q(obs).items()}

    @torch.no_grad()
    def recovered_reward(self, obs, next_states, done):
        return _bellman_reward(self, obs, next_states, done)


class BehaviourCloning(_Learner):
    """A softmax policy per agent fitted by maximum likelihood to the demonstrated moves. As a
    reward estimate it offers log πᵢ(aᵢ|s), the soft advantage a Boltzmann expert's policy
    reveals."""

    method = "bc"

    def _build(self, agent: str) -> nn.Module:
        return _network(self.obs_dims[agent], self.num_actions[agent], self.config.hidden, zero_init=False)

    def loss(self, batch, weights, extra):
        total, logs = torch.zeros(()), {}
        for a in self.agents:
            nll = nn.functional.cross_entropy(self.nets[a](batch[f"obs_{a}"]), batch[f"action_{a}"], reduction="none")
            total = total + self._mean(nll, weights)
        logs["loss"] = float(total.detach())
        return total, logs

    @torch.no_grad()
    def policies(self, obs):
        return {a: torch.softmax(self.nets[a](torch.as_tensor(obs[a])), -1).numpy() for a in self.agents}

    @torch.no_grad()
    def recovered_reward(self, obs, next_states, done):
        return {a: np.log(np.clip(p, 1e-12, None)) for a, p in self.policies(obs).items()}


def _bellman_reward(learner: MAMQL | IndependentIQLearn, obs, next_states, done) -> dict[str, np.ndarray]:
    """r̄ᵢ(s, aᵢ) = Q̄ᵢ(s, aᵢ) − γ Σ_{a₋ᵢ} π₋ᵢ(a₋ᵢ|s) (1 − done) V̄ᵢ(s′(aᵢ, a₋ᵢ)), the others' policy
    being the learner's own model of them."""
    cfg = learner.config
    first, second = learner.agents
    q = learner.marginal_q(obs)
    pi = learner.policies(obs)
    n, na, nb = done.shape
    v_next = {a: np.zeros((n, na, nb)) for a in learner.agents}
    for i in range(na):
        for j in range(nb):
            after = next_states(i, j)
            qn = learner.marginal_q(after)
            for a in learner.agents:
                top = qn[a].max(-1)
                v_next[a][:, i, j] = top + np.log(np.exp(cfg.lam * (qn[a] - top[:, None])).sum(-1)) / cfg.lam
    keep = ~done
    return {
        first: q[first] - cfg.gamma * np.einsum("nab,nb->na", keep * v_next[first], pi[second]),
        second: q[second] - cfg.gamma * np.einsum("nab,na->nb", keep * v_next[second], pi[first]),
    }


LEARNERS: dict[str, type[_Learner]] = {"mamql": MAMQL, "iq_learn": IndependentIQLearn, "bc": BehaviourCloning}


def build_learner(method: str, config: IRLConfig, demos: Demonstrations, num_actions: dict[str, int]) -> _Learner:
    """A learner of ``method`` (:data:`METHODS`) shaped for ``demos``."""
    if method not in LEARNERS:
        raise ConfigError(f"method={method!r} is unknown; use one of {METHODS}")
    return LEARNERS[method](config, demos.agents, {a: demos.obs[a].shape[1] for a in demos.agents}, num_actions)


def env_rollout(make_env: Callable[[], Any], episodes: int, seed: int = 0) -> Callable[[_Learner], dict[str, np.ndarray]]:
    """The online variant's rollout: ``episodes`` games of a numeric simultaneous-move Parallel
    env (``make_env()``) played by the learner's current policies, as value-term rows."""
    def rollout(learner: _Learner) -> dict[str, np.ndarray]:
        rng = np.random.default_rng((seed, learner.steps_done))  # a resumed run draws what it would have
        envs = [make_env() for _ in range(episodes)]
        obs = [e.reset(seed=int(rng.integers(1 << 31)))[0] for e in envs]
        rows: dict[str, list] = {k: [] for a in learner.agents for k in (f"obs_{a}", f"next_obs_{a}")}
        rows["done"] = []
        live = list(range(episodes))
        while live:
            batch = {a: np.stack([obs[i][a] for i in live]) for a in learner.agents}
            probs = learner.policies(batch)
            still = []
            for k, i in enumerate(live):
                moves = {a: int(rng.choice(len(probs[a][k]), p=probs[a][k] / probs[a][k].sum())) for a in learner.agents}
                following, _, terminations, _, _ = envs[i].step(moves)
                for a in learner.agents:
                    rows[f"obs_{a}"].append(obs[i][a])
                    rows[f"next_obs_{a}"].append(following[a])
                rows["done"].append(float(any(terminations.values())))
                obs[i] = following
                if envs[i].agents:
                    still.append(i)
            live = still
        return {k: np.asarray(v, dtype=np.float32) for k, v in rows.items()}

    return rollout
