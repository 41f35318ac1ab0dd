"""Strict parsing of model outputs: hidden chain of thought and bracketed moves.

The hidden-CoT format is ``reasoning </think> <answer> TEXT </answer>`` (the prompt pre-fills
``<think>``). Only TEXT crosses to the other agents and the judge. Parsing never raises: a
malformed output yields a :class:`CotParse` whose ``error`` says what is wrong, and whose
``answer`` is what can be recovered without revealing any reasoning.

Because the prompt opens the reasoning, everything an output writes before its last
``</think>`` is hidden reasoning, and an output with no ``</think>`` is reasoning from its
first character to its last: its visible answer is empty, whatever tags it contains. The
checks run in linear time (no regex backtracking on long, tag-less generations).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparring.errors import DataError

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

#: How games tell an agent the hidden-CoT format (the prompt then pre-fills ``<think>``).
FORMAT_INSTRUCTION = (
    "Think privately first, then give your final message. Write your reasoning, then "
    "</think>, then <answer> your message </answer>. Only the text inside <answer> is shown "
    "to anyone else; your reasoning stays hidden."
)


@dataclass(frozen=True)
class CotParse:
    """The result of splitting an output into hidden reasoning and visible answer."""

    answer: str
    """What crosses to other agents. On a format error: the text inside the first
    ``<answer>…</answer>`` after the last ``</think>``, else everything after the last
    ``</think>`` (tags removed), else nothing (the whole output is reasoning)."""
    reasoning: str | None
    """The private part: everything before the last ``</think>``, or the whole output when
    it has none (``None`` for an empty output)."""
    error: str | None = None
    """Why the format is invalid, or ``None`` when it is valid."""

    @property
    def valid(self) -> bool:
        return self.error is None


def split_hidden_cot(output: str) -> CotParse:
    """Split ``reasoning </think> <answer> TEXT </answer>`` and check the format strictly."""
    think_end = output.find(THINK_CLOSE)
    hidden_end = output.rfind(THINK_CLOSE)
    reasoning = (output[:hidden_end] if hidden_end >= 0 else output).strip() or None
    answer = _recover_answer(output, hidden_end)

    counts = {tag: output.count(tag) for tag in (THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)}
    error = None
    if THINK_OPEN in output:
        error = "output contains a literal <think> (it is pre-filled by the prompt)"
    elif any(n != 1 for n in counts.values()):
        found = ", ".join(f"{tag} x{n}" for tag, n in counts.items())
        error = f"expected exactly one </think>, <answer> and </answer>; found {found}"
    else:
        answer_start = output.find(ANSWER_OPEN)
        answer_end = output.find(ANSWER_CLOSE)
        if not think_end < answer_start < answer_end:
            error = "tags out of order: expected </think> then <answer> then </answer>"
        elif output[think_end + len(THINK_CLOSE) : answer_start].strip():
            error = "text between </think> and <answer>"
        elif output[answer_end + len(ANSWER_CLOSE) :].strip():
            error = "text after </answer>"
        elif not reasoning:
            error = "empty reasoning before </think>"
        elif not answer:
            error = "empty answer"
    return CotParse(answer=answer, reasoning=reasoning, error=error)


def _recover_answer(output: str, hidden_end: int) -> str:
    """The visible part: only what follows the last ``</think>`` may cross."""
    if hidden_end < 0:
        return ""
    tail = output[hidden_end + len(THINK_CLOSE):]
    start = tail.find(ANSWER_OPEN)
    if start >= 0:
        end = tail.find(ANSWER_CLOSE, start + len(ANSWER_OPEN))
        if end >= 0:
            return tail[start + len(ANSWER_OPEN): end].strip()
    return tail.replace(ANSWER_OPEN, "").replace(ANSWER_CLOSE, "").strip()


def cot_prefill(observation: Mapping[str, Any]) -> str:
    """What an LLM's prompt is pre-filled with for this observation: ``<think>`` when the
    game asks for the hidden-CoT format (``observation["hidden_cot"]``), else nothing."""
    return THINK_OPEN if observation.get("hidden_cot") else ""


def answer_in_format(observation: Mapping[str, Any], reasoning: str, answer: str) -> str:
    """A move as the game asks for it: ``answer`` in the hidden-CoT format (with
    ``reasoning``) when the observation says so, else ``answer`` alone."""
    return format_cot(reasoning, answer) if observation.get("hidden_cot") else answer


def format_cot(reasoning: str, answer: str) -> str:
    """Write an output in the hidden-CoT format (what a well-behaved agent emits)."""
    return f"{reasoning} {THINK_CLOSE} {ANSWER_OPEN} {answer} {ANSWER_CLOSE}"


MAX_MOVE_CHARS = 64
"""The longest bracketed move name read."""
_BRACKETED = re.compile(rf"\[([^\[\]\n]{{1,{MAX_MOVE_CHARS}}})\]")


def parse_bracketed_choice(text: str, legal: dict[str, int]) -> tuple[int | None, str | None]:
    """Find exactly one bracketed legal name in ``text`` (case-insensitive).

    ``legal`` maps lower-cased names to action indices. Returns ``(index, None)`` or
    ``(None, reason)``. Brackets around words that are not legal names are ignored, so a
    model may write "[thinking aloud] I pick [rock]"; naming two legal moves is invalid.
    """
    if text[:1] == "[" and text[-1:] == "]":  # just one bracketed name: the common case
        inner = text[1:-1]
        if 0 < len(inner) <= MAX_MOVE_CHARS and "[" not in inner and "]" not in inner and "\n" not in inner:
            index = legal.get(inner.strip().lower())
            if index is not None:
                return index, None
    found = [m.strip().lower() for m in _BRACKETED.findall(text)]
    chosen = [name for name in found if name in legal]
    if len(chosen) == 1:
        return legal[chosen[0]], None
    options = ", ".join(f"[{name}]" for name in legal)
    if not chosen:
        return None, f"no bracketed legal move (expected one of {options})"
    return None, f"{len(chosen)} bracketed moves ({', '.join(chosen)}); expected exactly one"


def json_object(line: str, where: str) -> dict:
    """One JSONL line of a data file as an object, or a :class:`~sparring.errors.DataError`
    naming ``where`` (the file and line)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e.msg})") from e
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    return row
