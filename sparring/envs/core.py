"""The language-game core: rules written once, served as PettingZoo AEC and Parallel envs.

A game is a :class:`LanguageGame`: plain Python that holds the state, says who must act,
writes each agent's observation text, interprets moves and scores them. It knows nothing of
spaces or PettingZoo, so it can be tested on its own. :class:`LanguageAECEnv` and
:class:`LanguageParallelEnv` adapt any game to PettingZoo's two APIs, and add what every game
shares: strict reading of model outputs (hidden chain of thought, length limit, ``None``),
invalid output as a game event (reason in ``infos[agent]["invalid"]``, penalty by the game),
``infos[agent]["reward_terms"]``, a transcript, text rendering and seeding through
``reset(seed=...)`` only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils.env_logger import EnvLogger
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

from sparring.envs.parsing import split_hidden_cot
from sparring.envs.spaces import action_space, observation_space
from sparring.errors import ConfigError


@dataclass(slots=True)
class Move:
    """One agent's output, read strictly. Recorded in the game's transcript.

    Games set ``value`` (and add to ``error``) in :meth:`LanguageGame.interpret`; after that
    a move is not changed.
    """

    agent: str
    raw: str | None
    """Exactly what the agent emitted (``None`` if it emitted nothing)."""
    text: str
    """The visible part: what other agents and the judge may see."""
    reasoning: str | None = None
    """The hidden part (before ``</think>``), seen only by its owner."""
    format_error: str | None = None
    """Why the output is malformed (hidden-CoT format, length, not a string), if it is."""
    error: str | None = None
    """Every reason this move is invalid: the format error and any game-level one."""
    value: Any = None
    """The game's interpretation of ``text`` (e.g. an action index), set by the game."""

    @property
    def format_valid(self) -> bool:
        return self.format_error is None

    def reject(self, reason: str) -> Move:
        """Mark the move invalid for a game-level reason (kept beside any format error)."""
        self.error = f"{self.error}; {reason}" if self.error else reason
        return self


def read_output(agent: str, raw: Any, *, hidden_cot: bool, max_chars: int) -> Move:
    """Read a raw model output into a :class:`Move`. Never raises."""
    if raw is None:
        return Move(agent, None, "", format_error="no output (None)", error="no output (None)")
    if not hidden_cot and type(raw) is str and len(raw) <= max_chars:  # the common case, first
        return Move(agent, raw, raw.strip())
    if not isinstance(raw, str):
        reason = f"output must be a string, got {type(raw).__name__}"
        return Move(agent, None, "", format_error=reason, error=reason)
    problems = []
    if len(raw) > max_chars:
        problems.append(f"output too long ({len(raw)} > {max_chars} characters)")
    reasoning = None
    if hidden_cot:  # read whole, then cut: a cut output's last </think> need not be the output's
        parsed = split_hidden_cot(raw)
        text, reasoning = parsed.answer[:max_chars], parsed.reasoning
        if parsed.error:
            problems.append(parsed.error)
    else:
        text = raw[:max_chars].strip()
    error = "; ".join(problems) or None
    return Move(agent, raw, text, reasoning, format_error=error, error=error)


@dataclass(slots=True)
class Outcome:
    """What resolving a set of moves produced."""

    rewards: dict[str, float] = field(default_factory=dict)
    reward_terms: dict[str, dict[str, float]] = field(default_factory=dict)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra per-agent entries for ``infos`` (e.g. ``tie``, judge labels)."""
    done: bool = False


@dataclass(frozen=True, slots=True)
class Demonstration:
    """A move worth imitating, which a game ships for learners' supervised anchors: what
    ``agent`` saw (``observation``, as :meth:`LanguageAECEnv.observe` gives it) and the output
    to learn (in the game's format)."""

    agent: str
    observation: dict[str, Any]
    output: str


class LanguageGame(ABC):
    """The rules of a language game. Subclasses implement the abstract methods.

    Life cycle: ``reset(rng, options)``; then while ``to_act()`` is non-empty the env reads
    each listed agent's output into a :class:`Move` (via :meth:`interpret`) and calls
    :meth:`play` with all of them; ``play`` records the moves and calls :meth:`resolve`.
    """

    possible_agents: tuple[str, ...] = ()
    #: An upper bound on the number of resolved moves in one game (sizes the ``turn`` field).
    max_turns: int = 1
    #: Whether outputs use the ``reasoning </think> <answer> … </answer>`` format.
    hidden_cot: bool = False
    #: Outputs longer than this are invalid (and cut to this length before parsing).
    max_output_chars: int = 8192
    #: One line shown by ``sparring envs``.
    description: str = ""
    #: ``resolve`` waits on a model (a judge or oracle whose ``awaits_model`` is true): the
    #: rollout engine then steps the game in a worker thread, so the model calls of many games
    #: are batched together.
    slow_resolve: bool = False

    def reset(self, rng: np.random.Generator, options: dict[str, Any] | None = None) -> None:
        self.rng = rng
        self.turn = 0
        self.transcript: list[Move] = []
        self.setup(options or {})

    @abstractmethod
    def setup(self, options: dict[str, Any]) -> None:
        """Start a new game, drawing any randomness from ``self.rng``."""

    @abstractmethod
    def to_act(self) -> tuple[str, ...]:
        """Agents whose moves the game awaits now (several when moves are simultaneous)."""

    @abstractmethod
    def observe(self, agent: str) -> str:
        """The text ``agent`` may read now. Must reveal nothing private to another agent."""

    def interpret(self, move: Move) -> Move:
        """Turn the visible text into the game's action (set ``value``/``error``)."""
        return move

    @abstractmethod
    def resolve(self, moves: dict[str, Move]) -> Outcome:
        """Apply the moves of every agent in ``to_act()`` and score them."""

    def private_texts(self, agent: str) -> list[str]:
        """Texts only ``agent`` may see so far (its hidden reasoning by default).

        The conformance tests check that no other agent's observation contains any of them.
        """
        return [m.reasoning for m in self.transcript if m.agent == agent and m.reasoning]

    def demonstrations(self) -> list[Demonstration]:
        """Good moves this game's data holds (e.g. helpful answers to benign requests), for a
        learner's supervised anchor; none by default."""
        return []

    def play(self, moves: dict[str, Move]) -> Outcome:
        """Record ``moves`` (of the agents in ``to_act()``, in their order) and resolve them."""
        self.transcript.extend(moves.values())
        outcome = self.resolve(moves)
        self.turn += 1
        return outcome

    def read(self, agent: str, raw: Any) -> Move:
        if not self.hidden_cot and type(raw) is str and len(raw) <= self.max_output_chars:
            return self.interpret(Move(agent, raw, raw.strip()))  # read_output's common case, inline
        return self.interpret(read_output(agent, raw, hidden_cot=self.hidden_cot, max_chars=self.max_output_chars))

    def header(self, viewer: str | None) -> str:
        """A line that opens the rendered transcript for ``viewer`` (``None``: spectator)."""
        return ""

    def render_transcript(self, viewer: str | None = None, reveal: bool = False) -> str:
        """The game so far as text. Hidden reasoning is shown only to its owner (or with
        ``reveal=True``); everyone else sees that it exists and its length."""
        lines = [h for h in [self.header(None if reveal else viewer)] if h]
        for i, move in enumerate(self.transcript, 1):
            lines.append(f"[{i}] {move.agent}: {move.text}")
            if move.reasoning:
                if reveal or viewer == move.agent:
                    lines.append(f"    (hidden reasoning) {move.reasoning}")
                else:
                    lines.append(f"    (hidden reasoning, {len(move.reasoning)} chars)")
            if move.error:
                lines.append(f"    invalid: {move.error}")
        return "\n".join(lines)


class SeededGenerator:
    """``np.random.default_rng(seed)``, made the first time it is used: seeding a generator
    costs more than a whole move of a small game, and many games never draw a number."""

    __slots__ = ("seed", "generator")

    def __init__(self, seed: int | None):
        self.seed = seed
        self.generator: np.random.Generator | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self.generator is None:
            self.generator = np.random.default_rng(self.seed)
        return getattr(self.generator, name)


_NOTHING: dict[str, Any] = {}


def _info(outcome: Outcome | None, agent: str, move: Move | None) -> dict[str, Any]:
    if outcome is None:
        return {"reward_terms": {}, "invalid": move.error if move else None}
    return {"reward_terms": dict(outcome.reward_terms.get(agent, _NOTHING)), "invalid": move.error if move else None,
            **outcome.info.get(agent, _NOTHING)}


class _LanguageEnvBase:
    """What the AEC and Parallel adapters share: spaces, seeding, observations, rendering."""

    metadata: dict[str, Any] = {
        "render_modes": ["human", "ansi"],
        "name": "language_game",
        "is_parallelizable": True,
    }

    def _init_base(self, game: LanguageGame, render_mode: str | None) -> None:
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.game = game
        self.render_mode = render_mode
        self.possible_agents = list(game.possible_agents)
        self.agents: list[str] = []
        # Spaces are made on first use: rollouts build an env per game and never ask for them.
        self._observation_spaces: dict[str, gymnasium.spaces.Dict] = {}
        self._action_spaces: dict[str, gymnasium.spaces.Text] = {}
        self._rng: np.random.Generator | None = None

    def observation_space(self, agent: str) -> gymnasium.spaces.Dict:
        if agent not in self._observation_spaces:
            if agent not in self.possible_agents:
                raise KeyError(agent)
            self._observation_spaces[agent] = observation_space(self.game.max_turns)
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> gymnasium.spaces.Text:
        if agent not in self._action_spaces:
            if agent not in self.possible_agents:
                raise KeyError(agent)
            self._action_spaces[agent] = action_space()
        return self._action_spaces[agent]

    def _reset_game(self, seed: int | None, options: dict[str, Any] | None) -> None:
        if seed is not None or self._rng is None:
            self._rng = SeededGenerator(seed)
        self.game.reset(self._rng, options)
        self.agents = list(self.possible_agents)

    def _observation(self, agent: str, waiting: bool) -> dict[str, Any]:
        game = self.game
        return {"text": game.observe(agent), "to_act": 1 if waiting else 0, "turn": game.turn,
                "hidden_cot": 1 if game.hidden_cot else 0}

    def render(self) -> str | None:
        return render_text(self.render_mode, self.game.render_transcript)

    def close(self) -> None:
        pass


def check_render_mode(render_mode: str | None, modes: list[str]) -> None:
    if render_mode not in (None, *modes):
        raise ConfigError(f"render_mode={render_mode!r} is not supported; use one of {modes} or None")


def render_text(render_mode: str | None, text: Callable[[], str]) -> str | None:
    """PettingZoo's ``render()`` for a game drawn as text: printed (``human``), returned
    (``ansi``), or a warning without a render mode."""
    if render_mode is None:
        gymnasium.logger.warn("render() called without a render_mode; pass render_mode='ansi'.")
        return None
    if render_mode == "human":
        print(text())
        return None
    return text()


class LanguageAECEnv(_LanguageEnvBase, AECEnv):
    """A :class:`LanguageGame` as a PettingZoo AEC env (turn by turn).

    Simultaneous moves are collected one agent at a time and resolved together once every
    agent in ``to_act()`` has moved; no agent sees another's pending move.

    ``rewards`` holds what the last step paid; ``last()`` gives an agent what it earned since
    its own last move (PettingZoo's ``_cumulative_rewards``), and its ``infos`` match:
    ``reward_terms`` summed over the same steps, ``invalid`` the verdict on its last move, and
    the latest step's other fields.
    """

    def __init__(self, game: LanguageGame, render_mode: str | None = None):
        AECEnv.__init__(self)
        self._init_base(game, render_mode)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self._reset_game(seed, options)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: _info(None, a, None) for a in self.agents}
        self._pending: dict[str, Move] = {}
        self.agent_selection = self.game.to_act()[0]

    def observe(self, agent: str) -> dict[str, Any]:
        game = self.game
        waiting = agent in game.to_act() and agent not in self._pending and not self.terminations.get(agent, True)
        return {"text": game.observe(agent), "to_act": 1 if waiting else 0, "turn": game.turn,
                "hidden_cot": 1 if game.hidden_cot else 0}

    def last(self, observe: bool = True):
        agent = self.agent_selection
        return (self.observe(agent) if observe else None, self._cumulative_rewards[agent],
                self.terminations[agent], self.truncations[agent], self.infos[agent])

    def _was_dead_step(self, action: Any) -> None:
        """PettingZoo's closing step of a finished agent (same checks, same effects), with
        less bookkeeping: every game ends with one per agent."""
        if action is not None:
            raise ValueError("when an agent is dead, the only valid action is None")
        agent = self.agent_selection
        for table in (self.terminations, self.truncations, self.rewards, self._cumulative_rewards, self.infos):
            del table[agent]
        self.agents.remove(agent)
        dead = next((a for a in self.agents if self.terminations[a] or self.truncations[a]), None)
        if dead is not None:
            if getattr(self, "_skip_agent_selection", None) is None:
                self._skip_agent_selection = agent
            self.agent_selection = dead
        else:
            if getattr(self, "_skip_agent_selection", None) is not None:
                self.agent_selection = self._skip_agent_selection
            self._skip_agent_selection = None
        self.rewards = dict.fromkeys(self.rewards, 0)

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        game = self.game
        self._cumulative_rewards[agent] = 0.0
        pending = self._pending
        pending[agent] = move = game.read(agent, action)
        agents = self.agents
        to_act = game.to_act()
        since = self.infos  # each agent's since its last move: the mover's starts again with this move
        since[agent] = {"reward_terms": {}, "invalid": move.error}
        if len(pending) < len(to_act):  # the moves of this turn come in one by one
            for waiting_for in to_act:
                if waiting_for not in pending:
                    break
            self.rewards, self.agent_selection = dict.fromkeys(agents, 0.0), waiting_for  # nothing resolved yet
            return
        self._pending = {}
        outcome = game.play(pending)
        rewards, terms, extra = outcome.rewards, outcome.reward_terms, outcome.info
        # Loops rather than comprehensions here: this runs at every move of every game.
        step_rewards, cumulative, infos = {}, self._cumulative_rewards, {}
        for a in agents:
            step_rewards[a] = reward = float(rewards.get(a, 0.0))
            cumulative[a] += reward
            earned = dict(since[a]["reward_terms"])  # a new dict: one handed out before stays as it was
            for name, value in terms.get(a, _NOTHING).items():
                earned[name] = earned.get(name, 0.0) + value
            infos[a] = {"reward_terms": earned, "invalid": since[a]["invalid"], **extra.get(a, _NOTHING)}
        self.rewards, self.infos = step_rewards, infos
        if outcome.done:
            self.terminations = dict.fromkeys(agents, True)
            self.agent_selection = agents[0]
        else:
            self.agent_selection = game.to_act()[0]
        if self.render_mode == "human":
            self.render()


class LanguageParallelEnv(_LanguageEnvBase, ParallelEnv):
    """A :class:`LanguageGame` as a PettingZoo Parallel env.

    Every live agent gets an observation each step; ``obs["to_act"]`` says whose move the
    game awaits. Actions of agents that are not to act are ignored (in a sequential game only
    the current player's action counts); a missing action of an agent that is to act is read
    as ``None`` (an invalid move).
    """

    def __init__(self, game: LanguageGame, render_mode: str | None = None):
        self._init_base(game, render_mode)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        self._reset_game(seed, options)
        return self._observations(), {a: _info(None, a, None) for a in self.agents}

    def _observations(self, done: bool = False) -> dict[str, dict[str, Any]]:
        acting = () if done else self.game.to_act()
        return {a: self._observation(a, a in acting) for a in self.agents}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("step() after the game ended; call reset() first")
        strangers = [a for a in actions if a not in self.possible_agents]
        if strangers:  # a misspelt agent would leave the real one's move missing, and penalised
            raise ConfigError(f"actions for {strangers}, which are not agents of this game: {self.possible_agents}")
        moves = {a: self.game.read(a, actions.get(a)) for a in self.game.to_act()}
        outcome = self.game.play(moves)
        observations = self._observations(done=outcome.done)
        rewards = {a: float(outcome.rewards.get(a, 0.0)) for a in self.agents}
        terminations = {a: outcome.done for a in self.agents}
        truncations = {a: False for a in self.agents}
        infos = {a: _info(outcome, a, moves.get(a)) for a in self.agents}
        if outcome.done:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return observations, rewards, terminations, truncations, infos


def _forwarded(name: str) -> property:
    def get(self):
        if not self._has_reset:
            raise AttributeError(f"{name} cannot be accessed before reset")
        return getattr(self.env, name)

    return property(get, doc=f"The wrapped env's ``{name}`` (after reset).")


class _AgentIterator:
    """PettingZoo's order-enforcing agent iterator (the same checks), without its layers of
    calls: it runs once per move."""

    __slots__ = ("wrapper", "env", "left")

    def __init__(self, wrapper: OrderEnforcing, max_iter: int):
        self.wrapper, self.env, self.left = wrapper, wrapper.env, max_iter

    def __iter__(self) -> _AgentIterator:
        return self

    def __next__(self) -> str:
        env = self.env
        if not env.agents or self.left <= 0:
            raise StopIteration
        self.left -= 1
        assert self.wrapper._has_updated, "need to call step() or reset() in a loop over `agent_iter`"
        self.wrapper._has_updated = False
        return env.agent_selection


class OrderEnforcing(OrderEnforcingWrapper):
    """PettingZoo's order-enforcing wrapper with the same checks, served directly.

    The stock wrapper reaches ``agent_selection``, ``rewards`` etc. through a failed
    attribute lookup and two ``__getattr__`` calls, and ``step`` and the agent iterator
    through several layers, every move; for a game as small as the prisoner's dilemma that
    is most of the step time.
    """

    agents = _forwarded("agents")
    agent_selection = _forwarded("agent_selection")
    rewards = _forwarded("rewards")
    terminations = _forwarded("terminations")
    truncations = _forwarded("truncations")
    infos = _forwarded("infos")
    _cumulative_rewards = _forwarded("_cumulative_rewards")

    def last(self, observe: bool = True):
        if not self._has_reset:
            raise AttributeError("last() cannot be called before reset")
        return self.env.last(observe)

    def step(self, action: Any) -> None:
        if not self._has_reset:
            EnvLogger.error_step_before_reset()
        elif not self.env.agents:
            self._has_updated = True
            EnvLogger.warn_step_after_terminated_truncated()
        else:
            self._has_updated = True
            self.env.step(action)

    def agent_iter(self, max_iter: int = 2**63) -> _AgentIterator:
        if not self._has_reset:
            EnvLogger.error_agent_iter_before_reset()
        return _AgentIterator(self, max_iter)


def language_envs(module: str, name: str, build: Callable[..., LanguageGame]) -> tuple[type, type, Callable, Callable]:
    """A game module's PettingZoo entry points: ``raw_env`` (AEC), ``parallel_raw_env``,
    ``env()`` (AEC, wrapped as PettingZoo's own games are) and ``parallel_env()``.

    ``build(**kwargs)`` makes the game's rules from the env's arguments. The classes are named
    as if written in ``module`` (pass ``__name__``), so envs pickle by reference (RLlib copies
    them) and their docs point at the game's module."""

    def aec_init(self, render_mode: str | None = None, **kwargs: Any) -> None:
        LanguageAECEnv.__init__(self, build(**kwargs), render_mode)

    def parallel_init(self, render_mode: str | None = None, **kwargs: Any) -> None:
        LanguageParallelEnv.__init__(self, build(**kwargs), render_mode)

    classes = []
    for class_name, base, init in (("raw_env", LanguageAECEnv, aec_init),
                                   ("parallel_raw_env", LanguageParallelEnv, parallel_init)):
        cls = type(class_name, (base,), {"__init__": init, "__module__": module,
                                         "metadata": {**base.metadata, "name": name}})
        cls.__qualname__ = class_name
        classes.append(cls)
    raw, parallel_raw = classes

    def env(**kwargs: Any) -> OrderEnforcing:
        """The AEC env, wrapped as PettingZoo's own games are."""
        return OrderEnforcing(raw(**kwargs))

    def parallel_env(**kwargs: Any) -> LanguageParallelEnv:
        """The Parallel env."""
        return parallel_raw(**kwargs)

    for fn in (env, parallel_env):
        fn.__module__ = module
    return raw, parallel_raw, env, parallel_env
