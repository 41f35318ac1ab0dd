"""Inverse RL as a run: ``sparring train train=mamql demonstrations=FILE``, and its policies.

:class:`IRLRunConfig` / :class:`IRLRun` learn from a file of demonstrations (``sparring
record``, JSONL or Parquet) with MAMQL or a baseline (:mod:`~sparring.agents.learners.mamql`),
through the run module: ``config.json``, one ``metrics.jsonl`` row per update (the learner's
losses and, every ``eval_every`` updates, the true return of its policies over ``eval_games``
games of the env), ``checkpoints/update-N/learner.pt`` (networks, optimiser, step size,
generators: a killed run resumes where its last checkpoint was) and ``learning_curve.png``.

:class:`IRLPolicy` (``{policy: irl, checkpoint: RUN_OR_CHECKPOINT}``) plays the learned
Boltzmann policies in the game they were learned on, so they sit in arena tournaments.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparring.agents.base import Action, Policy
from sparring.agents.learners.mamql import (
    LEARNERS,
    METHODS,
    Demonstrations,
    IRLConfig,
    build_learner,
    env_rollout,
)
from sparring.agents.trajectories import read_transitions
from sparring.config import Config, above, at_least, check
from sparring.envs.registry import make, spec
from sparring.errors import ConfigError, NotFoundError
from sparring.runs import Run, checkpoint_of

LEARNER_FILE = "learner.pt"
#: Fields that may change when a run resumes; anything else must match the saved recipe.
RESUMABLE = ("updates", "max_minutes", "checkpoint_every", "keep_checkpoints", "tensorboard", "plot",
             "progress_every_s", "eval_every", "eval_games")


@dataclass(frozen=True)
class IRLRunConfig(Config):
    """An inverse-RL run: the game the demonstrations come from, the file, the method and its
    settings (``irl``), the budgets and the run directory."""

    env: dict[str, Any]
    """The game (``id`` plus arguments): a numeric simultaneous-move game, e.g. gems-v0."""
    demonstrations: str = ""
    """A ``sparring record`` file (``.jsonl`` or ``.parquet``) of every agent's steps."""
    trainer: str = "mamql"
    method: str = "mamql"
    """``mamql``, ``iq_learn`` (independent, per agent) or ``bc``."""
    irl: IRLConfig = field(default_factory=IRLConfig)
    """The learner's settings; ``irl.steps`` is replaced by ``updates × steps_per_update``."""
    max_episodes: int | None = None
    """Learn from the file's first N games (None: all)."""
    updates: int = 20
    steps_per_update: int = 100
    max_minutes: float | None = None
    eval_every: int = 5
    """Play ``eval_games`` games with the learned policies every this many updates (0: never)."""
    eval_games: int = 20
    seed: int = 0
    run_dir: str = "runs/mamql"
    checkpoint_every: int = 5
    keep_checkpoints: int = 2
    tensorboard: bool = False
    plot: bool = True
    progress_every_s: float = 30.0

    def __post_init__(self) -> None:
        problems = []
        if "id" not in self.env:
            problems.append("env needs an 'id' (e.g. env=gems)")
        elif not spec(self.env["id"]).numeric:
            problems.append(f"{self.env['id']} is a language game; the inverse-RL run reads numeric games' "
                            "demonstrations (vector observations, integer moves), e.g. gems-v0")
        if not self.demonstrations:
            problems.append("demonstrations= is empty: give the file `sparring record` wrote")
        if self.method not in METHODS:
            problems.append(f"method={self.method!r} is unknown; use one of {', '.join(METHODS)}")
        problems += at_least(self, 1, "updates", "steps_per_update", "checkpoint_every", "keep_checkpoints",
                             "eval_games", "max_episodes")
        problems += at_least(self, 0, "eval_every") + above(self, 0, "max_minutes", "progress_every_s")
        check(problems)

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.env.items() if k != "id"}

    def learner_config(self) -> IRLConfig:
        return IRLConfig.from_dict({**self.irl.to_dict(), "steps": self.updates * self.steps_per_update,
                                    "seed": self.seed})


def _make_env(cfg: IRLRunConfig) -> Callable[[], Any]:
    return lambda: make(cfg.env["id"], parallel=True, **cfg.env_kwargs)


def true_return(learner: Any, make_env: Callable[[], Any], games: int, seed: int) -> dict[str, float]:
    """Each agent's mean true return over ``games`` games of the learner's sampled policies."""
    rng = np.random.default_rng(seed)
    totals: dict[str, float] = {}
    for game in range(games):
        env = make_env()
        obs, _ = env.reset(seed=seed * 100_003 + game)
        while env.agents:
            probs = learner.policies({a: np.asarray(obs[a], dtype=np.float32)[None] for a in learner.agents})
            moves = {a: int(rng.choice(len(p[0]), p=p[0] / p[0].sum())) for a, p in probs.items()}
            obs, rewards, _, _, _ = env.step(moves)
            for a, r in rewards.items():
                totals[a] = totals.get(a, 0.0) + float(r)
    return {a: v / games for a, v in totals.items()}


class IRLRun:
    """Learns from demonstrations through the run module (see the module docstring)."""

    def __init__(self, cfg: IRLRunConfig, resume: bool = False, on_update: Callable[[dict], None] | None = None):
        self.cfg = cfg
        self.on_update = on_update
        path = Path(cfg.demonstrations).expanduser()
        if not path.is_file():
            raise NotFoundError(f"demonstrations={cfg.demonstrations}: no such file (write one with `sparring record`)")
        self.make_env = _make_env(cfg)
        probe = self.make_env()
        demos = Demonstrations.from_transitions(read_transitions(path), probe.possible_agents)
        if cfg.max_episodes is not None:
            demos = demos.episodes(cfg.max_episodes)
        for agent in demos.agents:
            if demos.obs[agent].shape[1:] != probe.observation_space(agent).shape:
                raise ConfigError(f"{path}: {agent}'s observations have shape {demos.obs[agent].shape[1:]}, but "
                                  f"{cfg.env['id']} with these settings gives {probe.observation_space(agent).shape}; "
                                  "set env.* as the demonstrations were recorded")
        self.demos = demos
        self.run_dir = Run(cfg.run_dir, cfg.to_dict(), resume=resume, resumable=RESUMABLE,
                           keep=cfg.keep_checkpoints, tensorboard=cfg.tensorboard)
        self.learner = build_learner(cfg.method, cfg.learner_config(), demos,
                                     {a: int(probe.action_space(a).n) for a in demos.agents})
        rollout = env_rollout(self.make_env, cfg.irl.online_episodes, cfg.seed) if cfg.irl.online else None
        self.learner.prepare(demos, rollout=rollout)
        self.update = self.run_dir.update
        if self.run_dir.start is not None:
            self.learner.load_state_dict(torch.load(self.run_dir.start / LEARNER_FILE, weights_only=True))

    def step(self, update: int) -> dict[str, Any]:
        logs = self.learner.train_steps(self.cfg.steps_per_update)
        row: dict[str, Any] = {f"loss/{k}": v for k, v in logs.items()}
        if self.cfg.eval_every and update % self.cfg.eval_every == 0:
            row |= {f"return/{a}": v for a, v in
                    true_return(self.learner, self.make_env, self.cfg.eval_games, self.cfg.seed + update).items()}
        self.update = update
        return row

    def save(self, update: int, elapsed_s: float) -> Path:
        partial = self.run_dir.begin_checkpoint(update)
        torch.save(self.learner.state_dict(), partial / LEARNER_FILE)
        return self.run_dir.commit(partial, update, {"elapsed_s": elapsed_s})

    def run(self) -> list[dict[str, Any]]:
        cfg = self.cfg
        self.run_dir.train(self.step, self.save, until=cfg.updates, every=cfg.checkpoint_every,
                           max_minutes=cfg.max_minutes, on_row=lambda row: self.on_update and self.on_update(row))
        return self.run_dir.finish(f"{cfg.env['id']} ({cfg.method})", plot=cfg.plot, prefix="return/",
                                   xlabel="update", ylabel="true return of the learned policies")

    def close(self) -> None:
        self.run_dir.close()


class IRLPolicy(Policy):
    """The Boltzmann policy an inverse-RL run learned, for the game it learned on: samples its
    move (``greedy=True``: the most likely one) and writes the move's index."""

    def __init__(self, checkpoint: str | Path, greedy: bool = False, seed: int | None = None,
                 name: str | None = None):
        found = checkpoint_of(checkpoint)
        if not (found / LEARNER_FILE).is_file():
            raise NotFoundError(f"{checkpoint}: no {LEARNER_FILE} here (a checkpoint or run directory of "
                                "`sparring train train=mamql`)")
        run = found.parent.parent
        cfg = IRLRunConfig.from_dict(json.loads((run / "config.json").read_text(encoding="utf-8")))
        env = _make_env(cfg)()
        agents = tuple(env.possible_agents)
        self.learner = LEARNERS[cfg.method](cfg.learner_config(), agents,
                                            {a: int(env.observation_space(a).shape[0]) for a in agents},
                                            {a: int(env.action_space(a).n) for a in agents})
        self.learner.load_networks(torch.load(found / LEARNER_FILE, weights_only=True))
        self.game, self.greedy = spec(cfg.env["id"]).id, greedy
        # MAMQL's policies are an equilibrium of every agent's critic, so it needs the others'
        # views of the moment; the baselines read the acting agent's alone.
        self.view_of_other = getattr(env.unwrapped.game, "view_of_other", None)
        if cfg.method == "mamql" and self.view_of_other is None:
            raise ConfigError(f"{self.game} cannot derive the other agent's observation from one agent's, which "
                              "MAMQL's policies need; play the iq_learn or bc baseline instead")
        self.rng = np.random.default_rng(seed)
        self.name = name or f"{cfg.method}({run.name})"

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def probabilities(self, agent: str, observation: Any) -> np.ndarray:
        if agent not in self.learner.agents:
            raise ConfigError(f"seat {agent!r} is not a seat of {self.game}; its seats: {list(self.learner.agents)}")
        mine = np.asarray(observation, dtype=np.float32).reshape(-1)
        theirs = self.view_of_other(mine) if self.view_of_other is not None else mine
        obs = {a: (mine if a == agent else theirs)[None] for a in self.learner.agents}
        return self.learner.policies(obs)[agent][0]

    async def act(self, agent: str, observation: Mapping[str, Any]) -> Action:
        p = self.probabilities(agent, observation)
        move = int(p.argmax()) if self.greedy else int(self.rng.choice(len(p), p=p / p.sum()))
        return Action(str(move))


def train_irl(values: Mapping[str, Any], resume: bool = False) -> list[dict[str, Any]]:
    """Run (or resume) an inverse-RL recipe; its metrics, one row per update."""
    run = IRLRun(IRLRunConfig.from_dict(dict(values)), resume=resume)
    try:
        return run.run()
    finally:
        run.close()


__all__ = ["IRLPolicy", "IRLRun", "IRLRunConfig", "train_irl", "true_return"]
