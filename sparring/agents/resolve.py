"""Policies from specs: the one resolver for every way a policy can be named.

A spec is one of

- a :class:`~sparring.agents.Policy` object (used as it is);
- a registered name (``redteam.roleplay``, ``matrix.tit_for_tat``, ``human``, ``random``,
  ``llm``, ``rllib``: :data:`POLICIES`, listed by ``sparring agents``);
- an import path ``package.module:Class`` (a module in the current directory is found too);
- a model: ``tiny`` (the shipped model), a model directory, a saved LoRA adapter, a training
  checkpoint or a whole run directory (its latest checkpoint), or a hub id: an LLM policy;
- a name the resolver's pool already serves (a trainer's ``learner``): an LLM policy of it;
- a mapping ``{policy: SPEC, **arguments}``; for LLM policies the arguments are ``model``,
  ``base_url`` and ``api_key`` (a model behind an OpenAI-compatible server), the sampling
  fields (``temperature``, ``top_p``, ``top_k``, ``max_new_tokens``, and ``stop``: the
  strings a move ends at, e.g. a router's ``["</search>", "</answer>"]``), ``system_prompt``,
  ``prefill`` and ``name``.

LLM policies of one resolver share its pool (one per ``base_url``), so their requests batch
together. Unknown names and arguments fail here, with the closest valid ones suggested.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sparring.agents.base import Policy
from sparring.errors import ConfigError, ModelNotFoundError, UnknownPolicyError, did_you_mean
from sparring.pool import Pool, PoolConfig, SamplingParams, build_pool
from sparring.runs import ModelSource, resolve_model

POLICIES: dict[str, tuple[str, str]] = {
    # name: (import path, one-line description)
    "human": ("sparring.agents.human:HumanPolicy", "you, typing in the terminal"),
    "llm": ("sparring.agents.llm:LLMPolicy", "a language model through the shared pool (model=tiny | path | run | hub id)"),
    "redteam.verbatim": ("sparring.agents.scripted.redteam:VerbatimAttacker", "attacker: passes the seed unchanged"),
    "redteam.roleplay": ("sparring.agents.scripted.redteam:RolePlayAttacker", "attacker: wraps the seed in a role-play frame"),
    "redteam.hypothetical": ("sparring.agents.scripted.redteam:HypotheticalAttacker", "attacker: asks for the seed as fiction"),
    "redteam.misspell": ("sparring.agents.scripted.redteam:MisspellingAttacker", "attacker: obfuscates words with typos"),
    "redteam.comply": ("sparring.agents.scripted.redteam:ComplyDefender", "defender: always complies"),
    "redteam.refuse": ("sparring.agents.scripted.redteam:RefuseDefender", "defender: always refuses"),
    "redteam.keyword": ("sparring.agents.scripted.redteam:KeywordDefender", "defender: refuses when the harm lexicon matches"),
    "rainbow.style": ("sparring.agents.scripted.rainbow:StyleMutator", "mutator: recasts the parent in the requested attack style"),
    "rainbow.verbatim": ("sparring.agents.scripted.rainbow:VerbatimMutator", "mutator: proposes the parent unchanged"),
    "router.expert": ("sparring.agents.scripted.router:SkilledExpert", "router expert: knows answers by its domain skills"),
    "router.cheapest": ("sparring.agents.scripted.router:CheapestRouter", "router: always asks the cheapest expert"),
    "router.strongest": ("sparring.agents.scripted.router:StrongestRouter", "router: always asks the priciest (strongest) expert"),
    "router.random": ("sparring.agents.scripted.router:RandomRouter", "router: asks a random expert"),
    "router.oracle": ("sparring.agents.scripted.router:OracleRouter", "router: the cheapest expert that knows the answer"),
    "rainbow.archive": ("sparring.agents.scripted.rainbow:ArchiveAttacker", "redteam attacker: prompts drawn from a RainbowPlus archive (archive=RUN_OR_FILE)"),
    "matrix.constant": ("sparring.agents.scripted.matrix:ConstantPolicy", "always the same move (move=NAME; default: first)"),
    "matrix.random": ("sparring.agents.scripted.matrix:RandomPolicy", "a uniformly random legal move"),
    "matrix.tit_for_tat": ("sparring.agents.scripted.matrix:TitForTat", "opens nicely, then copies the opponent's last move"),
    "gems.expert": ("sparring.agents.scripted.gems:SoftExpert", "gems: the Boltzmann-equilibrium expert of a fixed layout (size, *_gems, layout_seed, gamma, lam)"),
    "gems.greedy": ("sparring.agents.scripted.gems:GreedyCollector", "gems: walks to the nearest own or purple gem"),
    "negotiation.softmax": ("sparring.agents.scripted.negotiation:SoftmaxNegotiator",
                            "negotiation: each move with probability ∝ exp(expected reward / temperature)"),
    "negotiation.fair": ("sparring.agents.scripted.negotiation:FairNegotiator",
                         "negotiation: accepts half the pool's worth, else offers a fair split (accept_share, give_share)"),
    "negotiation.walk": ("sparring.agents.scripted.negotiation:WalkAway", "negotiation: walks away at once"),
    "random": ("sparring.agents.scripted.common:RandomTextPolicy", "random text from the action space (a fuzzer)"),
    "irl": ("sparring.agents.learners.mamql_run:IRLPolicy",
            "the policies an inverse-RL run learned (checkpoint=RUN_OR_CHECKPOINT, greedy=BOOL)"),
    "rllib": ("sparring.views.rllib:RLlibPolicy", "an RLlib policy on a game's discrete view (checkpoint=RUN_OR_CHECKPOINT, policy_id=ID)"),
}

#: Arguments of an LLM spec that choose its pool or its sampling, not the policy object's.
_POOL_ARGS = ("base_url", "api_key")
_SAMPLING_ARGS = ("temperature", "top_p", "top_k", "max_new_tokens", "stop")

PolicySpec = Policy | str | Mapping[str, Any]


def import_object(path: str) -> Any:
    """``package.module:attribute``, importing the module (from the current directory too)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not all(part.isidentifier() for part in (*module_name.split("."), attr)):
        raise UnknownPolicyError(f"{path!r} is not an import path (nor a file here); write it as "
                                 "'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        here = os.getcwd()
        if error.name != module_name.split(".")[0] or here in sys.path:
            raise UnknownPolicyError(f"cannot import module {module_name!r} for policy {path!r}: {error}") from None
        sys.path.insert(0, here)  # as `python -m` would: a user's agents next to their config
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as retry:
            raise UnknownPolicyError(f"cannot import module {module_name!r} for policy {path!r}: {retry} "
                                     f"(looked in {here} too)") from None
    except ImportError as error:
        raise UnknownPolicyError(f"cannot import module {module_name!r} for policy {path!r}: {error}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        names = [n for n in dir(module) if not n.startswith("_")]
        raise UnknownPolicyError(f"module {module_name!r} has no attribute {attr!r}.{did_you_mean(attr, names)}") from None


def construct(cls: Any, kwargs: Mapping[str, Any], what: str) -> Any:
    """``cls(**kwargs)``, naming an argument the class does not take (with the closest one)
    or a required one that is missing."""
    if not callable(cls):
        raise UnknownPolicyError(f"{what} names a {type(cls).__name__}, not a class or function that builds a policy")
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    known = [n for n, p in parameters.items() if p.kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                                 inspect.Parameter.VAR_KEYWORD)]
    if parameters and not takes_any:
        for key in kwargs:
            if key not in parameters:
                raise ConfigError(f"{what} takes no argument {key!r}.{did_you_mean(key, known)} "
                                  f"Its arguments: {', '.join(known) or 'none'}")
    missing = [n for n, p in parameters.items() if p.default is inspect.Parameter.empty and n not in kwargs
               and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    if missing:
        raise ConfigError(f"{what} needs argument(s) {', '.join(repr(n) for n in missing)}: write "
                          f"{{policy: ..., {missing[0]}: ...}}")
    return cls(**kwargs)


class PolicyResolver:
    """Builds policies from specs (see the module docstring). LLM policies go to ``pool``, or
    to a pool built from ``pool_config`` on first use (one per resolver), or, given neither,
    to the process-wide pool every :class:`~sparring.agents.llm.LLMPolicy` shares by default;
    with ``base_url``, to a client of that server. ``sampling`` is their default sampling."""

    def __init__(self, pool: Pool | None = None, pool_config: PoolConfig | None = None,
                 sampling: SamplingParams | None = None):
        self._pool = pool
        self.pool_config = pool_config
        self.sampling = sampling
        self._remote: dict[tuple[str, str | None], Pool] = {}

    @property
    def pool(self) -> Pool:
        """The pool local LLM policies share (built on first use)."""
        if self._pool is None:
            from sparring.agents.llm import default_pool

            self._pool = build_pool(self.pool_config) if self.pool_config is not None else default_pool()
        return self._pool

    def resolve(self, spec: PolicySpec, **kwargs: Any) -> Policy:
        """The policy ``spec`` names, built with ``kwargs``."""
        if isinstance(spec, Policy):
            if kwargs:
                raise ConfigError(f"{spec!r} is a policy object already; it takes no arguments ({sorted(kwargs)})")
            return spec
        if isinstance(spec, Mapping):
            values = dict(spec)
            if "policy" not in values:
                raise ConfigError(f"policy spec {dict(spec)!r} needs a 'policy' key (a name, a model or module:Class)")
            clash = sorted(set(values) & set(kwargs) - {"policy"})
            if clash:
                raise ConfigError(f"policy spec {dict(spec)!r} sets {clash}, which are given here too; set them once")
            return self.resolve(values.pop("policy"), **values, **kwargs)
        if not isinstance(spec, (str, Path)):
            raise UnknownPolicyError(f"a policy spec is a name, a path or a mapping, not {type(spec).__name__} "
                                     f"({spec!r})")
        spec = str(spec)
        if spec == "llm":
            return self.llm(kwargs.pop("model", "tiny"), **kwargs)
        if spec in POLICIES:
            return self._build(POLICIES[spec][0], kwargs, spec)
        if ":" in spec and not Path(spec).exists():
            return self._build(spec, kwargs, spec)
        if (self._pool is not None and spec in self._pool.policies) or self.model_source(spec) is not None:
            if "model" in kwargs:
                raise ConfigError(f"policy {spec!r} names a model itself, so it takes no model={kwargs['model']!r}; "
                                  "drop one of them (or write {policy: llm, model: ...})")
            return self.llm(spec, **kwargs)
        raise UnknownPolicyError(f"unknown policy {spec!r}.{did_you_mean(spec, POLICIES)} Give a registered name "
                                 f"({', '.join(POLICIES)}), 'module:Class', or a model: tiny, a model directory, "
                                 "a checkpoint or a run directory")

    def model_source(self, spec: str) -> ModelSource | None:
        """Where ``spec`` lives when it names a model (``None`` for any other spec)."""
        if spec in POLICIES or spec == "llm" or (":" in spec and not Path(spec).exists()):
            return None
        try:
            return resolve_model(spec)
        except ModelNotFoundError:
            if Path(spec).exists() or "/" in spec:
                raise
            return None

    def llm(self, model: str = "tiny", *, base_url: str | None = None, api_key: str | None = None,
            **kwargs: Any) -> Policy:
        """An LLM policy of ``model`` on this resolver's pool (or on the server at ``base_url``)."""
        from sparring.agents.llm import DEFAULT_SAMPLING, LLMPolicy

        pool = self.pool if base_url is None else self._remote_pool(base_url, api_key)
        sampling = {k: kwargs.pop(k) for k in _SAMPLING_ARGS if k in kwargs}
        base = kwargs.pop("sampling", None) or self.sampling or DEFAULT_SAMPLING
        try:
            sampling_params = dataclasses.replace(base, **sampling)
        except TypeError as error:
            raise ConfigError(f"sampling of policy {model!r}: {error}") from None
        return construct(LLMPolicy, {"model": model, "pool": pool, "sampling": sampling_params, **kwargs},
                         f"policy llm (model={model})")

    def _remote_pool(self, base_url: str, api_key: str | None) -> Pool:
        key = (base_url, api_key)
        if key not in self._remote:
            self._remote[key] = build_pool(PoolConfig(backend="remote", base_url=base_url, api_key=api_key))
        return self._remote[key]

    def _build(self, path: str, kwargs: dict[str, Any], name: str) -> Policy:
        stray = [k for k in (*_POOL_ARGS, *_SAMPLING_ARGS, "model") if k in kwargs]
        cls = import_object(path)
        if stray and not _accepts(cls, stray):
            raise ConfigError(f"policy {name!r} takes no argument {stray[0]!r} (that is an argument of LLM policies: "
                              f"write {{policy: llm, {stray[0]}: ...}})")
        policy = construct(cls, kwargs, f"policy {name!r}")
        if not isinstance(policy, Policy):
            raise UnknownPolicyError(f"{path} built {type(policy).__name__}, which is not a sparring Policy "
                                     "(subclass sparring.agents.Policy)")
        return policy


def _accepts(cls: Any, names: list[str]) -> bool:
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return True
    return all(n in parameters for n in names) or any(p.kind is inspect.Parameter.VAR_KEYWORD
                                                       for p in parameters.values())


_default: PolicyResolver | None = None


def load_policy(spec: PolicySpec, **kwargs: Any) -> Policy:
    """The policy ``spec`` names (see the module docstring), from the process-wide resolver:
    its LLM policies share one in-process pool."""
    global _default
    if _default is None:
        _default = PolicyResolver()
    return _default.resolve(spec, **kwargs)
