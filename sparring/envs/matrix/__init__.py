"""``sparring/matrix-v0``: any normal-form game in text, one-shot or iterated.

The sanity game of the suite: small, exact, fast, with known equilibria. Built-ins:
rock_paper_scissors, prisoners_dilemma, matching_pennies, stag_hunt, battle_of_the_sexes;
any two-player open_spiel matrix game (``game="open_spiel:matrix_rps"``); or an explicit
n-player table (``payoffs`` of shape (A_1, …, A_n, n) plus ``action_names``).

==================  =============================================================
Agents              ``player_0`` … ``player_{n-1}``
Turns               simultaneous (native in the Parallel env; the AEC env collects
                    moves one by one and reveals none before the round resolves)
Actions             text; the move is exactly one bracketed legal name, e.g. ``[rock]``
                    (case-insensitive; other bracketed words are ignored)
Observations        ``Dict(text, to_act, turn)``: title, payoff table, legal moves,
                    round, and (iterated) the history of past joint moves
Rewards             per round: ``payoff`` + ``invalid`` (``invalid_penalty`` when the
                    move is invalid; the round is scored with ``default_action``, or
                    the game ends if ``invalid_ends_game``)
Arguments           see :class:`MatrixConfig`, plus ``render_mode``
==================  =============================================================

``infos[agent]`` carries ``reward_terms``, ``invalid`` (reason or None), ``round`` and
``joint_action``.

Version history: v0 — initial release.
"""

from __future__ import annotations

from sparring.envs.core import LanguageAECEnv, LanguageParallelEnv, OrderEnforcing
from sparring.envs.matrix.game import MatrixConfig, MatrixGame
from sparring.envs.matrix.payoffs import BUILTIN, NormalForm, from_open_spiel


class raw_env(LanguageAECEnv):
    metadata = {**LanguageAECEnv.metadata, "name": "matrix_v0"}

    def __init__(self, render_mode: str | None = None, **kwargs):
        super().__init__(MatrixGame(MatrixConfig(**kwargs)), render_mode)


class parallel_raw_env(LanguageParallelEnv):
    metadata = {**LanguageParallelEnv.metadata, "name": "matrix_v0"}

    def __init__(self, render_mode: str | None = None, **kwargs):
        super().__init__(MatrixGame(MatrixConfig(**kwargs)), render_mode)


def env(**kwargs) -> OrderEnforcing:
    """The AEC env, wrapped as PettingZoo's own games are."""
    return OrderEnforcing(raw_env(**kwargs))


def parallel_env(**kwargs) -> parallel_raw_env:
    return parallel_raw_env(**kwargs)


__all__ = [
    "BUILTIN", "MatrixConfig", "MatrixGame", "NormalForm", "env", "from_open_spiel",
    "parallel_env", "raw_env",
]
