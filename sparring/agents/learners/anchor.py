"""The supervised anchor: λ·NLL on demonstrations, added to every policy-gradient update.

Self-RedTeam's headline recipe adds, at each step, a negative log-likelihood term (PTX/SFT,
coefficient 1.0) on helpful answers to benign prompts, so that self-play cannot buy safety
with over-refusal. Games ship such moves as :class:`~sparring.envs.Demonstration` s
(``game.demonstrations()``); :class:`Anchor` tokenizes them exactly as the learner's policy
would be prompted in play, draws ``batch`` of them per update, and gives the mean NLL per
completion token (:func:`completion_nll`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from sparring.agents.learners.model import Batch, LearnerModel
from sparring.envs import Demonstration
from sparring.pool import GenerationRequest
from sparring.pool.transformers_backend import render_request


def completion_nll(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood per completion token (``mask`` = 1 on completions)."""
    return -(logprobs * mask).sum() / mask.sum().clamp(min=1.0)


class Anchor:
    """Demonstrations tokenized for one learner. ``request_for(observation)`` is the
    :class:`~sparring.pool.GenerationRequest` the learner's policy makes in play, so the
    anchor's prompts are token for token what the policy sees."""

    def __init__(self, demonstrations: Sequence[Demonstration], learner: LearnerModel,
                 request_for: Callable[[dict], GenerationRequest], batch: int):
        tokenizer = learner.tokenizer
        self.learner, self.batch = learner, batch
        self.pairs: list[tuple[list[int], list[int]]] = []
        for demo in demonstrations:
            prompt = render_request(tokenizer, request_for(demo.observation))
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            completion = tokenizer(demo.output, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            self.pairs.append((prompt_ids, completion))

    def __len__(self) -> int:
        return len(self.pairs)

    def draw(self, rng: np.random.Generator) -> Batch:
        """``batch`` demonstrations (without replacement while there are enough)."""
        rows = rng.choice(len(self.pairs), size=self.batch, replace=self.batch > len(self.pairs))
        return Batch.from_pairs([self.pairs[int(i)] for i in rows], self.learner.pad_id)

    def loss(self, batch: Batch) -> torch.Tensor:
        """The learner's mean NLL on ``batch``'s completions (with gradients)."""
        return completion_nll(self.learner.logprobs(batch), batch.mask)
