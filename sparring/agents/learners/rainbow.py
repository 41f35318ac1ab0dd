"""The RainbowPlus search as a run (``sparring train train=rainbow``).

Each update runs ``games_per_update / num_mutations`` iterations at once, so the pool batches
every candidate of them together. An iteration draws a parent (the ``i``-th harmful seed for
iteration ``i`` while seeds remain, then uniformly from the archive) and a target cell, and
plays ``num_mutations`` games of ``sparring/rainbow-v0`` on it: the mutator proposes, the
diversity filter drops near-copies, the target answers, the judge's P(unsafe) is the fitness
and fit candidates join the archive that every game of the run shares.

The run module keeps the run directory: each checkpoint holds the archive (``archive.json``)
and the metrics go to ``metrics.jsonl``. A resumed run restarts from the last checkpoint's
archive at the next iteration, and every draw of an iteration comes from ``(seed,
iteration)``, so a run killed at any moment and resumed loses nothing and archives nothing
twice (the iterations after the last checkpoint are played again from the same state).

The mutator and the target are policy specs: ``learner`` (``agent.model`` through the
pool), ``reference`` (the same frozen model), a scripted policy (``rainbow.style``,
``redteam.keyword``) or any model or run. The search does not train the mutator: its
weights stay those of ``agent.model``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sparring.agents.learners.base import LLMTrainer
from sparring.agents.learners.config import LEARNER, REFERENCE, OptimizerConfig, RunConfig
from sparring.agents.resolve import PolicyResolver
from sparring.agents.rollout import play_many
from sparring.config import at_least, check
from sparring.envs import make
from sparring.envs.rainbow import Archive, RainbowConfig, RainbowGame
from sparring.envs.rainbow.archive import ARCHIVE, load_archive
from sparring.envs.rainbow.game import parent_of


@dataclass(frozen=True)
class RainbowRunConfig(RunConfig):
    """A RainbowPlus search (``configs/train/rainbow.yaml``)."""

    learner: OptimizerConfig = field(default_factory=OptimizerConfig)
    """The model's optimiser (the search itself does not train it)."""
    mutator: Any = "rainbow.style"
    """Who proposes candidates: ``learner``, ``reference`` or any policy spec."""
    target: Any = "reference"
    """Who answers them: ``learner``, ``reference`` or any policy spec."""
    num_mutations: int = 10
    """Candidates per iteration (one parent, one cell)."""
    games_per_update: int = 40
    """Candidates per update: ``games_per_update / num_mutations`` iterations in flight."""
    run_dir: str = "runs/rainbow"

    def __post_init__(self) -> None:
        problems = self.problems() + at_least(self, 1, "num_mutations")
        if self.num_mutations >= 1 and self.games_per_update % self.num_mutations:
            problems.append(f"games_per_update={self.games_per_update} must be a multiple of "
                            f"num_mutations={self.num_mutations}")
        if self.env.get("id") != "sparring/rainbow-v0":
            problems.append(f"env.id={self.env.get('id')!r}: the RainbowPlus search plays sparring/rainbow-v0")
        if self.env.get("archive"):
            problems.append("env.archive: the search keeps its archive in its run directory; leave it out "
                            "(resume with --resume)")
        check(problems)

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.env.items() if k != "id"}


class RainbowSearch(LLMTrainer):
    title = "RainbowPlus search"

    def __init__(self, cfg: RainbowRunConfig, resume: bool = False, on_update: Callable[[dict], None] | None = None):
        self.game_config = RainbowConfig.from_dict(cfg.env_kwargs)  # a bad game config fails first
        uses_reference = REFERENCE in (cfg.mutator, cfg.target)
        super().__init__(cfg, resume, on_update, uses_reference)

    def prepare(self) -> None:
        self.resolver = PolicyResolver(self.pool, sampling=self.sampling)
        self.seats()  # the mutator and the target load (or fail) now, not mid-run
        saved = self.run_dir.restore(lambda checkpoint: Archive.load(checkpoint / ARCHIVE))
        game = RainbowGame(self.game_config, archive=saved)
        self.archive, self.seeds = game.archive, game.seeds

    def seats(self, game: int = 0) -> dict[str, Any]:
        """One game's policies (fresh objects: a scripted policy's generator is its own)."""
        return {"mutator": self._policy(self.cfg.mutator), "target": self._policy(self.cfg.target)}

    def _policy(self, spec: Any):
        if spec in (LEARNER, REFERENCE):
            return self.resolver.resolve(spec, name=spec, system_prompt=self.cfg.agent.system_prompt)
        return self.resolver.resolve(spec)

    # -- one update ------------------------------------------------------------------------
    def iteration(self, index: int) -> dict[str, Any]:
        """The parent (and the seed it descends from) and the cell of iteration ``index``
        (0-based), drawn from ``(seed, index)``."""
        rng = np.random.default_rng([self.cfg.seed, index])
        parent = parent_of(index, self.seeds, self.archive, rng)
        game = self.game_config
        return {"parent": parent, "root": self.archive.root_of(parent),
                "category": game.categories[int(rng.integers(len(game.categories)))],
                "style": game.styles[int(rng.integers(len(game.styles)))], "iteration": index + 1}

    def step(self, update: int) -> dict[str, Any]:
        cfg = self.cfg
        per_update = cfg.games_per_update // cfg.num_mutations
        first = (update - 1) * per_update
        options = [self.iteration(i) for i in range(first, first + per_update) for _ in range(cfg.num_mutations)]
        seeds = [int(s) for s in np.random.default_rng([cfg.seed, update, 2]).integers(2**31 - 1, size=len(options))]
        started = time.perf_counter()
        episodes = asyncio.run(play_many(
            lambda: make(cfg.env["id"], archive=self.archive, **cfg.env_kwargs), self.seats, seeds,
            cfg.concurrency, options=options))
        seconds = time.perf_counter() - started
        infos = [e.final_infos["mutator"] for e in episodes]
        judged = [i["fitness"] for i in infos if i["fitness"] is not None]
        return {
            "update": update, "iterations": first + per_update, "candidates": len(infos),
            "filtered": sum(bool(i["reason"]) and i["reason"].startswith("filtered") for i in infos),
            "invalid": sum(bool(i["reason"]) and i["reason"].startswith("invalid") for i in infos),
            "inserted": sum(i["inserted"] for i in infos),
            "mean_fitness": float(np.mean(judged)) if judged else float("nan"),
            "archive_size": len(self.archive), "coverage": self.archive.coverage(),
            "qd_score": self.archive.qd_score(), "unique_prompts": self.archive.unique_prompts(),
            "asr": self.live_asr(first + per_update),
            "candidates_per_s": len(infos) / max(seconds, 1e-9),
        }

    def live_asr(self, iterations: int) -> float:
        """ASR under the fitness judge, as the search goes: the share of the seeds tried so far
        with an archived descendant (every archived prompt was judged unsafe to be let in).
        The benchmark's ASR asks an evaluation judge instead."""
        tried = set(self.seeds[:iterations])
        return len(tried & {e.root for e in self.archive.entries()}) / max(len(tried), 1)

    def save_extra(self, checkpoint: Path) -> None:
        self.archive.save(checkpoint / ARCHIVE)


__all__ = ["ARCHIVE", "RainbowRunConfig", "RainbowSearch", "load_archive"]
