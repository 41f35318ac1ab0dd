"""Agents: the policy interface, scripted baselines, the human seat, LLM policies, the
resolver that builds any of them from a spec, game play, and the learners."""

from sparring.agents.base import Action, Policy, ScriptedPolicy
from sparring.agents.resolve import POLICIES, PolicyResolver, PolicySpec, load_policy
from sparring.agents.rollout import Episode, Turn, play, play_many

__all__ = [
    "POLICIES", "Action", "Episode", "Policy", "PolicyResolver", "PolicySpec", "ScriptedPolicy", "Turn",
    "load_policy", "play", "play_many",
]
