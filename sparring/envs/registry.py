"""One registry for the suite's games, mirrored into PettingZoo's and Gymnasium's.

Every game has a versioned id ``sparring/<name>-v<N>``; after ``import sparring``,
``pettingzoo.make("aec" | "parallel", id)`` and :func:`make` build it. Single-agent views
(one seat learning, the others played by frozen policies) are registered with Gymnasium, so
``gymnasium.make("sparring:sparring/RedTeamDefender-v0", opponent=...)`` works. Entry points
are strings: nothing heavy is imported until a game is made.

A game registers what others need to know of it, so no caller keeps a table of games:
``default_seats`` (who fills the seats ``sparring play`` leaves open), ``baselines`` (the
scripted opponents each seat is evaluated against), ``strategies`` (the function giving
each seat's finite strategy set for the discrete views that RLlib trains on) and
``batch_metrics`` (what a batch of its games measures, logged by trainers) and ``moves`` (a
language game's moves as a finite index, for learners that score moves by index).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import pettingzoo

from sparring.errors import ConfigError, UnknownGameError, did_you_mean

_VERSIONED = re.compile(r"^(?:(?P<ns>[\w.-]+)/)?(?P<name>[\w.-]+?)-v(?P<version>\d+)$")


@dataclass(frozen=True)
class GameSpec:
    id: str
    module: str
    """The module with ``env()``, ``parallel_env()`` and ``raw_env``."""
    description: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    default_seats: Mapping[str, str] = field(default_factory=dict)
    """Seat → the policy that takes it when ``sparring play`` leaves it open (``*``: any seat)."""
    baselines: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Seat → the scripted policies a model in the other seats is evaluated against."""
    strategies: str | None = None
    """``module:function`` of the game's rules giving ``{seat: [Strategy, ...]}``: the
    actions of its discrete view."""
    numeric: bool = False
    """Observations and actions are numbers (a ``Box`` and a ``Discrete``), not text: no
    hidden reasoning, no private text, no language-game core."""
    batch_metrics: str | None = None
    """``module:function`` giving a batch of finished games' metrics (``{name: value}``) from
    their final ``infos`` (one ``{agent: info}`` per game): what trainers log per update."""
    moves: str | None = None
    """``module:Class`` of a language game's fixed move index, built from the game's config:
    ``len()`` moves, ``texts()``, ``legal(observation)`` (a mask) and ``index(observation,
    output)`` (the move an output makes, or None). Learners that score moves by index (inverse
    RL) read the game through it."""

    def seat_default(self, seat: str, fallback: str = "random") -> str:
        return self.default_seats.get(seat, self.default_seats.get("*", fallback))


GAMES: dict[str, GameSpec] = {}
VIEWS: dict[str, GameSpec] = {}


def register_game(id: str, module: str, description: str, **kwargs: Any) -> None:
    """Register a game (``id`` like ``sparring/redteam-v0``). ``kwargs`` are
    :class:`GameSpec` fields after ``description``."""
    spec = GameSpec(id, module, description, **kwargs)
    GAMES[id] = spec
    if id not in pettingzoo.aec_registry:
        pettingzoo.register("aec", id, entry_point=f"{module}:env", kwargs=spec.kwargs)
        pettingzoo.register("parallel", id, entry_point=f"{module}:parallel_env", kwargs=spec.kwargs)


def register_view(id: str, entry_point: str, description: str, **kwargs: Any) -> None:
    """Register a single-agent Gymnasium view (``entry_point`` is ``module:Class``)."""
    VIEWS[id] = GameSpec(id, entry_point, description, kwargs)
    if id not in gymnasium.registry:
        gymnasium.register(id=id, entry_point=entry_point, kwargs=kwargs, disable_env_checker=False)


def spec(id: str) -> GameSpec:
    """The registered game ``id`` (``sparring/`` may be left out); an unknown name or version
    raises :class:`~sparring.errors.UnknownGameError` with the closest ids."""
    if id in GAMES:
        return GAMES[id]
    short = {s.split("/")[-1]: s for s in GAMES}
    if id in short:
        return GAMES[short[id]]
    asked = _VERSIONED.match(id)
    if asked is not None:
        versions = sorted(f"v{m['version']}" for g in GAMES if (m := _VERSIONED.match(g)) and m["name"] == asked["name"])
        if versions:
            raise UnknownGameError(f"{id}: no such version; available: {', '.join(versions)}")
    raise UnknownGameError(f"no game registered as {id!r}.{did_you_mean(id, [*GAMES, *short])} "
                           f"Registered: {', '.join(sorted(GAMES))}")


def make(id: str, *, parallel: bool = False, raw: bool = False, **kwargs: Any):
    """Build a registered game: the wrapped AEC env by default, ``parallel=True`` for the
    Parallel env, ``raw=True`` for the unwrapped AEC env. ``kwargs`` go to the game."""
    if parallel and raw:
        raise ConfigError("raw=True is the unwrapped AEC env; parallel=True already gives the Parallel env: pass one")
    game = spec(id)
    module = importlib.import_module(game.module)
    factory = module.parallel_env if parallel else (module.raw_env if raw else module.env)
    return factory(**{**game.kwargs, **kwargs})
