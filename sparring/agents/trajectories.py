"""Trajectories: one training sample per agent turn, and their files on disk.

A :class:`Sample` is what a learner needs from one move of an LLM seat: the token ids the
model saw and wrote, the logprobs it sampled them with, a loss mask, the agent's terminal
reward and reward terms, and where it came from (game, seed, role, policy, weights version).
The loss mask is 1 exactly on the tokens the model generated in that turn: the prompt (the
environment's text, the other agent's words, the pre-filled ``<think>``) is never trained on.

Samples round-trip through JSONL (``.jsonl``) or Parquet (``.parquet``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sparring.agents.rollout import Episode
from sparring.errors import DataError, NotFoundError


@dataclass
class Sample:
    game_id: str
    """Which game (unique within a run, e.g. ``u3-g17``)."""
    seed: int | None
    role: str
    """The seat (agent name) that made the move."""
    policy: str
    """The pool policy that generated it."""
    turn: int
    """Index of the move within the game."""
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    """Sampling logprob of each completion token."""
    reward: float
    """The role's total reward for the game (terminal, undiscounted)."""
    reward_terms: dict[str, float] = field(default_factory=dict)
    tie: bool = False
    """The judge could not score the game: trainers drop it."""
    invalid: str | None = None
    """Why the move was invalid, if it was."""
    weights_version: int = 0
    finish_reason: str = "stop"

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.completion_ids

    @property
    def loss_mask(self) -> list[int]:
        """1 on the tokens this turn generated, 0 on everything the model was shown."""
        return [0] * len(self.prompt_ids) + [1] * len(self.completion_ids)

    def __post_init__(self) -> None:
        if len(self.logprobs) != len(self.completion_ids):
            raise DataError(
                f"sample {self.game_id}/{self.role}: {len(self.logprobs)} logprobs for "
                f"{len(self.completion_ids)} completion tokens"
            )


def samples_from_episode(episode: Episode, game_id: str, roles: Iterable[str] | None = None) -> list[Sample]:
    """The samples of an episode's LLM moves (turns that carry a generation record), for the
    given roles (default: every role)."""
    wanted = None if roles is None else set(roles)
    samples = []
    for index, turn in enumerate(episode.turns):
        generation = turn.generation
        if generation is None or (wanted is not None and turn.agent not in wanted):
            continue
        info = episode.final_infos.get(turn.agent, {})
        samples.append(Sample(
            game_id=game_id,
            seed=episode.seed,
            role=turn.agent,
            policy=generation.policy or episode.policies[turn.agent],
            turn=index,
            prompt_ids=list(generation.prompt_ids),
            completion_ids=list(generation.completion_ids),
            logprobs=list(generation.logprobs),
            reward=float(episode.rewards[turn.agent]),
            reward_terms=dict(episode.reward_terms.get(turn.agent, {})),
            tie=bool(info.get("tie", False)),
            invalid=turn.invalid,
            weights_version=generation.weights_version,
            finish_reason=generation.finish_reason,
        ))
    return samples


_FIELDS = [f.name for f in fields(Sample)]
_REQUIRED = [f.name for f in fields(Sample) if f.default is MISSING and f.default_factory is MISSING]


def write_samples(path: str | Path, samples: Sequence[Sample]) -> Path:
    """Write samples to ``path`` (``.jsonl`` or ``.parquet``); returns the path. The file is
    written next to its final name and moved into place, so a killed writer leaves no
    half-written file."""
    path = Path(path)
    kind = _kind(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    rows = [asdict(s) for s in samples]
    if kind == "jsonl":
        with partial.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([{**r, "reward_terms": json.dumps(r["reward_terms"])} for r in rows])
        pq.write_table(table, partial)
    partial.replace(path)
    return path


def read_samples(path: str | Path) -> list[Sample]:
    path = Path(path)
    kind = _kind(path)
    if not path.is_file():
        raise NotFoundError(f"no trajectory file at {path}")
    if kind == "jsonl":
        rows: list[dict[str, Any]] = []
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}:{number}: not a JSON line ({e})") from e
    else:
        import pyarrow.parquet as pq

        rows = [{**r, "reward_terms": json.loads(r["reward_terms"])} for r in pq.read_table(path).to_pylist()]
    samples = []
    for number, row in enumerate(rows, 1):
        missing = [name for name in _REQUIRED if name not in row]
        if missing:
            raise DataError(f"{path}: row {number} lacks {missing}")
        samples.append(Sample(**{k: v for k, v in row.items() if k in _FIELDS}))
    return samples


def _kind(path: Path) -> str:
    if path.suffix == ".jsonl":
        return "jsonl"
    if path.suffix == ".parquet":
        return "parquet"
    raise DataError(f"{path}: trajectory files end in .jsonl or .parquet")
