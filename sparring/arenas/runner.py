"""Playing a tournament: schedule, play matches concurrently through the rollout engine (LLM
agents share one pool), write each finished match to the store, resume after a kill.

A move that raises or exceeds ``move_timeout_s`` forfeits the match for its agent: the match is
recorded with the reason and the tournament goes on. A scripted policy's synchronous move runs
in a worker thread (:class:`Guarded`), so the timeout holds for it too and a blocking one
stalls only its own matches. A roster entry that cannot work fails before the first match
instead: every agent is built for every seat, then plays a probe game against itself, and a
move that raises anything (one of sparring's own errors: a bad argument, an illegal fixed
move, an unknown model; or a bug in the policy) stops the tournament with that error, naming
the entry and the seat. A probe move that only runs out of time stops nothing: the entry
forfeits the matches it stalls in. With ``ray=True`` matches run as Ray tasks (a local cluster
unless one is running) and this process stays the store's only writer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from sparring.agents import PolicyResolver
from sparring.agents.base import Action, Policy, ScriptedPolicy
from sparring.agents.rollout import play
from sparring.arenas.ratings import games_from_matches
from sparring.arenas.store import DB_NAME, MatchRecord, Store
from sparring.arenas.tournament import (
    DUEL,
    MatchSpec,
    TournamentConfig,
    pairing_matches,
    round_robin,
    seat_of,
    swiss_pairs,
)
from sparring.envs import make
from sparring.errors import BackendError, ConfigError, PoolClosedError, SparringError, StoreError
from sparring.sync import call_in_daemon_thread


class Forfeit(Exception):
    """An agent's move failed: it raised (the exception is the ``__cause__``) or ran out of
    time (no cause)."""

    def __init__(self, agent: str, reason: str, seat: str | None = None):
        super().__init__(f"{agent}: {reason}")
        self.agent = agent
        self.reason = reason
        self.seat = seat


def synchronous_move(policy: Policy) -> Callable[[str, dict[str, Any]], str] | None:
    """The plain function that is ``policy``'s whole move, if it has one: ``respond`` of a
    :class:`ScriptedPolicy` that keeps its ``act`` (and its ``off_loop``). Such a move never
    awaits, so a timeout cannot interrupt it on the event loop (and while it blocks, every
    other match waits): :class:`Guarded` runs it in a thread instead."""
    if isinstance(policy, ScriptedPolicy) and type(policy).act is ScriptedPolicy.act and policy.off_loop:
        return policy.respond
    return None


class Guarded(Policy):
    """A roster agent's policy in one seat: a move that raises or runs out of time forfeits.

    A synchronous move (:func:`synchronous_move`) runs in a daemon thread, so its timeout
    fires like an async policy's and the other matches go on meanwhile; one that never returns
    holds only its own thread. An async ``act`` must await rather than block: the timeout can
    only stop it at an ``await``."""

    def __init__(self, inner: Policy, agent: str, timeout_s: float):
        self.inner = inner
        self.agent = agent
        self.timeout_s = timeout_s
        self.name = agent
        self._respond = synchronous_move(inner)

    def seed(self, seed: int | None) -> None:
        self.inner.seed(seed)

    async def _move(self, seat: str, observation: dict[str, Any]) -> Action:
        if self._respond is None:
            return await self.inner.act(seat, observation)
        return Action(await call_in_daemon_thread(self._respond, seat, observation))

    async def act(self, seat: str, observation: dict[str, Any]) -> Action:
        try:
            return await asyncio.wait_for(self._move(seat, observation), self.timeout_s)
        except TimeoutError:
            raise Forfeit(self.agent, f"no move within {self.timeout_s:g} s", seat) from None
        except (BackendError, PoolClosedError):  # the pool failed, not the agent: no forfeit
            raise
        except Exception as e:
            raise Forfeit(self.agent, f"{type(e).__name__}: {e}", seat) from e


FIXED = "fixed:"
"""How a fixed seat's policy is named in a forfeit (it is no agent of the roster)."""


class Roster:
    """Builds each agent's policy for a seat from its spec, through one resolver: LLM agents
    on local models share one pool (built from the tournament's ``pool``), ``base_url``
    agents talk to their server."""

    PROBE_SEEDS = 4
    """Probe games per agent at most (until every seat has moved once)."""

    def __init__(self, specs: dict[str, dict[str, Any]], pool: Any = None, fixed: dict[str, Any] | None = None):
        self.specs = specs
        self.fixed = dict(fixed or {})
        """Seat → the spec of the policy that plays it in every match."""
        self.resolver = PolicyResolver(pool_config=pool)

    def fixed_policies(self, timeout_s: float) -> dict[str, Policy]:
        """Fresh policies of the fixed seats, for one game, under the move timeout (a fixed
        seat is no competitor: its failure stops the tournament, it is no agent's forfeit)."""
        try:
            return {seat: Guarded(self.resolver.resolve(spec), f"{FIXED}{seat}", timeout_s)
                    for seat, spec in self.fixed.items()}
        except SparringError as error:
            raise type(error)(f"fixed_seats: {error}") from None

    def spec(self, agent: str, seat: str) -> dict[str, Any]:
        spec = self.specs[agent]
        if "seats" in spec:
            if seat not in spec["seats"]:
                raise ConfigError(f"roster.{agent} has no policy for seat {seat!r} (its seats: {sorted(spec['seats'])})")
            return dict(spec["seats"][seat])
        return dict(spec)

    def policy(self, agent: str, seat: str) -> Policy:
        spec = self.spec(agent, seat)
        try:
            return self.resolver.resolve(spec, **({"name": agent} if spec.get("policy") == "llm" else {}))
        except SparringError as error:
            raise type(error)(f"roster.{agent}: {error}") from None

    def check(self, cfg: TournamentConfig, seats: Sequence[str]) -> None:
        """Build every agent for every seat and play each one probe game against itself: a
        spec that cannot be built, or a move that raises (whatever it raises), fails here,
        before any match. A move that runs out of time does not: a slow agent may still be
        worth its matches, and forfeits each one it stalls in."""
        policies = {agent: {seat: self.policy(agent, seat) for seat in seats} for agent in self.specs}
        asyncio.run(self._probe(cfg, policies))

    async def _probe(self, cfg: TournamentConfig, policies: dict[str, dict[str, Policy]]) -> None:
        game_id, kwargs = cfg.game["id"], {k: v for k, v in cfg.game.items() if k != "id"}

        async def probe(agent: str) -> None:
            moved: set[str] = set()
            for k in range(self.PROBE_SEEDS):
                seats = {seat: Guarded(p, agent, cfg.move_timeout_s) for seat, p in policies[agent].items()}
                seats |= self.fixed_policies(cfg.move_timeout_s)
                try:
                    episode = await play(make(game_id, **kwargs), seats, seed=cfg.seed * 1_000_003 + k)
                except Forfeit as forfeit:
                    if forfeit.agent.startswith(FIXED) or forfeit.__cause__ is not None:
                        raise probe_failure(agent, forfeit) from None
                    return  # a stall is the agent's to forfeit, match by match
                moved |= {t.agent for t in episode.turns}
                if moved >= set(policies[agent]):
                    return

        await asyncio.gather(*(probe(agent) for agent in policies))


def probe_failure(agent: str, forfeit: Forfeit) -> SparringError:
    """The error that stops a tournament whose probe game of ``agent`` failed: it names the
    roster entry (or fixed seat), the seat and what the move raised. A sparring error (a bad
    argument, an illegal fixed move) keeps its type and says its own fix; anything else is a
    bug in the policy that showed against itself, so it would likely forfeit every match."""
    if forfeit.agent.startswith(FIXED):
        return ConfigError(f"{forfeit.agent.replace(FIXED, 'fixed_seats.')} failed in the probe game of "
                           f"roster.{agent}, before any match: {forfeit.reason}")
    cause = forfeit.__cause__
    if isinstance(cause, SparringError):
        return type(cause)(f"roster.{agent}: {cause} (seat {forfeit.seat}, in its probe game)")
    message = " ".join(str(cause).split())
    return ConfigError(f"roster.{agent}: its policy raised {type(cause).__name__}"
                       f"{': ' + message if message else ''} in seat {forfeit.seat} of its probe game (against "
                       f"itself, before any match); fix the policy or take it out of the roster")


async def play_match(spec: MatchSpec, cfg: TournamentConfig, roster: Roster) -> MatchRecord:
    """Play one scheduled match (a duel: one game per agent on the match's seed)."""
    game_id, kwargs = cfg.game["id"], {k: v for k, v in cfg.game.items() if k != "id"}
    base = dict(key=spec.key, index=spec.index, round=spec.round, seed=spec.seed, seats=spec.seats)
    started = time.perf_counter()
    duel = len(spec.seats) == 2 and all(label.endswith(DUEL) for label in spec.seats)
    games = [{label: agent} for label, agent in spec.seats.items()] if duel else [spec.seats]
    rewards, terms, transcripts = {}, {}, []
    for labels in games:
        env = make(game_id, **kwargs)
        seats = {seat_of(label): Guarded(roster.policy(agent, seat_of(label)), agent, cfg.move_timeout_s)
                 for label, agent in labels.items()} | roster.fixed_policies(cfg.move_timeout_s)
        try:
            episode = await play(env, seats, seed=spec.seed)
        except Forfeit as f:
            if f.agent.startswith(FIXED):
                raise ConfigError(f"{f.agent.replace(FIXED, 'fixed_seats.')} failed in match {spec.key}: "
                                  f"{f.reason}") from f
            transcripts.append(env.unwrapped.game.render_transcript())
            return MatchRecord(**base, status="forfeit", forfeit_by=f.agent, reason=f.reason,
                               transcript="\n\n".join(transcripts), seconds=time.perf_counter() - started)
        for label in labels:
            rewards[label] = episode.rewards[seat_of(label)]
            terms[label] = dict(episode.reward_terms.get(seat_of(label), {}))
        transcripts.append(episode.transcript)
    if not duel:
        rewards, terms = episode.rewards, episode.reward_terms
    return MatchRecord(**base, status="done", rewards=rewards, reward_terms=terms,
                       transcript="\n\n".join(transcripts), seconds=time.perf_counter() - started)


class Tournament:
    def __init__(self, cfg: TournamentConfig, store: Store | None):
        self.cfg = cfg
        self.store = store
        self.roster = Roster(cfg.roster, cfg.pool, cfg.fixed_seats)
        game_id, kwargs = cfg.game["id"], {k: v for k, v in cfg.game.items() if k != "id"}
        every = list(make(game_id, **kwargs).possible_agents)
        unknown = sorted(set(cfg.fixed_seats) - set(every))
        if unknown:
            raise ConfigError(f"fixed_seats {unknown} are not seats of {game_id}; its seats: {every}")
        self.seats = [seat for seat in every if seat not in cfg.fixed_seats]
        """The seats the agents compete for."""
        if not 1 <= len(self.seats) <= 2:
            raise ConfigError(f"tournaments are between two agents; {game_id} leaves seats {self.seats} to them: "
                              "give the others a policy in fixed_seats" if self.seats else
                              f"fixed_seats fill every seat of {game_id}: leave the agents at least one")

    @classmethod
    def create(cls, cfg: TournamentConfig) -> Tournament:
        """A new tournament; or, when one of that name exists with exactly this config, that
        one (running it again plays only what is missing)."""
        tournament = cls(cfg, None)  # the game and the roster are checked before any file is written
        tournament.roster.check(cfg, tournament.seats)
        home = directory(cfg.out_dir, cfg.name)
        if (home / DB_NAME).exists():
            store = Store.open(home)
            stored = json.loads(json.dumps(TournamentConfig.from_dict(store.config).to_dict()))  # defaults filled
            if stored != json.loads(json.dumps(cfg.to_dict())):
                store.close()
                raise StoreError(f"{home} already holds a tournament with another config; resume it "
                                 f"({cfg.resume_command}) or choose another name=")
            tournament.store = store
        else:
            tournament.store = Store.create(home, cfg.to_dict(), cfg.roster)
        return tournament

    @classmethod
    def open(cls, name: str, out_dir: str | Path = "runs/arena") -> Tournament:
        """The tournament stored at ``OUT_DIR/NAME``. Its config says where it lives as where it
        was opened, not where it was created: a tournament directory moved or copied elsewhere
        writes its reports (and names its resume command) there."""
        store = Store.open(directory(out_dir, name))
        stored = TournamentConfig.from_dict(store.config)
        return cls(replace(stored, name=name, out_dir=str(Path(out_dir))), store)

    @property
    def total_matches(self) -> int:
        if self.cfg.schedule == "round_robin":
            return len(round_robin(self.cfg, self.seats))
        per_round = len(pairing_matches(self.cfg, self.seats, [("a", "b")] * (len(self.cfg.roster) // 2), 0, 0))
        return per_round * self.cfg.rounds

    def schedule(self, round_: int, stored: list[MatchRecord]) -> list[MatchSpec]:
        """The matches of one round (round robin: everything is round 0)."""
        if self.cfg.schedule == "round_robin":
            return round_robin(self.cfg, self.seats)
        earlier = [m for m in stored if m.round < round_]
        points: dict[str, float] = {}
        for g in games_from_matches(earlier):
            points[g.a] = points.get(g.a, 0.0) + g.score
            points[g.b] = points.get(g.b, 0.0) + 1.0 - g.score
        played = {frozenset(m.seats.values()) for m in earlier}
        start = sum(1 for m in stored if m.round < round_)
        return pairing_matches(self.cfg, self.seats, swiss_pairs(self.cfg, round_, points, played), round_, start)

    def run(self, on_match: Callable[[MatchRecord], None] | None = None, use_ray: bool = False) -> list[MatchRecord]:
        """Play every scheduled match not yet stored; returns all stored matches."""
        for round_ in range(self.cfg.rounds):
            stored = self.store.matches()
            done = {m.key for m in stored}
            pending = [s for s in self.schedule(round_, stored) if s.key not in done]
            if not pending:
                continue
            try:
                if use_ray:
                    self._run_on_ray(pending, on_match)
                else:
                    asyncio.run(self._play_all(pending, on_match))
            except (BackendError, PoolClosedError) as error:
                raise type(error)(
                    f"{error}; the inference pool failed during a match, so the match is not stored (no agent "
                    f"forfeits it). The {len(self.store.done_keys())} matches that finished are kept: "
                    f"`{self.cfg.resume_command}` plays the rest") from error
        return self.store.matches()

    async def _play_all(self, pending: list[MatchSpec], on_match) -> None:
        limit = asyncio.Semaphore(self.cfg.concurrency)

        async def one(spec: MatchSpec) -> None:
            async with limit:
                record = await play_match(spec, self.cfg, self.roster)
            self.store.add(record)  # written once, as soon as the match ends
            if on_match:
                on_match(record)

        await asyncio.gather(*(one(s) for s in pending))

    def _run_on_ray(self, pending: list[MatchSpec], on_match) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        remote = ray.remote(_play_chunk)
        size = max(1, min(self.cfg.concurrency, len(pending) // max(1, int(ray.available_resources().get("CPU", 1)))))
        chunks = [pending[i:i + size] for i in range(0, len(pending), size)]
        running = [remote.remote(self.cfg.to_dict(), [asdict(s) for s in chunk]) for chunk in chunks]
        while running:
            finished, running = ray.wait(running, num_returns=1)
            for values in ray.get(finished[0]):
                record = MatchRecord(**values)
                self.store.add(record)
                if on_match:
                    on_match(record)


def _play_chunk(cfg_values: dict[str, Any], specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A Ray task: play some matches in a worker and return their records."""
    cfg = TournamentConfig.from_dict(cfg_values)
    roster = Roster(cfg.roster, cfg.pool, cfg.fixed_seats)

    async def all_of_them():
        return await asyncio.gather(*(play_match(MatchSpec(**s), cfg, roster) for s in specs))

    return [asdict(r) for r in asyncio.run(all_of_them())]


def directory(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / name


def list_tournaments(out_dir: str | Path) -> list[tuple[str, int, int | None]]:
    """(name, matches stored, matches scheduled) of every tournament under ``out_dir``."""
    rows = []
    for db in sorted(Path(out_dir).glob(f"*/{DB_NAME}")):
        try:
            t = Tournament.open(db.parent.name, out_dir)
        except (SparringError, ValueError, TypeError):
            rows.append((db.parent.name, -1, None))
            continue
        rows.append((db.parent.name, len(t.store.done_keys()), t.total_matches))
        t.store.close()
    return rows
