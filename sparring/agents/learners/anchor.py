"""The supervised anchor: λ·NLL on demonstrations, added to every policy-gradient update.

Self-RedTeam's headline recipe adds, at each step, a negative log-likelihood term (PTX/SFT,
coefficient 1.0) on helpful answers to benign prompts, so that self-play cannot buy safety
with over-refusal. Games ship such moves as :class:`~sparring.envs.Demonstration` s
(``game.demonstrations()``); :class:`Anchor` tokenizes them exactly as the learner's policy
would be prompted in play, draws ``batch`` of them per update, and gives the mean NLL per
completion token (:func:`completion_nll`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from sparring.agents.learners.model import Batch, LearnerModel
from sparring.envs import Demonstration
from sparring.errors import ConfigError
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
        self.limit = 0
        """The policy's ``max_new_tokens``: the most it writes in one move."""
        self.longest = 0
        """The longest demonstrated completion, in tokens (without the end of sequence)."""
        for demo in demonstrations:
            request = request_for(demo.observation)
            prompt = render_request(tokenizer, request)
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            completion = tokenizer(demo.output, add_special_tokens=False)["input_ids"]
            self.limit, self.longest = request.sampling.max_new_tokens, max(self.longest, len(completion))
            self.pairs.append((prompt_ids, completion + [tokenizer.eos_token_id]))

    def check_lengths(self) -> None:
        """Refuse demonstrations longer than the policy may write in one move (it would be
        cut off before it could reproduce them)."""
        if self.longest > self.limit:
            raise ConfigError(f"demonstrated moves run to {self.longest} tokens, longer than agent.max_new_tokens="
                              f"{self.limit}: the policy would be cut off before it could write them; raise "
                              "agent.max_new_tokens")

    def __len__(self) -> int:
        return len(self.pairs)

    def draw(self, rng: np.random.Generator) -> Batch:
        """``batch`` demonstrations (without replacement while there are enough)."""
        return self.batch_of(rng.choice(len(self.pairs), size=self.batch, replace=self.batch > len(self.pairs)))

    def batch_of(self, rows: Iterable[int]) -> Batch:
        """The demonstrations at ``rows``, collated."""
        return Batch.from_pairs([self.pairs[int(i)] for i in rows], self.learner.pad_id)

    def loss(self, batch: Batch) -> torch.Tensor:
        """The learner's mean NLL on ``batch``'s completions (with gradients)."""
        return completion_nll(self.learner.logprobs(batch), batch.mask)
