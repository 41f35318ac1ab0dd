"""Score routers of ``sparring/router-v0`` on exact match and cost.

:func:`evaluate_router` plays a router (any policy spec: a scripted baseline, a model, a
checkpoint or a run) on a question set against fixed experts and reports, per evaluation
seed and as mean ± std over the seeds: ``em`` (exact match), ``cost`` (dollars per question,
from the experts' prices), ``calls`` (expert calls per question), ``valid_format`` (games
without a format failure) and ``reward``. A model (given as a string: ``tiny``, a path, a run)
plays through the pool with the router's stop strings, so its moves end where the game says
they do; so does an LLM given as a mapping spec (``{policy: llm, model: ...}``), with this
evaluation's sampling unless the spec sets its own. ``reward`` normalises cost as the game
does: over the process's cost window by default, so set ``game={"cost_bounds": [low, high]}``
for rewards that compare exactly across evaluations.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparring.agents import load_policy, play_many
from sparring.agents.llm import LLMPolicy
from sparring.agents.resolve import PolicyResolver
from sparring.arenas.evaluate import mean_std, served_name
from sparring.config import Config, at_least, check
from sparring.envs import make
from sparring.envs.router import STOP
from sparring.errors import ConfigError
from sparring.pool import Pool, PoolConfig, SamplingParams, build_pool, serve_model

GAME = "sparring/router-v0"
METRICS = ("em", "cost", "calls", "valid_format", "reward")


@dataclass(frozen=True)
class RouterEvalConfig(Config):
    router: Any = "router.oracle"
    """A scripted router (``router.cheapest``, ...), a policy spec, or a model (``tiny``, a
    directory, checkpoint or run)."""
    game: dict[str, Any] = field(default_factory=lambda: {"data": "heldout"})
    """The game's arguments (``data``, ``experts``, ``cost_coef``, ...)."""
    experts: Any = "router.expert"
    """The policy of every expert seat (a spec), or a mapping seat → spec."""
    games: int = 64
    """Questions per evaluation seed."""
    eval_seeds: tuple[int, ...] = (0, 1, 2)
    temperature: float = 1.0
    max_new_tokens: int = 128
    concurrency: int = 64
    pool: PoolConfig = field(default_factory=PoolConfig)

    def __post_init__(self) -> None:
        problems = at_least(self, 1, "games", "concurrency", "max_new_tokens")
        if not self.eval_seeds:
            problems.append("eval_seeds must name at least one seed")
        check(problems)


def evaluate_router(cfg: RouterEvalConfig, pool: Pool | None = None) -> dict[str, dict[str, Any]]:
    """``{metric: {"mean", "std", "per_seed"}}`` of the router (see the module docstring)."""
    model = _model(cfg.router)
    own = pool is None and model is not None
    pool = build_pool(cfg.pool) if own else pool
    try:
        return _evaluate(cfg, model, pool)
    finally:
        if own:
            asyncio.run(pool.aclose())


def _model(spec: Any) -> str | None:
    """The model a router spec names, or None for a scripted or other policy spec."""
    return spec if isinstance(spec, str) and PolicyResolver().model_source(spec) is not None else None


def _evaluate(cfg: RouterEvalConfig, model: str | None, pool: Pool | None) -> dict[str, dict[str, Any]]:
    seats = make(GAME, raw=True, **cfg.game).possible_agents
    if isinstance(cfg.experts, dict) and set(cfg.experts) <= set(seats[1:]):  # seat -> spec
        missing = sorted(set(seats[1:]) - set(cfg.experts))
        if missing:
            raise ConfigError(f"experts gives no policy for seat(s) {missing}")
        experts = dict(cfg.experts)
    else:  # one spec for every expert seat
        experts = dict.fromkeys(seats[1:], cfg.experts)
    sampling = SamplingParams(temperature=cfg.temperature, top_k=0, max_new_tokens=cfg.max_new_tokens, stop=STOP)
    if model is not None:
        name = serve_model(pool, model, name=served_name(model))

        def router():
            return LLMPolicy(name, pool=pool, sampling=sampling, name="router")
    else:
        resolver = PolicyResolver(pool, sampling=sampling)

        def router():
            return resolver.resolve(cfg.router)

    def seat(_):
        return {"router": router()} | {a: load_policy(experts[a]) for a in seats[1:]}

    async def one(eval_seed: int):
        seeds = [eval_seed * 1_000_003 + i for i in range(cfg.games)]
        return await play_many(lambda: make(GAME, **cfg.game), seat, seeds, cfg.concurrency,
                               policy_seeds=[s + 17 for s in seeds])

    async def every():
        return await asyncio.gather(*(one(s) for s in cfg.eval_seeds))

    per_seed: dict[str, list[float]] = {m: [] for m in METRICS}
    for episodes in asyncio.run(every()):
        infos = [e.final_infos["router"] for e in episodes]
        per_seed["em"].append(float(np.mean([i["em"] for i in infos])))
        per_seed["cost"].append(float(np.mean([i["cost"] for i in infos])))
        per_seed["calls"].append(float(np.mean([len(i["calls"]) for i in infos])))
        per_seed["valid_format"].append(float(np.mean([not i["format_problems"] for i in infos])))
        per_seed["reward"].append(float(np.mean([e.rewards["router"] for e in episodes])))
    return {m: dict(zip(("mean", "std"), mean_std(v)), per_seed=v) for m, v in per_seed.items()}
