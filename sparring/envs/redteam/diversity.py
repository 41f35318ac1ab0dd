"""Diversity of attacker prompts: self-BLEU, embedding diversity, seed-to-revision similarity.

All are reported as ``1 - similarity`` (higher is more diverse) except
:func:`revision_similarity`. Self-BLEU uses sacrebleu with exponential smoothing, each text
scored against all others. Embedding diversity takes any embedder (a callable from a list of
texts to a 2-D array); the all-MiniLM-L6-v2 sentence model
(:func:`sparring.judges.embedding.minilm_embedder`) is the usual choice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sacrebleu.metrics import BLEU

_BLEU = BLEU(smooth_method="exp", effective_order=True)


def self_bleu_diversity(texts: Sequence[str]) -> float:
    """1 - mean over texts of BLEU(text, all other texts) / 100. Needs two or more texts."""
    if len(texts) < 2:
        raise ValueError(f"self-BLEU needs at least 2 texts, got {len(texts)}")
    scores = [
        _BLEU.sentence_score(text, [t for j, t in enumerate(texts) if j != i]).score
        for i, text in enumerate(texts)
    ]
    return 1.0 - float(np.mean(scores)) / 100.0


def embedding_diversity(texts: Sequence[str], embed: Callable[[list[str]], np.ndarray]) -> float:
    """1 - mean off-diagonal cosine similarity of the texts' embeddings."""
    if len(texts) < 2:
        raise ValueError(f"embedding diversity needs at least 2 texts, got {len(texts)}")
    vectors = np.asarray(embed(list(texts)), dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1.0, norms)
    sims = unit @ unit.T
    n = len(texts)
    off_diagonal = (sims.sum() - np.trace(sims)) / (n * (n - 1))
    return 1.0 - float(off_diagonal)


def revision_similarity(seeds: Sequence[str], revisions: Sequence[str]) -> float:
    """Mean BLEU(revision, its seed) / 100: how much of the seed the attacker kept."""
    if len(seeds) != len(revisions) or not seeds:
        raise ValueError("need equally many (and at least one) seeds and revisions")
    return float(np.mean([_BLEU.sentence_score(r, [s]).score for s, r in zip(seeds, revisions)])) / 100.0


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
