"""Supervised fine-tuning on recorded games: behaviour cloning of an LLM policy.

``sparring train train=sft demonstrations=FILE`` teaches the model to write what the
demonstrators wrote: the moves of ``learn_roles`` in a ``sparring record`` file of a language
game (:func:`~sparring.agents.trajectories.demonstrations_of`), each prompted exactly as the
policy is prompted in play (:class:`~sparring.agents.learners.anchor.Anchor`). One update takes
``learner.steps_per_update`` optimiser steps on ``learner.batch_size`` moves each, drawn from a
generator seeded by the update (a resumed run draws what the killed one would have), and
pushes the weights to the pool. The file's last ``heldout_games`` games are never trained on:
their mean NLL per completion token is logged each update (``nll/heldout``) next to the
training batches' (``nll/train``), so over-fitting shows.

It shares the run directory, checkpoints and pool of every LLM trainer
(:mod:`~sparring.agents.learners.base`): the result plays as any checkpoint does
(``{policy: llm, model: RUN}``) and is a starting point for RL (``agent.model=RUN``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sparring.agents.learners.anchor import Anchor
from sparring.agents.learners.base import LLMTrainer
from sparring.agents.learners.config import LEARNER, OptimizerConfig, RunConfig
from sparring.agents.resolve import PolicyResolver
from sparring.agents.trajectories import demonstrations_file, demonstrations_of, read_transitions
from sparring.config import at_least, check
from sparring.envs import make
from sparring.errors import ConfigError, DataError


@dataclass(frozen=True)
class SFTLearnerConfig(OptimizerConfig):
    """``learner:`` of a supervised run."""

    algorithm: str = "sft"
    batch_size: int = 16
    """Demonstrated moves per optimiser step."""
    steps_per_update: int = 20
    """Optimiser steps per update (``epochs`` plays no part: batches are drawn afresh)."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if self.algorithm != "sft":
            problems.append(f"learner.algorithm={self.algorithm!r}: the supervised recipe (train=sft) learns by "
                            "algorithm sft; self-play learners run with train=selfplay")
        problems += at_least(self, 1, "batch_size", "steps_per_update", where="learner")
        check(problems)


@dataclass(frozen=True)
class SFTConfig(RunConfig):
    """A supervised run (``configs/train/sft.yaml``): the game the file was recorded in, the
    file, whose moves to learn and how many games to hold out. ``games_per_update``,
    ``group_size`` and ``concurrency`` play no part: nothing is played."""

    learner: SFTLearnerConfig = field(default_factory=SFTLearnerConfig)
    demonstrations: str = ""
    """A ``sparring record`` file (``.jsonl`` or ``.parquet``) of a language game."""
    learn_roles: tuple[str, ...] | None = None
    """Whose moves to learn (default: every agent's)."""
    max_episodes: int | None = None
    """Learn from the file's first N games (None: all but the held-out ones)."""
    heldout_games: int = 0
    """The file's last games, kept out of training to measure the NLL on (0: none)."""
    run_dir: str = "runs/sft"

    def __post_init__(self) -> None:
        problems = self.problems()
        if not self.demonstrations:
            problems.append("demonstrations= is empty: give the file `sparring record` wrote")
        problems += at_least(self, 0, "heldout_games") + at_least(self, 1, "max_episodes")
        check(problems)


class SFTTrainer(LLMTrainer):
    title = "supervised fine-tuning"
    curve = "nll/"

    def prepare(self) -> None:
        cfg = self.cfg
        path = demonstrations_file(cfg.demonstrations)
        env = make(cfg.env["id"], raw=True, **cfg.env_kwargs)
        agents = list(env.possible_agents)
        roles = agents if cfg.learn_roles is None else list(cfg.learn_roles)
        wrong = sorted(set(roles) - set(agents))
        if wrong:
            raise ConfigError(f"learn_roles {wrong} are not seats of {cfg.env['id']}; its seats: {agents}")
        rows = read_transitions(path)
        games = list(dict.fromkeys(t.episode for t in rows))
        if cfg.heldout_games >= len(games):
            raise ConfigError(f"heldout_games={cfg.heldout_games} leaves none of {path}'s {len(games)} games to "
                              "train on")
        held = set(games[len(games) - cfg.heldout_games:]) if cfg.heldout_games else set()
        training = [g for g in games if g not in held][: cfg.max_episodes]
        chosen = set(training)
        hidden_cot = bool(env.game.hidden_cot)
        train_demos = demonstrations_of([t for t in rows if t.episode in chosen], hidden_cot, roles)
        held_demos = demonstrations_of([t for t in rows if t.episode in held], hidden_cot, roles)
        if not train_demos:
            raise DataError(f"{path}: no valid move of {roles} to learn from in the training games")
        policy = PolicyResolver(self.pool, sampling=self.sampling).resolve(
            LEARNER, name=LEARNER, system_prompt=cfg.agent.system_prompt)
        self.train_set = Anchor(train_demos, self.learner, policy.request, cfg.learner.batch_size)
        self.train_set.check_lengths()
        self.heldout = Anchor(held_demos, self.learner, policy.request, cfg.learner.micro_batch_size) \
            if held_demos else None
        self.sizes = {"train_moves": len(train_demos), "heldout_moves": len(held_demos)}

    def step(self, update: int) -> dict[str, Any]:
        cfg = self.cfg.learner
        rng = np.random.default_rng([self.cfg.seed, update])
        train_nll, grad_norm = 0.0, 0.0
        for _ in range(cfg.steps_per_update):
            batch = self.train_set.draw(rng)
            self.learner.optimizer.zero_grad(set_to_none=True)
            tokens = batch.mask.sum().clamp(min=1.0)
            for a in range(0, batch.mask.shape[0], cfg.micro_batch_size):  # gradients summed over micro-batches
                part = batch.rows(a, min(a + cfg.micro_batch_size, batch.mask.shape[0]))
                nll = -(self.learner.logprobs(part) * part.mask).sum() / tokens
                nll.backward()
                train_nll += float(nll.detach())
            grad_norm += float(torch.nn.utils.clip_grad_norm_(
                [p for p in self.learner.model.parameters() if p.grad is not None], cfg.max_grad_norm))
            self.learner.optimizer.step()
        row: dict[str, Any] = {"nll/train": train_nll / cfg.steps_per_update,
                               "grad_norm": grad_norm / cfg.steps_per_update, **self.sizes}
        if self.heldout is not None:
            row["nll/heldout"] = self.heldout_nll()
        row["weights_version"] = self.push_weights()
        return row

    @torch.no_grad()
    def heldout_nll(self) -> float:
        """Mean NLL per completion token over every held-out move."""
        self.learner.model.eval()
        total, tokens = 0.0, 0.0
        step = self.cfg.learner.micro_batch_size
        for a in range(0, len(self.heldout.pairs), step):
            batch = self.heldout.batch_of(range(a, min(a + step, len(self.heldout.pairs))))
            total -= float((self.learner.logprobs(batch) * batch.mask).sum())
            tokens += float(batch.mask.sum())
        self.learner.model.train()
        return total / max(tokens, 1.0)
