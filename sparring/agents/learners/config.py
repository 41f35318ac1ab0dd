"""What every LLM trainer's recipe shares (``configs/train/*.yaml`` compose to a trainer's
config, which extends :class:`RunConfig`): the model that plays and learns, the pool, the
optimiser knobs every learner has, and the run's budgets and files. Each algorithm's own
knobs live with its trainer (:mod:`~sparring.agents.learners.selfplay`,
:mod:`~sparring.agents.learners.inpo`).

Every field is typed and checked when the config is built (:func:`sparring.config.build`);
errors name the value and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparring.config import above, at_least, check
from sparring.pool import PoolConfig, SamplingParams
from sparring.runs import RunSettings

LEARNER = "learner"
"""The seat value (and pool policy name) of the model being trained."""
REFERENCE = "reference"
"""The seat value (and pool policy name) of the frozen starting model."""


@dataclass(frozen=True)
class AgentConfig:
    """The model that learns and how it samples while playing."""

    model: str = "tiny"
    """``tiny`` (the shipped model), a model directory, a checkpoint, a run or a hub id."""
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    """0: no top-k. Keep 1.0/0 when training: the PPO ratio needs the true sampling logprobs."""
    max_new_tokens: int = 96
    stop: tuple[str, ...] = ()
    """Strings that end a generation (kept in it), e.g. ``["</search>", "</answer>"]`` for the
    router of ``sparring/router-v0``, whose move ends at the first of them."""
    system_prompt: str | None = None

    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              max_new_tokens=self.max_new_tokens, stop=self.stop)

    def __post_init__(self) -> None:
        self.sampling()  # the sampling fields are checked where they are defined


@dataclass(frozen=True)
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

    def __post_init__(self) -> None:
        problems = at_least(self, 1, "r", where="learner.lora") + above(self, 0, "alpha", where="learner.lora")
        if not 0 <= self.dropout < 1:
            problems.append(f"learner.lora.dropout={self.dropout} must lie in [0, 1)")
        if not self.target_modules:
            problems.append("learner.lora.target_modules is empty: name the layers to adapt (e.g. [q_proj, v_proj])")
        check(problems)


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimiser knobs every learner has (its ``learner:`` section adds its own)."""

    algorithm: str = ""
    lr: float = 1e-4
    epochs: int = 1
    """Passes over each update's batch."""
    micro_batch_size: int = 16
    """Sequences per forward/backward; gradients accumulate over the whole batch."""
    max_grad_norm: float = 1.0
    lora: LoraSettings | None = None
    """Train a LoRA adapter (the frozen base is the reference) instead of every weight."""

    def problems(self) -> list[str]:
        return (above(self, 0, "lr", "max_grad_norm", where="learner")
                + at_least(self, 1, "epochs", "micro_batch_size", where="learner"))


@dataclass(frozen=True)
class RunConfig(RunSettings):
    """A training run: the game, the model, the pool, the budgets and the run directory."""

    env: dict[str, Any] = field(default_factory=dict)
    """The game: ``id`` plus its constructor arguments (``configs/env/*.yaml``)."""
    trainer: str = ""
    """Which trainer runs the recipe (``selfplay``, ``inpo``); set by ``configs/train/``."""
    train: str = ""
    """The recipe (``configs/train/NAME.yaml``, chosen by ``train=NAME``) the run was composed
    from; each recipe sets its own name, so a resume that names another recipe is refused
    (``router`` and ``selfplay`` share a trainer but not a game)."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    updates: int = 100
    games_per_update: int = 32
    group_size: int = 1
    """Games played per game seed (GRPO's group, INPO's answers per prompt)."""
    concurrency: int = 64
    run_dir: str = "runs/selfplay"
    save_trajectories: bool = False
    """Also write each update's samples to ``run_dir/trajectories/``."""
    tensorboard: bool = True

    RESUMABLE = (*RunSettings.RESUMABLE, "updates", "save_trajectories", "concurrency", "pool", "log_batch_metrics")

    def problems(self) -> list[str]:
        out = []
        if "id" not in self.env:
            out.append("env needs an 'id' (e.g. env=redteam)")
        out += at_least(self, 1, "updates", "games_per_update", "group_size", "concurrency") + self.run_problems()
        if self.group_size >= 1 and self.games_per_update % self.group_size:
            out.append(f"games_per_update={self.games_per_update} must be a multiple of group_size={self.group_size}")
        if self.pool.backend == "remote":
            out.append("pool.backend=remote cannot receive the learner's weights (a server loads checkpoints from "
                       "its own disk); train with pool=transformers, ray or vllm")
        return out

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.env.items() if k != "id"}
