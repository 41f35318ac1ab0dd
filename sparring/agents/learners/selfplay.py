"""Self-play policy gradient: the model plays every seat it is given, learns from its moves,
and pushes its new weights to the pool after each update.

One update = play ``games_per_update`` games at once through the pool (the rollout engine),
turn the learner's moves into :class:`~sparring.agents.trajectories.Sample` s, drop ties,
compute advantages (REINFORCE++ returns whitened per role, or GRPO group baselines), take one
clipped policy-gradient step per epoch with gradients accumulated over micro-batches, and
send the weights to the pool. Checkpoints and metrics go through the run module, so a killed
run resumes from its last checkpoint (see :mod:`~sparring.agents.learners.base`).

Seats: each seat is ``learner`` (the model being trained), ``reference`` (its frozen start),
any policy spec (a scripted name, ``module:Class``, an earlier checkpoint or run, served
frozen) or a list of them (a league: one drawn per game). Seats left out are the learner.

The reward is the game's, or with ``reward_model`` the one an inverse-RL run recovered from
demonstrations (inverse RL, then RL); the anchor's demonstrations are the game's own or a
recorded file's (``demonstrations``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sparring.agents.base import Policy
from sparring.agents.learners.anchor import Anchor
from sparring.agents.learners.base import LLMTrainer
from sparring.agents.learners.config import LEARNER, REFERENCE, OptimizerConfig, RunConfig
from sparring.agents.learners.losses import (
    KL_ESTIMATORS,
    clipped_policy_loss,
    group_advantages,
    kl_penalty,
    reinforce_pp_returns,
    whiten_per_group,
)
from sparring.agents.learners.mamql_run import RecoveredReward
from sparring.agents.learners.model import Batch
from sparring.agents.resolve import PolicyResolver, import_object
from sparring.agents.rollout import Episode, play_many
from sparring.agents.trajectories import (
    Sample,
    demonstrations_file,
    demonstrations_of,
    read_transitions,
    samples_from_episode,
    write_samples,
)
from sparring.config import at_least, check
from sparring.envs import Demonstration, make, spec
from sparring.errors import ConfigError, DataError
from sparring.pool import SamplingParams
from sparring.runs import checkpoint_of, pinned

ALGORITHMS = ("reinforce_pp", "grpo")


@dataclass(frozen=True)
class PolicyGradientConfig(OptimizerConfig):
    """``learner:`` of a self-play run (``configs/learner/reinforce_pp.yaml``, ``grpo.yaml``)."""

    algorithm: str = "reinforce_pp"
    """``reinforce_pp`` (KL in the reward, returns whitened per role) or ``grpo`` (group
    baselines over ``group_size`` games of one seed, KL as a loss term)."""
    kl_coef: float = 0.01
    kl_estimator: str | None = None
    """``k1``, ``k2`` or ``k3``; None: the algorithm's own (k1 in REINFORCE++'s reward, k3 in
    GRPO's loss term)."""
    clip_eps: float = 0.2
    per_role_norm: bool = True
    """Whiten advantages separately per role (False: over the whole batch; with role adapters
    each role is an adapter's batch of its own, so only true is allowed)."""
    drop_ties: bool = True
    """Leave out games the judge could not score."""
    sft_coef: float = 1.0
    """λ of the supervised anchor: each update adds λ·NLL on ``sft_batch`` of the game's
    demonstrations for the roles being learned (red-teaming: helpful answers to benign
    seeds), as Self-RedTeam's headline recipe does. 0 turns it off; games without
    demonstrations have no anchor."""
    sft_batch: int = 8

    def __post_init__(self) -> None:
        problems = self.problems()
        if self.algorithm not in ALGORITHMS:
            hint = (" (a preference learner: use the recipe train=inpo)" if self.algorithm in ("inpo", "dpo")
                    else "")
            problems.append(f"learner.algorithm={self.algorithm!r} is not a self-play learner{hint}; use one of "
                            f"{', '.join(ALGORITHMS)}")
        if self.kl_estimator is not None and self.kl_estimator not in KL_ESTIMATORS:
            problems.append(f"learner.kl_estimator={self.kl_estimator!r} is unknown; use one of {KL_ESTIMATORS}")
        problems += at_least(self, 0, "kl_coef", "sft_coef", where="learner")
        problems += at_least(self, 1, "sft_batch", where="learner")
        if not 0 < self.clip_eps < 1:
            problems.append(f"learner.clip_eps={self.clip_eps} must lie in (0, 1)")
        check(problems)


@dataclass(frozen=True)
class SelfPlayConfig(RunConfig):
    """A self-play run (``configs/train/selfplay.yaml``): who sits where, what learns, the budgets."""

    learner: PolicyGradientConfig = field(default_factory=PolicyGradientConfig)
    seats: dict[str, Any] = field(default_factory=dict)
    """Seat → ``learner``, ``reference``, a policy spec, or a list of these (a league: one
    drawn per game). Seats left out are the learner: the default is self-play."""
    learn_roles: tuple[str, ...] | None = None
    """Roles whose moves are trained on (default: every seat the learner plays)."""
    log_batch_metrics: bool = True
    """Log what the game measures of each update's games (redteam: attack diversity by
    self-BLEU, MiniLM embeddings and revision similarity; the share of distinct answers)."""
    role_adapters: bool = False
    """Each role the learner plays trains a LoRA adapter of its own on the one frozen base (a
    league of adapters, not copies; needs ``learner.lora``). Off: one set of weights plays
    every role, which can collapse toward one behaviour for all of them. A checkpoint's
    ``model/<role>/`` is then each role's adapter (e.g. ``sparring eval
    RUN/checkpoints/update-N/model/defender``)."""

    reward_model: str | None = None
    """An inverse-RL run on this game (``train=mamql_negotiation``) whose recovered reward
    replaces the game's for the learner's moves: each move earns its return under r̄
    (:class:`~sparring.agents.learners.mamql_run.RecoveredReward`). The game's own reward is
    still logged (``game_reward/<seat>``), so what the game pays stays in view. A run is
    read at its latest checkpoint, which the run's recipe records: resuming after that IRL run
    has gone on is refused, since the reward would have changed."""
    demonstrations: str | None = None
    """A ``sparring record`` file whose moves (of the roles being learned) are the supervised
    anchor's demonstrations, in place of those the game ships."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if self.role_adapters and self.learner.lora is None:
            problems.append("role_adapters=true trains one LoRA adapter per role: set learner.lora (e.g. "
                            "'learner.lora={r: 8, alpha: 16}')")
        if self.role_adapters and not self.learner.per_role_norm:
            problems.append("learner.per_role_norm=false whitens advantages over the whole batch, but role_adapters="
                            "true learns each role's moves as an adapter's batch of its own, whitened on its own: "
                            "leave per_role_norm at true, or train shared weights")
        if self.learner.algorithm == "grpo" and self.group_size < 2:
            problems.append("learner.algorithm=grpo needs group_size >= 2 (games per seed to compare)")
        if self.learner.algorithm == "grpo" and self.reward_model is not None:
            problems.append("learner.algorithm=grpo compares whole games of one seed, but reward_model= pays each move "
                            "its own return; train it with learner=reinforce_pp")
        if self.demonstrations is not None and self.learner.sft_coef == 0:
            problems.append(f"demonstrations={self.demonstrations} feeds the supervised anchor, which "
                            "learner.sft_coef=0 turns off; set learner.sft_coef > 0 or leave demonstrations out")
        agent = self.agent
        if (agent.temperature, agent.top_p, agent.top_k) != (1.0, 1.0, 0):
            problems.append(f"agent.temperature={agent.temperature}, top_p={agent.top_p}, top_k={agent.top_k}: the "
                            "learner scores its samples under the model's own distribution, so sampling from another "
                            "makes every update off-policy; train with temperature 1.0, top_p 1.0, top_k 0")
        if self.learner.algorithm == "grpo" and self.learner.kl_coef > 0 and self.learner.kl_estimator == "k1":
            problems.append("learner.kl_estimator=k1 as a loss term has no gradient in expectation, so grpo's kl_coef "
                            "would do nothing: use k3 (the default) or k2")
        check(problems)


class SelfPlayTrainer(LLMTrainer):
    title = "self-play"

    def __init__(self, cfg: SelfPlayConfig, resume: bool = False, on_update: Callable[[dict], None] | None = None):
        if cfg.reward_model is not None:  # the checkpoint of the moment: a resumed run must find the same reward
            cfg = dataclasses.replace(cfg, reward_model=str(checkpoint_of(cfg.reward_model)))
        seats = {seat: [pinned(o) for o in spec] if isinstance(spec, (list, tuple)) else pinned(spec)
                 for seat, spec in cfg.seats.items()}
        if seats != cfg.seats:  # frozen models given as runs: the checkpoints they are at now
            cfg = dataclasses.replace(cfg, seats=seats)
        agents = list(make(cfg.env["id"], **cfg.env_kwargs).possible_agents)  # checks the game's config
        self.seat_choices = _seat_choices(cfg, agents)
        self.learn_roles = _learn_roles(cfg, self.seat_choices)
        uses_reference = any(REFERENCE in options for options in self.seat_choices.values())
        self.adapters: dict[str, str] = {}
        """Role → the pool policy of its adapter (with ``role_adapters``)."""
        if cfg.role_adapters:
            seats = [a for a, options in self.seat_choices.items() if LEARNER in options]
            if sorted(seats) != sorted(self.learn_roles):
                raise ConfigError(f"role_adapters=true trains every seat the learner plays; learn_roles "
                                  f"{list(self.learn_roles)} leave out {sorted(set(seats) - set(self.learn_roles))}")
            self.adapters = {role: f"{LEARNER}-{role}" for role in self.learn_roles}
        registered = spec(cfg.env["id"]).batch_metrics
        self.batch_metrics = import_object(registered) if registered and cfg.log_batch_metrics else None
        self.title = f"{cfg.env['id']} self-play"
        super().__init__(cfg, resume, on_update, uses_reference)

    def learner_policies(self) -> dict[str, str | None]:
        if self.adapters:
            return {policy: role for role, policy in self.adapters.items()}
        return super().learner_policies()

    def prepare(self) -> None:
        self.resolver = PolicyResolver(self.pool, sampling=self.sampling)
        for seat, options in self.seat_choices.items():  # frozen opponents load (or fail) now, not mid-run
            for option in options:
                self._policy(option, seat)
        cfg = self.cfg
        demonstrations = self._demonstrations() if cfg.learner.sft_coef > 0 else []
        if self.adapters:
            by_adapter = {role: [d for d in demonstrations if d.agent == role] for role in self.learn_roles}
        else:
            by_adapter = {None: [d for d in demonstrations if d.agent in self.learn_roles]}
        self.anchors = {adapter: Anchor(demos, self.learner, self._policy(LEARNER, adapter).request,
                                        cfg.learner.sft_batch) for adapter, demos in by_adapter.items() if demos}
        """The supervised anchor of each adapter (``None``: the learner's one set of weights)."""
        if cfg.demonstrations is not None:  # a recording of the user's: play must be able to write its moves
            if not self.anchors:
                held = sorted({d.agent for d in demonstrations})
                raise DataError(f"demonstrations={cfg.demonstrations} holds moves of {held or 'no seat'}, none of the "
                                f"roles this run learns ({list(self.learn_roles)}): it would anchor nothing")
            for anchor in self.anchors.values():
                anchor.check_lengths()
        self.reward_model = None if cfg.reward_model is None else RecoveredReward(cfg.reward_model)
        if self.reward_model is not None and _game(self.reward_model.env) != _game(cfg.env):
            raise ConfigError(f"reward_model={cfg.reward_model} learned its reward on {self.reward_model.env}, not on "
                              f"this run's game {cfg.env}; train on the game it was learned on")

    def _demonstrations(self) -> list[Demonstration]:
        """The anchor's moves: the recorded file's, or the ones the game ships."""
        cfg = self.cfg
        game = make(cfg.env["id"], raw=True, **cfg.env_kwargs).game
        if cfg.demonstrations is None:
            return game.demonstrations()
        path = demonstrations_file(cfg.demonstrations)
        return demonstrations_of(read_transitions(path), bool(game.hidden_cot))

    # -- one update ------------------------------------------------------------------------------
    def step(self, update: int) -> dict[str, Any]:
        """Play one batch of games, learn from it, push the weights. Returns its metrics."""
        t0 = time.perf_counter()
        episodes, game_ids = self.rollout(update)
        learners = self.learner_policies()
        samples = []
        for episode, game_id in zip(episodes, game_ids):
            mine = [s for s in samples_from_episode(episode, game_id, self.learn_roles) if s.policy in learners]
            if self.reward_model is not None and mine:
                recovered = self.reward_model.returns(episode.turns)
                for sample in mine:
                    sample.reward = recovered[sample.turn]
                    sample.reward_terms = {**sample.reward_terms, "recovered": sample.reward}
            samples += mine
        ties = sum(s.tie for s in samples)
        if self.cfg.learner.drop_ties:
            samples = [s for s in samples if not s.tie]
        if self.cfg.save_trajectories:
            write_samples(self.run_dir.trajectory_path(update), samples)
        t1 = time.perf_counter()
        row: dict[str, Any] = {"update": update, "games": len(episodes), "samples": len(samples), "ties": ties}
        row |= rollout_stats(episodes, samples, self.learn_roles)
        if self.batch_metrics is not None:  # what the game measures of a batch (e.g. attack diversity)
            row |= self.batch_metrics([e.final_infos for e in episodes])
        if samples:
            row |= self.learn(samples, update)
            row["weights_version"] = self.push_weights()
        t2 = time.perf_counter()
        tokens = sum(len(s.completion_ids) for s in samples)
        row |= {"rollout_s": t1 - t0, "learn_s": t2 - t1, "generated_tokens_per_s": tokens / max(t1 - t0, 1e-9)}
        return row

    def rollout(self, update: int) -> tuple[list[Episode], list[str]]:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, update])
        game_seeds = np.repeat(rng.integers(2**31 - 1, size=cfg.games_per_update // cfg.group_size), cfg.group_size)
        policy_seeds = rng.integers(2**31 - 1, size=cfg.games_per_update)
        groups = cfg.games_per_update // cfg.group_size  # the games of one seed face the same opponents
        seat_draws = {a: np.repeat(rng.integers(len(o), size=groups), cfg.group_size)
                      for a, o in self.seat_choices.items()}

        def seats(index: int) -> dict[str, Policy]:
            return {agent: self._policy(options[seat_draws[agent][index]], agent)
                    for agent, options in self.seat_choices.items()}

        episodes = asyncio.run(play_many(lambda: make(cfg.env["id"], **cfg.env_kwargs), seats,
                                         [int(s) for s in game_seeds], cfg.concurrency,
                                         policy_seeds=[int(s) for s in policy_seeds]))
        return episodes, [f"u{update}-g{i}" for i in range(len(episodes))]

    def _policy(self, spec: Any, seat: str | None = None) -> Policy:
        """The policy of a seat option: the learner (the seat's own adapter, with role adapters),
        its reference and frozen models play with the recipe's sampling and system prompt,
        under the name the seat gave them."""
        if spec == LEARNER and self.adapters and seat is not None:
            spec = self.adapters[seat]
        served_model = spec in (LEARNER, REFERENCE, *self.adapters.values())
        if served_model or (isinstance(spec, str) and self.resolver.model_source(spec)):
            return self.resolver.resolve(spec, name=spec, system_prompt=self.cfg.agent.system_prompt)
        return self.resolver.resolve(spec)

    # -- learning --------------------------------------------------------------------------------
    def learn(self, samples: list[Sample], update: int = 0) -> dict[str, float]:
        """One policy-gradient step (per epoch) on ``samples``, plus the anchor's λ·NLL. With
        role adapters each role's samples train its own adapter (and its own anchor)."""
        cfg = self.cfg.learner
        if self.adapters:
            groups = {role: [s for s in samples if s.role == role] for role in self.adapters}
        else:
            groups = {None: samples}
        prepared = {adapter: self._prepare(group, adapter) for adapter, group in groups.items() if group}
        rng = np.random.default_rng([self.cfg.seed, update, 1])
        anchors = {adapter: self.anchors[adapter].draw(rng) for adapter in prepared if adapter in self.anchors}
        stats: dict[str, float] = defaultdict(float)
        tokens = {adapter: float(g.mask.sum()) for adapter, g in prepared.items()}
        # the loss and the clipped share are over all the update's tokens, whichever adapter they train
        share = {adapter: n / max(sum(tokens.values()), 1.0) for adapter, n in tokens.items()}
        for _ in range(cfg.epochs):
            self.learner.optimizer.zero_grad(set_to_none=True)
            for adapter, group in prepared.items():
                self.learner.use(adapter)
                for name, value in self._backward(group).items():
                    stats[name] += value * share[adapter]
                if adapter in anchors:
                    nll = self.anchors[adapter].loss(anchors[adapter])
                    (cfg.sft_coef * nll).backward()
                    stats["sft_nll"] += float(nll.detach()) / len(anchors)
            # each adapter (a role's own, with role adapters) is clipped by its own gradient's norm
            norms = [torch.nn.utils.clip_grad_norm_(self.learner.trained_parameters(adapter), cfg.max_grad_norm)
                     for adapter in prepared]
            self.learner.optimizer.step()
            stats["grad_norm"] += float(torch.stack(norms).square().sum().sqrt())
        stats = {k: v / cfg.epochs for k, v in stats.items()}
        sequences = sum(g.mask.shape[0] for g in prepared.values())
        stats["kl_per_sequence"] = sum(float((kl_penalty(g.old, g.ref, "k1") * g.mask).sum())
                                       for g in prepared.values()) / sequences
        gaps = [(behaviour_gap(g.samples, g.old, g.mask, self.sampling), g.mask.shape[0]) for g in prepared.values()]
        stats["behaviour_gap"] = sum(gap * n for gap, n in gaps) / sequences
        return stats

    def _prepare(self, samples: list[Sample], adapter: str | None) -> _Group:
        """A group's batch, its sampling-time and reference logprobs and its advantages, under
        the adapter in use."""
        cfg = self.cfg.learner
        group = _Group(sorted(samples, key=lambda s: len(s.input_ids), reverse=True),  # similar lengths per chunk
                       self.learner.pad_id, cfg.micro_batch_size)
        self.learner.use(adapter)
        # Dropout stays off for the whole update: the trainable passes must score the samples
        # as these passes do, so the ratio starts at 1 (as the reference trainers disable it).
        self.learner.model.eval()
        with torch.no_grad():
            for a, b in group.chunks:
                part = group.batch.rows(a, b)
                width = part.mask.shape[1]
                group.old[a:b, :width] = self.learner.logprobs(part)
                group.ref[a:b, :width] = self.learner.reference_logprobs(part)
        mask = group.mask
        rewards = torch.tensor([s.reward for s in group.samples])
        if cfg.algorithm == "grpo":
            group.advantages = group_advantages(rewards, [(s.seed, s.role) for s in group.samples],
                                                games=[s.game_id for s in group.samples]).unsqueeze(1) * mask
        else:
            kl = kl_penalty(group.old, group.ref, cfg.kl_estimator or "k1") * mask
            returns = reinforce_pp_returns(rewards, kl, mask, cfg.kl_coef)
            roles = [s.role for s in group.samples] if cfg.per_role_norm else [0] * len(group.samples)
            group.advantages = whiten_per_group(returns, mask, roles)
        return group

    def _backward(self, group: _Group) -> dict[str, float]:
        """The clipped policy loss of one group, backpropagated chunk by chunk (normalised by
        the group's tokens)."""
        cfg = self.cfg.learner
        tokens = group.mask.sum().clamp(min=1.0)
        stats = {"loss": 0.0, "clip_frac": 0.0}
        for a, b in group.chunks:
            part = group.batch.rows(a, b)
            width = part.mask.shape[1]
            logp = self.learner.logprobs(part)
            loss, info = clipped_policy_loss(logp, group.old[a:b, :width], group.advantages[a:b, :width],
                                             part.mask, cfg.clip_eps)
            if cfg.algorithm == "grpo":
                kl = kl_penalty(logp, group.ref[a:b, :width], cfg.kl_estimator or "k3")
                loss = loss + cfg.kl_coef * (kl * part.mask).sum()
            (loss / tokens).backward()
            stats["loss"] += float(loss.detach()) / float(tokens)
            stats["clip_frac"] += info["clipped_tokens"] / float(tokens)
        return stats


class _Group:
    """The samples one adapter learns from in an update, collated, with their logprobs."""

    def __init__(self, samples: list[Sample], pad_id: int, micro_batch: int):
        self.samples = samples
        self.batch = Batch.collate(samples, pad_id)
        self.mask = self.batch.mask
        self.chunks = [(i, min(i + micro_batch, len(samples))) for i in range(0, len(samples), micro_batch)]
        self.old = torch.zeros_like(self.mask)
        self.ref = torch.zeros_like(self.mask)
        self.advantages = torch.zeros_like(self.mask)


def _game(env: dict[str, Any]) -> Any:
    """A game as its id and settings, defaults filled in (two spellings of one game compare
    equal)."""
    kwargs = {k: v for k, v in env.items() if k != "id"}
    game = make(env["id"], raw=True, **kwargs).game
    settings = game.config if hasattr(game, "config") else json.loads(json.dumps(kwargs, sort_keys=True))
    return spec(env["id"]).id, settings


def _seat_choices(cfg: SelfPlayConfig, agents: list[str]) -> dict[str, list[Any]]:
    unknown = set(cfg.seats) - set(agents)
    if unknown:
        raise ConfigError(f"seats {sorted(unknown)} are not seats of {cfg.env['id']}; its seats: {agents}")
    choices = {}
    for agent in agents:
        value = cfg.seats.get(agent, LEARNER)
        options = list(value) if isinstance(value, (list, tuple)) else [value]
        if not options:
            raise ConfigError(f"seats.{agent} is an empty list; give a policy spec or a list of them")
        choices[agent] = options
    return choices


def _learn_roles(cfg: SelfPlayConfig, choices: dict[str, list[Any]]) -> tuple[str, ...]:
    learner_seats = tuple(a for a, options in choices.items() if LEARNER in options)
    roles = learner_seats if cfg.learn_roles is None else tuple(cfg.learn_roles)
    wrong = [r for r in roles if r not in learner_seats]
    if wrong:
        raise ConfigError(f"learn_roles {wrong} are not played by the learner; learner seats: {list(learner_seats)}")
    if not roles:
        raise ConfigError("no seat is played by the learner: put 'learner' in at least one seat")
    return roles


def behaviour_gap(samples: Sequence[Sample], old: torch.Tensor, mask: torch.Tensor, sampling: SamplingParams) -> float:
    """Mean |logprob at sampling time − logprob recomputed by the learner| over the generated
    tokens: ~0 when the pool serves exactly the learner's weights (NaN when the sampling was
    tempered or truncated, so the two are not comparable)."""
    if sampling.temperature != 1.0 or sampling.top_k or sampling.top_p < 1.0:
        return float("nan")
    gaps = []
    for row, sample in enumerate(samples):
        columns = mask[row].nonzero().squeeze(-1)
        gaps.append((old[row, columns] - torch.tensor(sample.logprobs)).abs())
    return float(torch.cat(gaps).mean()) if gaps else float("nan")


def rollout_stats(episodes: Sequence[Episode], samples: Sequence[Sample], roles: Sequence[str]) -> dict[str, float]:
    """Mean reward and invalid-move rate of each learning role's trained moves, and the mean
    game reward of every seat."""
    row: dict[str, float] = {}
    for role in roles:
        mine = [s for s in samples if s.role == role]
        if mine:
            row[f"reward/{role}"] = float(np.mean([s.reward for s in mine]))
            row[f"invalid/{role}"] = float(np.mean([s.invalid is not None for s in mine]))
            row[f"tokens/{role}"] = float(np.mean([len(s.completion_ids) for s in mine]))
    for agent in episodes[0].rewards if episodes else ():
        row[f"game_reward/{agent}"] = float(np.mean([e.rewards[agent] for e in episodes]))
    return row
