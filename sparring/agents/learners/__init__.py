"""Learners: algorithms that turn played games into better policies.

Each trainer is a config + trainer pair: :class:`SelfPlayConfig` / :class:`SelfPlayTrainer`
(REINFORCE++, GRPO), :class:`INPOConfig` / :class:`INPOTrainer` (INPO, DPO) and
:class:`RainbowRunConfig` / :class:`RainbowSearch` (the RainbowPlus search, which fills an
archive rather than training) and :class:`IRLRunConfig` / :class:`IRLRun` (MAMQL and its
baselines, learning from recorded demonstrations) and :class:`SFTConfig` / :class:`SFTTrainer`
(supervised fine-tuning of the LLM on a language game's recorded moves: behaviour cloning). A recipe
(``configs/train/*.yaml``) names its trainer in ``trainer:``; :func:`trainer_for` builds the
pair from composed values and :func:`train` runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sparring.agents.learners.base import LLMTrainer
from sparring.agents.learners.config import AgentConfig, LoraSettings, OptimizerConfig, RunConfig
from sparring.agents.learners.inpo import INPOConfig, INPOLearnerConfig, INPOTrainer
from sparring.agents.learners.mamql_run import IRLRun, IRLRunConfig
from sparring.agents.learners.rainbow import RainbowRunConfig, RainbowSearch
from sparring.agents.learners.selfplay import PolicyGradientConfig, SelfPlayConfig, SelfPlayTrainer
from sparring.agents.learners.sft import SFTConfig, SFTLearnerConfig, SFTTrainer
from sparring.config import Config
from sparring.errors import ConfigError, did_you_mean
from sparring.runs import RunSettings, check_engine

TRAINERS: dict[str, tuple[type[RunSettings], type[LLMTrainer] | type[IRLRun]]] = {
    "selfplay": (SelfPlayConfig, SelfPlayTrainer),
    "inpo": (INPOConfig, INPOTrainer),
    "rainbow": (RainbowRunConfig, RainbowSearch),
    "mamql": (IRLRunConfig, IRLRun),
    "sft": (SFTConfig, SFTTrainer),
}
#: The trainer of each ``learner.algorithm``.
ALGORITHMS = {"reinforce_pp": "selfplay", "grpo": "selfplay", "inpo": "inpo", "dpo": "inpo", "sft": "sft"}


def config_for(values: Mapping[str, Any]) -> Config:
    """The typed config of a composed recipe, for the trainer it names (``trainer:``). A
    ``run_dir`` that holds an RLlib run is refused first, by name (its recipe is no trainer's)."""
    check_engine(values, "sparring")
    name = values.get("trainer") or "selfplay"
    if name not in TRAINERS:
        raise ConfigError(f"trainer={name!r} is unknown; use one of {', '.join(TRAINERS)}.{did_you_mean(name, TRAINERS)}")
    algorithm = (values.get("learner") or {}).get("algorithm")
    wanted = ALGORITHMS.get(algorithm)
    if wanted is not None and wanted != name:
        raise ConfigError(f"learner.algorithm={algorithm} is trained by the {wanted} trainer, not {name}: use the "
                          f"recipe train={wanted}")
    return TRAINERS[name][0].from_dict(dict(values))


def trainer_for(cfg: Config | Mapping[str, Any], resume: bool = False,
                on_update: Callable[[dict], None] | None = None) -> LLMTrainer | IRLRun:
    """The trainer of a recipe (a config or composed values), ready to :meth:`~LLMTrainer.run`."""
    if not isinstance(cfg, Config):
        cfg = config_for(cfg)
    trainer = next(t for c, t in TRAINERS.values() if isinstance(cfg, c))
    return trainer(cfg, resume=resume, on_update=on_update)


def train(cfg: Config | Mapping[str, Any], resume: bool = False,
          on_update: Callable[[dict], None] | None = None) -> list[dict]:
    """Run (or resume) a training run; returns its metrics, one row per update."""
    trainer = trainer_for(cfg, resume, on_update)
    try:
        return trainer.run()
    finally:
        trainer.close()


__all__ = [
    "ALGORITHMS",
    "TRAINERS",
    "AgentConfig",
    "INPOConfig",
    "INPOLearnerConfig",
    "INPOTrainer",
    "IRLRun",
    "IRLRunConfig",
    "LLMTrainer",
    "LoraSettings",
    "OptimizerConfig",
    "PolicyGradientConfig",
    "RainbowRunConfig",
    "RainbowSearch",
    "RunConfig",
    "SelfPlayConfig",
    "SFTConfig",
    "SFTLearnerConfig",
    "SFTTrainer",
    "SelfPlayTrainer",
    "config_for",
    "train",
    "trainer_for",
]
