"""Judges: the referees that games hand their exchanges to (rule-based, learned, LM-based,
ensembles). :func:`judge_named` builds one from a name, as configs give it."""

from __future__ import annotations

import functools

from sparring.errors import ConfigError, did_you_mean
from sparring.judges.base import REPLY_KINDS, Judge, Verdict, reply_kinds, unsafe_probability
from sparring.judges.ensemble import JudgeEnsemble
from sparring.judges.rules import RuleJudge
from sparring.judges.wildguard import parse_wildguard

#: Judges a config can name: ``rules`` (the offline heuristic) and ``minilm`` (the learned
#: embedding judge). Names joined by ``+`` are their worst-case ensemble.
JUDGES = {"rules": "RuleJudge, the offline keyword heuristic",
          "minilm": "MiniLMJudge, logistic heads on all-MiniLM-L6-v2 embeddings"}


@functools.lru_cache(maxsize=8)
def judge_named(name: str) -> Judge:
    """The judge ``name`` (see :data:`JUDGES`), one shared instance per name and process:
    games are made per episode, and the learned judge loads a sentence model."""
    parts = [part.strip() for part in str(name).split("+")]
    unknown = next((p for p in parts if p not in JUDGES), None)
    if unknown is not None:
        raise ConfigError(f"judge={name!r}: {unknown!r} is no judge.{did_you_mean(unknown, JUDGES)} Use "
                          f"{', '.join(JUDGES)}, or several joined by '+' (their worst-case ensemble)")
    if len(parts) > 1:
        return JudgeEnsemble([judge_named(p) for p in parts])
    if parts[0] == "minilm":
        from sparring.judges.embedding import MiniLMJudge

        return MiniLMJudge()
    return RuleJudge()


__all__ = ["JUDGES", "REPLY_KINDS", "Judge", "JudgeEnsemble", "RuleJudge", "Verdict", "judge_named", "parse_wildguard",
           "reply_kinds", "unsafe_probability"]
