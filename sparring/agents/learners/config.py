"""Typed configuration of a self-play training run (what ``configs/train/*.yaml`` compose to).

Every field is validated when the dataclass is built; errors name the value and the fix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sparring.agents.learners.losses import KL_ESTIMATORS

ALGORITHMS = ("reinforce_pp", "grpo", "inpo", "dpo")
POOL_BACKENDS = ("transformers", "ray", "vllm")
LEARNER = "learner"
"""The seat value (and pool policy name) of the model being trained."""
REFERENCE = "reference"
"""The seat value of the frozen starting model (an opponent that never learns)."""


@dataclass(frozen=True)
class AgentConfig:
    """The model that learns and how it samples while playing."""

    model: str = "tiny"
    """``tiny`` (the shipped model), a local path or a Hugging Face id."""
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    """0: no top-k. Keep 1.0/0 when training: the PPO ratio needs the true sampling logprobs."""
    max_new_tokens: int = 96
    system_prompt: str | None = None


@dataclass(frozen=True)
class PoolSettings:
    backend: str = "transformers"
    """``transformers`` (in-process), ``ray`` (replicas as Ray actors) or ``vllm`` (vLLM's
    engine on a CUDA GPU; the ``vllm`` extra)."""
    device: str = "cpu"
    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    replicas: int = 2
    """Ray replicas (``backend=ray`` only)."""
    gpu_memory_utilization: float = 0.3
    """Share of the GPU the engine of each served model takes (``backend=vllm`` only)."""

    def __post_init__(self) -> None:
        if self.backend not in POOL_BACKENDS:
            raise ValueError(f"pool.backend={self.backend!r} is unknown; use one of {POOL_BACKENDS}")
        if self.replicas < 1:
            raise ValueError(f"pool.replicas={self.replicas} must be >= 1")


@dataclass(frozen=True)
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class LearnerConfig:
    algorithm: str = "reinforce_pp"
    """``reinforce_pp`` (KL in the reward, returns whitened per role), ``grpo`` (group
    baselines over ``group_size`` games of one seed, KL as a loss term), or on the preference
    game ``inpo`` / ``dpo`` (pairs from a knock-out among ``group_size`` answers per prompt)."""
    lr: float = 1e-4
    kl_coef: float = 0.02
    kl_estimator: str = "k1"
    clip_eps: float = 0.2
    epochs: int = 1
    """Passes over each rollout batch (the PPO ratio departs from 1 after the first)."""
    micro_batch_size: int = 16
    """Sequences per forward/backward; gradients accumulate over the whole batch."""
    max_grad_norm: float = 1.0
    per_role_norm: bool = True
    """Whiten advantages separately per role (False: over the whole batch)."""
    drop_ties: bool = True
    """Leave out games the judge could not score."""
    lora: LoraSettings | None = None
    """Train a LoRA adapter (the frozen base is the reference) instead of every weight."""
    eta: float = 0.005
    """INPO's η: the regression target is 1/(2η)."""
    inpo_r: float = 1 / 3
    """INPO's r = τ/η: the weight of the reference in each step."""
    beta: float = 0.1
    """DPO's β."""

    def __post_init__(self) -> None:
        if isinstance(self.lora, dict):
            object.__setattr__(self, "lora", build_config(LoraSettings, self.lora, "learner.lora"))
        problems = []
        if self.algorithm not in ALGORITHMS:
            problems.append(f"learner.algorithm={self.algorithm!r} is unknown; use one of {ALGORITHMS}")
        if self.kl_estimator not in KL_ESTIMATORS:
            problems.append(f"learner.kl_estimator={self.kl_estimator!r} is unknown; use one of {KL_ESTIMATORS}")
        if not self.lr > 0:
            problems.append(f"learner.lr={self.lr} must be > 0")
        if not self.eta > 0:
            problems.append(f"learner.eta={self.eta} must be > 0")
        if not 0 <= self.inpo_r <= 1:
            problems.append(f"learner.inpo_r={self.inpo_r} must lie in [0, 1]")
        if not self.beta > 0:
            problems.append(f"learner.beta={self.beta} must be > 0")
        if self.kl_coef < 0:
            problems.append(f"learner.kl_coef={self.kl_coef} must be >= 0")
        if not 0 < self.clip_eps < 1:
            problems.append(f"learner.clip_eps={self.clip_eps} must lie in (0, 1)")
        for name in ("epochs", "micro_batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"learner.{name}={getattr(self, name)} must be >= 1")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class TrainConfig:
    """A self-play run: who sits where, what learns, and the budgets."""

    env: dict[str, Any]
    """The game: ``id`` plus its constructor arguments (``configs/env/*.yaml``)."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    pool: PoolSettings = field(default_factory=PoolSettings)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    seats: dict[str, Any] = field(default_factory=dict)
    """Seat → ``learner`` (the model being trained), ``reference`` (its frozen start), a
    scripted policy name, a model path (a directory, checkpoint or earlier run, served frozen),
    or a list of these (a league: one drawn per game). Seats left out are the learner: the
    default is self-play, one model in every role."""
    learn_roles: tuple[str, ...] | None = None
    """Roles whose moves are trained on (default: every seat the learner plays)."""
    updates: int = 100
    max_minutes: float | None = None
    """Stop after this much training time (summed over resumed runs) even if updates remain."""
    games_per_update: int = 32
    group_size: int = 1
    """Games played per game seed (a GRPO group); the policy samples differ."""
    concurrency: int = 64
    seed: int = 0
    run_dir: str = "runs/selfplay"
    checkpoint_every: int = 10
    keep_checkpoints: int = 2
    save_trajectories: bool = False
    """Also write each update's samples to ``run_dir/trajectories/``."""
    tensorboard: bool = True
    plot: bool = True

    def __post_init__(self) -> None:
        for name, kind in (("agent", AgentConfig), ("pool", PoolSettings), ("learner", LearnerConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, build_config(kind, value, name))
        if self.learn_roles is not None:
            object.__setattr__(self, "learn_roles", tuple(self.learn_roles))
        problems = []
        if "id" not in self.env:
            problems.append("env needs an 'id' (e.g. env=redteam)")
        for name in ("updates", "games_per_update", "group_size", "concurrency", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        if self.games_per_update % self.group_size:
            problems.append(f"games_per_update={self.games_per_update} must be a multiple of "
                            f"group_size={self.group_size}")
        if self.learner.algorithm in ("grpo", "inpo", "dpo") and self.group_size < 2:
            what = "games per seed" if self.learner.algorithm == "grpo" else "answers per prompt"
            problems.append(f"learner.algorithm={self.learner.algorithm} needs group_size >= 2 ({what} to compare)")
        if self.learner.algorithm in ("inpo", "dpo") and not self.env.get("id", "").startswith("sparring/preference"):
            problems.append(f"learner.algorithm={self.learner.algorithm} trains on the preference game, not "
                            f"{self.env.get('id')!r}: use the recipe train=inpo (or add env=preference group_size=8)")
        if self.max_minutes is not None and self.max_minutes <= 0:
            problems.append(f"max_minutes={self.max_minutes} must be > 0 (or null)")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        return build_config(cls, values, "train")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_config(kind, values: dict[str, Any], where: str):
    """``kind(**values)``, naming unknown fields (a typo in an override) with the known ones."""
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
    return kind(**values)
