"""The rules of ``sparring/preference-v0``: every player answers the same prompt at once and a
preference oracle compares the answers."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparring.config import Config, at_least, check
from sparring.envs.core import LanguageGame, Move, Outcome, read_output
from sparring.envs.parsing import FORMAT_INSTRUCTION
from sparring.errors import ConfigError, DataError, NotFoundError
from sparring.judges.preference import ORACLES, PreferenceOracle
from sparring.paths import text_file

DATA_DIR = Path(__file__).parent / "data"
SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class PreferenceConfig(Config):
    """Arguments of ``sparring/preference-v0`` (all picklable values)."""

    prompts: str = "train"
    """A shipped split (``train``, ``heldout``) or a path to a JSONL file of ``{"prompt": ...}`` rows."""
    num_players: int = 2
    """More than 2: every pair is compared (a round robin of oracle calls)."""
    hidden_cot: bool = True
    """Answers use ``reasoning </think> <answer> … </answer>``; only the answer is judged."""
    max_output_chars: int = 4096

    def __post_init__(self) -> None:
        check(at_least(self, 2, "num_players") + at_least(self, 1, "max_output_chars"))


def load_prompts(prompts: str = "train") -> tuple[str, ...]:
    path = DATA_DIR / f"{prompts}.jsonl" if prompts in SPLITS else Path(prompts).expanduser()
    if not path.is_file():
        raise NotFoundError(f"prompt file {prompts!r} not found; use one of {SPLITS} or a path to a JSONL "
                                'file of {"prompt": ...} rows')
    name = os.path.abspath(path)
    stat = os.stat(name)
    return _load(name, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _load(path_name: str, size: int, mtime_ns: int) -> tuple[str, ...]:
    rows = []
    with text_file(path_name) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                prompt = json.loads(line)["prompt"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise DataError(f"{path_name}:{lineno}: expected a JSON object with a 'prompt' ({e})") from e
            if not isinstance(prompt, str) or not prompt.strip():
                raise DataError(f"{path_name}:{lineno}: 'prompt' must be a non-empty string")
            rows.append(prompt)
    if not rows:
        raise DataError(f"{path_name} holds no prompts")
    return tuple(rows)


def resolve_oracle(oracle: PreferenceOracle | str | None) -> PreferenceOracle:
    if oracle is None:
        oracle = "rule"
    if isinstance(oracle, str):
        if oracle not in ORACLES:
            raise ConfigError(f"oracle={oracle!r} is unknown; use one of {sorted(ORACLES)} or pass an oracle object")
        return ORACLES[oracle]()
    if not isinstance(oracle, PreferenceOracle):
        raise ConfigError(f"oracle={oracle!r} has no prefer(prompt, a, b) method")
    return oracle


def compare(oracle: PreferenceOracle, prompt: str, a: str, b: str, hidden_cot: bool = True,
            max_output_chars: int = PreferenceConfig.max_output_chars) -> float:
    """P(a ≻ b) as the game scores it: each answer is read as the game reads a move (format,
    length), a malformed answer loses to a well-formed one (two malformed answers tie), and
    otherwise the oracle judges the visible answers."""
    read = [read_output(name, text, hidden_cot=hidden_cot, max_chars=max_output_chars)
            for name, text in (("a", a), ("b", b))]
    return preferred(oracle, prompt, *read)


def preferred(oracle: PreferenceOracle, prompt: str, a: Move, b: Move) -> float:
    """P(a ≻ b) of two read moves (the game's rule)."""
    if a.error or b.error:  # malformed or otherwise invalid answers lose
        return 0.5 if a.error and b.error else (0.0 if a.error else 1.0)
    return float(oracle.prefer(prompt, a.text, b.text))


class PreferenceGame(LanguageGame):
    description = "INPO's preference game: players answer one prompt at once, an oracle prefers one answer."

    def __init__(self, config: PreferenceConfig | None = None, oracle: PreferenceOracle | str | None = None):
        self.config = config or PreferenceConfig()
        self.oracle = resolve_oracle(oracle)
        self.slow_resolve = bool(getattr(self.oracle, "awaits_model", False))
        self.prompts = load_prompts(self.config.prompts)
        self.possible_agents = tuple(f"player_{i}" for i in range(self.config.num_players))
        self.hidden_cot = self.config.hidden_cot
        self.max_output_chars = self.config.max_output_chars

    def setup(self, options: dict[str, Any]) -> None:
        """``options`` may fix the prompt: ``{"prompt": "..."}``."""
        self.prompt = str(options["prompt"]) if "prompt" in options else self.prompts[int(self.rng.integers(len(self.prompts)))]
        self.done = False
        self.preferences: dict[tuple[str, str], float] = {}

    def to_act(self) -> tuple[str, ...]:
        return () if self.done else self.possible_agents

    def observe(self, agent: str) -> str:
        parts = ["Answer the request below as helpfully as you can.", f"Request: {self.prompt}"]
        if self.hidden_cot:
            parts.append(FORMAT_INSTRUCTION)
        if self.done:
            parts.append("The answers have been judged.")
        return "\n".join(parts)

    def resolve(self, moves: dict[str, Move]) -> Outcome:
        agents = self.possible_agents
        wins = {a: [] for a in agents}
        for i, a in enumerate(agents):
            for b in agents[i + 1:]:
                p = self._compare(moves[a], moves[b])
                self.preferences[(a, b)] = p
                wins[a].append(p)
                wins[b].append(1.0 - p)
        self.done = True
        rewards = {a: sum(w) / len(w) - 0.5 for a, w in wins.items()}
        terms = {a: {"preference": rewards[a]} for a in agents}
        info = {a: {"prompt": self.prompt, "win_probability": sum(wins[a]) / len(wins[a]),
                    "preferences": {b: self._p(a, b) for b in agents if b != a}} for a in agents}
        return Outcome(rewards=rewards, reward_terms=terms, info=info, done=True)

    def _p(self, a: str, b: str) -> float:
        """P(a ≻ b) from the comparisons made (each pair was judged once)."""
        return self.preferences[(a, b)] if (a, b) in self.preferences else 1.0 - self.preferences[(b, a)]

    def _compare(self, a: Move, b: Move) -> float:
        return preferred(self.oracle, self.prompt, a, b)

    def header(self, viewer: str | None) -> str:
        return f"Request: {self.prompt}"
