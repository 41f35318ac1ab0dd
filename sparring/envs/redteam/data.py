"""Seed prompts for the red-teaming game, loaded from local JSONL in WildJailbreak's shape.

Each row has ``vanilla``, ``adversarial``, ``completion`` and ``data_type`` (one of
``vanilla_harmful``, ``vanilla_benign``, ``adversarial_harmful``, ``adversarial_benign``).
The seed text is ``adversarial`` for adversarial rows and ``vanilla`` otherwise; the label is
the ``data_type`` suffix. The shipped ``train`` and ``heldout`` splits are small, mild and
synthetic: requests only, no harmful instructions anywhere in the repository.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sparring.errors import DataError, NotFoundError

SeedLabel = Literal["harmful", "benign"]
DATA_DIR = Path(__file__).parent / "data"
SPLITS = ("train", "heldout")
DATA_TYPES = ("vanilla_harmful", "vanilla_benign", "adversarial_harmful", "adversarial_benign")


@dataclass(frozen=True)
class SeedPrompt:
    prompt: str
    label: SeedLabel
    reference: str = ""
    """The dataset's reference completion, if any."""


def resolve_seed_path(seeds: str) -> Path:
    """A shipped split name (``train``/``heldout``) or a path to a JSONL file."""
    if seeds in SPLITS:
        return DATA_DIR / f"{seeds}.jsonl"
    path = Path(seeds).expanduser()
    if not path.is_file():
        raise NotFoundError(
            f"seed file {seeds!r} not found; pass one of the shipped splits {SPLITS} "
            "or a path to a JSONL file with vanilla/adversarial/completion/data_type rows"
        )
    return path


def load_seeds(seeds: str = "train") -> tuple[SeedPrompt, ...]:
    """Load seed prompts; raise :class:`~sparring.errors.DataError` naming the file and line of a
    bad row.

    Parsed files are cached (keyed by path, size and modification time): rollouts make a new
    env per game, and reading the file each time would cost more than playing the game."""
    path = os.path.abspath(resolve_seed_path(seeds))
    stat = os.stat(path)
    return _load(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _load(path_name: str, size: int, mtime_ns: int) -> tuple[SeedPrompt, ...]:
    path = Path(path_name)
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                rows.append(_parse_row(line, f"{path}:{lineno}"))
    if not rows:
        raise DataError(f"{path} holds no seed rows")
    return tuple(rows)


def _parse_row(line: str, where: str) -> SeedPrompt:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e.msg})") from e
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    data_type = row.get("data_type")
    if data_type not in DATA_TYPES:
        raise DataError(f"{where}: data_type={data_type!r}; expected one of {DATA_TYPES}")
    kind, label = data_type.split("_")
    text = row.get("adversarial") if kind == "adversarial" else row.get("vanilla")
    if not isinstance(text, str) or not text.strip():
        field = "adversarial" if kind == "adversarial" else "vanilla"
        raise DataError(f"{where}: {data_type} row needs a non-empty {field!r} field")
    return SeedPrompt(text.strip(), label, str(row.get("completion") or ""))
