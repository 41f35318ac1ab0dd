"""A tournament: a roster of agents × one game × a schedule × seeds (``configs/arena/*.yaml``).

An agent is a policy spec (:mod:`sparring.agents.resolve`): ``{policy: NAME, ...kwargs}`` (a
registered policy, ``llm`` with ``model:`` a model, checkpoint or run directory, a model or
run path itself, or a user's ``module:Class``), optionally ``base_url:`` (and ``api_key:``)
for a model behind an OpenAI-compatible server; or, for asymmetric games whose roles need
different policies, ``{seats: {SEAT: spec, ...}}``. LLM agents share one pool, built from
``pool:`` (``configs/pool/``). ``fixed_seats`` fills seats with the same policy in every
match (the experts of ``router-v0``); the agents compete for the others. When one seat is
left, a match is a duel: each agent plays that seat on the same game seed, against the same
fixed seats, and the higher reward wins (its seats are recorded as ``SEAT#1`` and ``SEAT#2``).

Matches are scheduled deterministically from the config: every pairing plays the same game
seeds (common random numbers), each pair in both seat orders when ``role_swap`` is on. A
Swiss schedule pairs agents of similar score round by round from the results so far.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparring.config import Config, above, at_least, check
from sparring.errors import did_you_mean
from sparring.pool import PoolConfig

SCHEDULES = ("round_robin", "swiss")


@dataclass(frozen=True)
class TournamentConfig(Config):
    name: str
    game: dict[str, Any]
    """The game: ``id`` plus its constructor arguments (``configs/env/*.yaml``)."""
    roster: dict[str, dict[str, Any]]
    schedule: str = "round_robin"
    swiss_rounds: int | None = None
    """Rounds of a Swiss schedule (default: ceil(log2(agents)) + 1)."""
    games_per_pairing: int = 4
    """Game seeds each pairing plays (in each seat order when ``role_swap``)."""
    role_swap: bool = True
    self_play: bool = False
    """Also schedule every agent against itself."""
    seed: int = 0
    concurrency: int = 64
    move_timeout_s: float = 120.0
    """A move that takes longer forfeits the match."""
    out_dir: str = "runs/arena"
    bootstrap: int = 200
    """Bootstrap resamples for rating intervals."""
    alpharank_alpha: float = 10.0
    transcripts_per_pairing: int = 2
    """Transcripts per pairing shown in the HTML report."""
    pool: PoolConfig = field(default_factory=PoolConfig)
    """The pool LLM agents share (those with ``base_url`` use that server)."""
    fixed_seats: dict[str, Any] = field(default_factory=dict)
    """Seat → the policy spec that plays it in every match (not a competitor)."""

    def __post_init__(self) -> None:
        if isinstance(self.pool, Mapping):
            object.__setattr__(self, "pool", PoolConfig.from_dict(self.pool))
        problems = []
        if not self.name or "/" in self.name or self.name.startswith("."):
            problems.append(f"name={self.name!r} must be a plain directory name")
        if "id" not in self.game:
            problems.append("game needs an 'id' (e.g. game=matrix)")
        if len(self.roster) < 2:
            problems.append(f"roster has {len(self.roster)} agent(s); a tournament needs at least 2")
        for agent, spec in self.roster.items():
            if not isinstance(spec, dict) or not ("policy" in spec or "seats" in spec):
                problems.append(f"roster.{agent} needs 'policy: NAME' or 'seats: {{SEAT: {{policy: NAME}}}}'")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule={self.schedule!r} is unknown; use one of {SCHEDULES}."
                            f"{did_you_mean(self.schedule, SCHEDULES)}")
        problems += at_least(self, 1, "games_per_pairing", "concurrency", "bootstrap", "swiss_rounds")
        problems += at_least(self, 0, "seed")
        problems += above(self, 0, "move_timeout_s")
        check(problems)

    @property
    def resume_command(self) -> str:
        """The command that plays this tournament's missing matches."""
        out_dir = "" if self.out_dir == "runs/arena" else f" --out-dir {self.out_dir}"
        return f"sparring arena resume {self.name}{out_dir}"

    @property
    def rounds(self) -> int:
        if self.schedule == "round_robin":
            return 1
        return self.swiss_rounds or math.ceil(math.log2(len(self.roster))) + 1


@dataclass(frozen=True)
class MatchSpec:
    """One scheduled game. ``index`` orders matches canonically (ratings replay them in it)."""

    index: int
    round: int
    seats: dict[str, str]
    """Seat → agent."""
    seed: int
    key: str = field(default="")

    def __post_init__(self) -> None:
        if not self.key:
            order = ",".join(f"{s}={a}" for s, a in self.seats.items())
            object.__setattr__(self, "key", f"r{self.round}|{order}|s{self.seed}")

    @property
    def agents(self) -> list[str]:
        return list(dict.fromkeys(self.seats.values()))


def game_seeds(cfg: TournamentConfig) -> list[int]:
    return [cfg.seed * 1_000_003 + k for k in range(cfg.games_per_pairing)]


DUEL = ("#1", "#2")
"""The suffixes of a duel's two records of its one competitive seat."""


def seat_of(label: str) -> str:
    """The game seat a match's seat label stands for (a duel's ``SEAT#1`` is ``SEAT``)."""
    return label[:-2] if label.endswith(DUEL) else label


def pairing_matches(cfg: TournamentConfig, seats: list[str], pairs: list[tuple[str, str]], round_: int,
                    start: int) -> list[MatchSpec]:
    """Matches of the given pairs: every seed, both seat orders when ``role_swap`` (a duel of
    one competitive seat has one order: both agents play it)."""
    labels = [seats[0] + suffix for suffix in DUEL] if len(seats) == 1 else seats
    matches = []
    for a, b in pairs:
        orders = [(a, b), (b, a)] if cfg.role_swap and a != b and len(seats) == 2 else [(a, b)]
        for seed in game_seeds(cfg):
            for first, second in orders:
                matches.append(MatchSpec(start + len(matches), round_, {labels[0]: first, labels[1]: second}, seed))
    return matches


def round_robin(cfg: TournamentConfig, seats: list[str]) -> list[MatchSpec]:
    agents = list(cfg.roster)
    pairs = [(a, b) for i, a in enumerate(agents) for b in agents[i + 1:]]
    if cfg.self_play:
        pairs += [(a, a) for a in agents]
    return pairing_matches(cfg, seats, pairs, 0, 0)


def swiss_pairs(cfg: TournamentConfig, round_: int, points: dict[str, float],
                played: set[frozenset[str]]) -> list[tuple[str, str]]:
    """Pair agents of similar points, with as few pairs played before as can be (none when
    that is possible). Round 0 pairs a seeded shuffle; with an odd roster the lowest-ranked
    agent sits the round out. Each agent in rank order takes the nearest-ranked partner that
    still lets the rest be paired."""
    agents = list(cfg.roster)
    if round_ == 0:
        order = list(np.random.default_rng([cfg.seed, 7]).permutation(agents))
    else:
        order = sorted(agents, key=lambda a: (-points.get(a, 0.0), agents.index(a)))
    order = order[:len(order) - len(order) % 2]
    for repeats in range(len(order) // 2):
        pairs = _pair_up(order, played, repeats, budget=[_SEARCH_STEPS])
        if pairs is not None:
            return pairs
    return list(zip(order[::2], order[1::2]))  # every pair a repeat (or the search ran out): neighbours in rank


_SEARCH_STEPS = 20_000
"""Partners tried per search for a pairing with a given number of repeats; past it the search
allows one more repeat (it bounds the time a huge roster late in a long schedule could take)."""


def _pair_up(waiting: list[str], played: set[frozenset[str]], repeats: int,
             budget: list[int]) -> list[tuple[str, str]] | None:
    """Depth first: the first agent waiting takes each partner in rank order; None when no
    pairing of everyone waiting has at most ``repeats`` pairs played before."""
    if not waiting:
        return []
    first, rest = waiting[0], waiting[1:]
    for i, partner in enumerate(rest):
        repeat = frozenset((first, partner)) in played
        if repeat and not repeats:
            continue
        budget[0] -= 1
        if budget[0] < 0:
            return None
        others = _pair_up(rest[:i] + rest[i + 1:], played, repeats - repeat, budget)
        if others is not None:
            return [(first, partner), *others]
    return None
