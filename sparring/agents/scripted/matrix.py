"""Scripted players for ``sparring/matrix-v0``. They read legal moves and history from the
observation text and answer with one bracketed move."""

from __future__ import annotations

import re
from abc import abstractmethod
from typing import Any

from sparring.agents.base import ScriptedPolicy
from sparring.agents.scripted.common import Strategy
from sparring.envs.parsing import answer_in_format
from sparring.errors import ConfigError

_MOVES_LINE = re.compile(r"^Your moves: (.*)\.$", re.MULTILINE)
_BRACKETED = re.compile(r"\[([^\]]+)\]")
_PLAYED = re.compile(r"(\w+) \[([^\]]+)\]")


def legal_moves(text: str) -> list[str]:
    line = _MOVES_LINE.search(text)
    if line is None:
        raise ConfigError("observation has no 'Your moves:' line; is this a matrix-v0 observation?")
    return _BRACKETED.findall(line.group(1))


def last_opponent_move(text: str) -> str | None:
    rounds = [line for line in text.splitlines() if line.strip().startswith("round ")]
    if not rounds:
        return None
    for who, move in _PLAYED.findall(rounds[-1]):
        if who != "you":
            return move
    return None


class _MatrixScripted(ScriptedPolicy):
    def respond(self, agent: str, observation: dict[str, Any]) -> str:
        text = observation["text"]
        move = self.choose(text, legal_moves(text))
        return answer_in_format(observation, f"I play {move}.", f"[{move}]")

    @abstractmethod
    def choose(self, text: str, moves: list[str]) -> str:
        """Overridden by each concrete agent."""


class ConstantPolicy(_MatrixScripted):
    name = "matrix.constant"

    def __init__(self, move: str | None = None, seed: int | None = None):
        super().__init__(seed)
        self.move = move

    def choose(self, text: str, moves: list[str]) -> str:
        if self.move is None:
            return moves[0]
        for m in moves:
            if m.lower() == self.move.lower():
                return m
        raise ConfigError(f"matrix.constant move={self.move!r} is not a legal move; the legal moves: "
                          f"{', '.join(moves)}")


class RandomPolicy(_MatrixScripted):
    name = "matrix.random"

    def choose(self, text: str, moves: list[str]) -> str:
        return moves[int(self.rng.integers(len(moves)))]


class TitForTat(_MatrixScripted):
    """Plays ``nice`` (default: the first move) first, then the opponent's last move."""

    name = "matrix.tit_for_tat"

    def __init__(self, nice: str | None = None, seed: int | None = None):
        super().__init__(seed)
        self.nice = nice

    def choose(self, text: str, moves: list[str]) -> str:
        last = last_opponent_move(text)
        lowered = {m.lower(): m for m in moves}
        if last is not None and last.lower() in lowered:
            return lowered[last.lower()]
        return lowered.get((self.nice or moves[0]).lower(), moves[0])


def strategies(game: Any) -> dict[str, list[Strategy]]:
    """matrix-v0's discrete view: each seat's legal moves, one constant player each."""
    names = game.table.action_names
    return {seat: [Strategy(move, ConstantPolicy(move=move)) for move in names[i]]
            for i, seat in enumerate(game.possible_agents)}
