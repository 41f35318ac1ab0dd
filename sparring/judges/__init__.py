"""Judges: the referees that games hand their exchanges to (rule-based, LM-based, ensembles)."""

from sparring.judges.base import Judge, Verdict
from sparring.judges.ensemble import JudgeEnsemble
from sparring.judges.rules import RuleJudge
from sparring.judges.wildguard import parse_wildguard

__all__ = ["Judge", "JudgeEnsemble", "RuleJudge", "Verdict", "parse_wildguard"]
