"""Questions for the routing game, from local FlashRAG-shaped JSONL files.

Each line is an object with ``question`` (a string) and ``golden_answers`` (a non-empty list
of strings; a single string is taken as a list of one); other fields are kept only when they
are ``domain``. nq, triviaqa, popqa, hotpotqa, 2wikimultihopqa, musique and bamboogle all
come in this shape from FlashRAG. The shipped splits ``train`` and ``heldout`` are the
synthetic set of :mod:`sparring.envs.router.synthetic`.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from sparring.envs.parsing import json_object
from sparring.envs.router.rewards import normalize_answer
from sparring.errors import DataError, NotFoundError
from sparring.paths import text_file

DATA_DIR = Path(__file__).parent / "data"
SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class QARow:
    question: str
    golden_answers: tuple[str, ...]
    domain: str | None = None


def resolve_qa_path(data: str) -> Path:
    """A shipped split name or a path to a FlashRAG-shaped ``.jsonl``."""
    if data in SPLITS:
        return DATA_DIR / f"{data}.jsonl"
    path = Path(data).expanduser()
    if not path.is_file():
        raise NotFoundError(f"QA file {data!r} not found; pass one of the shipped splits {SPLITS} or a path to a "
                            "FlashRAG-shaped .jsonl (question, golden_answers)")
    if path.suffix != ".jsonl":
        raise DataError(f"{path}: QA files are JSONL (.jsonl), one question per line")
    return path


def load_qa(data: str = "train") -> tuple[QARow, ...]:
    """The rows of a split or file; a bad row raises :class:`~sparring.errors.DataError`
    naming its file and line. Parsed files are cached (games make an env each)."""
    path = os.path.abspath(resolve_qa_path(data))
    stat = os.stat(path)
    return _load(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _load(path: str, size: int, mtime_ns: int) -> tuple[QARow, ...]:
    with text_file(path) as f:
        rows = tuple(_parse(line, f"{path}:{n}") for n, line in enumerate(f, 1) if line.strip())
    if not rows:
        raise DataError(f"{path} holds no questions")
    return rows


def _parse(line: str, where: str) -> QARow:
    row = json_object(line, where)
    question, golds = row.get("question"), row.get("golden_answers")
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: needs a non-empty 'question' string")
    if isinstance(golds, str):
        golds = [golds]
    if not isinstance(golds, list) or not golds or not all(isinstance(g, (str, int, float)) for g in golds):
        raise DataError(f"{where}: 'golden_answers' must be a non-empty list of strings, got {golds!r}")
    if not all(normalize_answer(str(g)) for g in golds):  # an empty answer would match it
        raise DataError(f"{where}: a gold answer in {golds!r} is empty once normalised")
    domain = row.get("domain")
    return QARow(question.strip(), tuple(str(g) for g in golds), str(domain) if domain is not None else None)
