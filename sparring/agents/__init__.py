"""Agents: the policy interface, scripted baselines, the human seat, and game play."""

from sparring.agents.base import Action, Policy, ScriptedPolicy, run_sync
from sparring.agents.registry import POLICIES, load_policy
from sparring.agents.rollout import Episode, Turn, play, play_many

__all__ = [
    "POLICIES", "Action", "Episode", "Policy", "ScriptedPolicy", "Turn", "load_policy", "play",
    "play_many", "run_sync",
]
