"""Single-agent Gymnasium views of the games: one seat learns, the others are frozen policies.

``gymnasium.make("sparring:sparring/RedTeamDefender-v0", opponent="redteam.roleplay")``
gives a plain ``gymnasium.Env`` whose observations and actions are the seat's own (a
``Dict`` with text; text actions). Opponents are any policy spec
(:mod:`sparring.agents.resolve`): a :class:`~sparring.agents.Policy` object, a registered
name, ``module:Class``, a model or a run. They are reseeded from the env's generator at
every reset, so a seeded reset replays exactly, and they move through the rollout engine's
own turn (:func:`sparring.agents.rollout.advance`). One step of the view is one move of the
learning seat; its reward is everything the seat earned until its next move (or the end), the
first step's also what it earned before its first move.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium

from sparring.agents import PolicySpec, load_policy
from sparring.agents.rollout import advance
from sparring.envs.registry import make
from sparring.errors import ConfigError
from sparring.sync import run_sync


class SingleAgentView(gymnasium.Env):
    """``game_id`` from ``agent``'s seat; ``opponents`` maps every other seat to a policy
    spec. ``game_kwargs`` go to the game (the id is positional-only, so a game argument may
    be called ``game``, as matrix-v0's is)."""

    metadata = {"render_modes": ["human", "ansi"]}

    def __init__(self, game_id: str, agent: str, opponents: Mapping[str, PolicySpec], /,
                 render_mode: str | None = None, **game_kwargs: Any):
        self._env = make(game_id, raw=True, render_mode=render_mode, **game_kwargs)
        if agent not in self._env.possible_agents:
            raise ConfigError(f"agent={agent!r} is not a seat of {game_id}; seats: {self._env.possible_agents}")
        self.agent = agent
        self.render_mode = render_mode
        others = [a for a in self._env.possible_agents if a != agent]
        missing = set(others) - set(opponents)
        if missing:
            raise ConfigError(f"no opponent policy for seat(s) {sorted(missing)} of {game_id}")
        self.opponents = {a: load_policy(opponents[a]) for a in others}
        self.observation_space = self._env.observation_space(agent)
        self.action_space = self._env.action_space(agent)
        self._opening = 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        game_seed = int(self.np_random.integers(2**31))
        self._env.reset(seed=game_seed, options=options)
        for i, policy in enumerate(self.opponents.values(), 1):
            policy.seed(game_seed + i)
        observation, self._opening, terminated, _, info = self._advance()
        if terminated:
            raise ConfigError(f"the game ended before {self.agent} had a move; check the game's options")
        return observation, info

    def step(self, action: Any):
        self._env.step(action)
        observation, reward, terminated, truncated, info = self._advance()
        reward, self._opening = reward + self._opening, 0.0  # what the opponents' opening moves paid the seat
        return observation, reward, terminated, truncated, info

    def _advance(self):
        """Let the frozen seats play until it is this seat's move or the game is over."""
        run_sync(advance(self._env, self.opponents))
        if self._env.agent_selection != self.agent:
            raise RuntimeError(f"{self.agent} left the game without being told it ended")
        observation, reward, terminated, truncated, info = self._env.last()
        return observation, float(reward), terminated, truncated, info

    def render(self):
        return self._env.render()

    def close(self) -> None:
        self._env.close()


class RedTeamDefenderEnv(SingleAgentView):
    """``sparring/redteam-v0`` from the defender's seat; ``opponent`` plays the attacker."""

    def __init__(self, opponent: PolicySpec = "redteam.roleplay", render_mode: str | None = None, **game_kwargs: Any):
        super().__init__("sparring/redteam-v0", "defender", {"attacker": opponent}, render_mode, **game_kwargs)


class RedTeamAttackerEnv(SingleAgentView):
    """``sparring/redteam-v0`` from the attacker's seat; ``opponent`` plays the defender.
    Every game is revised (``revise_fraction=1``): in verbatim games the attacker has no move."""

    def __init__(self, opponent: PolicySpec = "redteam.keyword", render_mode: str | None = None, **game_kwargs: Any):
        game_kwargs.setdefault("revise_fraction", 1.0)
        if game_kwargs["revise_fraction"] != 1.0:
            raise ConfigError("the attacker view needs revise_fraction=1.0: in verbatim games the attacker has no move")
        super().__init__("sparring/redteam-v0", "attacker", {"defender": opponent}, render_mode, **game_kwargs)


class RainbowMutatorEnv(SingleAgentView):
    """``sparring/rainbow-v0`` from the mutator's seat; ``opponent`` plays the frozen target:
    the classic RainbowPlus loop, one candidate per step. The archive persists across
    ``reset()`` (``archive=`` an :class:`~sparring.envs.rainbow.Archive` or a JSON path)."""

    def __init__(self, opponent: PolicySpec = "redteam.keyword", render_mode: str | None = None, **game_kwargs: Any):
        super().__init__("sparring/rainbow-v0", "mutator", {"target": opponent}, render_mode, **game_kwargs)

    @property
    def archive(self):
        return self._env.unwrapped.game.archive


class RouterEnv(SingleAgentView):
    """``sparring/router-v0`` from the router's seat; ``opponent`` plays every expert (frozen):
    a step is one router move, and the expert it asks replies before the next observation."""

    def __init__(self, opponent: PolicySpec = "router.expert", render_mode: str | None = None, **game_kwargs: Any):
        seats = make("sparring/router-v0", raw=True, **game_kwargs).possible_agents[1:]
        super().__init__("sparring/router-v0", "router", dict.fromkeys(seats, opponent), render_mode, **game_kwargs)


class MatrixEnv(SingleAgentView):
    """``sparring/matrix-v0`` from ``player_0``'s seat; ``opponent`` plays every other seat."""

    def __init__(self, opponent: PolicySpec = "matrix.random", render_mode: str | None = None, **game_kwargs: Any):
        seats = make("sparring/matrix-v0", raw=True, **game_kwargs).possible_agents[1:]
        # A spec builds one policy per seat; a Policy object plays every other seat.
        super().__init__("sparring/matrix-v0", "player_0", dict.fromkeys(seats, opponent), render_mode, **game_kwargs)
