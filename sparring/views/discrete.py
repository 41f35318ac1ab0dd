"""Discrete views of the games: numeric observations and a finite set of strategies.

RLlib's standard models read vectors and pick from a finite action set; the games read and
write text. :class:`DiscreteParallelEnv` sits between them without touching the rules or
the rewards: each observation's text is encoded into a fixed-size ``float32`` vector (hashed
word n-grams, or all-MiniLM-L6-v2 sentence embeddings cached by text) followed by the
game's numeric fields (``to_act``, a one-hot ``turn``) and, with ``role_in_obs``, a one-hot
of the seat, so one shared policy can tell the roles apart. An action is the index of a
*strategy*: a scripted policy that writes the move in the game's own format (hidden chain of
thought included), so every strategy is a move any text agent could have made.

Each game registers its strategy table with the game (``strategies=`` in
:func:`~sparring.envs.register_game`: a function from its rules object to
``{seat: [Strategy, ...]}``). Seats given in ``opponents`` (any policy spec) are played
inside the env by frozen policies and hidden from the learner, through the rollout engine's
own turn; turns on which only they move are played out before the learner observes again.

The env is a PettingZoo ``ParallelEnv`` with the core's semantics: every live agent observes
every step, ``to_act`` says whose action counts, the others' actions are ignored. RLlib wants
an observation only from agents whose action counts: :class:`sparring.views.rllib.TurnBasedEnv`
gives that turn-based view::

    env = make_discrete("sparring/matrix-v0", encoder="hash", rounds=10)    # game arguments last
    env = make_discrete("redteam-v0", opponents={"attacker": "redteam.roleplay"})
"""

from __future__ import annotations

import functools
import re
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

from sparring.agents import load_policy
from sparring.agents.resolve import import_object
from sparring.agents.rollout import Step, add_terms, advance_parallel, step_parallel
from sparring.agents.scripted.common import Strategy
from sparring.config import Config, at_least, check
from sparring.envs.core import LanguageGame
from sparring.envs.registry import make, spec
from sparring.errors import ConfigError
from sparring.sync import run_sync

ENCODERS = ("hash", "minilm")
MINILM_DIMS = 384
#: Games in a row that may end before an exposed seat moves (see ``DiscreteParallelEnv.reset``).
MAX_SKIPPED_GAMES = 1000


@dataclass(frozen=True)
class DiscreteConfig(Config):
    """How a game is turned into a discrete view (all picklable values)."""

    where = "view"

    game: str
    """A registered game id (``sparring/matrix-v0`` or ``matrix-v0``)."""
    encoder: str = "hash"
    """``hash`` (hashed word n-grams: deterministic, fast) or ``minilm`` (384-d embeddings)."""
    dims: int = 256
    """Length of the hashed text vector (``minilm`` always gives 384)."""
    ngrams: int = 2
    """Word n-grams hashed: 1 to ``ngrams``."""
    role_in_obs: bool = False
    """Append a one-hot of the seat, so one shared policy can play several roles."""
    uniform_actions: bool = False
    """Give every seat ``Discrete(most strategies of any seat)``, index ``i`` playing strategy
    ``i mod n``: one shared policy needs one action space across roles."""
    opponents: dict[str, Any] = field(default_factory=dict)
    """Seat → a policy spec (a name, ``{policy: NAME, **kwargs}``, a model…) played inside the env."""
    cache_size: int = 4096
    """Texts whose encodings are kept (least recently used are dropped)."""
    game_kwargs: dict[str, Any] = field(default_factory=dict)
    """The game's own arguments (``configs/env/*.yaml`` without ``id``)."""

    def __post_init__(self) -> None:
        game = spec(self.game)  # raises UnknownGameError naming the registered ids
        object.__setattr__(self, "game", game.id)
        object.__setattr__(self, "opponents", dict(self.opponents))
        object.__setattr__(self, "game_kwargs", dict(self.game_kwargs))
        problems = []
        if game.strategies is None:
            with_tables = sorted(g.id for g in _games() if g.strategies)
            problems.append(f"{game.id} registers no strategy table (strategies=), so it has no discrete view; "
                            f"games with one: {with_tables}")
        if self.encoder not in ENCODERS:
            problems.append(f"view.encoder={self.encoder!r} is unknown; use one of {ENCODERS}")
        problems += at_least(self, 8, "dims", where=self.where)
        problems += at_least(self, 1, "ngrams", where=self.where)
        problems += at_least(self, 0, "cache_size", where=self.where)  # 0: no cache
        check(problems)


# -- text encoders -------------------------------------------------------------------------------
class _LRU:
    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, key: str) -> np.ndarray | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: str, value: np.ndarray) -> None:
        if self.size:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


class HashEncoder:
    """Signed feature hashing of lower-cased word n-grams, L2-normalised. CRC32 rather than
    Python's ``hash``, which is salted per process: a vector must not depend on the worker."""

    def __init__(self, dims: int = 256, ngrams: int = 2, cache_size: int = 4096):
        self.dims, self.ngrams = dims, ngrams
        self.cache = _LRU(cache_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dims), np.float32)

    def _one(self, text: str) -> np.ndarray:
        cached = self.cache.get(text)
        if cached is not None:
            return cached
        words = _WORD.findall(text.lower())
        grams = [" ".join(words[i:i + n]) for n in range(1, self.ngrams + 1) for i in range(len(words) - n + 1)]
        codes = np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64, count=len(grams))
        signs = np.where(codes >> np.uint64(31) & np.uint64(1), -1.0, 1.0)
        vector = np.bincount((codes % np.uint64(self.dims)).astype(np.int64), weights=signs, minlength=self.dims)
        norm = np.linalg.norm(vector)
        vector = (vector / norm if norm else vector).astype(np.float32)
        self.cache.put(text, vector)
        return vector


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (unit length). The model is loaded once per process
    and shared; texts not in the cache are embedded in one batch."""

    dims = MINILM_DIMS

    def __init__(self, cache_size: int = 4096):
        self.cache = _LRU(cache_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        distinct = list(dict.fromkeys(texts))
        # Held here, not read back from the cache: storing the new ones may evict them.
        known = {t: v for t in distinct if (v := self.cache.get(t)) is not None}
        missing = [t for t in distinct if t not in known]
        fresh = {t: v.astype(np.float32) for t, v in zip(missing, _minilm()(missing))} if missing else {}
        for text, vector in fresh.items():
            self.cache.put(text, vector)
        rows = [known[t] if t in known else fresh[t] for t in texts]
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, self.dims), np.float32)


@functools.lru_cache(maxsize=1)
def _minilm() -> Callable[[list[str]], np.ndarray]:
    from sparring.judges.embedding import minilm_embedder

    return minilm_embedder()


class ObservationEncoder:
    """A game observation (``Dict(text, to_act, turn, hidden_cot)``) of one seat as a ``float32`` vector:
    ``[text encoding | to_act | one-hot turn | one-hot seat (role_in_obs)]``. The wrapper and
    :class:`~sparring.views.rllib.RLlibPolicy` both encode through this class."""

    def __init__(self, config: DiscreteConfig, seats: Sequence[str], max_turns: int):
        self.text = (MiniLMEncoder(config.cache_size) if config.encoder == "minilm"
                     else HashEncoder(config.dims, config.ngrams, config.cache_size))
        self.seats = list(seats) if config.role_in_obs else []
        self.max_turns = max_turns
        self.size = self.text.dims + 1 + (max_turns + 1) + len(self.seats)

    def space(self) -> gymnasium.spaces.Box:
        return gymnasium.spaces.Box(-1.0, 1.0, (self.size,), np.float32)

    def encode(self, observations: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
        agents = list(observations)
        texts = self.text.encode([observations[a]["text"] for a in agents])
        out = {}
        for agent, text in zip(agents, texts):
            extra = np.zeros(self.size - self.text.dims, np.float32)
            extra[0] = float(observations[agent]["to_act"])
            extra[1 + min(int(observations[agent]["turn"]), self.max_turns)] = 1.0
            if self.seats:
                extra[2 + self.max_turns + self.seats.index(agent)] = 1.0
            out[agent] = np.concatenate([text, extra])
        return out


# -- strategy tables -----------------------------------------------------------------------------
def _games():
    from sparring.envs import GAMES

    return GAMES.values()


def strategies(game_id: str, game: LanguageGame) -> dict[str, list[Strategy]]:
    """Each seat's strategies for a game, from the table the game registers (fresh policies:
    each env seeds its own)."""
    registered = spec(game_id)
    if registered.strategies is None:
        raise ConfigError(f"{registered.id} registers no strategy table (strategies=), so it has no discrete view")
    return import_object(registered.strategies)(game)


# -- the env -------------------------------------------------------------------------------------
class DiscreteParallelEnv(ParallelEnv):
    """A registered game with vector observations and strategy-index actions (see the module
    docstring). Rewards, terminations and infos are the game's own; ``infos[agent]`` adds
    ``strategy`` (the name of the strategy the agent just played, if its action counted).

    With opponents, a game that ends before any exposed seat has a move (the attacker's seat
    in a verbatim redteam game whose defender is an opponent) holds no decision and no reward
    for the learner: ``reset`` plays the next one instead and counts it in
    ``infos[agent]["skipped_games"]``."""

    metadata = {"render_modes": ["human", "ansi"], "name": "sparring_discrete", "is_parallelizable": True}

    def __init__(self, config: DiscreteConfig, render_mode: str | None = None):
        self.config = config
        self.env = make(config.game, parallel=True, render_mode=render_mode, **config.game_kwargs)
        self.game: LanguageGame = self.env.game
        self.render_mode = render_mode
        seats = list(self.game.possible_agents)
        unknown = sorted(set(config.opponents) - set(seats))
        if unknown:
            raise ConfigError(f"view.opponents {unknown} are not seats of {config.game}; its seats: {seats}")
        self.opponents = {seat: load_policy(v) for seat, v in config.opponents.items()}
        self.possible_agents = [s for s in seats if s not in self.opponents]
        if not self.possible_agents:
            raise ConfigError(f"every seat of {config.game} is an opponent; leave at least one to learn")
        table = strategies(config.game, self.game)
        self.strategies = {seat: table[seat] for seat in self.possible_agents}
        self.encoder = ObservationEncoder(config, seats, self.game.max_turns)
        most = max(len(s) for s in self.strategies.values())
        self._observation_spaces = {a: self.encoder.space() for a in self.possible_agents}
        self._action_spaces = {a: gymnasium.spaces.Discrete(most if config.uniform_actions else len(s))
                               for a, s in self.strategies.items()}
        self.agents: list[str] = []
        self._rng: np.random.Generator | None = None
        self._raw: dict[str, dict[str, Any]] = {}
        self._carried: dict[str, tuple[float, dict[str, float]]] = {}
        """What the opponents' opening moves paid each agent: its first step reports it."""

    def observation_space(self, agent: str) -> gymnasium.spaces.Box:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> gymnasium.spaces.Discrete:
        return self._action_spaces[agent]

    def acting(self) -> tuple[str, ...]:
        """The exposed agents whose action the next ``step`` uses."""
        return tuple(a for a in self.game.to_act() if a in self._action_spaces) if self.agents else ()

    def strategy(self, agent: str, action: int) -> Strategy:
        if not self._action_spaces[agent].contains(action):
            raise ConfigError(f"action {action!r} of {agent} is not in {self._action_spaces[agent]}")
        options = self.strategies[agent]
        return options[int(action) % len(options)]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        for skipped in range(MAX_SKIPPED_GAMES + 1):
            game_seed = int(self._rng.integers(2**31))
            raw, infos = self.env.reset(seed=game_seed, options=options)
            # Strategies and opponents draw from generators seeded per game: a seeded reset replays.
            policies = [*self.opponents.values(), *(s.policy for seat in self.strategies.values() for s in seat)]
            for i, policy in enumerate(policies, 1):
                policy.seed(game_seed + i)
            started = Step(raw, {}, {}, {}, infos)
            step = run_sync(advance_parallel(self.env, started, self.opponents))
            raw, infos = step.observations, step.infos
            if self.env.agents:
                break
        else:
            raise RuntimeError(f"{MAX_SKIPPED_GAMES} games of {self.config.game} in a row ended before "
                               f"{self.possible_agents} had a move; check the game's options and the opponents")
        self._raw = raw
        self.agents = [a for a in self.possible_agents if a in self.env.agents]
        self._carried = {a: (step.rewards.get(a, 0.0), dict(infos[a].get("reward_terms", {}))) for a in self.agents}
        return self._encode(raw), {a: dict(infos[a], skipped_games=skipped) for a in self.agents}

    def step(self, actions: Mapping[str, Any]):
        if not self.agents:
            raise RuntimeError("step() after the game ended; call reset() first")
        played = {a: self.strategy(a, actions[a]) for a in self.acting() if a in actions}
        texts = {a: s.render(a, self._raw[a]) for a, s in played.items()}
        # One step with the learners' strategies and the opponents' moves, then the turns on
        # which only opponents move; one step of the view reports all their rewards and terms.
        first = run_sync(step_parallel(self.env, self._raw, self.opponents, texts))
        own_invalid = {a: first.infos[a]["invalid"] for a in self.agents}
        first, self._carried = _with_carried(first, self._carried), {}  # the opening's pay, once
        last = run_sync(advance_parallel(self.env, first, self.opponents))
        self._raw = last.observations
        agents = self.agents
        out_infos = {a: dict(last.infos[a], invalid=own_invalid[a], strategy=played[a].name if a in played else None)
                     for a in agents}
        self.agents = [a for a in agents if a in self.env.agents]
        return (self._encode(last.observations, agents), {a: last.rewards.get(a, 0.0) for a in agents},
                {a: bool(last.terminations[a]) for a in agents}, {a: bool(last.truncations[a]) for a in agents},
                out_infos)

    def _encode(self, raw: Mapping[str, Mapping[str, Any]],
                agents: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        return self.encoder.encode({a: raw[a] for a in (agents if agents is not None else self.agents)})

    def render(self) -> str | None:
        return self.env.render()

    def close(self) -> None:
        self.env.close()


def _with_carried(step: Step, carried: Mapping[str, tuple[float, dict[str, float]]]) -> Step:
    """``step`` with ``carried`` rewards and reward terms added (in copies: the env's own
    dicts stay as they are)."""
    rewards, infos = dict(step.rewards), {a: dict(i) for a, i in step.infos.items()}
    for agent, (reward, terms) in carried.items():
        if agent in infos:
            rewards[agent] = rewards.get(agent, 0.0) + reward
            infos[agent]["reward_terms"] = dict(infos[agent].get("reward_terms", {}))
            add_terms(infos[agent]["reward_terms"], terms)
    return Step(step.observations, rewards, step.terminations, step.truncations, infos)


def make_discrete(game_id: str, /, *, encoder: str = "hash", dims: int = 256, ngrams: int = 2,
                  role_in_obs: bool = False, uniform_actions: bool = False, opponents: Mapping[str, Any] | None = None,
                  cache_size: int = 4096, render_mode: str | None = None, **game_kwargs: Any) -> DiscreteParallelEnv:
    """The discrete view of a registered game; ``game_kwargs`` go to the game itself (the id is
    positional-only, so a game argument may be called ``game``, as matrix-v0's is)."""
    config = DiscreteConfig.from_dict({  # every value checked, as from a config file
        "game": game_id, "encoder": encoder, "dims": dims, "ngrams": ngrams, "role_in_obs": role_in_obs,
        "uniform_actions": uniform_actions, "opponents": {} if opponents is None else opponents,
        "cache_size": cache_size, "game_kwargs": game_kwargs})
    return DiscreteParallelEnv(config, render_mode)


def env_creator(env_config: Mapping[str, Any]) -> DiscreteParallelEnv:
    """The PettingZoo env from a config dict of ``DiscreteConfig`` fields (and ``render_mode``)."""
    values = dict(env_config)
    render_mode = values.pop("render_mode", None)
    return DiscreteParallelEnv(DiscreteConfig.from_dict(values), render_mode)
