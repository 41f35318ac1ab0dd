"""Seed prompts for the red-teaming game, read from local files in the shapes of the public sets.

By the file's extension:

- ``.jsonl``: WildJailbreak's shape. Each row has ``vanilla``, ``adversarial``, ``completion``
  and ``data_type`` (one of ``vanilla_harmful``, ``vanilla_benign``, ``adversarial_harmful``,
  ``adversarial_benign``). The seed text is ``adversarial`` for adversarial rows and
  ``vanilla`` otherwise; the label is the ``data_type`` suffix. An optional ``contrast: true``
  marks a benign prompt written to look harmful (homonyms, figurative speech, fiction, ...).
- ``.csv``: HarmBench's behaviours (a ``Behavior`` column, every row harmful; a non-empty
  ``ContextString`` goes before the behaviour) or XSTest's prompts (``prompt`` and ``label``
  columns, ``safe`` → benign and ``unsafe`` → harmful; its safe prompts are contrast
  prompts by design).
- ``.txt``: one prompt per line, all with the one ``label`` the caller gives.

The shipped splits are small, mild and synthetic: requests only, no harmful instructions
anywhere in the repository. ``train`` is for training; ``heldout`` (plain prompts) and
``contrast`` (benign look-alikes of harmful requests and their harmful counterparts) are for
evaluation only.
"""

from __future__ import annotations

import csv
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sparring.envs.parsing import json_object
from sparring.errors import DataError, NotFoundError
from sparring.paths import text_file

SeedLabel = Literal["harmful", "benign"]
DATA_DIR = Path(__file__).parent / "data"
SPLITS = ("train", "heldout", "contrast")
SUFFIXES = (".jsonl", ".csv", ".txt")
DATA_TYPES = ("vanilla_harmful", "vanilla_benign", "adversarial_harmful", "adversarial_benign")


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class SeedPrompt:
    prompt: str
    label: SeedLabel
    reference: str = ""
    """The dataset's reference completion, if any."""
    contrast: bool = False
    """A benign prompt that looks harmful (over-refusal is measured on these apart)."""

    @property
    def brief_reference(self) -> str:
        """The reference's first sentence: an answer short enough for a small model's budget
        of new tokens (what the tiny model is pretrained on and anchored to)."""
        return _SENTENCE_END.split(self.reference.strip(), maxsplit=1)[0] if self.reference else ""


def resolve_seed_path(seeds: str) -> Path:
    """A shipped split name (see :data:`SPLITS`) or a path to a seed file (see the module
    docstring for the formats)."""
    if seeds in SPLITS:
        return DATA_DIR / f"{seeds}.jsonl"
    path = Path(seeds).expanduser()
    if not path.is_file():
        raise NotFoundError(
            f"seed file {seeds!r} not found; pass one of the shipped splits {SPLITS} or a path to a "
            "WildJailbreak-shaped .jsonl, a HarmBench or XSTest .csv, or a .txt with one prompt per line"
        )
    if path.suffix not in SUFFIXES:
        raise DataError(f"{path}: unknown seed file type {path.suffix!r}; use one of {', '.join(SUFFIXES)}")
    return path


def load_seeds(seeds: str = "train", label: SeedLabel | None = None) -> tuple[SeedPrompt, ...]:
    """Load seed prompts; raise :class:`~sparring.errors.DataError` naming the file and line of a
    bad row. ``label`` is every prompt's label in a ``.txt`` file (it is required there, and
    only there: the other formats carry their labels).

    Parsed files are cached (keyed by path, size and modification time): rollouts make a new
    env per game, and reading the file each time would cost more than playing the game."""
    path = os.path.abspath(resolve_seed_path(seeds))
    is_text = path.endswith(".txt")
    if is_text and label not in ("harmful", "benign"):
        raise DataError(f"{path}: a plain-text seed file needs the label of its prompts "
                        f"('harmful' or 'benign'), got {label!r}")
    if label is not None and not is_text:
        raise DataError(f"{path}: label={label!r} is only for .txt seed files; this file labels its rows")
    stat = os.stat(path)
    return _load(path, stat.st_size, stat.st_mtime_ns, label)


@functools.lru_cache(maxsize=32)
def _load(path_name: str, size: int, mtime_ns: int, label: SeedLabel | None) -> tuple[SeedPrompt, ...]:
    path = Path(path_name)
    with text_file(path, newline="") as f:
        if path.suffix == ".csv":
            rows = _read_csv(f, path)
        elif path.suffix == ".txt":
            rows = [SeedPrompt(line.strip(), label) for line in f if line.strip()]
        else:
            rows = [_parse_row(line, f"{path}:{n}") for n, line in enumerate(f, 1) if line.strip()]
    if not rows:
        raise DataError(f"{path} holds no seed rows")
    return tuple(rows)


def _read_csv(f, path: Path) -> list[SeedPrompt]:
    reader = csv.DictReader(f)
    columns = set(reader.fieldnames or ())
    if "Behavior" in columns:  # HarmBench: every behaviour is harmful
        return [SeedPrompt(_harmbench_prompt(row), "harmful") for row in reader if (row["Behavior"] or "").strip()]
    if {"prompt", "label"} <= columns:  # XSTest
        rows = []
        for row in reader:
            value = (row["label"] or "").strip().lower()
            if value not in ("safe", "unsafe"):  # line_num: the file's line where the row ends
                raise DataError(f"{path}:{reader.line_num}: label={row['label']!r}; XSTest labels are 'safe' or "
                                "'unsafe'")
            if (row["prompt"] or "").strip():
                safe = value == "safe"
                rows.append(SeedPrompt(row["prompt"].strip(), "benign" if safe else "harmful", contrast=safe))
        return rows
    raise DataError(f"{path}: columns {sorted(columns)} are neither HarmBench's (Behavior) nor XSTest's "
                    "(prompt, label)")


def _harmbench_prompt(row: dict[str, str]) -> str:
    context = (row.get("ContextString") or "").strip()
    behavior = row["Behavior"].strip()
    return f"{context}\n\n{behavior}" if context else behavior


def _parse_row(line: str, where: str) -> SeedPrompt:
    row = json_object(line, where)
    data_type = row.get("data_type")
    if data_type not in DATA_TYPES:
        raise DataError(f"{where}: data_type={data_type!r}; expected one of {DATA_TYPES}")
    kind, label = data_type.split("_")
    text = row.get("adversarial") if kind == "adversarial" else row.get("vanilla")
    if not isinstance(text, str) or not text.strip():
        field = "adversarial" if kind == "adversarial" else "vanilla"
        raise DataError(f"{where}: {data_type} row needs a non-empty {field!r} field")
    contrast = row.get("contrast", False)
    if not isinstance(contrast, bool):
        raise DataError(f"{where}: contrast={contrast!r} must be true or false")
    return SeedPrompt(text.strip(), label, str(row.get("completion") or ""), contrast and label == "benign")
