"""The rules of a two-party negotiation over a pool of items with private values."""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparring.config import Config, at_least, check
from sparring.envs.core import LanguageGame, Move, Outcome, read_output
from sparring.envs.parsing import FORMAT_INSTRUCTION
from sparring.errors import ConfigError, DataError

AGENTS = ("player_0", "player_1")
ACCEPT, WALK = "accept", "walk away"
_BRACKETED = re.compile(r"\[([^\[\]]*)\]")
_MOVE_WORD = re.compile(r"(propose|accept|walk)\b")
"""A bracket is a move when it opens with a move's word; any other bracket is part of the remark."""
_PAIR = re.compile(r"([a-z_]+)\s*=\s*(\d+)")


@dataclass(frozen=True)
class NegotiationConfig(Config):
    """Arguments of ``sparring/negotiation-v0`` (all picklable values)."""

    items: tuple[str, ...] = ("books", "hats", "balls")
    max_count: int = 3
    """Each item's count in the pool is drawn from 1..max_count per game."""
    total_value: int = 10
    """Each player's private values are non-negative integers with Σ countᵢ·valueᵢ = total_value:
    the whole pool is worth the same to both, the split is not."""
    max_messages: int = 8
    """Messages (both players together) before the game ends without a deal."""
    no_deal_reward: float = 0.0
    """Each player's reward when nobody accepts (a walk-away or the message limit)."""
    invalid_penalty: float = -1.0
    """Added to a player whose message holds no valid move; the turn passes, the offer stays."""
    max_remark_chars: int = 200
    """Remarks (the text around the move) are shown to the other player up to this length."""
    hidden_cot: bool = True
    """Outputs use ``reasoning </think> <answer> … </answer>``; the move is read from TEXT."""
    max_output_chars: int = 2048

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        problems = at_least(self, 1, "max_count", "total_value", "max_messages", "max_output_chars")
        problems += at_least(self, 0, "max_remark_chars")
        names = [str(n) for n in self.items]
        if not names or len(set(names)) != len(names) or not all(re.fullmatch(r"[a-z_]+", n) for n in names):
            problems.append(f"items={list(self.items)} must be distinct lower-case names (letters and _)")
        check(problems)


@dataclass(frozen=True)
class Deal:
    """A proposal: what the proposer keeps of each item (the other gets the rest)."""

    keep: tuple[int, ...]

    def rest(self, counts: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(c - k for c, k in zip(counts, self.keep))


def bundle_text(items: tuple[str, ...], amounts: tuple[int, ...]) -> str:
    return " ".join(f"{name}={n}" for name, n in zip(items, amounts))


def proposal_text(items: tuple[str, ...], keep: tuple[int, ...]) -> str:
    """The move that proposes to keep ``keep``: ``[propose books=1 hats=0 balls=2]``."""
    return f"[propose {bundle_text(items, keep)}]"


@functools.lru_cache(maxsize=256)
def _valuations(counts: tuple[int, ...], total: int) -> list[tuple[int, ...]]:
    """Every non-negative integer value vector with Σ countᵢ·valueᵢ = total."""
    ranges = [range(total // c + 1) if c else range(1) for c in counts]
    return [v for v in itertools.product(*ranges) if sum(c * x for c, x in zip(counts, v)) == total]


def parse_move(text: str, items: tuple[str, ...], counts: tuple[int, ...]) -> tuple[Any, str | None]:
    """The move in a message: ``Deal``, ``ACCEPT`` or ``WALK``, or (None, reason). Exactly one
    bracketed move; the rest of the message is a remark and is not read."""
    moves = [m for m in _BRACKETED.findall(text) if _MOVE_WORD.match(m.strip().lower())]  # "[acceptable]" is a remark
    if len(moves) != 1:
        return None, (f"{'no' if not moves else len(moves)} bracketed moves; give exactly one: "
                      "[propose item=N ...], [accept] or [walk away]")
    move = " ".join(moves[0].lower().split())
    if move == ACCEPT:
        return ACCEPT, None
    if move in (WALK, "walk"):
        return WALK, None
    if not move.startswith("propose"):
        return None, f"[{moves[0][:40]}] is not a move: use [propose item=N ...], [accept] or [walk away]"
    found = _PAIR.findall(move)
    pairs = {name: int(n) for name, n in found}
    rest = _PAIR.sub("", move[len("propose"):]).strip()
    if rest or len(found) != len(items) or set(pairs) != set(items):
        return None, (f"a proposal names every item once as item=N, N a whole number >= 0: "
                      f"{proposal_text(items, counts)}")
    keep = tuple(pairs[name] for name in items)
    over = [f"{name}={k} (pool has {c})" for name, k, c in zip(items, keep, counts) if k > c]
    if over:
        return None, f"cannot keep more than the pool holds: {', '.join(over)}"
    return Deal(keep), None


class NegotiationGame(LanguageGame):
    """Two players split a pool of items (counts known to both) whose values to each are
    private. They take turns, ``player_0`` first; each message holds one move in brackets —
    ``[propose item=N ...]`` (what the proposer keeps), ``[accept]`` (the other's offer on the
    table) or ``[walk away]`` — and any remark around it, which the other reads and the rules
    ignore. An accepted offer pays each player the value of its share; no deal pays
    ``no_deal_reward`` to both."""

    possible_agents = AGENTS
    description = "Two players split items with private values by messages: propose, accept or walk away."

    def __init__(self, config: NegotiationConfig | None = None):
        self.config = config or NegotiationConfig()
        self.max_turns = self.config.max_messages
        self.hidden_cot = self.config.hidden_cot
        self.max_output_chars = self.config.max_output_chars
        self.items = tuple(self.config.items)

    # -- finite action set (for learners that index moves) ----------------------------------
    def proposals(self) -> list[tuple[int, ...]]:
        """Every split the proposer may keep, in a fixed order."""
        return list(itertools.product(*(range(c + 1) for c in self.counts)))

    def action_texts(self) -> list[str]:
        """This game's moves as text, indexed: every proposal, then accept, then walk away."""
        return [proposal_text(self.items, k) for k in self.proposals()] + [f"[{ACCEPT}]", f"[{WALK}]"]

    def action_index(self, value: Any) -> int:
        """The index (into :meth:`action_texts`) of a move's value."""
        if value == ACCEPT:
            return len(self.proposals())
        if value == WALK:
            return len(self.proposals()) + 1
        return self.proposals().index(value.keep)

    # -- life cycle ----------------------------------------------------------------------
    def setup(self, options: dict[str, Any]) -> None:
        cfg = self.config
        counts = options.get("counts")
        if counts is not None:
            self.counts = tuple(int(c) for c in counts)
            if len(self.counts) != len(self.items) or min(self.counts) < 0:
                raise ConfigError(f"options.counts={list(counts)} must give a count >= 0 per item {list(self.items)}")
        else:  # pools whose worth no private values can make total_value are drawn again
            for _ in range(1000):
                self.counts = tuple(int(c) for c in self.rng.integers(1, cfg.max_count + 1, size=len(self.items)))
                if _valuations(self.counts, cfg.total_value):
                    break
        values = options.get("values")
        if values is not None:
            self.values = {a: tuple(int(v) for v in values[a]) for a in AGENTS}
            for agent, v in self.values.items():
                if len(v) != len(self.items) or min(v) < 0:
                    raise ConfigError(f"options.values[{agent}]={list(v)} must give a value >= 0 per item")
        else:
            choices = _valuations(self.counts, cfg.total_value)
            if not choices:
                raise ConfigError(f"no private values make sum(count*value) = {cfg.total_value} for counts "
                                  f"{list(self.counts)}; change total_value or the counts")
            self.values = {a: choices[int(self.rng.integers(len(choices)))] for a in AGENTS}
        self.offer: tuple[str, Deal] | None = None
        self.messages: list[tuple[str, str, str]] = []  # (agent, move as shown, remark)
        self.result: str | None = None
        self.shares: dict[str, tuple[int, ...]] | None = None

    def value_of(self, agent: str, amounts: tuple[int, ...]) -> int:
        return int(sum(v * n for v, n in zip(self.values[agent], amounts)))

    def other(self, agent: str) -> str:
        return AGENTS[1 - AGENTS.index(agent)]

    def to_act(self) -> tuple[str, ...]:
        return () if self.result is not None else (AGENTS[self.turn % 2],)

    def interpret(self, move: Move) -> Move:
        if move.error:
            return move
        value, error = parse_move(move.text, self.items, self.counts)
        if error is None and value == ACCEPT and (self.offer is None or self.offer[0] == move.agent):
            error = "there is no offer from the other player to accept"
        if error:
            return move.reject(error)
        move.value = value
        return move

    def resolve(self, moves: dict[str, Move]) -> Outcome:
        cfg = self.config
        (agent, move), = moves.items()
        # One line: a remark cannot pass for a line of the game's own text.
        remark = " ".join(_BRACKETED.sub(" ", move.text).split())[: cfg.max_remark_chars] if move.text else ""
        terms = {a: {"deal": 0.0, "invalid": 0.0} for a in AGENTS}
        if move.value is None:
            terms[agent]["invalid"] = cfg.invalid_penalty
            shown = "(invalid move)"
        elif move.value == ACCEPT:
            proposer, deal = self.offer
            self.shares = {proposer: deal.keep, self.other(proposer): deal.rest(self.counts)}
            for a in AGENTS:
                terms[a]["deal"] = float(self.value_of(a, self.shares[a]))
            self.result, shown = "deal", f"[{ACCEPT}]"
        elif move.value == WALK:
            self.result, shown = "walked away", f"[{WALK}]"
        else:
            self.offer = (agent, move.value)
            shown = proposal_text(self.items, move.value.keep)
        self.messages.append((agent, shown, remark))
        if self.result is None and len(self.messages) >= cfg.max_messages:
            self.result = "out of messages"
        if self.result is not None and self.result != "deal":
            for a in AGENTS:
                terms[a]["deal"] = cfg.no_deal_reward
        rewards = {a: sum(t.values()) for a, t in terms.items()}
        info = {a: {"result": self.result, "shares": None if self.shares is None else list(self.shares[a])}
                for a in AGENTS}
        return Outcome(rewards, terms, info, self.result is not None)

    # -- what each agent sees ---------------------------------------------------------------
    def observe(self, agent: str) -> str:
        cfg = self.config
        pool = ", ".join(f"{name} {c}" for name, c in zip(self.items, self.counts))
        mine = ", ".join(f"{name} {v}" for name, v in zip(self.items, self.values[agent]))
        lines = [f"A negotiation. You are {agent}, negotiating with {self.other(agent)}.",
                 f"Items in the pool: {pool}.",
                 f"Your private values per item: {mine} (the whole pool is worth {self.value_of(agent, self.counts)} "
                 "to you; "
                 "the other player's values are secret and may differ).",
                 f"No deal pays each player {cfg.no_deal_reward:g}."]
        if self.messages:
            lines.append("Messages so far:")
            for who, shown, remark in self.messages:
                said = f' "{remark}"' if remark else ""
                lines.append(f"  {'you' if who == agent else who}: {shown}{said}")
        if self.offer is not None:
            proposer, deal = self.offer
            yours = deal.keep if proposer == agent else deal.rest(self.counts)
            who = "your" if proposer == agent else f"{proposer}'s"
            lines.append(f"On the table: {who} offer, which gives you {bundle_text(self.items, yours)} "
                         f"(worth {self.value_of(agent, yours)} to you).")
        if self.result is not None:
            got = cfg.no_deal_reward if self.shares is None else self.value_of(agent, self.shares[agent])
            lines.append(f"Game over: {self.result}. You get {got:g}.")
        else:
            left = cfg.max_messages - len(self.messages)
            lines.append(f"Your move ({left} message(s) left in the game). Write one move in brackets: "
                         f"{proposal_text(self.items, self.counts)} to keep those items and give the rest, "
                         f"[{ACCEPT}] to take the offer on the table, or [{WALK}]. Anything else you write is a "
                         "remark the other player reads.")
            if self.hidden_cot:
                lines.append(FORMAT_INSTRUCTION)
        return "\n".join(lines)

    def header(self, viewer: str | None) -> str:
        pool = bundle_text(self.items, self.counts)
        if viewer is None:
            values = "; ".join(f"{a} values {bundle_text(self.items, self.values[a])}" for a in AGENTS)
            return f"Pool: {pool}. {values}."
        return f"Pool: {pool}. Your values: {bundle_text(self.items, self.values[viewer])}."


@dataclass(frozen=True)
class Position:
    """What one player's observation says, read back (for scripted players and encoders)."""

    items: tuple[str, ...]
    counts: tuple[int, ...]
    values: tuple[int, ...]
    no_deal: float
    offered: tuple[int, ...] | None
    """What the other player's offer on the table gives this player (None: no such offer)."""
    messages_left: int


_POOL = re.compile(r"^Items in the pool: (.*)\.$", re.MULTILINE)
_VALUES = re.compile(r"^Your private values per item: (.*?) \(", re.MULTILINE)
_NO_DEAL = re.compile(r"^No deal pays each player (-?[\d.]+(?:e[-+]?\d+)?)\.$", re.MULTILINE)
_OFFERED = re.compile(r"^On the table: (?!your )\S+ offer, which gives you (.*?) \(worth", re.MULTILINE)
_LEFT = re.compile(r"^Your move \((\d+) message", re.MULTILINE)


def read_position(text: str) -> Position:
    """Read a ``negotiation-v0`` observation's text back into numbers."""
    pool, values, no_deal = _POOL.search(text), _VALUES.search(text), _NO_DEAL.search(text)
    if not (pool and values and no_deal):
        raise ConfigError("this is not a negotiation-v0 observation (no pool, values or no-deal line)")
    pairs = [p.rsplit(" ", 1) for p in pool.group(1).split(", ")]
    items = tuple(name for name, _ in pairs)
    offered = ([None] + list(_OFFERED.finditer(text)))[-1]  # the latest state of the table
    left = ([None] + list(_LEFT.finditer(text)))[-1]
    return Position(items, tuple(int(n) for _, n in pairs),
                    tuple(int(p.rsplit(" ", 1)[1]) for p in values.group(1).split(", ")), float(no_deal.group(1)),
                    None if offered is None else tuple(int(n) for _, n in _PAIR.findall(offered.group(1))),
                    int(left.group(1)) if left else 0)


class MoveIndex:
    """One fixed index of ``negotiation-v0``'s moves for every game of a config (the pool, and
    so the legal splits, changes per game): every split of up to ``max_count`` per item, then
    accept, then walk away. For learners that score moves by index, with each observation's
    legal moves as a mask."""

    def __init__(self, config: NegotiationConfig | None = None):
        self.config = config or NegotiationConfig()
        self.items = tuple(self.config.items)
        self.splits = list(itertools.product(range(self.config.max_count + 1), repeat=len(self.items)))
        self._split = {keep: i for i, keep in enumerate(self.splits)}
        self.accept, self.walk = len(self.splits), len(self.splits) + 1

    def __len__(self) -> int:
        return len(self.splits) + 2

    def texts(self) -> list[str]:
        """Each index's move as the text a player writes."""
        return [proposal_text(self.items, keep) for keep in self.splits] + [f"[{ACCEPT}]", f"[{WALK}]"]

    def _position(self, observation: str) -> Position:
        position = read_position(observation)
        if position.items != self.items or max(position.counts) > self.config.max_count:
            raise DataError(f"an observation with items {list(position.items)} and counts {list(position.counts)} does "
                            f"not fit this move index (items {list(self.items)}, max_count {self.config.max_count}): "
                            "it was recorded with other settings; set env.* as the game was played")
        return position

    def legal(self, observation: str) -> np.ndarray:
        """The moves the player may make at this observation (a ``bool`` mask): splits within
        the pool, accept only with the other's offer on the table, walk away always."""
        position = self._position(observation)
        mask = np.zeros(len(self), dtype=bool)
        mask[: len(self.splits)] = [all(k <= c for k, c in zip(keep, position.counts)) for keep in self.splits]
        mask[self.accept] = position.offered is not None
        mask[self.walk] = True
        return mask

    def index(self, observation: str, output: str) -> int | None:
        """The index of the move a player's ``output`` makes at ``observation``; None when the
        game would read no valid move in it (the game's own reading: format, length, grammar)."""
        move = read_output("", output, hidden_cot=self.config.hidden_cot, max_chars=self.config.max_output_chars)
        if move.error:
            return None
        position = self._position(observation)
        value, error = parse_move(move.text, self.items, position.counts)
        if error is not None:
            return None
        if value == ACCEPT:
            return self.accept if position.offered is not None else None
        if value == WALK:
            return self.walk
        return self._split.get(value.keep)


def position_features(texts: list[str]) -> np.ndarray:
    """Observations read back into numbers (:func:`read_position`), one row each: a constant,
    whether the other's offer is on the table and what it is worth to the player (÷ 10), the
    player's values (÷ 10), the pool (÷ 3), the offer (÷ 3) and the messages left (÷ 8). An
    exact stand-in for a text encoder, to tell what the encoder loses from what a learner does."""
    rows = []
    for text in texts:
        p = read_position(text)
        offered = p.offered or (0,) * len(p.counts)
        worth = float(np.dot(p.values, offered)) if p.offered is not None else 0.0
        rows.append([1.0, float(p.offered is not None), worth / 10, *(v / 10 for v in p.values),
                     *(c / 3 for c in p.counts), *(o / 3 for o in offered), p.messages_left / 8])
    return np.asarray(rows, dtype=np.float32)
