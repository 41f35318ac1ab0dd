"""What every LLM trainer does around its own update step.

A trainer subclasses :class:`LLMTrainer` and writes :meth:`~LLMTrainer.step` (play, learn,
push the weights). The base opens the run directory through the run module (a new run, or
a resumed one whose recipe only changed where allowed), loads the learner's model and its
frozen reference, builds the pool from the recipe's pool config with the learner (and the
reference) served, restores the last checkpoint, and runs the update loop: budgets in
updates and minutes, a checkpoint every ``checkpoint_every`` updates and at the end, one
metrics row per update.
"""

from __future__ import annotations

import asyncio
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sparring.agents.learners.config import LEARNER, REFERENCE, RunConfig
from sparring.agents.learners.model import LearnerModel
from sparring.errors import ConfigError
from sparring.pool import Pool, build_pool
from sparring.runs import pinned, resolve_model


class LLMTrainer(ABC):
    """The update loop, checkpoints and pool of a trainer whose learner is an LLM."""

    title = "training"
    """The learning curve's title."""
    curve = "reward/"
    """The metrics the learning curve draws: every one named so."""

    def __init__(self, cfg: RunConfig, resume: bool = False, on_update: Callable[[dict], None] | None = None,
                 uses_reference: bool = False):
        if pinned(cfg.agent.model) != cfg.agent.model:  # a run: the checkpoint it is at now
            cfg = dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, model=pinned(cfg.agent.model)))
        self.cfg = cfg
        self.on_update = on_update
        self.source = resolve_model(cfg.agent.model)
        if self.source.is_adapter:
            raise ConfigError(f"agent.model={cfg.agent.model!r} is a LoRA adapter; train its base model with "
                              "learner.lora instead, or merge the adapter first")
        if cfg.pool.backend != "transformers" and cfg.learner.lora is not None:
            raise ConfigError(f"pool.backend={cfg.pool.backend} receives full weights from the learner: train "
                              "without learner.lora, or use pool=transformers")
        self.run_dir = cfg.open_run(resume)
        self.pool: Pool | None = None
        try:  # whatever fails from here on (a model, an opponent) leaves nothing open
            adapters = tuple(a for a in self.learner_policies().values() if a is not None)
            with torch.random.fork_rng(devices=[]):  # a fresh LoRA adapter starts from the recipe's seed
                torch.manual_seed(cfg.seed)
                self.learner = LearnerModel(self.source, cfg.learner.lr, cfg.learner.lora, cfg.pool.device, adapters)
            self.sampling = cfg.agent.sampling()
            self.update, self.elapsed_s = self.run_dir.update, float(self.run_dir.state["elapsed_s"])
            self.run_dir.restore(self.load_checkpoint)
            self.pool = self._build_pool(uses_reference)
            self.push_weights()
            self.prepare()
        except BaseException:
            self.close()
            raise

    def prepare(self) -> None:
        """What a trainer sets up once its pool serves the learner (e.g. its opponents)."""

    def learner_policies(self) -> dict[str, str | None]:
        """The pool policies that serve the learner, each with the LoRA adapter of the learner
        it serves (``None``: the learner's one set of weights)."""
        return {LEARNER: None}

    def _build_pool(self, uses_reference: bool) -> Pool:
        location = self.source.location
        if self.cfg.learner.lora is not None:
            # The learner is an adapter on the frozen base, which is also the reference.
            pool = build_pool(self.cfg.pool, {REFERENCE: location})
            for name in self.learner_policies():
                pool.add_adapter(name, REFERENCE, self.learner.lora_config)
            return pool
        return build_pool(self.cfg.pool, {LEARNER: location} | ({REFERENCE: location} if uses_reference else {}))

    # -- the loop --------------------------------------------------------------------------------
    @abstractmethod
    def step(self, update: int) -> dict[str, Any]:
        """Play, learn from it, push the new weights to the pool; returns the update's metrics."""

    def run(self) -> list[dict[str, Any]]:
        """Train until the update or time budget is spent; returns the run's metrics."""
        cfg = self.cfg
        self.run_dir.train(self.step, self.save, until=cfg.updates, every=cfg.checkpoint_every,
                           max_minutes=cfg.max_minutes, on_row=lambda row: self.on_update and self.on_update(row))
        return self.run_dir.finish(self.title, plot=cfg.plot, prefix=self.curve)

    def save(self, update: int, elapsed_s: float) -> Path:
        """Checkpoint ``update``: the learner's weights and its optimizer's state."""
        self.update, self.elapsed_s = update, elapsed_s
        partial = self.run_dir.begin_checkpoint(update)
        self.learner.save(partial / "model")
        torch.save(self.learner.optimizer.state_dict(), partial / "optimizer.pt")
        self.save_extra(partial)
        return self.run_dir.commit(partial, update, {"elapsed_s": elapsed_s})

    def load_checkpoint(self, checkpoint: Path) -> None:
        """Restore what :meth:`save` wrote (through :meth:`~sparring.runs.Run.restore`, which
        reports a file that does not load as a damaged checkpoint)."""
        self.learner.load(checkpoint / "model")
        self.learner.optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location="cpu", weights_only=True))

    def save_extra(self, checkpoint: Path) -> None:
        """What a trainer keeps in a checkpoint besides the model and the optimizer (e.g. a
        search's archive); written before the checkpoint is committed."""

    def push_weights(self) -> int:
        """Send the learner's weights to the pool; returns the version they serve as."""
        versions = [self.pool.update_weights(name, self.learner.weights(adapter))
                    for name, adapter in self.learner_policies().items()]
        return max(versions)

    def close(self) -> None:
        self.run_dir.close()
        if self.pool is not None:
            asyncio.run(self.pool.aclose())
