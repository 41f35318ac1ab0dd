"""``sparring/matrix-v0``: any normal-form game in text, one-shot or iterated.

The sanity game of the suite: small, exact, fast, with known equilibria. Built-ins:
rock_paper_scissors, prisoners_dilemma, matching_pennies, stag_hunt, battle_of_the_sexes;
any two-player open_spiel matrix game (``game="open_spiel:matrix_rps"``, or the game object
itself: ``game=pyspiel.create_matrix_game(...)``); or an explicit
n-player table (``payoffs`` of shape (A_1, …, A_n, n) plus ``action_names``).

==================  =============================================================
Agents              ``player_0`` … ``player_{n-1}``
Turns               simultaneous (native in the Parallel env; the AEC env collects
                    moves one by one and reveals none before the round resolves)
Actions             text; the move is exactly one bracketed legal name, e.g. ``[rock]``
                    (case-insensitive; other bracketed words are ignored)
Observations        ``Dict(text, to_act, turn, hidden_cot)``: title, payoff table, legal moves,
                    round, and (iterated) the history of past joint moves
Rewards             per round: ``payoff`` + ``invalid`` (``invalid_penalty`` when the
                    move is invalid; the round is scored with ``default_action``, or
                    the game ends if ``invalid_ends_game``)
Arguments           see :class:`MatrixConfig`, plus ``render_mode``
==================  =============================================================

``infos[agent]`` carries ``reward_terms``, ``invalid`` (reason or None), ``round`` and
``joint_action``.

Version history: v0 — initial release; observations carry ``hidden_cot`` (the answer format
the game expects), and reasoning never crosses on a malformed output.
"""

from __future__ import annotations

from sparring.envs.core import language_envs
from sparring.envs.matrix.game import MatrixConfig, MatrixGame
from sparring.envs.matrix.payoffs import (
    BUILTIN,
    NormalForm,
    from_open_spiel,
    is_open_spiel_matrix_game,
    open_spiel_table,
)
from sparring.errors import ConfigError


def _game(**kwargs) -> MatrixGame:
    game = kwargs.get("game")
    if is_open_spiel_matrix_game(game):  # an open_spiel game object: its table, as plain values
        if kwargs.get("payoffs") is not None:
            raise ConfigError("game= is an open_spiel game, which brings its own payoffs: leave out payoffs=")
        table = open_spiel_table(game)
        kwargs |= {"game": table.title, "payoffs": table.payoffs.tolist(),
                   "action_names": [list(names) for names in table.action_names]}
    return MatrixGame(MatrixConfig.from_dict(kwargs))


raw_env, parallel_raw_env, env, parallel_env = language_envs(__name__, "matrix_v0", _game)

__all__ = [
    "BUILTIN", "MatrixConfig", "MatrixGame", "NormalForm", "env", "from_open_spiel", "parallel_env",
    "parallel_raw_env", "raw_env",
]
