"""The Router-R1 reward: format rules, normalised exact match, normalised cost.

Pure functions (and one small class, the cost window), so every rule and case can be tested
by hand:

- :func:`format_problems`: every format rule the router's whole trajectory breaks;
- :func:`normalize_answer` / :func:`exact_match`: SQuAD-style normalisation, EM against any
  gold answer;
- :class:`CostWindow`: √cost normalised by the p5/p95 of a sliding window;
- :func:`router_reward`: −1 on a format failure, else (1 − α) + α·c_norm on a correct
  answer, else 0; with its terms.
"""

from __future__ import annotations

import re
import string
import threading
from collections import deque
from collections.abc import Iterable, Sequence

import numpy as np

TAGS = ("think", "search", "answer", "information")
_TAG = re.compile(r"<(/?)(think|search|answer|information)>")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def format_problems(trajectory: str, experts: Iterable[str]) -> list[str]:
    """Every format rule that ``trajectory`` (the router's moves and the env's
    ``<information>`` replies, in order) breaks; empty when it is well-formed."""
    problems: list[str] = []
    text = trajectory.strip()
    names = set(experts)
    open_tag: str | None = None
    contents: dict[str, list[str]] = {tag: [] for tag in TAGS}
    start = 0
    for match in _TAG.finditer(text):
        closing, tag = match.group(1) == "/", match.group(2)
        if not closing:
            if open_tag is not None:
                problems.append(f"<{tag}> opened inside <{open_tag}>: tags must not nest")
                break
            open_tag, start = tag, match.end()
        else:
            if open_tag != tag:
                problems.append(f"</{tag}> closes {'nothing' if open_tag is None else f'<{open_tag}>'}")
                break
            contents[tag].append(text[start:match.start()].strip())
            open_tag = None
    else:
        if open_tag is not None:
            problems.append(f"<{open_tag}> is never closed")
    if problems:  # the counts below mean nothing when the tags are broken
        return problems
    if not contents["think"]:
        problems.append("no <think> block")
    problems += [f"an empty <think> block ({body!r})" for body in contents["think"] if body in ("", "...")]
    if len(contents["answer"]) != 1:
        problems.append(f"{len(contents['answer'])} <answer> blocks (exactly one is needed)")
    if len(contents["search"]) != len(contents["information"]):
        problems.append(f"{len(contents['search'])} <search> blocks but {len(contents['information'])} "
                        "<information> replies")
    if not text.startswith("<think>"):
        problems.append("the output does not start with <think>")
    if not text.endswith("</answer>"):
        problems.append("the output does not end with </answer>")
    for body in contents["search"]:
        problems += search_problems(body, names)
    return problems


def parse_search(body: str) -> tuple[str, str] | None:
    """``Expert: query`` as ``(expert, query)``, or None when it has not exactly one colon."""
    if body.count(":") != 1:
        return None
    expert, query = (part.strip() for part in body.split(":"))
    return expert, query


def search_problems(body: str, experts: set[str]) -> list[str]:
    """What is wrong with one ``<search>`` block's contents."""
    parsed = parse_search(body)
    if parsed is None:
        return [f"search {body!r} needs exactly one ':' (Expert: query)"]
    expert, query = parsed
    problems = [] if query else [f"search {body!r} has an empty query"]
    if expert not in experts:
        problems.append(f"search {body!r} names no expert of the pool ({', '.join(sorted(experts))})")
    return problems


def normalize_answer(text: str) -> str:
    """Lower case, punctuation and the articles a/an/the removed, whitespace collapsed."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION))
    return " ".join(text.split())


def exact_match(prediction: str, golden_answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer, else 0.0."""
    guess = normalize_answer(prediction)
    return float(any(guess == normalize_answer(gold) for gold in golden_answers))


class CostWindow:
    """The last ``size`` values of √cost, and a cost's normalised score against them:
    c_norm = 1 − clip((√c − p5) / (p95 − p5), 0, 1), 0.5 when p95 = p5. Thread-safe: games of
    one process share a window.

    ``bounds=(low, high)`` (costs, low < high) fixes p5 = √low and p95 = √high instead, so a
    game's score depends on its own cost alone: runs, evaluations and duels then compare
    exactly, whatever else the process has played."""

    def __init__(self, size: int = 1000, bounds: tuple[float, float] | None = None):
        if size < 1:
            raise ValueError(f"a cost window holds at least one value, not {size}")
        if bounds is not None:
            low, high = (float(b) for b in bounds)
            if not 0 <= low < high < np.inf:
                raise ValueError(f"cost bounds are two finite costs 0 <= low < high, not {bounds!r}")
            bounds = (float(np.sqrt(low)), float(np.sqrt(high)))
        self.values: deque[float] = deque(maxlen=size)
        self.bounds = bounds
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"values": self.values, "bounds": self.bounds}

    def __setstate__(self, state: dict) -> None:
        self.values, self.bounds, self._lock = state["values"], state.get("bounds"), threading.Lock()

    def add(self, cost: float) -> float:
        """Record ``cost`` (its square root) and return its normalised score."""
        if not np.isfinite(cost):
            raise ValueError(f"a cost must be a finite number, got {cost!r}")
        root = float(np.sqrt(max(cost, 0.0)))
        with self._lock:
            self.values.append(root)
            p5, p95 = self.bounds or np.percentile(self.values, [5, 95])
        if p95 == p5:
            return 0.5
        return 1.0 - float(np.clip((root - p5) / (p95 - p5), 0.0, 1.0))


def router_reward(format_ok: bool, em: float, cost_norm: float, alpha: float) -> tuple[float, dict[str, float]]:
    """The router's reward and its terms (they sum to it)."""
    if not format_ok:
        return -1.0, {"format": -1.0}
    if em == 1.0:
        terms = {"outcome": 1.0 - alpha, "cost": alpha * cost_norm}
    else:
        terms = {"outcome": 0.0}
    return sum(terms.values()), terms
