"""``sparring/gems-v0``: the Gems grid world, a small general-sum Markov game.

The domain MAMQL is proved on: numeric, exact and fast, for tabular and neural learners.

==================  =============================================================
Agents              ``blue``, ``red``
Turns               simultaneous (native in the Parallel env; the AEC env collects
                    blue's move, then red's, and resolves the step at red's)
Actions             ``Discrete(5)``: stay, up, down, left, right (a move name as text
                    is read too, so text policies can play)
Observations        ``Box(0, 1, (5·size²,))``: one-hot planes of the agent's cell, the
                    other's cell, its own gems, the other's gems, purple gems
Rewards             ``gem`` (+1 for a gem of its own colour), ``purple`` (+3 each when
                    both agents stand on purple gems after the same move; those vanish),
                    ``invalid`` (an action that is no move: the agent stays)
Episode end         no gem left (termination) or ``horizon`` steps (truncation)
Arguments           see :class:`GemsConfig`, plus ``render_mode``
==================  =============================================================

``infos[agent]`` carries ``reward_terms``, ``invalid`` (reason or None), ``action`` (the move
index played) and ``step``. With a fixed layout (``layout_seed``) :meth:`GemsGame.tables` gives
the whole game as arrays, for exact solvers and evaluation.

Version history: v0 — initial release.
"""

from __future__ import annotations

from typing import Any

from sparring.envs.core import OrderEnforcing
from sparring.envs.gems.game import (
    AGENTS,
    MOVES,
    GemsAECEnv,
    GemsConfig,
    GemsGame,
    GemsParallelEnv,
    parse_move,
)

raw_env = GemsAECEnv


def env(**kwargs: Any) -> OrderEnforcing:
    """The AEC env, wrapped as PettingZoo's own games are."""
    return OrderEnforcing(GemsAECEnv(**kwargs))


def parallel_env(**kwargs: Any) -> GemsParallelEnv:
    """The Parallel env."""
    return GemsParallelEnv(**kwargs)


__all__ = ["AGENTS", "MOVES", "GemsAECEnv", "GemsConfig", "GemsGame", "GemsParallelEnv", "env", "parallel_env",
           "parse_move", "raw_env"]
