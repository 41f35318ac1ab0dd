"""Payoff tables of normal-form games: the built-ins and open_spiel's matrix games.

A table is a :class:`NormalForm`: per-player action names and an array of shape
``(A_1, …, A_n, n)`` whose last axis holds every player's payoff for a joint action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sparring.envs.parsing import MAX_MOVE_CHARS
from sparring.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class NormalForm:
    title: str
    action_names: tuple[tuple[str, ...], ...]
    payoffs: np.ndarray

    def __post_init__(self) -> None:
        shape = tuple(len(names) for names in self.action_names)
        n = len(shape)
        if n < 1 or self.payoffs.shape != (*shape, n):
            raise ConfigError(
                f"payoffs of shape {self.payoffs.shape} do not match {n} players with "
                f"{list(shape)} actions: expected shape {(*shape, n)}"
            )
        for player, names in enumerate(self.action_names):
            lowered = [name.lower() for name in names]
            if len(set(lowered)) != len(names) or not all(lowered):
                raise ConfigError(f"player {player}'s action names {names} must be distinct and non-empty")
            if any(ch in name for name in names for ch in "[]\n"):
                raise ConfigError(f"action names {names} may not contain brackets or newlines")
            if any(name != name.strip() or len(name) > MAX_MOVE_CHARS for name in names):
                raise ConfigError(f"action names {names} must have no leading or trailing space and at most "
                                  f"{MAX_MOVE_CHARS} characters (a move is read as its trimmed bracket)")

    @property
    def num_players(self) -> int:
        return len(self.action_names)


def _two_player(title: str, names: tuple[str, ...], row: list, col: list | None = None) -> NormalForm:
    row_arr = np.asarray(row, dtype=np.float64)
    col_arr = 0.0 - row_arr if col is None else np.asarray(col, dtype=np.float64)
    return NormalForm(title, (names, names), np.stack([row_arr, col_arr], axis=-1))


BUILTIN: dict[str, NormalForm] = {
    "rock_paper_scissors": _two_player(
        "Rock-paper-scissors", ("rock", "paper", "scissors"),
        [[0, -1, 1], [1, 0, -1], [-1, 1, 0]],
    ),
    "prisoners_dilemma": _two_player(
        "Prisoner's dilemma", ("cooperate", "defect"),
        [[3, 0], [5, 1]], [[3, 5], [0, 1]],
    ),
    "matching_pennies": _two_player(
        "Matching pennies", ("heads", "tails"), [[1, -1], [-1, 1]],
    ),
    "stag_hunt": _two_player(
        "Stag hunt", ("stag", "hare"), [[4, 0], [3, 2]], [[4, 3], [0, 2]],
    ),
    "battle_of_the_sexes": _two_player(
        "Battle of the sexes", ("opera", "football"), [[3, 0], [0, 2]], [[2, 0], [0, 3]],
    ),
}


def from_open_spiel(name: str) -> NormalForm:
    """Load a two-player open_spiel matrix game (e.g. ``matrix_rps``, ``matrix_pd``)."""
    import pyspiel

    matrix_games = sorted(n for n in pyspiel.registered_names() if n.startswith("matrix_"))
    unknown = f"open_spiel has no matrix game {name!r}.{did_you_mean(name, matrix_games)} Known ones: {', '.join(matrix_games)}"
    if name.partition("(")[0] not in pyspiel.registered_names():  # open_spiel would print all its games first
        raise ConfigError(unknown)
    try:
        game = pyspiel.load_matrix_game(name)
    except pyspiel.SpielError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "not loadable"
        raise ConfigError(f"open_spiel cannot load {name!r} as a matrix game ({first[:160]})") from None
    return open_spiel_table(game, f"open_spiel {name}")


def is_open_spiel_matrix_game(game: Any) -> bool:
    """A game object made by ``pyspiel.create_matrix_game`` or ``load_matrix_game``."""
    return all(hasattr(game, a) for a in ("row_utility", "col_utility", "num_rows", "num_cols"))


def open_spiel_table(game: Any, title: str | None = None) -> NormalForm:
    """The table of an open_spiel two-player matrix game object."""
    title = title or f"open_spiel {game.get_type().long_name}"
    rows = tuple(game.row_action_name(r) for r in range(game.num_rows()))
    cols = tuple(game.col_action_name(c) for c in range(game.num_cols()))
    payoffs = np.array(
        [[[game.row_utility(r, c), game.col_utility(r, c)] for c in range(len(cols))]
         for r in range(len(rows))],
        dtype=np.float64,
    )
    return NormalForm(title, (rows, cols), payoffs)


def resolve_game(game: str | None, payoffs=None, action_names=None) -> NormalForm:
    """A built-in name (default: prisoners_dilemma), ``open_spiel:<name>``, or an explicit
    table (``payoffs`` given; ``game`` is then its title)."""
    if payoffs is not None:
        if action_names is None:
            raise ConfigError("payoffs given without action_names: pass one list of names per player")
        if game in BUILTIN or str(game).startswith("open_spiel:"):
            raise ConfigError(f"game={game!r} names a table of its own, which payoffs= would replace: leave out "
                              "payoffs (and action_names), or give your table a title of its own")
        names = tuple(tuple(str(a) for a in player) for player in action_names)
        return NormalForm(game or "A custom game", names, np.asarray(payoffs, dtype=np.float64))
    if action_names is not None:
        raise ConfigError("action_names name the moves of a table given in payoffs=; a built-in or open_spiel game "
                          "has its own")
    game = game or "prisoners_dilemma"
    if game.startswith("open_spiel:"):
        return from_open_spiel(game.split(":", 1)[1])
    if game not in BUILTIN:
        raise ConfigError(
            f"game={game!r} is unknown; use one of {sorted(BUILTIN)}, 'open_spiel:<name>' "
            "(e.g. open_spiel:matrix_rps), or pass payoffs and action_names"
        )
    return BUILTIN[game]
