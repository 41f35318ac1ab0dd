"""Policies by name: the scripted baselines, the human seat, or any ``module:Class`` path.

A newcomer's agent needs no registration: ``load_policy("my_pkg.agents:MyPolicy")`` imports
and builds it (keyword arguments go to its constructor).
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from sparring.agents.base import Policy

POLICIES: dict[str, tuple[str, str]] = {
    # name: (import path, one-line description)
    "human": ("sparring.agents.human:HumanPolicy", "you, typing in the terminal"),
    "llm": ("sparring.agents.llm:LLMPolicy", "a language model through the shared pool (model=tiny | path | hub id)"),
    "redteam.verbatim": ("sparring.agents.scripted.redteam:VerbatimAttacker", "attacker: passes the seed unchanged"),
    "redteam.roleplay": ("sparring.agents.scripted.redteam:RolePlayAttacker", "attacker: wraps the seed in a role-play frame"),
    "redteam.hypothetical": ("sparring.agents.scripted.redteam:HypotheticalAttacker", "attacker: asks for the seed as fiction"),
    "redteam.misspell": ("sparring.agents.scripted.redteam:MisspellingAttacker", "attacker: obfuscates words with typos"),
    "redteam.comply": ("sparring.agents.scripted.redteam:ComplyDefender", "defender: always complies"),
    "redteam.refuse": ("sparring.agents.scripted.redteam:RefuseDefender", "defender: always refuses"),
    "redteam.keyword": ("sparring.agents.scripted.redteam:KeywordDefender", "defender: refuses when the harm lexicon matches"),
    "matrix.constant": ("sparring.agents.scripted.matrix:ConstantPolicy", "always the same move (move=NAME; default: first)"),
    "matrix.random": ("sparring.agents.scripted.matrix:RandomPolicy", "a uniformly random legal move"),
    "matrix.tit_for_tat": ("sparring.agents.scripted.matrix:TitForTat", "opens nicely, then copies the opponent's last move"),
    "random": ("sparring.agents.scripted.common:RandomTextPolicy", "random text from the action space (a fuzzer)"),
    "rllib": ("sparring.agents.rllib:RLlibPolicy", "an RLlib policy on a game's discrete view (checkpoint=RUN_OR_CHECKPOINT, policy_id=ID)"),
}


def import_object(path: str) -> Any:
    module_name, sep, attr = path.partition(":")
    if not sep or not attr:
        raise ValueError(f"{path!r} is not an import path; write it as 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import module {module_name!r} for policy {path!r}: {e}") from e
    try:
        return getattr(module, attr)
    except AttributeError as e:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from e


def load_policy(spec: str | Policy, **kwargs: Any) -> Policy:
    """A :class:`Policy` from an instance, a registered name, or a ``module:Class`` path."""
    if isinstance(spec, Policy):
        return spec
    if spec in POLICIES:
        path = POLICIES[spec][0]
    elif ":" in spec:
        path = spec
    else:
        close = difflib.get_close_matches(spec, list(POLICIES), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown policy {spec!r}.{hint} Use a registered name ({', '.join(POLICIES)}) or 'module:Class'.")
    cls = import_object(path)
    policy = cls(**kwargs)
    if not isinstance(policy, Policy):
        raise TypeError(f"{path} built {type(policy).__name__}, which is not a sparring Policy (subclass sparring.agents.Policy)")
    return policy
