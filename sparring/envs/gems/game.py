"""The rules of Gems, its PettingZoo envs, and its exact tables for tabular solvers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from pettingzoo import AECEnv, ParallelEnv

from sparring.config import Config, at_least, check
from sparring.envs.core import check_render_mode, render_text
from sparring.errors import ConfigError

AGENTS = ("blue", "red")
MOVES = ("stay", "up", "down", "left", "right")
DELTAS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
COLOURS = ("blue", "red", "purple")
CHANNELS = ("self", "other", "own gems", "other's gems", "purple gems")
MAX_TABLE_STATES = 2_000_000


@dataclass(frozen=True)
class GemsConfig(Config):
    """Arguments of ``sparring/gems-v0``. The defaults are the published layout: 15 × 15,
    5 gems of each colour, horizon 40."""

    size: int = 15
    blue_gems: int = 5
    red_gems: int = 5
    purple_gems: int = 5
    horizon: int = 40
    gem_reward: float = 1.0
    """Paid to an agent that steps on a gem of its own colour (the gem vanishes)."""
    purple_reward: float = 3.0
    """Paid to each agent when both stand on purple gems at the same step (those vanish)."""
    layout_seed: int | None = None
    """None: the gems are placed anew at every ``reset(seed)``. An int fixes the layout (only
    the start cells vary with the reset seed), which tabular solvers need."""
    invalid_penalty: float = -1.0
    """Added to an agent whose action is neither a move index nor a move name; it stays."""

    def __post_init__(self) -> None:
        problems = at_least(self, 2, "size") + at_least(self, 1, "horizon")
        problems += at_least(self, 0, "blue_gems", "red_gems", "purple_gems")
        if self.layout_seed is not None and not (isinstance(self.layout_seed, int) and self.layout_seed >= 0):
            problems.append(f"layout_seed={self.layout_seed!r} must be an integer >= 0, or None (a new layout each game)")
        cells = self.size * self.size
        if self.blue_gems + self.red_gems + self.purple_gems + 2 > cells:
            problems.append(f"{self.blue_gems + self.red_gems + self.purple_gems} gems and 2 agents do not fit "
                            f"a {self.size} x {self.size} grid; lower the gem counts or raise size")
        check(problems)

    @property
    def num_gems(self) -> int:
        return self.blue_gems + self.red_gems + self.purple_gems


class GemsGame:
    """The state and rules of one Gems game (no PettingZoo plumbing).

    State: both agents' cells, which gems remain, and the step. Both agents move at once
    (``MOVES``; a move into the wall stays). An agent on a gem of its own colour collects it
    (+``gem_reward``); when both agents stand on purple gems after the same move, each gets
    ``purple_reward`` and those purple gems vanish. The game ends when no gem is left or at
    ``horizon`` (truncation)."""

    possible_agents = AGENTS

    def __init__(self, config: GemsConfig | None = None):
        self.config = config or GemsConfig()
        c = self.config
        self.cells = c.size * c.size
        self.colours = ["blue"] * c.blue_gems + ["red"] * c.red_gems + ["purple"] * c.purple_gems
        self.gem_cells: list[int] = []
        self.positions = [0, 0]
        self.mask = 0
        self.step_count = 0
        self.frames: list[str] = []
        if c.layout_seed is not None:
            self.gem_cells = self._place(np.random.default_rng(c.layout_seed))

    # -- setup ---------------------------------------------------------------------------
    def _place(self, rng: np.random.Generator) -> list[int]:
        return [int(x) for x in rng.choice(self.cells, size=self.config.num_gems, replace=False)]

    def reset(self, rng: np.random.Generator) -> None:
        if self.config.layout_seed is None:
            self.gem_cells = self._place(rng)
        free = np.setdiff1d(np.arange(self.cells), self.gem_cells)
        self.positions = [int(x) for x in rng.choice(free, size=2, replace=False)]
        self.mask = (1 << self.config.num_gems) - 1
        self.step_count = 0
        self.frames = [self.render_grid()]

    # -- one step ------------------------------------------------------------------------
    def move(self, cell: int, action: int) -> int:
        size = self.config.size
        row, col = divmod(cell, size)
        dr, dc = DELTAS[action]
        return min(max(row + dr, 0), size - 1) * size + min(max(col + dc, 0), size - 1)

    def step(self, actions: tuple[int, int]) -> tuple[list[float], list[dict[str, float]], bool]:
        """Apply both moves; returns each agent's reward, reward terms and whether no gem is left."""
        c = self.config
        self.positions = [self.move(self.positions[i], actions[i]) for i in range(2)]
        gems = [0.0, 0.0]
        on_purple = [False, False]
        for g, (cell, colour) in enumerate(zip(self.gem_cells, self.colours)):
            if not self.mask >> g & 1:
                continue
            for i, agent in enumerate(AGENTS):
                if self.positions[i] != cell:
                    continue
                if colour == agent:
                    gems[i] += c.gem_reward
                    self.mask &= ~(1 << g)
                elif colour == "purple":
                    on_purple[i] = True
        purple = c.purple_reward if all(on_purple) else 0.0
        if purple:
            for g, (cell, colour) in enumerate(zip(self.gem_cells, self.colours)):
                if colour == "purple" and cell in self.positions:
                    self.mask &= ~(1 << g)
        self.step_count += 1
        self.frames.append(self.render_grid())
        terms = [{"gem": gems[i], "purple": purple} for i in range(2)]
        return [gems[i] + purple for i in range(2)], terms, self.mask == 0

    # -- views ---------------------------------------------------------------------------
    def observe(self, agent: str) -> np.ndarray:
        """Five one-hot planes, flattened: the agent's cell, the other's, its own gems, the
        other's gems, purple gems. Ego-centred, so both agents read the board alike."""
        me = AGENTS.index(agent)
        planes = np.zeros((5, self.cells), dtype=np.float32)
        planes[0, self.positions[me]] = 1.0
        planes[1, self.positions[1 - me]] = 1.0
        for g, (cell, colour) in enumerate(zip(self.gem_cells, self.colours)):
            if self.mask >> g & 1:
                plane = 4 if colour == "purple" else (2 if colour == agent else 3)
                planes[plane, cell] = 1.0
        return planes.reshape(-1)

    @staticmethod
    def view_of_other(observation: np.ndarray) -> np.ndarray:
        """The other agent's observation of the same moment (the board is fully observed: its
        planes swap roles), for learners that need every agent's view, as MAMQL's policies do."""
        planes = np.asarray(observation, dtype=np.float32).reshape(5, -1)
        return planes[[1, 0, 3, 2, 4]].reshape(-1)

    def state_index(self) -> int:
        """The state's index in :meth:`tables` (fixed layouts only)."""
        return (self.positions[0] * self.cells + self.positions[1]) * (1 << self.config.num_gems) + self.mask

    def state_of(self, agent: str, observation: np.ndarray) -> int:
        """The state index (:meth:`tables`) of ``agent``'s observation; raises
        :class:`~sparring.errors.ConfigError` if the observation is of another layout."""
        planes = np.asarray(observation).reshape(-1)
        if planes.shape[0] != 5 * self.cells:
            raise ConfigError(f"a gems observation of {planes.shape[0]} numbers is not of a {self.config.size} x "
                              f"{self.config.size} grid ({5 * self.cells}); match the layout to the game's")
        planes = planes.reshape(5, self.cells)
        me = AGENTS.index(agent)
        pos = [0, 0]
        pos[me], pos[1 - me] = int(planes[0].argmax()), int(planes[1].argmax())
        mask = 0
        for g, (cell, colour) in enumerate(zip(self.gem_cells, self.colours)):
            plane = 4 if colour == "purple" else (2 if colour == agent else 3)
            mask |= int(planes[plane, cell] > 0.5) << g
        if int((planes[2:] > 0.5).sum()) != bin(mask).count("1"):
            raise ConfigError("the observation's gems are not where this layout puts them; "
                              "give the policy the game's layout (size, gem counts, layout_seed)")
        return (pos[0] * self.cells + pos[1]) * (1 << self.config.num_gems) + mask

    def render_grid(self) -> str:
        size = self.config.size
        grid = [["."] * size for _ in range(size)]
        for g, (cell, colour) in enumerate(zip(self.gem_cells, self.colours)):
            if self.mask >> g & 1:
                grid[cell // size][cell % size] = colour[0]
        for i, mark in enumerate("BR"):
            row, col = divmod(self.positions[i], size)
            grid[row][col] = "X" if self.positions[0] == self.positions[1] else mark
        return "\n".join("".join(r) for r in grid)

    def render_transcript(self, viewer: str | None = None, reveal: bool = False) -> str:
        """Every board of the game so far (b/r/p: gems; B/R: the agents, X: both on one cell)."""
        return "\n\n".join(f"step {t}\n{frame}" for t, frame in enumerate(self.frames))

    # -- exact tables --------------------------------------------------------------------
    def tables(self) -> dict[str, np.ndarray]:
        """The whole game as arrays over every state ``s`` (:meth:`state_index`) and joint move
        ``(a_blue, a_red)``: ``next[s, a, b]``, ``reward[i, s, a, b]``, ``done[s, a, b]`` (no gem
        left after the move), and ``start`` (the distribution of first states). Needs a fixed
        layout (``layout_seed``) small enough to enumerate."""
        c = self.config
        if c.layout_seed is None:
            raise ConfigError("gems tables need a fixed layout: set layout_seed")
        masks = 1 << c.num_gems
        states = self.cells * self.cells * masks
        if states > MAX_TABLE_STATES:
            raise ConfigError(f"a {c.size} x {c.size} Gems layout with {c.num_gems} gems has {states:,} states, "
                              f"over the {MAX_TABLE_STATES:,} a table holds; use size <= 6 and <= 8 gems")
        index = np.arange(states)
        mask = index % masks
        pos_b = index // masks // self.cells
        pos_r = index // masks % self.cells
        moved = np.array([[self.move(cell, a) for a in range(len(MOVES))] for cell in range(self.cells)])
        nb = moved[pos_b][:, :, None]  # (S, 5, 1)
        nr = moved[pos_r][:, None, :]  # (S, 1, 5)
        shape = (states, len(MOVES), len(MOVES))
        new_mask = np.broadcast_to(mask[:, None, None], shape).copy()
        reward = np.zeros((2,) + shape)
        on_b = np.zeros(shape, dtype=bool)
        on_r = np.zeros(shape, dtype=bool)
        for g, (cell, colour) in enumerate(zip(self.gem_cells, self.colours)):
            present = (mask >> g & 1).astype(bool)[:, None, None]
            hit_b, hit_r = present & (nb == cell), present & (nr == cell)
            if colour == "blue":
                reward[0] += c.gem_reward * hit_b
                new_mask &= ~(hit_b * (1 << g))
            elif colour == "red":
                reward[1] += c.gem_reward * hit_r
                new_mask &= ~(hit_r * (1 << g))
            else:
                on_b |= hit_b
                on_r |= hit_r
        both = on_b & on_r
        reward += c.purple_reward * both
        for g, (cell, colour) in enumerate(zip(self.gem_cells, self.colours)):
            if colour == "purple":
                gone = both & ((nb == cell) | (nr == cell))
                new_mask &= ~(gone * (1 << g))
        nxt = (nb * self.cells + nr) * masks + new_mask
        free = np.setdiff1d(np.arange(self.cells), self.gem_cells)
        start = np.zeros(states)
        for b in free:
            for r in free:
                if b != r:
                    start[(b * self.cells + r) * masks + masks - 1] = 1.0
        return {"next": nxt, "reward": reward, "done": new_mask == 0, "start": start / start.sum()}

    def observations_of(self, states: np.ndarray) -> dict[str, np.ndarray]:
        """Each agent's observation (as :meth:`observe`) of the given state indices."""
        masks = 1 << self.config.num_gems
        states = np.asarray(states)
        mask = states % masks
        pos = [states // masks // self.cells, states // masks % self.cells]
        out = {}
        rows = np.arange(len(states))
        for me, agent in enumerate(AGENTS):
            planes = np.zeros((len(states), 5, self.cells), dtype=np.float32)
            planes[rows, 0, pos[me]] = 1.0
            planes[rows, 1, pos[1 - me]] = 1.0
            for g, (cell, colour) in enumerate(zip(self.gem_cells, self.colours)):
                plane = 4 if colour == "purple" else (2 if colour == agent else 3)
                planes[:, plane, cell] = (mask >> g & 1)
            out[agent] = planes.reshape(len(states), -1)
        return out


def parse_move(action: Any) -> tuple[int, str | None]:
    """A move index from an index (a number, or its digits as text) or a move name; (0 = stay,
    reason) when it is neither."""
    if isinstance(action, (int, np.integer)) and not isinstance(action, bool):
        if 0 <= int(action) < len(MOVES):
            return int(action), None
        return 0, f"move {int(action)} is out of range 0..{len(MOVES) - 1}"
    if isinstance(action, str):
        name = action.strip().lower()
        if name.isascii() and name.isdigit():
            return parse_move(int(name))
        if name in MOVES:
            return MOVES.index(name), None
        return 0, f"{action[:40]!r} is not a move; moves: {', '.join(MOVES)}"
    return 0, f"{type(action).__name__} is not a move; give an index or one of {', '.join(MOVES)}"


class _GemsBase:
    metadata: dict[str, Any] = {"render_modes": ["human", "ansi"], "name": "gems_v0", "is_parallelizable": True}

    def _init(self, config: GemsConfig, render_mode: str | None) -> None:
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.game = GemsGame(config)
        self.render_mode = render_mode
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        dims = 5 * self.game.cells
        self._observation_space = gymnasium.spaces.Box(0.0, 1.0, shape=(dims,), dtype=np.float32)
        self._action_space = gymnasium.spaces.Discrete(len(MOVES))
        self._rng: np.random.Generator | None = None

    def observation_space(self, agent: str) -> gymnasium.spaces.Box:
        if agent not in self.possible_agents:
            raise KeyError(agent)
        return self._observation_space

    def action_space(self, agent: str) -> gymnasium.spaces.Discrete:
        if agent not in self.possible_agents:
            raise KeyError(agent)
        return self._action_space

    def state(self) -> np.ndarray:
        return self.game.observe("blue")

    def _reset(self, seed: int | None) -> None:
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        self.game.reset(self._rng)
        self.agents = list(self.possible_agents)

    def _resolve(self, moves: dict[str, Any]) -> tuple[dict, dict, bool, bool]:
        parsed = {a: parse_move(moves.get(a)) for a in AGENTS}
        rewards, terms, cleared = self.game.step(tuple(parsed[a][0] for a in AGENTS))
        infos = {}
        for i, agent in enumerate(AGENTS):
            move, invalid = parsed[agent]
            terms[i]["invalid"] = self.game.config.invalid_penalty if invalid else 0.0
            infos[agent] = {"reward_terms": terms[i], "invalid": invalid, "action": move, "step": self.game.step_count}
        rewards = {a: rewards[i] + terms[i]["invalid"] for i, a in enumerate(AGENTS)}
        return rewards, infos, cleared, self.game.step_count >= self.game.config.horizon

    def render(self) -> str | None:
        return render_text(self.render_mode, self.game.render_grid)

    def close(self) -> None:
        pass


class GemsParallelEnv(_GemsBase, ParallelEnv):
    """Gems as a PettingZoo Parallel env: both agents move every step."""

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        self._init(GemsConfig.from_dict(kwargs), render_mode)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        self._reset(seed)
        return ({a: self.game.observe(a) for a in self.agents},
                {a: {"reward_terms": {}, "invalid": None, "step": 0} for a in self.agents})

    def step(self, actions: dict[str, Any]):
        rewards, infos, cleared, out_of_time = self._resolve(actions)
        observations = {a: self.game.observe(a) for a in self.agents}
        terminations = {a: cleared for a in self.agents}
        truncations = {a: out_of_time and not cleared for a in self.agents}
        if cleared or out_of_time:
            self.agents = []
        return observations, rewards, terminations, truncations, infos


class GemsAECEnv(_GemsBase, AECEnv):
    """Gems as a PettingZoo AEC env: blue then red choose; the step resolves at red's move,
    and neither sees the other's pending move."""

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        self._init(GemsConfig.from_dict(kwargs), render_mode)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self._reset(seed)
        self._pending: dict[str, Any] = {}
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {"reward_terms": {}, "invalid": None, "step": 0} for a in self.agents}
        self.agent_selection = self.agents[0]

    def observe(self, agent: str) -> np.ndarray:
        return self.game.observe(agent)

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        self._pending[agent] = action
        if agent != AGENTS[-1]:
            self.rewards = {a: 0.0 for a in self.agents}
            # Only the mover's info starts again: the others' still tell what the last step paid them,
            # as their rewards since their own last move do (last()).
            self.infos = {**self.infos, agent: {**self.infos[agent], "reward_terms": {}, "invalid": None}}
            self.agent_selection = AGENTS[AGENTS.index(agent) + 1]
            return
        rewards, infos, cleared, out_of_time = self._resolve(self._pending)
        self._pending = {}
        self.rewards = rewards
        self.infos = infos
        for a in self.agents:
            self._cumulative_rewards[a] += rewards[a]
            self.terminations[a] = cleared
            self.truncations[a] = out_of_time and not cleared
        self.agent_selection = AGENTS[0]
