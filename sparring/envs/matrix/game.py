"""The rules of a normal-form game played in text, one-shot or iterated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sparring.envs.core import LanguageGame, Move, Outcome
from sparring.envs.matrix.payoffs import NormalForm, resolve_game
from sparring.envs.parsing import FORMAT_INSTRUCTION, parse_bracketed_choice


@dataclass(frozen=True)
class MatrixConfig:
    """Arguments of ``sparring/matrix-v0`` (all picklable values)."""

    game: str = "prisoners_dilemma"
    """A built-in (rock_paper_scissors, prisoners_dilemma, matching_pennies, stag_hunt,
    battle_of_the_sexes), ``open_spiel:<matrix game>``, or a title when ``payoffs`` is given."""
    payoffs: Any = None
    """Nested lists of shape (A_1, …, A_n, n): every player's payoff per joint action."""
    action_names: Any = None
    """One list of action names per player (needed with ``payoffs``)."""
    rounds: int = 1
    """1 for a one-shot game; more for the iterated game (history in each observation)."""
    invalid_penalty: float = -1.0
    """Added to the reward of a player whose move is invalid."""
    default_action: str | None = None
    """The move an invalid player is scored as playing (default: its first action)."""
    invalid_ends_game: bool = False
    """End the game at an invalid move instead (that round pays only the penalty)."""
    hidden_cot: bool = False
    """Outputs use ``reasoning </think> <answer> … </answer>``; the move is read from TEXT."""
    max_output_chars: int = 4096

    def __post_init__(self) -> None:
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise ValueError(f"rounds={self.rounds!r} must be an integer >= 1")
        if self.max_output_chars < 1:
            raise ValueError(f"max_output_chars={self.max_output_chars!r} must be >= 1")


class MatrixGame(LanguageGame):
    description = "Normal-form games in text (RPS, prisoner's dilemma, open_spiel matrix games), one-shot or iterated."

    def __init__(self, config: MatrixConfig | None = None):
        self.config = config or MatrixConfig()
        self.table: NormalForm = resolve_game(
            self.config.game, self.config.payoffs, self.config.action_names
        )
        n = self.table.num_players
        self.possible_agents = tuple(f"player_{i}" for i in range(n))
        self.max_turns = self.config.rounds
        self.hidden_cot = self.config.hidden_cot
        self.max_output_chars = self.config.max_output_chars
        self._legal = [
            {name.lower(): i for i, name in enumerate(names)} for names in self.table.action_names
        ]
        self._default = [self._default_index(i) for i in range(n)]
        self._intro = [self._introduction(i) for i in range(n)]
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        # Plain tuples per joint action: indexing a numpy array costs more than a whole round.
        self._payoff = {joint: tuple(float(p) for p in self.table.payoffs[joint])
                        for joint in np.ndindex(*self.table.payoffs.shape[:-1])}
        self._zero = (0.0,) * n

    def _default_index(self, player: int) -> int:
        if self.config.default_action is None:
            return 0
        index = self._legal[player].get(self.config.default_action.lower())
        if index is None:
            raise ValueError(
                f"default_action={self.config.default_action!r} is not a move of player_{player}; "
                f"its moves are {list(self.table.action_names[player])}"
            )
        return index

    def _introduction(self, player: int) -> str:
        t = self.table
        others = [a for j, a in enumerate(self.possible_agents) if j != player]
        moves = ", ".join(f"[{name}]" for name in t.action_names[player])
        lines = [f"{t.title}. You are {self.possible_agents[player]}; playing against {', '.join(others)}.",
                 f"Your moves: {moves}.",
                 f"Payoffs (your move first, then {', '.join(others)}; payoffs in the same order):"]
        order = [player] + [j for j in range(t.num_players) if j != player]
        for joint in np.ndindex(*t.payoffs.shape[:-1]):
            names = " vs ".join(t.action_names[p][joint[p]] for p in order)
            pays = ", ".join(f"{t.payoffs[joint][p]:g}" for p in order)
            lines.append(f"  {names}: {pays}")
        return "\n".join(lines)

    # -- life cycle ----------------------------------------------------------------------
    def setup(self, options: dict[str, Any]) -> None:
        self.round = 0
        self.done = False
        self.scores = [0.0] * len(self.possible_agents)
        self._history = [[] for _ in self.possible_agents]
        self._cache: dict[str, tuple[int, str]] = {}

    def to_act(self) -> tuple[str, ...]:
        return () if self.done else self.possible_agents

    def interpret(self, move: Move) -> Move:
        if move.error:  # a malformed output is an invalid move, even if a bracket survives
            return move
        index, error = parse_bracketed_choice(move.text, self._legal[self._index[move.agent]])
        if error:
            return move.reject(error)
        move.value = index
        return move

    def resolve(self, moves: dict[str, Move]) -> Outcome:
        names = self.table.action_names
        penalty = self.config.invalid_penalty
        invalid = [moves[a].value is None for a in self.possible_agents]
        joint = tuple(
            self._default[i] if bad else moves[a].value
            for i, (a, bad) in enumerate(zip(self.possible_agents, invalid))
        )
        ends = self.config.invalid_ends_game and any(invalid)
        pay = self._zero if ends else self._payoff[joint]
        played = tuple(names[p][x] for p, x in enumerate(joint))
        self.round += 1
        terms, rewards, info = {}, {}, {}
        for i, agent in enumerate(self.possible_agents):
            terms[agent] = {"payoff": pay[i], "invalid": penalty if invalid[i] else 0.0}
            rewards[agent] = reward = pay[i] + terms[agent]["invalid"]
            self.scores[i] += reward
            info[agent] = {"round": self.round, "joint_action": played}
        self._record(played, invalid, rewards)
        self.done = ends or self.round >= self.config.rounds
        return Outcome(rewards=rewards, reward_terms=terms, info=info, done=self.done)

    def _record(self, played: tuple[str, ...], invalid: list[bool], rewards: dict[str, float]) -> None:
        moves = [f"[{name}]" + (" (invalid move)" if bad else "") for name, bad in zip(played, invalid)]
        for i, agent in enumerate(self.possible_agents):
            seen = ", ".join(
                f"{'you' if j == i else other} {move}"
                for j, (other, move) in enumerate(zip(self.possible_agents, moves))
            )
            self._history[i].append(f"  round {self.round}: {seen} -> you {rewards[agent]:+g}")

    # -- what each agent sees ---------------------------------------------------------------
    def observe(self, agent: str) -> str:
        cached = self._cache.get(agent)
        if cached and cached[0] == self.round:
            return cached[1]
        i = self._index[agent]
        parts = [self._intro[i]]
        if self._history[i]:
            parts.append("History:\n" + "\n".join(self._history[i]))
        if self.done:
            parts.append(f"Game over after {self.round} round(s). Your total: {self.scores[i]:g}.")
        else:
            example = self.table.action_names[i][0]
            parts.append(
                f"Round {self.round + 1} of {self.config.rounds}. Answer with exactly one move "
                f"in brackets, e.g. [{example}]."
            )
            if self.hidden_cot:
                parts.append(FORMAT_INSTRUCTION)
        text = "\n".join(parts)
        self._cache[agent] = (self.round, text)
        return text
