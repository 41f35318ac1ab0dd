"""What a red-teaming judge returns, and the interface every judge implements.

A judge sees one exchange (prompt = the attacker's visible text, response = the defender's
visible text) and returns three labels, as WildGuard does. ``None`` means the label is
missing or could not be parsed; games treat such an exchange as a tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

PromptLabel = Literal["harmful", "unharmful"]
RefusalLabel = Literal["refusal", "compliance", "n/a"]
ResponseLabel = Literal["harmful", "unharmful", "n/a"]


@dataclass(frozen=True)
class Verdict:
    prompt_harmful: PromptLabel | None
    refusal: RefusalLabel | None
    response_harmful: ResponseLabel | None
    rationale: str = ""
    """Why the judge decided so (which phrases matched, or the raw judge output)."""

    @property
    def complete(self) -> bool:
        """All three labels present and none of them ``n/a``."""
        labels = (self.prompt_harmful, self.refusal, self.response_harmful)
        return all(label not in (None, "n/a") for label in labels)


@runtime_checkable
class Judge(Protocol):
    """Anything with ``judge(prompt, response) -> Verdict``. Judges must be picklable."""

    def judge(self, prompt: str, response: str) -> Verdict: ...
