"""Self-play policy gradient: the model plays every seat it is given, learns from its moves,
and pushes its new weights to the pool after each update.

One update = play ``games_per_update`` games at once through the pool (the rollout engine),
turn the learner's moves into :class:`~sparring.agents.trajectories.Sample` s, drop ties,
compute advantages (REINFORCE++ returns whitened per role, or GRPO group baselines), take one
clipped policy-gradient step per epoch with gradients accumulated over micro-batches, and
send the weights to the pool. Checkpoints and metrics are written as it goes (see
:mod:`~sparring.agents.learners.runlog`), so a killed run resumes from its last checkpoint.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparring.agents.base import Policy
from sparring.agents.learners.config import LEARNER, REFERENCE, TrainConfig
from sparring.agents.learners.losses import (
    clipped_policy_loss,
    group_advantages,
    kl_penalty,
    reinforce_pp_returns,
    whiten_per_group,
)
from sparring.agents.learners.model import Batch, LearnerModel
from sparring.agents.learners.preference import PREFERENCE_ALGORITHMS, PreferenceIteration
from sparring.agents.learners.runlog import (
    Checkpoints,
    MetricsLog,
    plot_learning_curve,
    read_metrics,
)
from sparring.agents.llm import LLMPolicy, ensure_policy, resolve_model
from sparring.agents.registry import load_policy
from sparring.agents.rollout import Episode, play_many
from sparring.agents.trajectories import Sample, samples_from_episode, write_samples
from sparring.envs import make
from sparring.pool import SamplingParams

# Changing these between a run and its resumption is fine; anything else must match.
RESUMABLE_CHANGES = {"updates", "max_minutes", "checkpoint_every", "keep_checkpoints", "save_trajectories",
                     "tensorboard", "plot", "concurrency", "pool"}


def is_model_path(name: str) -> bool:
    """A seat given as a model directory, checkpoint or run: a frozen opponent."""
    return name not in (LEARNER, REFERENCE) and ("/" in name or Path(name).exists())


def model_source(model: str) -> str:
    if model == "tiny":
        from sparring.models import TINY_MODEL

        return str(TINY_MODEL)
    return model


class SelfPlayTrainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False, on_update: Callable[[dict], None] | None = None):
        self.cfg = cfg
        self.run_dir = Path(cfg.run_dir)
        self.on_update = on_update
        env_kwargs = {k: v for k, v in cfg.env.items() if k != "id"}
        self.env_id = cfg.env["id"]
        self.env_kwargs = env_kwargs
        self.agents = list(make(self.env_id, **env_kwargs).possible_agents)  # validates the env config
        self.seat_choices = self._seat_choices()
        self.learn_roles = self._learn_roles()
        self.checkpoints = Checkpoints(self.run_dir, cfg.keep_checkpoints)
        start = self._prepare_run_dir(resume)

        self.learner = LearnerModel(model_source(cfg.agent.model), cfg.learner.lr, cfg.learner.lora, cfg.pool.device)
        self.sampling = SamplingParams(temperature=cfg.agent.temperature, top_p=cfg.agent.top_p, top_k=cfg.agent.top_k,
                                       max_new_tokens=cfg.agent.max_new_tokens)
        self.pool, self.pool_names = self._build_pool()
        self.preference = PreferenceIteration(self) if cfg.learner.algorithm in PREFERENCE_ALGORITHMS else None
        self.update = 0
        self.elapsed_s = 0.0
        if start is not None:
            self._restore(start)
        self.metrics = MetricsLog(self.run_dir, cfg.tensorboard, resume_after=self.update if start else None)
        self.pool.update_weights(self.pool_names[LEARNER], self.learner.weights())

    # -- set-up ----------------------------------------------------------------------------------
    def _seat_choices(self) -> dict[str, list[str]]:
        unknown = set(self.cfg.seats) - set(self.agents)
        if unknown:
            raise ValueError(f"seats {sorted(unknown)} are not seats of {self.env_id}; its seats: {self.agents}")
        choices = {}
        for agent in self.agents:
            value = self.cfg.seats.get(agent, LEARNER)
            options = [value] if isinstance(value, str) else list(value)
            if not options:
                raise ValueError(f"seats.{agent} is an empty list; give a policy name or a list of them")
            for name in options:
                if name not in (LEARNER, REFERENCE) and not is_model_path(name):
                    load_policy(name)  # fail now on an unknown name, not in the middle of a run
            choices[agent] = options
        return choices

    def _learn_roles(self) -> tuple[str, ...]:
        learner_seats = tuple(a for a, options in self.seat_choices.items() if LEARNER in options)
        if self.cfg.learn_roles is None:
            roles = learner_seats
        else:
            roles = tuple(self.cfg.learn_roles)
            wrong = [r for r in roles if r not in learner_seats]
            if wrong:
                raise ValueError(f"learn_roles {wrong} are not played by the learner; learner seats: {list(learner_seats)}")
        if not roles:
            raise ValueError("no seat is played by the learner: put 'learner' in at least one seat")
        return roles

    def _prepare_run_dir(self, resume: bool) -> Path | None:
        saved = self.run_dir / "config.json"
        latest = self.checkpoints.latest()
        if not resume:
            if latest is not None or (self.run_dir / "metrics.jsonl").exists():
                raise FileExistsError(f"{self.run_dir} already holds a run; resume it (--resume) or choose another "
                                      "run_dir=")
            self.run_dir.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(self.cfg.to_dict(), indent=1), encoding="utf-8")
            return None
        if not saved.is_file():
            raise FileNotFoundError(f"nothing to resume in {self.run_dir} (no config.json)")
        before = json.loads(saved.read_text(encoding="utf-8"))
        now = json.loads(json.dumps(self.cfg.to_dict()))
        changed = sorted(k for k in set(before) | set(now) if k not in RESUMABLE_CHANGES and before.get(k) != now.get(k))
        if changed:
            raise ValueError(f"resuming {self.run_dir} with a different {changed}; only {sorted(RESUMABLE_CHANGES)} "
                             "may change")
        saved.write_text(json.dumps(self.cfg.to_dict(), indent=1), encoding="utf-8")
        return latest  # None: killed before its first checkpoint, so it starts over

    def _build_pool(self):
        cfg = self.cfg
        source = model_source(cfg.agent.model)
        uses_reference = any(REFERENCE in options for options in self.seat_choices.values())
        frozen = sorted({name for options in self.seat_choices.values() for name in options if is_model_path(name)})
        names = {LEARNER: LEARNER, REFERENCE: REFERENCE} | {path: f"frozen:{path}" for path in frozen}
        if cfg.pool.backend != "transformers" and cfg.learner.lora is not None:
            raise ValueError(f"pool.backend={cfg.pool.backend} receives full weights from the learner: train "
                             "without learner.lora, or use pool=transformers")
        if cfg.pool.backend == "vllm":
            from sparring.pool.vllm_pool import VLLMPool

            pool = VLLMPool()
            served = {LEARNER: source} | ({REFERENCE: source} if uses_reference else {})
            served |= {names[path]: str(resolve_model(path)) for path in frozen}
            for name, model in served.items():
                pool.add_policy(name, model, gpu_memory_utilization=cfg.pool.gpu_memory_utilization, seed=cfg.seed)
            return pool, names
        if cfg.pool.backend == "ray":
            from sparring.pool import PoolConfig
            from sparring.pool.ray_pool import RayPool

            models = {LEARNER: source} | ({REFERENCE: source} if uses_reference else {})
            models |= {names[path]: str(resolve_model(path)) for path in frozen}
            pool = RayPool(models, replicas=cfg.pool.replicas, device=cfg.pool.device,
                           config=PoolConfig(cfg.pool.max_batch_size, cfg.pool.max_wait_ms))
            return pool, names
        from sparring.pool import InferencePool, PoolConfig

        pool = InferencePool(PoolConfig(cfg.pool.max_batch_size, cfg.pool.max_wait_ms, seed=cfg.seed))
        if cfg.learner.lora is not None:
            # The learner is an adapter on the frozen base, which is also the reference.
            pool.add_policy(REFERENCE, source, device=cfg.pool.device)
            pool.add_adapter(LEARNER, REFERENCE, self.learner.lora_config)
        else:
            pool.add_policy(LEARNER, source, device=cfg.pool.device)
            if uses_reference:
                pool.add_policy(REFERENCE, source, device=cfg.pool.device)
        for path in frozen:  # earlier checkpoints or other models, served but never updated
            ensure_policy(pool, path, name=names[path], device=cfg.pool.device)
        return pool, names

    def _restore(self, checkpoint: Path) -> None:
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
        self.learner.load(checkpoint / "model")
        self.learner.optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
        self.update = int(state["update"])
        self.elapsed_s = float(state["elapsed_s"])

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        """Train until the update or time budget is spent; returns the run's metrics."""
        try:
            while self.update < self.cfg.updates and not self._out_of_time():
                started = time.perf_counter()
                row = self.step(self.update + 1)
                self.elapsed_s += time.perf_counter() - started
                row["elapsed_min"] = self.elapsed_s / 60
                self.update += 1
                self.metrics.log(row)
                if self.update % self.cfg.checkpoint_every == 0:
                    self.save()
                if self.on_update:
                    self.on_update(row)
            if self.checkpoints.latest() is None or self.checkpoints.path(self.update) != self.checkpoints.latest():
                self.save()
        finally:
            self.metrics.close()
        metrics = read_metrics(self.metrics.path)
        if self.cfg.plot and metrics:
            plot_learning_curve(metrics, self.run_dir / "learning_curve.png", f"{self.env_id} self-play")
        return metrics

    def _out_of_time(self) -> bool:
        return self.cfg.max_minutes is not None and self.elapsed_s >= 60 * self.cfg.max_minutes

    def save(self) -> Path:
        partial = self.checkpoints.begin(self.update)
        self.learner.save(partial / "model")
        torch.save(self.learner.optimizer.state_dict(), partial / "optimizer.pt")
        return self.checkpoints.commit(partial, self.update, {"update": self.update, "elapsed_s": self.elapsed_s})

    def step(self, update: int) -> dict[str, Any]:
        """Play one batch of games, learn from it, push the weights. Returns its metrics."""
        if self.preference is not None:
            return self.preference.step(update)
        t0 = time.perf_counter()
        episodes, game_ids = self.rollout(update)
        samples = [s for ep, gid in zip(episodes, game_ids) for s in samples_from_episode(ep, gid, self.learn_roles)
                   if s.policy == self.pool_names[LEARNER]]
        ties = sum(s.tie for s in samples)
        if self.cfg.learner.drop_ties:
            samples = [s for s in samples if not s.tie]
        if self.cfg.save_trajectories:
            write_samples(self.run_dir / "trajectories" / f"update-{update:06d}.jsonl", samples)
        t1 = time.perf_counter()
        row: dict[str, Any] = {"update": update, "games": len(episodes), "samples": len(samples), "ties": ties}
        row |= rollout_stats(episodes, samples, self.learn_roles)
        if samples:
            row |= self.learn(samples)
            version = self.pool.update_weights(self.pool_names[LEARNER], self.learner.weights())
            row["weights_version"] = int(version) if isinstance(version, int) else update
        t2 = time.perf_counter()
        tokens = sum(len(s.completion_ids) for s in samples)
        row |= {"rollout_s": t1 - t0, "learn_s": t2 - t1, "generated_tokens_per_s": tokens / max(t1 - t0, 1e-9)}
        return row

    def rollout(self, update: int) -> tuple[list[Episode], list[str]]:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, update])
        game_seeds = np.repeat(rng.integers(2**31 - 1, size=cfg.games_per_update // cfg.group_size), cfg.group_size)
        policy_seeds = rng.integers(2**31 - 1, size=cfg.games_per_update)
        seat_draws = {a: rng.integers(len(o), size=cfg.games_per_update) for a, o in self.seat_choices.items()}

        def seats(index: int) -> dict[str, Policy]:
            return {agent: self._policy(options[seat_draws[agent][index]]) for agent, options in self.seat_choices.items()}

        episodes = asyncio.run(play_many(lambda: make(self.env_id, **self.env_kwargs), seats,
                                         [int(s) for s in game_seeds], cfg.concurrency,
                                         policy_seeds=[int(s) for s in policy_seeds]))
        return episodes, [f"u{update}-g{i}" for i in range(len(episodes))]

    def _policy(self, name: str) -> Policy:
        if name in self.pool_names:
            return LLMPolicy(self.pool_names[name], pool=self.pool, sampling=self.sampling,
                             system_prompt=self.cfg.agent.system_prompt, name=name)
        return load_policy(name)

    # -- learning --------------------------------------------------------------------------------
    def learn(self, samples: list[Sample]) -> dict[str, float]:
        cfg = self.cfg.learner
        samples = sorted(samples, key=lambda s: len(s.input_ids), reverse=True)  # similar lengths per micro-batch
        batch = Batch.collate(samples, self.learner.pad_id)
        mb = cfg.micro_batch_size
        chunks = [(i, min(i + mb, len(samples))) for i in range(0, len(samples), mb)]
        old = torch.zeros_like(batch.mask)
        ref = torch.zeros_like(batch.mask)
        self.learner.model.eval()
        with torch.no_grad():
            for a, b in chunks:
                part = batch.rows(a, b)
                width = part.mask.shape[1]
                old[a:b, :width] = self.learner.logprobs(part)
                ref[a:b, :width] = self.learner.reference_logprobs(part)
        self.learner.model.train()
        mask = batch.mask
        tokens = mask.sum().clamp(min=1.0)
        kl = kl_penalty(old, ref, cfg.kl_estimator) * mask
        rewards = torch.tensor([s.reward for s in samples])
        if cfg.algorithm == "grpo":
            per_sequence = group_advantages(rewards, [(s.seed, s.role) for s in samples])
            advantages = per_sequence.unsqueeze(1) * mask
        else:
            returns = reinforce_pp_returns(rewards, kl, mask, cfg.kl_coef)
            groups = [s.role for s in samples] if cfg.per_role_norm else [0] * len(samples)
            advantages = whiten_per_group(returns, mask, groups)

        stats: dict[str, float] = defaultdict(float)
        for _ in range(cfg.epochs):
            self.learner.optimizer.zero_grad(set_to_none=True)
            for a, b in chunks:
                part = batch.rows(a, b)
                width = part.mask.shape[1]
                logp = self.learner.logprobs(part)
                loss, info = clipped_policy_loss(logp, old[a:b, :width], advantages[a:b, :width], part.mask,
                                                 cfg.clip_eps)
                if cfg.algorithm == "grpo":
                    loss = loss + cfg.kl_coef * (kl_penalty(logp, ref[a:b, :width], "k3") * part.mask).sum()
                (loss / tokens).backward()
                stats["loss"] += float(loss.detach()) / float(tokens)
                stats["clip_frac"] += info["clipped_tokens"] / float(tokens)
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for p in self.learner.model.parameters() if p.requires_grad], cfg.max_grad_norm)
            self.learner.optimizer.step()
            stats["grad_norm"] += float(grad_norm)
        stats = {k: v / cfg.epochs for k, v in stats.items()}
        stats["kl_per_sequence"] = float((kl_penalty(old, ref, "k1") * mask).sum() / mask.shape[0])
        stats["behaviour_gap"] = behaviour_gap(samples, old, mask, self.sampling)
        return stats

    def close(self) -> None:
        close = getattr(self.pool, "aclose", None)
        if close is not None:
            asyncio.run(close())


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


def train(cfg: TrainConfig, resume: bool = False, on_update: Callable[[dict], None] | None = None) -> list[dict]:
    """Run (or resume) a self-play training run; returns its metrics, one row per update."""
    trainer = SelfPlayTrainer(cfg, resume=resume, on_update=on_update)
    try:
        return trainer.run()
    finally:
        trainer.close()
