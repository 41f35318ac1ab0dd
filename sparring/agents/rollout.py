"""Playing games between policies: one game as an async task, many games at once.

Each game awaits its agents' actions; with LLM policies, the pool batches the requests of
all games in flight. Scripted policies answer at once, so the same code runs them at full
speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pettingzoo import AECEnv

from sparring.agents.base import Action, Policy
from sparring.pool.loops import call_off_loop


@dataclass
class Turn:
    """One move of one agent, as a learner needs it."""

    agent: str
    observation: str
    action: str | None
    generation: Any = None
    invalid: str | None = None


@dataclass
class Episode:
    seed: int | None
    policies: dict[str, str]
    turns: list[Turn] = field(default_factory=list)
    rewards: dict[str, float] = field(default_factory=dict)
    """Each agent's total reward over the game."""
    reward_terms: dict[str, dict[str, float]] = field(default_factory=dict)
    """Each agent's reward terms, summed over the game."""
    final_infos: dict[str, dict[str, Any]] = field(default_factory=dict)
    transcript: str = ""
    """The spectator's view of the game (hidden reasoning marked, not shown)."""


def _add_terms(total: dict[str, float], terms: Mapping[str, float]) -> None:
    for name, value in terms.items():
        total[name] = total.get(name, 0.0) + float(value)


async def play(
    env: AECEnv,
    seats: Mapping[str, Policy],
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    policy_seed: int | None = None,
) -> Episode:
    """Play one game of an AEC env to the end. ``seats`` maps every agent to a policy.

    The policies are reseeded from ``policy_seed`` (default: ``seed``): games of one seed and
    different policy seeds share their setup (e.g. a prompt) and differ in the moves."""
    missing = set(env.possible_agents) - set(seats)
    if missing:
        raise ValueError(f"no policy for seat(s) {sorted(missing)}; seats given: {sorted(seats)}")
    env.reset(seed=seed, options=options)
    base = seed if policy_seed is None else policy_seed
    for i, agent in enumerate(env.possible_agents):
        seats[agent].seed(None if base is None else base * 1000 + i)
    episode = Episode(seed, {a: seats[a].name for a in env.possible_agents})
    slow = getattr(env.unwrapped.game, "slow_resolve", False)
    totals = {a: 0.0 for a in env.possible_agents}
    terms: dict[str, dict[str, float]] = {a: {} for a in env.possible_agents}
    for agent in env.agent_iter():
        observation, _, terminated, truncated, _ = env.last()
        if terminated or truncated:
            episode.final_infos[agent] = dict(env.infos[agent])
            env.step(None)
            continue
        action: Action = await seats[agent].act(agent, observation)
        if slow:  # the step may call an LM judge: off the loop, its request joins the pool's batches
            await call_off_loop(env.step, action.text)
        else:
            env.step(action.text)
        episode.turns.append(
            Turn(agent, observation["text"], action.text, action.generation, env.infos[agent]["invalid"])
        )
        # After a live step, rewards and reward terms describe exactly that step.
        for a, reward in env.rewards.items():
            totals[a] += reward
            _add_terms(terms[a], env.infos[a]["reward_terms"])
    episode.rewards = totals
    episode.reward_terms = terms
    episode.transcript = env.unwrapped.game.render_transcript()
    return episode


async def play_many(
    make_env: Callable[[], AECEnv],
    seats: Callable[[int], Mapping[str, Policy]] | Mapping[str, Policy],
    seeds: Iterable[int],
    concurrency: int = 64,
    policy_seeds: Iterable[int] | None = None,
) -> list[Episode]:
    """Play one game per seed, up to ``concurrency`` at a time; results in seed order.

    ``seats`` is a mapping (policies shared by all games: they must not keep per-game state)
    or a function of the game's index returning one. ``policy_seeds`` (one per game) reseed
    the policies apart from the game seeds (see :func:`play`).
    """
    seeds = list(seeds)
    policy_seeds = list(policy_seeds) if policy_seeds is not None else [None] * len(seeds)
    if len(policy_seeds) != len(seeds):
        raise ValueError(f"{len(policy_seeds)} policy seeds for {len(seeds)} games")
    limit = asyncio.Semaphore(concurrency)

    async def one(index: int, seed: int) -> Episode:
        async with limit:
            game_seats = seats(index) if callable(seats) else seats
            return await play(make_env(), game_seats, seed, policy_seed=policy_seeds[index])

    return await asyncio.gather(*(one(i, s) for i, s in enumerate(seeds)))
