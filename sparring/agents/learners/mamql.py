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
- **Turn-based games** (one mover per step, e.g. negotiation-v0; rows from
  :meth:`Demonstrations.from_turns`): nobody else moves at a state where agent i moves, so there
  is nothing to marginalise there. Q̄ᵢ(s, aᵢ) is the joint critic, and the others' policies enter
  only through the transition to i's next move, which the demonstrations sample. Offline,
  MAMQL and independent IQ-Learn then optimise the same objective and give the same numbers.
  Each row's legal moves (a mask from the game's move index) bound the soft value, the
  policies and BC's softmax.
- Demonstrations cannot identify a reward beyond potential shaping: Q̄ᵢ is determined up to a
  per-state constant, r̄ᵢ up to Φ(s) − γ E[Φ(s′)]. The χ² term pins that freedom towards
  small Bellman residuals; with φ(x) = x and exact expert occupancies the recovered reward is
  the true one up to shaping, and the policies are the experts'.

Baselines: :class:`IndependentIQLearn` (single-agent IQ-Learn per agent: a critic Qᵢ(s, aᵢ)
that treats the others as part of the environment) and :class:`BehaviourCloning` (a softmax
policy per agent by maximum likelihood; its reward estimate is log πᵢ(aᵢ|s)).

Demonstrations come from :func:`~sparring.agents.trajectories.record_transitions` (``sparring
record``), as :class:`Demonstrations`: the simultaneous steps of every agent, joined, or a
turn-based language game's moves with their text read through an embedder.
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
    """Demonstration steps as arrays, one row per step: each agent's observation, action, reward
    and next observation, whether the step ended the game (``done``) and whether it was the
    agent's first in its game (``first``). A simultaneous-move game's rows join every agent's
    step (:meth:`from_transitions`); a turn-based game's hold one mover each (:meth:`from_turns`)."""

    agents: tuple[str, ...]
    obs: dict[str, np.ndarray]
    actions: dict[str, np.ndarray]
    rewards: dict[str, np.ndarray]
    next_obs: dict[str, np.ndarray]
    done: np.ndarray
    first: np.ndarray
    episode: np.ndarray
    """Each row's game index (in order of first appearance)."""
    legal: dict[str, np.ndarray] | None = None
    """Each agent's legal moves at ``obs`` (``bool``, ``(N, A)``); None: every move, always."""
    next_legal: dict[str, np.ndarray] | None = None
    """The same at ``next_obs``."""
    acts: dict[str, np.ndarray] | None = None
    """Whether each agent moved at each row (``bool``, ``(N,)``). None: every agent at every row,
    a simultaneous-move game; in a turn-based game's rows one agent moves."""
    skipped: int = 0
    """Demonstrated moves left out because they were not moves of the game (invalid outputs)."""

    @property
    def turn_based(self) -> bool:
        return self.acts is not None

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

    @classmethod
    def from_turns(cls, transitions: Sequence[Any], embed: Callable[[list[str]], np.ndarray], moves: Any,
                   agents: Sequence[str] | None = None) -> Demonstrations:
        """Rows of a turn-based language game, one per move: the mover's observation text
        read through ``embed`` (texts → feature rows, e.g.
        :func:`~sparring.judges.embedding.minilm_embedder`), its move as an index of ``moves``
        (``len(moves)``, ``moves.index(obs, output)`` → index or None, ``moves.legal(obs)`` →
        mask; e.g. :class:`~sparring.envs.negotiation.MoveIndex`), and the observation at its
        next move (a transition of :func:`~sparring.agents.trajectories.record_episode`). The
        other agent waits in that row. Outputs that make no valid move are left out
        (``skipped``)."""
        if not transitions:
            raise DataError("no demonstrations: the transition list is empty")
        if not all(isinstance(t.obs, str) and isinstance(t.next_obs, str) for t in transitions):
            raise DataError("from_turns reads a language game's text observations; numeric games' demonstrations "
                            "go through Demonstrations.from_transitions")
        agents = tuple(agents or sorted({t.agent for t in transitions}, key=[t.agent for t in transitions].index))
        order: dict[str, int] = {}
        kept, skipped, seen = [], 0, set()
        for t in sorted(transitions, key=lambda t: (order.setdefault(t.episode, len(order)), t.step)):
            if t.agent not in agents:
                raise DataError(f"demonstration {t.episode} has a move of {t.agent!r}, not one of {list(agents)}")
            index = moves.index(t.obs, str(t.action))
            if index is None:
                skipped += 1
                continue
            kept.append((t, index, (t.episode, t.agent) not in seen))
            seen.add((t.episode, t.agent))
        games: dict[str, int] = {}  # numbered over the games with a move kept, so episodes(n) gives n
        for t, _, _ in kept:
            games.setdefault(t.episode, len(games))
        if not kept:
            raise DataError(f"none of the {len(transitions)} demonstrated outputs makes a valid move of the game")
        texts = sorted({x for t, _, _ in kept for x in (t.obs, t.next_obs)})
        features = np.asarray(embed(texts), dtype=np.float32)
        row_of = {text: i for i, text in enumerate(texts)}
        legal_of = {text: np.asarray(moves.legal(text), dtype=bool) for text in texts}
        mover = np.array([t.agent for t, _, _ in kept])
        obs, next_obs, actions, rewards, legal, next_legal, acts = {}, {}, {}, {}, {}, {}, {}
        for a in agents:
            mine = mover == a
            acts[a] = mine
            obs[a] = np.where(mine[:, None], features[[row_of[t.obs] for t, _, _ in kept]], 0.0).astype(np.float32)
            next_obs[a] = np.where(mine[:, None], features[[row_of[t.next_obs] for t, _, _ in kept]],
                                   0.0).astype(np.float32)
            actions[a] = np.where(mine, [i for _, i, _ in kept], 0).astype(np.int64)
            rewards[a] = np.where(mine, [t.reward for t, _, _ in kept], 0.0).astype(np.float32)
            # A waiting agent's row allows every move (its terms are masked out by ``acts``).
            legal[a] = np.where(mine[:, None], [legal_of[t.obs] for t, _, _ in kept], True)
            next_legal[a] = np.where(mine[:, None], [legal_of[t.next_obs] for t, _, _ in kept], True)
        bad = [t for t, i, _ in kept if not legal_of[t.obs][i]]
        if bad:
            raise DataError(f"demonstration {bad[0].episode} step {bad[0].step}: the move is not legal at its "
                            "observation by moves.legal; the move index and the game disagree")
        return cls(agents, obs, actions, rewards, next_obs, np.array([t.done for t, _, _ in kept]),
                   np.array([first for _, _, first in kept]), np.array([games[t.episode] for t, _, _ in kept]),
                   legal, next_legal, acts, skipped)

    def __len__(self) -> int:
        return len(self.done)

    @property
    def num_episodes(self) -> int:
        return int(self.episode.max()) + 1 if len(self) else 0

    def episodes(self, count: int) -> Demonstrations:
        """The first ``count`` games."""
        keep = self.episode < count

        def pick(per_agent: dict[str, np.ndarray] | None) -> dict[str, np.ndarray] | None:
            return None if per_agent is None else {a: v[keep] for a, v in per_agent.items()}

        return Demonstrations(self.agents, pick(self.obs), pick(self.actions), pick(self.rewards),
                              pick(self.next_obs), self.done[keep], self.first[keep], self.episode[keep],
                              pick(self.legal), pick(self.next_legal), pick(self.acts), self.skipped)


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


_ILLEGAL = -1e9
"""The logit of an illegal move (finite, so that masked-out terms stay free of NaN)."""


def _masked(logits: torch.Tensor, legal: torch.Tensor | None) -> torch.Tensor:
    """``logits`` (already scaled by λ) with the illegal moves' set to :data:`_ILLEGAL`."""
    return logits if legal is None else logits.masked_fill(~legal, _ILLEGAL)


def _soft_value(q: torch.Tensor, lam: float, legal: torch.Tensor | None = None) -> torch.Tensor:
    """V = (1/λ) log Σ over the legal moves of exp(λ q)."""
    return torch.logsumexp(_masked(lam * q, legal), dim=-1) / lam


class _Learner(ABC):
    """What the three learners share: settings, data in tensors, the training loop, and the
    evaluation interface (policies, recovered rewards) over batches of observations."""

    method = ""

    def __init__(self, config: IRLConfig, agents: Sequence[str], obs_dims: dict[str, int],
                 num_actions: dict[str, int], turn_based: bool = False):
        if len(agents) != 2:
            raise ConfigError(f"the learners here take two-agent games; got agents {list(agents)}")
        self.config = config
        self.turn_based = turn_based
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
        if demos.turn_based != self.turn_based:
            raise DataError(f"{'turn-based' if demos.turn_based else 'simultaneous-move'} demonstrations for a "
                            f"learner built for {'turn-based' if self.turn_based else 'simultaneous-move'} games")
        if self.config.online and self.turn_based:
            raise ConfigError("online=true rolls out simultaneous-move numeric games; learn a turn-based "
                              "game's demonstrations offline")
        self._data = self._tensors(demos)
        self._rows = len(demos)
        self._row_p = None if weights is None else np.asarray(weights, dtype=np.float64) / np.sum(weights)
        self._weights = None if self._row_p is None else torch.as_tensor(self._row_p, dtype=torch.float32)
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
            if cfg.batch_size and cfg.batch_size < self._rows:  # weighted rows: drawn by their weights
                rows = torch.as_tensor(self.rng.integers(self._rows, size=cfg.batch_size) if self._row_p is None
                                       else self.rng.choice(self._rows, size=cfg.batch_size, p=self._row_p))
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
            for name, per_agent in (("legal", demos.legal), ("next_legal", demos.next_legal), ("acts", demos.acts)):
                if per_agent is not None:
                    out[f"{name}_{a}"] = torch.as_tensor(per_agent[a], dtype=torch.bool)
        return out

    @abstractmethod
    def loss(self, batch: dict[str, torch.Tensor], weights: torch.Tensor | None,
             extra: dict[str, torch.Tensor] | None) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss to minimise on a batch, and numbers to log."""

    @staticmethod
    def _mean(x: torch.Tensor, weights: torch.Tensor | None, acts: torch.Tensor | None = None) -> torch.Tensor:
        """The (weighted) mean of ``x`` over the rows where the agent moved (``acts``)."""
        if acts is None:
            return x.mean() if weights is None else (x * weights).sum()
        w = (torch.full_like(x, 1.0 / len(x)) if weights is None else weights) * acts
        return (x * w).sum() / w.sum().clamp(min=1e-12)

    def _phi(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.config.chi2_alpha
        return x if alpha is None else x - x * x / (4 * alpha)

    # -- evaluation ---------------------------------------------------------------------
    @abstractmethod
    def policies(self, obs: dict[str, np.ndarray], legal: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Each agent's action probabilities ``(N, A)`` at the given observations, over the
        ``legal`` moves (each agent's ``bool`` mask ``(N, A)``; None: every move)."""

    @abstractmethod
    def recovered_reward(self, obs: dict[str, np.ndarray], next_states: Callable[[int, int], dict[str, np.ndarray]],
                         done: np.ndarray) -> dict[str, np.ndarray]:
        """Each agent's r̄ᵢ(s, aᵢ) ``(N, Aᵢ)`` at ``obs``; ``next_states(a_first, a_second)`` gives
        the observations after that joint move and ``done[N, A, B]`` whether it ends the game."""


class MAMQL(_Learner):
    """Multi-agent inverse Q-learning (see the module docstring)."""

    method = "mamql"

    def partner_moves(self, agent: str) -> int:
        """How many moves of the other agent the critic of ``agent`` scores: all of them in a
        simultaneous-move game; one (it waits) in a turn-based game, where nobody else moves
        at the state ``agent`` moves at, so the joint critic is the marginal one."""
        return 1 if self.turn_based else self.num_actions[self.other(agent)]

    def _build(self, agent: str) -> nn.Module:
        return _network(self.obs_dims[agent], self.num_actions[agent] * self.partner_moves(agent),
                        self.config.hidden, zero_init=not self.config.hidden)

    def joint_q(self, agent: str, obs: torch.Tensor) -> torch.Tensor:
        """Qᵢ(s, aᵢ, a₋ᵢ) as ``(N, Aᵢ, A₋ᵢ)``."""
        return self.nets[agent](obs).view(-1, self.num_actions[agent], self.partner_moves(agent))

    def equilibrium(self, q: dict[str, torch.Tensor],
                    legal: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The logit equilibrium of the one-shot games ``q`` (each agent's ``(N, Aᵢ, A₋ᵢ)``) over
        the legal moves: damped fixed-point sweeps from uniform, without gradient. In a
        turn-based game each policy is the Boltzmann policy of its own critic."""
        lam = self.config.lam
        legal = legal or {}
        if self.turn_based:
            return {a: torch.softmax(_masked(lam * q[a].detach()[..., 0], legal.get(a)), -1) for a in self.agents}
        first, second = self.agents
        qa, qb = q[first].detach(), q[second].detach()
        pa = torch.softmax(_masked(torch.zeros(qa.shape[:2]), legal.get(first)), -1)
        pb = torch.softmax(_masked(torch.zeros(qb.shape[:2]), legal.get(second)), -1)
        for _ in range(self.config.equilibrium_iters):
            new_a = torch.softmax(_masked(lam * torch.einsum("nab,nb->na", qa, pb), legal.get(first)), -1)
            new_b = torch.softmax(_masked(lam * torch.einsum("nba,na->nb", qb, pa), legal.get(second)), -1)
            pa, pb = 0.5 * pa + 0.5 * new_a, 0.5 * pb + 0.5 * new_b
        return {first: pa, second: pb}

    def marginal(self, agent: str, q: torch.Tensor, pi: dict[str, torch.Tensor]) -> torch.Tensor:
        """Q̄ᵢ(s, ·) ``(N, Aᵢ)``: agent i's critic weighted by the others' policies ``pi``."""
        if self.turn_based:
            return q[..., 0]
        return torch.einsum("nab,nb->na", q, pi[self.other(agent)])

    def _state(self, obs: dict[str, torch.Tensor], legal: dict[str, torch.Tensor] | None = None
               ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Each agent's marginal critic Q̄ᵢ and policy at ``obs``."""
        q = {a: self.joint_q(a, obs[a]) for a in self.agents}
        pi = self.equilibrium(q, legal)
        return {a: self.marginal(a, q[a], pi) for a in self.agents}, pi

    def loss(self, batch, weights, extra):
        cfg = self.config
        legal = _masks(batch, "legal", self.agents)
        next_legal = _masks(batch, "next_legal", self.agents)
        q, _ = self._state({a: batch[f"obs_{a}"] for a in self.agents}, legal)
        q_next, _ = self._state({a: batch[f"next_obs_{a}"] for a in self.agents}, next_legal)
        keep = 1.0 - batch["done"]
        total, logs = torch.zeros(()), {}
        for a in self.agents:
            acts = batch.get(f"acts_{a}")
            v = _soft_value(q[a], cfg.lam, legal.get(a))
            v_next = _soft_value(q_next[a], cfg.lam, next_legal.get(a))
            residual = q[a].gather(1, batch[f"action_{a}"][:, None])[:, 0] - cfg.gamma * keep * v_next
            expert = self._mean(self._phi(residual), weights, acts)
            value = self._mean(v - cfg.gamma * keep * v_next, weights, acts)
            if extra is not None:
                value = 0.5 * value + 0.5 * self._own_value(a, extra)
            total = total - expert + value
            logs[f"residual_{a}"] = float(self._mean(residual.detach(), None, acts))
        logs["loss"] = float(total.detach())
        return total, logs

    def _own_value(self, agent: str, extra: dict[str, torch.Tensor]) -> torch.Tensor:
        cfg = self.config
        q, _ = self._state({a: extra[f"obs_{a}"] for a in self.agents})
        q_next, _ = self._state({a: extra[f"next_obs_{a}"] for a in self.agents})
        v, v_next = _soft_value(q[agent], cfg.lam), _soft_value(q_next[agent], cfg.lam)
        return (v - cfg.gamma * (1.0 - extra["done"]) * v_next).mean()

    @torch.no_grad()
    def marginal_q(self, obs: dict[str, np.ndarray], legal: dict[str, np.ndarray] | None = None
                   ) -> dict[str, np.ndarray]:
        """Each agent's Q̄ᵢ(s, ·) ``(N, Aᵢ)`` under the equilibrium of the others' policies."""
        q, _ = self._state(_tensors(obs), _tensors(legal, torch.bool))
        return {a: v.numpy() for a, v in q.items()}

    @torch.no_grad()
    def policies(self, obs, legal=None):
        _, pi = self._state(_tensors(obs), _tensors(legal, torch.bool))
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
        legal, next_legal = _masks(batch, "legal", self.agents), _masks(batch, "next_legal", self.agents)
        total, logs = torch.zeros(()), {}
        for a in self.agents:
            acts = batch.get(f"acts_{a}")
            q = self.nets[a](batch[f"obs_{a}"])
            v = _soft_value(q, cfg.lam, legal.get(a))
            v_next = _soft_value(self.nets[a](batch[f"next_obs_{a}"]), cfg.lam, next_legal.get(a))
            residual = q.gather(1, batch[f"action_{a}"][:, None])[:, 0] - cfg.gamma * keep * v_next
            value = self._mean(v - cfg.gamma * keep * v_next, weights, acts)
            if extra is not None:
                own_v = _soft_value(self.nets[a](extra[f"obs_{a}"]), cfg.lam)
                own_next = _soft_value(self.nets[a](extra[f"next_obs_{a}"]), cfg.lam)
                value = 0.5 * value + 0.5 * (own_v - cfg.gamma * (1.0 - extra["done"]) * own_next).mean()
            total = total - self._mean(self._phi(residual), weights, acts) + value
            logs[f"residual_{a}"] = float(self._mean(residual.detach(), None, acts))
        logs["loss"] = float(total.detach())
        return total, logs

    @torch.no_grad()
    def marginal_q(self, obs, legal=None):
        return {a: self.nets[a](torch.as_tensor(obs[a])).numpy() for a in self.agents}

    @torch.no_grad()
    def policies(self, obs, legal=None):
        masks = _tensors(legal, torch.bool) or {}
        return {a: torch.softmax(_masked(self.config.lam * torch.as_tensor(q), masks.get(a)), -1).numpy()
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
        legal = _masks(batch, "legal", self.agents)
        total, logs = torch.zeros(()), {}
        for a in self.agents:
            logits = _masked(self.nets[a](batch[f"obs_{a}"]), legal.get(a))
            nll = nn.functional.cross_entropy(logits, batch[f"action_{a}"], reduction="none")
            total = total + self._mean(nll, weights, batch.get(f"acts_{a}"))
        logs["loss"] = float(total.detach())
        return total, logs

    @torch.no_grad()
    def policies(self, obs, legal=None):
        masks = _tensors(legal, torch.bool) or {}
        return {a: torch.softmax(_masked(self.nets[a](torch.as_tensor(obs[a])), masks.get(a)), -1).numpy()
                for a in self.agents}

    @torch.no_grad()
    def recovered_reward(self, obs, next_states, done):
        _simultaneous_only(self)
        return {a: np.log(np.clip(p, 1e-12, None)) for a, p in self.policies(obs).items()}


def _simultaneous_only(learner: _Learner) -> None:
    if learner.turn_based:
        raise ConfigError("recovered_reward enumerates joint moves of a simultaneous-move game; in a turn-based game "
                          "score r̄ᵢ(s, aᵢ) = Q̄ᵢ(s, aᵢ) − γ V̄ᵢ(s′) at the observed next states (marginal_q with "
                          "legal masks)")


def _masks(batch: dict[str, torch.Tensor], name: str, agents: Sequence[str]) -> dict[str, torch.Tensor]:
    return {a: batch[f"{name}_{a}"] for a in agents if f"{name}_{a}" in batch}


def _tensors(arrays: dict[str, np.ndarray] | None, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor] | None:
    return None if arrays is None else {a: torch.as_tensor(np.asarray(v), dtype=dtype) for a, v in arrays.items()}


def _bellman_reward(learner: MAMQL | IndependentIQLearn, obs, next_states, done) -> dict[str, np.ndarray]:
    """r̄ᵢ(s, aᵢ) = Q̄ᵢ(s, aᵢ) − γ Σ_{a₋ᵢ} π₋ᵢ(a₋ᵢ|s) (1 − done) V̄ᵢ(s′(aᵢ, a₋ᵢ)), the others' policy
    being the learner's own model of them."""
    _simultaneous_only(learner)
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
    return LEARNERS[method](config, demos.agents, {a: demos.obs[a].shape[1] for a in demos.agents}, num_actions,
                            turn_based=demos.turn_based)


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
