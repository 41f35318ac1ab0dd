"""INPO (Iterative Nash Policy Optimization) and DPO on the same pairs: a trainer of its own.

One INPO iteration t (Zhang et al., 2025): sample K answers per prompt from π_t, run a
knock-out tournament among them under the preference oracle, keep (champion, worst) when the
champion beats the worst, and train π_{t+1} (starting from π_t) to minimise

    h = [log π(y_w) − log π(y_l)] − r·[log π_ref(y_w) − log π_ref(y_l)]
        − (1 − r)·[log π_t(y_w) − log π_t(y_l)],        loss = (h − 1/(2η))²,   r = τ/η,

whose minimiser (for pairs drawn from π_t and labelled by the oracle) is the online mirror
descent step π_{t+1} ∝ π_t^{1−r} · π_ref^r · exp(P(y ≻ π_t)/η). DPO's loss on the same pairs
is −log σ(β·[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))]).

The K answers to one prompt are one K-player game of ``sparring/preference-v0``, whose oracle
compares every pair. :class:`INPOConfig` (``configs/train/inpo.yaml``) and
:class:`INPOTrainer` share the run directory, pool and update loop of every LLM trainer
(:mod:`~sparring.agents.learners.base`); every iterate is kept as a checkpoint, so a
tournament can pit them against each other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sparring.agents.learners.base import LLMTrainer
from sparring.agents.learners.config import LEARNER, OptimizerConfig, RunConfig
from sparring.agents.learners.model import Batch
from sparring.agents.llm import LLMPolicy
from sparring.agents.rollout import Episode, play_many
from sparring.agents.trajectories import Sample, samples_from_episode, write_samples
from sparring.config import above, check
from sparring.envs import make

ALGORITHMS = ("inpo", "dpo")


@dataclass(frozen=True)
class INPOLearnerConfig(OptimizerConfig):
    """``learner:`` of an INPO run (``configs/learner/inpo.yaml``, ``dpo.yaml``)."""

    algorithm: str = "inpo"
    """``inpo`` or ``dpo`` (the baseline on the same pairs)."""
    eta: float = 0.005
    """INPO's η: the regression target is 1/(2η)."""
    inpo_r: float = 1 / 3
    """INPO's r = τ/η: the weight of the reference in each step."""
    beta: float = 0.1
    """DPO's β."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if self.algorithm not in ALGORITHMS:
            hint = " (a self-play learner: use the recipe train=selfplay)" if self.algorithm in ("reinforce_pp", "grpo") else ""
            problems.append(f"learner.algorithm={self.algorithm!r} is not a preference learner{hint}; use one of "
                            f"{', '.join(ALGORITHMS)}")
        problems += above(self, 0, "eta", "beta", where="learner")
        if not 0 <= self.inpo_r <= 1:
            problems.append(f"learner.inpo_r={self.inpo_r} must lie in [0, 1]")
        check(problems)


@dataclass(frozen=True)
class INPOConfig(RunConfig):
    """An INPO (or DPO) run: each update is one iteration t over ``games_per_update //
    group_size`` prompts with ``group_size`` answers each."""

    learner: INPOLearnerConfig = field(default_factory=INPOLearnerConfig)
    run_dir: str = "runs/inpo"

    def __post_init__(self) -> None:
        problems = self.problems()
        if self.group_size < 2:
            problems.append(f"learner.algorithm={self.learner.algorithm} needs group_size >= 2 (answers per prompt "
                            "to compare)")
        if not self.env.get("id", "").startswith("sparring/preference"):
            problems.append(f"learner.algorithm={self.learner.algorithm} trains on the preference game, not "
                            f"{self.env.get('id')!r}: use the recipe train=inpo (or add env=preference group_size=8)")
        check(problems)


def inpo_loss(logp_w: torch.Tensor, logp_l: torch.Tensor, ref_w: torch.Tensor, ref_l: torch.Tensor,
              t_w: torch.Tensor, t_l: torch.Tensor, eta: float, r: float) -> torch.Tensor:
    """INPO's squared loss per pair (inputs are sequence log-probabilities, ``[pairs]``)."""
    h = (logp_w - logp_l) - r * (ref_w - ref_l) - (1.0 - r) * (t_w - t_l)
    return (h - 1.0 / (2.0 * eta)) ** 2


def dpo_loss(logp_w: torch.Tensor, logp_l: torch.Tensor, ref_w: torch.Tensor, ref_l: torch.Tensor,
             beta: float) -> torch.Tensor:
    """DPO's logistic loss per pair."""
    return -torch.nn.functional.logsigmoid(beta * ((logp_w - ref_w) - (logp_l - ref_l)))


def knockout(preferences: np.ndarray) -> tuple[int, int]:
    """(champion, worst) of a knock-out tournament over ``preferences[i, j]`` = P(i ≻ j).

    The winners' bracket pairs neighbours round by round (an odd one out goes through); the
    losers of the first round play a losers' bracket whose final loser is the worst (an odd
    one out of the first round, having lost nothing, is not in it). Ties go to the lower
    index."""
    def beats(i: int, j: int) -> bool:
        return preferences[i, j] > 0.5 or (preferences[i, j] == 0.5 and i < j)

    def bracket(entrants: list[int], want_loser: bool) -> int:
        while len(entrants) > 1:
            advancing = []
            for k in range(0, len(entrants) - 1, 2):
                i, j = entrants[k], entrants[k + 1]
                winner, loser = (i, j) if beats(i, j) else (j, i)
                advancing.append(loser if want_loser else winner)
            if len(entrants) % 2:
                advancing.append(entrants[-1])
            entrants = advancing
        return entrants[0]

    players = list(range(len(preferences)))
    if len(players) < 2:
        raise ValueError("a knock-out needs at least two answers")
    first_losers = [j if beats(i, j) else i for i, j in zip(players[0::2], players[1::2])]
    return bracket(players, want_loser=False), bracket(first_losers, want_loser=True)


def summed_logprobs(model_logprobs, batch: Batch) -> torch.Tensor:
    """Sum of the generated tokens' log-probabilities per sequence."""
    return (model_logprobs(batch) * batch.mask).sum(-1)


class INPOTrainer(LLMTrainer):
    title = "INPO"

    def __init__(self, cfg: INPOConfig, resume: bool = False, on_update: Callable[[dict], None] | None = None):
        make(cfg.env["id"], **cfg.env_kwargs | {"num_players": cfg.group_size})  # checks the game's config
        super().__init__(cfg, resume, on_update)
        self.title = f"{cfg.env['id']} {cfg.learner.algorithm.upper()}"

    def rollout(self, update: int) -> tuple[list[Episode], list[str]]:
        """``games_per_update // group_size`` prompts, each one K-player game of the learner
        against itself."""
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, update])
        seeds = [int(s) for s in rng.integers(2**31 - 1, size=cfg.games_per_update // cfg.group_size)]
        kwargs = cfg.env_kwargs | {"num_players": cfg.group_size}

        def seats(_: int) -> dict[str, LLMPolicy]:
            return {f"player_{k}": LLMPolicy(LEARNER, self.pool, self.sampling, cfg.agent.system_prompt, name=LEARNER)
                    for k in range(cfg.group_size)}

        episodes = asyncio.run(play_many(lambda: make(cfg.env["id"], **kwargs), seats, seeds, cfg.concurrency))
        return episodes, [f"u{update}-p{i}" for i in range(len(episodes))]

    def step(self, update: int) -> dict[str, Any]:
        started = time.perf_counter()
        episodes, game_ids = self.rollout(update)
        rolled = time.perf_counter()
        winners, losers, kept_p = [], [], []
        for episode, game_id in zip(episodes, game_ids):
            samples = {s.role: s for s in samples_from_episode(episode, game_id)}
            agents = sorted(samples, key=lambda a: int(a.split("_")[1]))
            matrix = preference_matrix(episode, agents)
            champion, worst = knockout(matrix)
            if matrix[champion, worst] > 0.5:
                winners.append(samples[agents[champion]])
                losers.append(samples[agents[worst]])
                kept_p.append(matrix[champion, worst])
        if self.cfg.save_trajectories:
            write_samples(self.run_dir.trajectory_path(update), winners + losers)
        row: dict[str, Any] = {"update": update, "prompts": len(episodes), "pairs": len(winners),
                               "kept_fraction": len(winners) / max(1, len(episodes))}
        answers = [t for e in episodes for t in e.turns]
        row["valid_format"] = float(np.mean([t.invalid is None for t in answers])) if answers else float("nan")
        row["tokens"] = float(np.mean([len(t.generation.completion_ids) for t in answers])) if answers else 0.0
        if winners:
            row["champion_p"] = float(np.mean(kept_p))
            row |= self.learn(winners, losers)
            row["weights_version"] = self.push_weights()
        return row | {"rollout_s": rolled - started, "learn_s": time.perf_counter() - rolled}

    def learn(self, winners: Sequence[Sample], losers: Sequence[Sample]) -> dict[str, float]:
        learner, cfg = self.learner, self.cfg.learner
        mb = max(1, cfg.micro_batch_size // 2)
        chunks = [(a, min(a + mb, len(winners))) for a in range(0, len(winners), mb)]
        batches = [(Batch.collate(winners[a:b], learner.pad_id), Batch.collate(losers[a:b], learner.pad_id))
                   for a, b in chunks]
        learner.model.eval()  # dropout off for the whole iteration: at θ = π_t the log-ratios are 0
        with torch.no_grad():  # pi_t and pi_ref, fixed for the whole iteration
            fixed = [tuple(summed_logprobs(f, batch) for f in (learner.logprobs, learner.reference_logprobs)
                           for batch in pair) for pair in batches]
        pairs = len(winners)
        losses, margins = [], []
        for _ in range(cfg.epochs):  # one optimizer step per epoch, gradients accumulated over the chunks
            learner.optimizer.zero_grad(set_to_none=True)
            loss_sum = margin_sum = 0.0
            for (win, lose), (t_w, t_l, ref_w, ref_l) in zip(batches, fixed):
                logp_w = summed_logprobs(learner.logprobs, win)
                logp_l = summed_logprobs(learner.logprobs, lose)
                if cfg.algorithm == "inpo":
                    loss = inpo_loss(logp_w, logp_l, ref_w, ref_l, t_w, t_l, cfg.eta, cfg.inpo_r).sum()
                else:
                    loss = dpo_loss(logp_w, logp_l, ref_w, ref_l, cfg.beta).sum()
                (loss / pairs).backward()
                loss_sum += float(loss.detach())
                margin_sum += float(((logp_w - logp_l) - (t_w - t_l)).sum().detach())
            torch.nn.utils.clip_grad_norm_([p for p in learner.model.parameters() if p.requires_grad],
                                           cfg.max_grad_norm)
            learner.optimizer.step()
            losses.append(loss_sum / pairs)
            margins.append(margin_sum / pairs)
        return {"loss": float(np.mean(losses)), "margin_gain": float(np.mean(margins))}


def preference_matrix(episode: Episode, agents: Sequence[str]) -> np.ndarray:
    """P(i ≻ j) among one preference game's players, from their final infos."""
    n = len(agents)
    matrix = np.full((n, n), 0.5)
    for i, a in enumerate(agents):
        for j, b in enumerate(agents):
            if i != j:
                matrix[i, j] = episode.final_infos[a]["preferences"][b]
    return matrix
