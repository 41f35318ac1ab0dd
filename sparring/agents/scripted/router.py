"""Scripted experts and routers for ``sparring/router-v0``.

An expert's skill is the chance, per question domain, that it knows a question's answer;
whether it does is fixed per (expert, question) by a hash, so the same expert is always right
or always wrong on a question and routing has a right answer. It knows the questions of the
shipped synthetic splits (and of any ``data`` file it is given); asked anything else it does
not know.

The routers are the baselines: always the cheapest expert, always the strongest (the
priciest), a random one, and the oracle (the cheapest expert that knows the answer, by the
experts' skill tables: an upper bound that holds only for these scripted experts).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from sparring.agents.base import ScriptedPolicy
from sparring.envs.router.data import SPLITS, QARow, load_qa
from sparring.envs.router.game import QUERY_MARKER, QUESTION_MARKER
from sparring.envs.router.rewards import normalize_answer
from sparring.errors import ConfigError

#: Each default expert's chance of knowing an answer, by domain.
SKILLS: dict[str, dict[str, float]] = {
    "small": {"arithmetic": 0.95, "capitals": 0.25, "elements": 0.15, "spelling": 0.15},
    "medium": {"arithmetic": 0.95, "capitals": 0.9, "elements": 0.4, "spelling": 0.35},
    "large": {"arithmetic": 0.95, "capitals": 0.95, "elements": 0.95, "spelling": 0.95},
}
UNKNOWN = "I do not know."
_EXPERT_LINE = re.compile(r"^- ([A-Za-z0-9_.-]+): .*\(\$([0-9.eE+-]+) per 1M tokens", re.MULTILINE)
_INFORMATION = re.compile(r"<information>(.*?)</information>", re.DOTALL)
_NAME = re.compile(r"You are the expert ([A-Za-z0-9_.-]+)\.")


def knows(expert: str, question: str, skill: float) -> bool:
    """Whether ``expert`` knows the answer to ``question``, given its ``skill`` there."""
    return zlib.crc32(f"{expert}|{question}".encode()) / 2**32 < skill


class SkilledExpert(ScriptedPolicy):
    """An expert of fixed skills (default: :data:`SKILLS` of its name, read from its
    observation): the gold answer when it knows it, else another answer of the domain."""

    name = "router.expert"

    def __init__(self, seed: int | None = None, skills: Mapping[str, float] | None = None,
                 data: Sequence[str] = SPLITS):
        super().__init__(seed)
        if skills is not None and not all(0.0 <= float(p) <= 1.0 for p in skills.values()):
            raise ConfigError(f"router.expert skills={dict(skills)} must be chances in [0, 1]")
        self.skills = dict(skills) if skills is not None else None
        rows = [row for split in data for row in load_qa(split)]
        self.rows = {normalize_answer(r.question): r for r in rows}
        self.by_domain: dict[str | None, list[QARow]] = {}
        for row in rows:
            self.by_domain.setdefault(row.domain, []).append(row)

    def respond(self, agent: str, observation: dict[str, Any]) -> str:
        text = observation["text"]
        named = _NAME.search(text)
        expert = named.group(1) if named else agent
        query = text.partition(QUERY_MARKER)[2].strip()
        row = self.rows.get(normalize_answer(query))
        skills = self.skills if self.skills is not None else SKILLS.get(expert, {})
        if row is None or not skills:
            return UNKNOWN
        if knows(expert, row.question, skills.get(row.domain or "", 0.0)):
            return row.golden_answers[0]
        return wrong_answer(row, self.by_domain.get(row.domain, []))


def wrong_answer(row: QARow, domain: Sequence[QARow]) -> str:
    """A plausible wrong answer to ``row``: another question's gold answer of its domain."""
    others = [r.golden_answers[0] for r in domain if r.golden_answers[0] not in row.golden_answers]
    if not others:
        return UNKNOWN
    return others[zlib.crc32(row.question.encode()) % len(others)]


def parse_router_view(text: str) -> tuple[str, dict[str, float], list[str]]:
    """The question, the experts' prices and the information replies so far of a router's
    observation."""
    head, _, rest = text.partition(QUESTION_MARKER)
    question, _, history = rest.partition("\n\n")
    prices = {name: float(price) for name, price in _EXPERT_LINE.findall(head)}
    return question.strip(), prices, [m.strip() for m in _INFORMATION.findall(history)]


def search_move(expert: str, query: str, reason: str = "I will ask {expert}.") -> str:
    """A router move asking ``expert``."""
    return f"<think>{reason.format(expert=expert)}</think> <search> {expert}: {query} </search>"


def answer_move(replies: Sequence[str], reason: str | None = None) -> str:
    """A router move passing the last reply on (``unknown`` when it was none); with a
    ``reason``, a ``<think>`` goes first (the first move has one already, which is all the
    format asks)."""
    answer = replies[-1] if replies and replies[-1] not in ("None", UNKNOWN) else "unknown"
    thought = f"<think>{reason.format(answer=answer)}</think> " if reason else ""
    return f"{thought}<answer> {answer} </answer>"


class _Router(ScriptedPolicy):
    """Asks one expert (:meth:`choose`) the question verbatim, then answers with its reply."""

    def respond(self, agent: str, observation: dict[str, Any]) -> str:
        question, prices, replies = parse_router_view(observation["text"])
        if replies or not prices:
            return answer_move(replies)
        # A query holds no ':' (one separates the expert from it). Dropped, not spaced, as the
        # experts' lookup drops punctuation: "10:30" stays one word.
        return search_move(self.choose(question, prices), " ".join(question.replace(":", "").split()))

    def choose(self, question: str, prices: dict[str, float]) -> str:
        raise NotImplementedError


class CheapestRouter(_Router):
    name = "router.cheapest"

    def choose(self, question: str, prices: dict[str, float]) -> str:
        return min(prices, key=prices.get)


class StrongestRouter(_Router):
    """The priciest expert (the strongest, in a pool priced by skill)."""

    name = "router.strongest"

    def choose(self, question: str, prices: dict[str, float]) -> str:
        return max(prices, key=prices.get)


class RandomRouter(_Router):
    name = "router.random"

    def choose(self, question: str, prices: dict[str, float]) -> str:
        names = sorted(prices)
        return names[int(self.rng.integers(len(names)))]


class OracleRouter(_Router):
    """The cheapest expert that knows the answer (by :data:`SKILLS`), else the strongest."""

    name = "router.oracle"

    def __init__(self, seed: int | None = None, skills: Mapping[str, Mapping[str, float]] | None = None,
                 data: Sequence[str] = SPLITS):
        super().__init__(seed)
        self.skills = {k: dict(v) for k, v in (skills or SKILLS).items()}
        self.rows = {normalize_answer(r.question): r for split in data for r in load_qa(split)}

    def choose(self, question: str, prices: dict[str, float]) -> str:
        row = self.rows.get(normalize_answer(question))
        if row is not None:
            able = [name for name in prices
                    if knows(name, row.question, self.skills.get(name, {}).get(row.domain or "", 0.0))]
            if able:
                return min(able, key=prices.get)
        return max(prices, key=prices.get)
