"""Diversity of attacker prompts: self-BLEU, embedding diversity, seed-to-revision similarity.

All are reported as ``1 - similarity`` (higher is more diverse) except
:func:`revision_similarity`. Self-BLEU uses sacrebleu with exponential smoothing, each text
scored against all others. Embedding diversity takes any embedder (a callable from a list of
texts to a 2-D array); the all-MiniLM-L6-v2 sentence model
(:func:`sparring.judges.embedding.minilm_embedder`) is the usual choice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
