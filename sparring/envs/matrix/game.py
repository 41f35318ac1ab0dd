"""The rules of a normal-form game played in text, one-shot or iterated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sparring.config import Config, at_least, check
from sparring.envs.core import LanguageGame, Move, Outcome
from sparring.envs.matrix.payoffs import NormalForm, resolve_game
from sparring.envs.parsing import FORMAT_INSTRUCTION, parse_bracketed_choice
from sparring.errors import ConfigError


@dataclass(frozen=True)
class MatrixConfig(Config):
    """Arguments of ``sparring/matrix-v0`` (all picklable values)."""

    game: str | None = None
    """A built-in (rock_paper_scissors, prisoners_dilemma, matching_pennies, stag_hunt,
    battle_of_the_sexes), ``open_spiel:<matrix game>``, or a title when ``payoffs`` is given
    (default: prisoners_dilemma; with ``payoffs``, "A custom game")."""
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
        check(at_least(self, 1, "rounds", "max_output_chars"))


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
        self._rounds: dict[tuple, tuple] = {}
        self._all_valid = (False,) * n
        self._parsed: list[dict[str, tuple[int | None, str | None]]] = [{} for _ in range(n)]
        self._asks: list[list[str]] = [[] for _ in range(n)]

    def _ask(self, player: int, round_: int) -> str:
        """What a player is asked in a round (after its introduction and the history); made
        once per round reached and kept, since every game asks it again."""
        asks = self._asks[player]
        if round_ < len(asks):
            return asks[round_]
        example = self.table.action_names[player][0]
        ask = (f"Round {round_ + 1} of {self.config.rounds}. Answer with exactly one move in brackets, "
               f"e.g. [{example}].")
        ask = f"{ask}\n{FORMAT_INSTRUCTION}" if self.hidden_cot else ask
        if round_ == len(asks):
            asks.append(ask)
        return ask

    def _default_index(self, player: int) -> int:
        if self.config.default_action is None:
            return 0
        index = self._legal[player].get(self.config.default_action.lower())
        if index is None:
            raise ConfigError(
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
        self._history = [""] * len(self.possible_agents)
        self._cache: dict[str, tuple[int, str]] = {}

    def to_act(self) -> tuple[str, ...]:
        return () if self.done else self.possible_agents

    def interpret(self, move: Move) -> Move:
        if move.error:  # a malformed output is an invalid move, even if a bracket survives
            return move
        player = self._index[move.agent]
        known = self._parsed[player]
        parsed = known.get(move.text)
        if parsed is None:  # the same few answers come back round after round: read each once
            parsed = parse_bracketed_choice(move.text, self._legal[player])
            if len(known) < 1024:
                known[move.text] = parsed
        index, error = parsed
        if error:
            return move.reject(error)
        move.value = index
        return move

    def resolve(self, moves: dict[str, Move]) -> Outcome:
        agents = self.possible_agents
        values = []
        for agent in agents:
            values.append(moves[agent].value)
        if None in values:
            invalid = tuple(v is None for v in values)
            joint = tuple(self._default[i] if v is None else v for i, v in enumerate(values))
        else:
            invalid, joint = self._all_valid, tuple(values)
        played, terms, rewards, lines = self._rounds.get((joint, invalid)) or self._round(joint, invalid)
        self.round = round_ = self.round + 1
        prefix = f"\n  round {round_}: "
        scores, history = self.scores, self._history
        for i, agent in enumerate(agents):
            scores[i] += rewards[agent]
            history[i] += prefix + lines[i]
        self.done = done = round_ >= self.config.rounds or (self.config.invalid_ends_game and True in invalid)
        shared = {"round": round_, "joint_action": played}  # copied into each agent's infos
        # The cached tables are shared, never changed: the env copies what it hands out.
        return Outcome(rewards, terms, dict.fromkeys(agents, shared), done)

    def _round(self, joint: tuple[int, ...], invalid: tuple[bool, ...]):
        """What a joint move scores and how each player's history records it (the same for
        every round it is played, so worked out once per game object)."""
        key = (joint, invalid)
        cached = self._rounds.get(key)
        if cached is None:
            ends = self.config.invalid_ends_game and any(invalid)
            pay = self._zero if ends else self._payoff[joint]
            names = self.table.action_names
            played = tuple(names[p][x] for p, x in enumerate(joint))
            penalty = self.config.invalid_penalty
            terms = {a: {"payoff": pay[i], "invalid": penalty if invalid[i] else 0.0}
                     for i, a in enumerate(self.possible_agents)}
            rewards = {a: pay[i] + terms[a]["invalid"] for i, a in enumerate(self.possible_agents)}
            moves = [f"[{name}]" + (" (invalid move)" if bad else "") for name, bad in zip(played, invalid)]
            lines = []
            for i, agent in enumerate(self.possible_agents):
                seen = ", ".join(f"{'you' if j == i else other} {move}"
                                 for j, (other, move) in enumerate(zip(self.possible_agents, moves)))
                lines.append(f"{seen} -> you {rewards[agent]:+g}")
            cached = self._rounds[key] = (played, terms, rewards, lines)
        return cached

    # -- what each agent sees ---------------------------------------------------------------
    def observe(self, agent: str) -> str:
        cached = self._cache.get(agent)
        if cached and cached[0] == self.round:
            return cached[1]
        i = self._index[agent]
        history = f"\nHistory:{self._history[i]}" if self._history[i] else ""
        if self.done:
            text = f"{self._intro[i]}{history}\nGame over after {self.round} round(s). Your total: {self.scores[i]:g}."
        else:
            text = f"{self._intro[i]}{history}\n{self._ask(i, self.round)}"
        self._cache[agent] = (self.round, text)
        return text
