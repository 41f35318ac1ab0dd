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
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

from sparring.envs.parsing import split_hidden_cot
from sparring.envs.spaces import action_space, observation_space


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
    if not isinstance(raw, str):
        reason = f"output must be a string, got {type(raw).__name__}"
        return Move(agent, None, "", format_error=reason, error=reason)
    problems = []
    used = raw
    if len(raw) > max_chars:
        problems.append(f"output too long ({len(raw)} > {max_chars} characters)")
        used = raw[:max_chars]
    reasoning = None
    if hidden_cot:
        parsed = split_hidden_cot(used)
        text, reasoning = parsed.answer, parsed.reasoning
        if parsed.error:
            problems.append(parsed.error)
    else:
        text = used.strip()
    error = "; ".join(problems) or None
    return Move(agent, raw, text, reasoning, format_error=error, error=error)


@dataclass
class Outcome:
    """What resolving a set of moves produced."""

    rewards: dict[str, float] = field(default_factory=dict)
    reward_terms: dict[str, dict[str, float]] = field(default_factory=dict)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra per-agent entries for ``infos`` (e.g. ``tie``, judge labels)."""
    done: bool = False


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
    #: ``resolve`` waits on a model (an LM judge or oracle): the rollout engine then steps the
    #: game in a worker thread, so the model calls of many games are batched together.
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

    def play(self, moves: dict[str, Move]) -> Outcome:
        self.transcript.extend(moves[a] for a in self.to_act() if a in moves)
        outcome = self.resolve(moves)
        self.turn += 1
        return outcome

    def read(self, agent: str, raw: Any) -> Move:
        move = read_output(
            agent, raw, hidden_cot=self.hidden_cot, max_chars=self.max_output_chars
        )
        return self.interpret(move)

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


def _info(outcome: Outcome | None, agent: str, move: Move | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "reward_terms": dict(outcome.reward_terms.get(agent, {})) if outcome else {},
        "invalid": move.error if move else None,
    }
    if outcome:
        info.update(outcome.info.get(agent, {}))
    return info


class _LanguageEnvBase:
    """What the AEC and Parallel adapters share: spaces, seeding, observations, rendering."""

    metadata: dict[str, Any] = {
        "render_modes": ["human", "ansi"],
        "name": "language_game",
        "is_parallelizable": True,
    }

    def _init_base(self, game: LanguageGame, render_mode: str | None) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; "
                f"use one of {self.metadata['render_modes']} or None"
            )
        self.game = game
        self.render_mode = render_mode
        self.possible_agents = list(game.possible_agents)
        self.agents: list[str] = []
        self._observation_spaces = {a: observation_space(game.max_turns) for a in game.possible_agents}
        self._action_spaces = {a: action_space() for a in game.possible_agents}
        self._rng: np.random.Generator | None = None

    def observation_space(self, agent: str) -> gymnasium.spaces.Dict:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> gymnasium.spaces.Text:
        return self._action_spaces[agent]

    def _reset_game(self, seed: int | None, options: dict[str, Any] | None) -> None:
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        self.game.reset(self._rng, options)
        self.agents = list(self.possible_agents)

    def _observation(self, agent: str, waiting: bool) -> dict[str, Any]:
        return {"text": self.game.observe(agent), "to_act": int(waiting), "turn": self.game.turn}

    def render(self) -> str | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='ansi'.")
            return None
        text = self.game.render_transcript()
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        pass


class LanguageAECEnv(_LanguageEnvBase, AECEnv):
    """A :class:`LanguageGame` as a PettingZoo AEC env (turn by turn).

    Simultaneous moves are collected one agent at a time and resolved together once every
    agent in ``to_act()`` has moved; no agent sees another's pending move.
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
        waiting = agent in self.game.to_act() and agent not in self._pending
        return self._observation(agent, waiting and not self.terminations.get(agent, True))

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        pending = self._pending
        pending[agent] = self.game.read(agent, action)
        waiting_for = next((a for a in self.game.to_act() if a not in pending), None)
        if waiting_for is not None:
            # Rewards and reward terms always describe the last step: nothing resolved yet.
            self.rewards = dict.fromkeys(self.agents, 0.0)
            self.infos = {a: _info(None, a, pending.get(a)) for a in self.agents}
            self.agent_selection = waiting_for
            return
        self._pending = {}
        outcome = self.game.play(pending)
        rewards = outcome.rewards
        self.rewards = {a: float(rewards.get(a, 0.0)) for a in self.agents}
        self.infos = {a: _info(outcome, a, pending.get(a)) for a in self.agents}
        if outcome.done:
            self.terminations = {a: True for a in self.agents}
            self.agent_selection = self.agents[0]
        else:
            self.agent_selection = self.game.to_act()[0]
        self._accumulate_rewards()
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


class OrderEnforcing(OrderEnforcingWrapper):
    """PettingZoo's order-enforcing wrapper with the per-step attributes served directly.

    The stock wrapper reaches ``agent_selection``, ``rewards`` etc. through a failed
    attribute lookup and two ``__getattr__`` calls, several times per step; for a game as
    small as the prisoner's dilemma that is a third of the step time.
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
