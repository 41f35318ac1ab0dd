"""One registry for the suite's games, mirrored into PettingZoo's and Gymnasium's.

Every game has a versioned id ``sparring/<name>-v<N>``; after ``import sparring``,
``pettingzoo.make("aec" | "parallel", id)`` and :func:`make` build it. Single-agent views
(one seat learning, the others played by frozen policies) are registered with Gymnasium, so
``gymnasium.make("sparring:sparring/RedTeamDefender-v0", opponent=...)`` works. Entry points
are strings: nothing heavy is imported until a game is made.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import pettingzoo


class UnknownGameError(KeyError):
    """Raised for an id that is not registered; the message suggests the closest ids."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class GameSpec:
    id: str
    module: str
    """The module with ``env()``, ``parallel_env()`` and ``raw_env``."""
    description: str
    kwargs: dict[str, Any] = field(default_factory=dict)


GAMES: dict[str, GameSpec] = {}
VIEWS: dict[str, GameSpec] = {}


def register_game(id: str, module: str, description: str, **kwargs: Any) -> None:
    spec = GameSpec(id, module, description, kwargs)
    GAMES[id] = spec
    if id not in pettingzoo.aec_registry:
        pettingzoo.register("aec", id, entry_point=f"{module}:env", kwargs=kwargs)
        pettingzoo.register("parallel", id, entry_point=f"{module}:parallel_env", kwargs=kwargs)


def register_view(id: str, entry_point: str, description: str, **kwargs: Any) -> None:
    """Register a single-agent Gymnasium view (``entry_point`` is ``module:Class``)."""
    VIEWS[id] = GameSpec(id, entry_point, description, kwargs)
    if id not in gymnasium.registry:
        gymnasium.register(id=id, entry_point=entry_point, kwargs=kwargs, disable_env_checker=False)


def spec(id: str) -> GameSpec:
    if id in GAMES:
        return GAMES[id]
    short = {s.split("/")[-1]: s for s in GAMES}
    if id in short:
        return GAMES[short[id]]
    close = difflib.get_close_matches(id, [*GAMES, *short], n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownGameError(f"no game registered as {id!r}.{hint} Registered: {sorted(GAMES)}")


def make(id: str, *, parallel: bool = False, raw: bool = False, **kwargs: Any):
    """Build a registered game: the wrapped AEC env by default, ``parallel=True`` for the
    Parallel env, ``raw=True`` for the unwrapped AEC env. ``kwargs`` go to the game."""
    game = spec(id)
    module = importlib.import_module(game.module)
    factory = module.parallel_env if parallel else (module.raw_env if raw else module.env)
    return factory(**{**game.kwargs, **kwargs})
