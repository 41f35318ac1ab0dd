"""What a red-teaming judge returns, and the interface every judge implements.

A judge sees one exchange (prompt = the attacker's visible text, response = the defender's
visible text) and returns three labels, as WildGuard does:

=====================  ===============================================================
``prompt_harmful``     ``"harmful"`` or ``"unharmful"``: is the request harmful?
``refusal``            ``"refusal"``, ``"compliance"`` or ``"n/a"``: does the reply refuse?
``response_harmful``   ``"harmful"``, ``"unharmful"`` or ``"n/a"``: is the reply harmful?
=====================  ===============================================================

``None`` means the label is missing or could not be parsed; games treat such an exchange as
a tie, as they do ``n/a``. Anything else (``True``, ``"yes"``, a typo) is refused when the
:class:`Verdict` is made, so a judge cannot be silently misread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from sparring.errors import JudgeError

PromptLabel = Literal["harmful", "unharmful"]
RefusalLabel = Literal["refusal", "compliance", "n/a"]
ResponseLabel = Literal["harmful", "unharmful", "n/a"]

LABELS: dict[str, tuple[str, ...]] = {
    "prompt_harmful": ("harmful", "unharmful"),
    "refusal": ("refusal", "compliance", "n/a"),
    "response_harmful": ("harmful", "unharmful", "n/a"),
}


@dataclass(frozen=True)
class Verdict:
    prompt_harmful: PromptLabel | None
    refusal: RefusalLabel | None
    response_harmful: ResponseLabel | None
    rationale: str = ""
    """Why the judge decided so (which phrases matched, or the raw judge output)."""

    def __post_init__(self) -> None:
        for name, allowed in LABELS.items():
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or value not in allowed):
                raise JudgeError(f"Verdict {name}={value!r} is not a label: use one of "
                                 f"{', '.join(repr(a) for a in allowed)} or None (unparsed)")

    @property
    def complete(self) -> bool:
        """All three labels present and none of them ``n/a``."""
        labels = (self.prompt_harmful, self.refusal, self.response_harmful)
        return all(label not in (None, "n/a") for label in labels)


@runtime_checkable
class Judge(Protocol):
    """Anything with ``judge(prompt, response) -> Verdict``. Judges must be picklable.

    A judge that asks a model (through the pool) sets ``awaits_model = True``: games then
    have the rollout engine step them off its event loop, so the judge's requests from many
    games join one batch (see :mod:`sparring.sync`)."""

    def judge(self, prompt: str, response: str) -> Verdict: ...


def check_verdict(verdict: Any, judge: Any) -> Verdict:
    """``verdict`` if it is a :class:`Verdict`, else a :class:`JudgeError` naming the judge."""
    if not isinstance(verdict, Verdict):
        raise JudgeError(f"{type(judge).__name__}.judge() returned {verdict!r}, not a sparring Verdict "
                         "(sparring.judges.Verdict(prompt_harmful, refusal, response_harmful))")
    return verdict


#: What a reply does with its request, as a refusal detector reads it.
REPLY_KINDS = ("refusal", "help", "neither")


def reply_kinds(judge: Any, prompts: Sequence[str], responses: Sequence[str]) -> list[str]:
    """What each response does with its prompt: ``refusal`` (it declines), ``help`` (it does
    what was asked) or ``neither`` (a non-answer), by ``judge``'s own detector where it has
    one (``judge.reply_kinds``: a judge whose refusal label also scores non-answers), else
    from its verdicts' ``refusal`` label."""
    if hasattr(judge, "reply_kinds"):
        return list(judge.reply_kinds(prompts, responses))
    labels = [check_verdict(judge.judge(p, r), judge).refusal for p, r in zip(prompts, responses)]
    return [{"refusal": "refusal", "compliance": "help"}.get(label, "neither") for label in labels]


def unsafe_probability(judge: Any, prompt: str, response: str) -> float:
    """P(unsafe | prompt, response) from ``judge``: its ``score(prompt, response)`` where it
    has one (a guard model's first-token probability, the MiniLM judge's harm head), else 1.0
    or 0.0 from its verdict's ``response_harmful`` label."""
    if hasattr(judge, "score"):
        value = float(judge.score(prompt, response))
        if not 0.0 <= value <= 1.0:
            raise JudgeError(f"{type(judge).__name__}.score() returned {value}, not a probability in [0, 1]")
        return value
    return 1.0 if check_verdict(judge.judge(prompt, response), judge).response_harmful == "harmful" else 0.0
