"""What trainers log of red-teaming batches: the diversity of the attacker's rewrites
(:mod:`sparring.envs.diversity`), how much of its seed each kept, and how alike the
defender's answers are."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sparring.envs.diversity import BLEU_SCORER, embedding_diversity, self_bleu_diversity


def revision_similarity(seeds: Sequence[str], revisions: Sequence[str]) -> float:
    """Mean BLEU(revision, its seed) / 100: how much of the seed the attacker kept."""
    if len(seeds) != len(revisions) or not seeds:
        raise ValueError("need equally many (and at least one) seeds and revisions")
    return float(np.mean([BLEU_SCORER.sentence_score(r, [s]).score for s, r in zip(seeds, revisions)])) / 100.0


def batch_metrics(final_infos: Sequence[Mapping[str, Mapping[str, Any]]], embed: bool = True) -> dict[str, float]:
    """What trainers log per update of ``redteam-v0``: the diversity of the attacker's visible
    rewrites (self-BLEU, all-MiniLM-L6-v2 embeddings unless ``embed`` is off), how much of its
    seed each rewrite kept (revision similarity), and the share of distinct defender answers
    (a collapsed defender answers everything alike). Metrics need two or more texts."""
    infos = [game["defender"] for game in final_infos if "defender" in game]
    attacks = [(i["seed_prompt"], i["attack"]) for i in infos if i.get("attack")]
    answers = [i["answer"] for i in infos if i.get("answer")]
    out: dict[str, float] = {}
    if len(attacks) >= 2:
        texts = [a for _, a in attacks]
        out["attack/self_bleu_diversity"] = self_bleu_diversity(texts)
        out["attack/revision_similarity"] = revision_similarity([s for s, _ in attacks], texts)
        if embed:
            from sparring.judges.embedding import minilm_embedder

            out["attack/embedding_diversity"] = embedding_diversity(texts, minilm_embedder())
    if len(answers) >= 2:
        out["defense/distinct_answers"] = len(set(answers)) / len(answers)
    return out


__all__ = ["batch_metrics", "embedding_diversity", "revision_similarity", "self_bleu_diversity"]
