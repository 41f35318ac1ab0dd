"""How alike texts are: self-BLEU, embedding diversity and the sentence BLEU of a candidate
against references, shared by the games that generate prompts (red-teaming, RainbowPlus).

Diversities are ``1 - similarity`` (higher is more diverse). Self-BLEU uses sacrebleu with
exponential smoothing, each text scored against all others. :func:`sentence_bleu` is NLTK's
sentence BLEU as RainbowPlus's diversity filter computes it: lower-cased word tokens, 4-gram
uniform weights, smoothing method 4. Embedding diversity takes any embedder (a callable from a
list of texts to a 2-D array); the all-MiniLM-L6-v2 sentence model
(:func:`sparring.judges.embedding.minilm_embedder`) is the usual choice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
from sacrebleu.metrics import BLEU

BLEU_SCORER = BLEU(smooth_method="exp", effective_order=True)
_WORD = re.compile(r"\w+|[^\w\s]")


def self_bleu_diversity(texts: Sequence[str]) -> float:
    """1 - mean over texts of BLEU(text, all other texts) / 100. Needs two or more texts."""
    if len(texts) < 2:
        raise ValueError(f"self-BLEU needs at least 2 texts, got {len(texts)}")
    scores = [
        BLEU_SCORER.sentence_score(text, [t for j, t in enumerate(texts) if j != i]).score
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


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens."""
    return _WORD.findall(text.lower())


def sentence_bleu(candidate: str, references: Sequence[str]) -> float:
    """NLTK's sentence BLEU of ``candidate`` against ``references`` (4-gram, uniform weights,
    smoothing method 4, lower-cased word tokens), in [0, 1]; 0 without references or words."""
    from nltk.translate.bleu_score import SmoothingFunction
    from nltk.translate.bleu_score import sentence_bleu as nltk_bleu

    hypothesis = words(candidate)
    refs = [w for w in (words(r) for r in references) if w]
    if not hypothesis or not refs:
        return 0.0
    return float(nltk_bleu(refs, hypothesis, smoothing_function=SmoothingFunction().method4))
