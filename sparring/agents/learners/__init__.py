"""Learners: algorithms that turn played games into better policies."""

from sparring.agents.learners.config import (
    AgentConfig,
    LearnerConfig,
    LoraSettings,
    PoolSettings,
    TrainConfig,
)
from sparring.agents.learners.selfplay import SelfPlayTrainer, train

__all__ = ["AgentConfig", "LearnerConfig", "LoraSettings", "PoolSettings", "SelfPlayTrainer", "TrainConfig", "train"]
