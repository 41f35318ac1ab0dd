"""Playing games between policies: one turn, one game as an async task, many games at once.

Each game awaits its agents' actions; with LLM policies, the pool batches the requests of
all games in flight. Scripted policies answer at once, so the same code runs them at full
speed. :func:`take_turn` is the one implementation of a policy's move: :func:`play` plays
whole games with it, and the single-agent views, which seat frozen policies inside a game,
let those policies move with :func:`advance` (AEC) and :func:`step_parallel` /
:func:`advance_parallel` (Parallel), all through the same turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pettingzoo import AECEnv, ParallelEnv

from sparring.agents.base import Action, Policy
from sparring.errors import ConfigError, PolicyError
from sparring.sync import call_off_loop


@dataclass
class Turn:
    """One move of one agent, as a learner needs it."""

    agent: str
    observation: Any
    """The observation's text (numeric games: the observation itself)."""
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


def add_terms(total: dict[str, float], terms: Mapping[str, float]) -> None:
    for name, value in terms.items():
        total[name] = total.get(name, 0.0) + float(value)


async def act(policy: Policy, agent: str, observation: Any) -> Action:
    """``policy``'s move: what its ``act`` returns, checked (a plain string is taken as the
    move's text; anything else that is not an :class:`Action` is the policy's error)."""
    action = await policy.act(agent, observation)
    if isinstance(action, str):
        return Action(action)
    if not isinstance(action, Action):
        raise PolicyError(f"{policy!r}.act returned {type(action).__name__}, not an Action (or the move's text)")
    return action


def reseed(seats: Mapping[str, Policy], agents: Iterable[str], seed: int | None, policy_seed: int | None) -> None:
    """Seed each seat's policy for one game from ``policy_seed`` (default: ``seed``), one
    seed per seat; with neither, each policy keeps the generator it was built with (and its
    own ``seed=``)."""
    base = seed if policy_seed is None else policy_seed
    if base is None:
        return
    if base < 0:
        raise ConfigError(f"seed={base}: seeds are integers >= 0")
    for i, agent in enumerate(agents):
        seats[agent].seed(base * 1000 + i)


def _slow(env: Any) -> bool:
    """Whether the game's steps wait on a model (an LM judge): they then run off the loop."""
    return bool(getattr(getattr(env.unwrapped, "game", None), "slow_resolve", False))


def shown(observation: Any) -> Any:
    """What a turn records of an observation: its text, or a numeric game's observation."""
    return observation["text"] if isinstance(observation, Mapping) else observation


def to_act(observation: Any) -> bool:
    """Whether the agent observing this moves now (numeric games: every agent, every step)."""
    return bool(observation.get("to_act", 1)) if isinstance(observation, Mapping) else True


async def take_turn(env: AECEnv, agent: str, policy: Policy, observation: dict[str, Any]) -> Turn:
    """``agent``'s move in an AEC env: the policy acts on its observation and the env steps.
    A step that waits on a model runs off the event loop, so its requests join the pool's
    batches with every other game's."""
    action = await act(policy, agent, observation)
    if _slow(env):
        await call_off_loop(env.step, action.text)
    else:
        env.step(action.text)
    return Turn(agent, shown(observation), action.text, action.generation, env.infos[agent]["invalid"])


async def advance(env: AECEnv, seats: Mapping[str, Policy]) -> None:
    """Let the seated policies move (and finished agents take PettingZoo's closing
    ``step(None)``) until an agent without a seat is to move or has ended, or the game is
    over. The unseated agent's rewards accumulate in the env as usual (``env.last()``)."""
    for agent in env.agent_iter():
        observation, _, terminated, truncated, _ = env.last()
        if agent not in seats:
            return
        if terminated or truncated:
            env.step(None)
        else:
            await take_turn(env, agent, seats[agent], observation)


async def play(
    env: AECEnv,
    seats: Mapping[str, Policy],
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    policy_seed: int | None = None,
) -> Episode:
    """Play one game of an AEC env to the end. ``seats`` maps every agent to a policy.

    The policies are reseeded from ``policy_seed`` (default: ``seed``; see :func:`reseed`):
    games of one seed and different policy seeds share their setup (e.g. a prompt) and differ
    in the moves."""
    missing = set(env.possible_agents) - set(seats)
    if missing:
        raise ConfigError(f"no policy for seat(s) {sorted(missing)}; seats given: {sorted(seats)}")
    reseed(seats, env.possible_agents, seed, policy_seed)
    env.reset(seed=seed, options=options)
    episode = Episode(seed, {a: seats[a].name for a in env.possible_agents})
    totals = {a: 0.0 for a in env.possible_agents}
    terms: dict[str, dict[str, float]] = {a: {} for a in env.possible_agents}
    for agent in env.agent_iter():
        # What the agent earned since its last move (every agent's game ends with a last look).
        observation, reward, terminated, truncated, info = env.last()
        totals[agent] += reward
        add_terms(terms[agent], info["reward_terms"])
        if terminated or truncated:
            episode.final_infos[agent] = dict(info)
            env.step(None)
            continue
        episode.turns.append(await take_turn(env, agent, seats[agent], observation))
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
    options: Iterable[dict[str, Any] | None] | None = None,
) -> list[Episode]:
    """Play one game per seed, up to ``concurrency`` at a time; results in seed order.

    ``seats`` is a mapping (policies shared by all games: they must not keep per-game state)
    or a function of the game's index returning one. ``policy_seeds`` (one per game) reseed
    the policies apart from the game seeds, and ``options`` (one per game) go to each game's
    ``reset`` (see :func:`play`).
    """
    seeds = list(seeds)
    policy_seeds = list(policy_seeds) if policy_seeds is not None else [None] * len(seeds)
    options = list(options) if options is not None else [None] * len(seeds)
    for name, given in (("policy seeds", policy_seeds), ("option sets", options)):
        if len(given) != len(seeds):
            raise ConfigError(f"{len(given)} {name} for {len(seeds)} games")
    limit = asyncio.Semaphore(concurrency)

    async def one(index: int, seed: int) -> Episode:
        async with limit:
            game_seats = seats(index) if callable(seats) else seats
            return await play(make_env(), game_seats, seed, policy_seed=policy_seeds[index], options=options[index])

    return await asyncio.gather(*(one(i, s) for i, s in enumerate(seeds)))


# -- Parallel envs ---------------------------------------------------------------------------
@dataclass
class Step:
    """What one or more steps of a Parallel env returned; rewards and reward terms summed."""

    observations: dict[str, Any]
    rewards: dict[str, float]
    terminations: dict[str, bool]
    truncations: dict[str, bool]
    infos: dict[str, dict[str, Any]]


async def step_parallel(env: ParallelEnv, observations: Mapping[str, Any], seats: Mapping[str, Policy],
                        actions: Mapping[str, Any] | None = None) -> Step:
    """One step of a Parallel env: every seated agent that is to act (``to_act``) moves
    (concurrently), joined by ``actions`` for the others."""
    acting = [a for a in seats if a in observations and to_act(observations[a])]
    moves = await asyncio.gather(*(act(seats[a], a, observations[a]) for a in acting))
    joint = dict(actions or {}) | {a: move.text for a, move in zip(acting, moves)}
    if _slow(env):
        result = await call_off_loop(env.step, joint)
    else:
        result = env.step(joint)
    return Step(*result)


async def advance_parallel(env: ParallelEnv, last: Step, seats: Mapping[str, Policy]) -> Step:
    """Step while the game goes on and only seated agents are to act; returns the last step
    with the rewards and reward terms of every step taken here added to ``last``'s."""
    rewards = {a: float(r) for a, r in last.rewards.items()}
    terms = {a: dict(i.get("reward_terms", {})) for a, i in last.infos.items()}
    step = last
    while env.agents:
        acting = [a for a, o in step.observations.items() if to_act(o)]
        if not acting or any(a not in seats for a in acting):
            break
        step = await step_parallel(env, step.observations, seats)
        for agent, reward in step.rewards.items():
            rewards[agent] = rewards.get(agent, 0.0) + float(reward)
            add_terms(terms.setdefault(agent, {}), step.infos[agent].get("reward_terms", {}))
    infos = {a: dict(i, reward_terms=terms.get(a, {})) for a, i in step.infos.items()}
    return Step(step.observations, rewards, step.terminations, step.truncations, infos)
