"""The self-play learner's pieces on hand-made batches with known answers."""

import math

import pytest
import torch

from sparring.agents.learners.losses import (
    clipped_policy_loss,
    group_advantages,
    kl_penalty,
    reinforce_pp_returns,
    token_logprobs,
    whiten_per_group,
)
from sparring.agents.learners.model import Batch
from sparring.agents.trajectories import Sample


def sample(prompt, completion, role="defender", reward=1.0):
    return Sample(game_id="g", seed=0, role=role, policy="learner", turn=0, prompt_ids=list(prompt),
                  completion_ids=list(completion), logprobs=[-1.0] * len(completion), reward=reward)


def test_returns_add_the_terminal_reward_to_the_kl_penalties_to_go():
    kl = torch.tensor([[0.1, 0.2, 0.3, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    returns = reinforce_pp_returns(torch.tensor([1.0]), kl, mask, kl_coef=0.5)
    # per-token rewards: -0.05, -0.1, -0.15 + 1 (the last generated token), nothing on padding
    assert returns.tolist()[0] == pytest.approx([0.7, 0.75, 0.85, 0.0])


def test_returns_start_after_the_prompt():
    mask = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    returns = reinforce_pp_returns(torch.tensor([2.0]), torch.zeros(1, 4), mask, kl_coef=0.1)
    assert returns.tolist()[0] == [0.0, 0.0, 2.0, 2.0]


def test_advantages_are_normalised_separately_per_role():
    # attackers got 1 and 3, defenders 10 and 20: each role is centred on its own mean.
    returns = torch.tensor([[1.0], [3.0], [10.0], [20.0]])
    mask = torch.ones(4, 1)
    per_role = whiten_per_group(returns, mask, ["attacker", "attacker", "defender", "defender"])
    assert per_role.squeeze(1).tolist() == pytest.approx([-1.0, 1.0, -1.0, 1.0], abs=1e-6)
    pooled = whiten_per_group(returns, mask, [0, 0, 0, 0])
    assert pooled[0, 0] < pooled[1, 0] < 0 < pooled[2, 0] < pooled[3, 0]  # the roles' scales mix


def test_normalisation_ignores_masked_tokens_and_constant_groups():
    returns = torch.tensor([[1.0, 100.0], [3.0, -100.0], [5.0, 5.0]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    out = whiten_per_group(returns, mask, ["a", "a", "b"])
    assert torch.allclose(out, torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]), atol=1e-6)


def test_group_baselines_compare_games_of_one_seed():
    rewards = torch.tensor([1.0, 3.0, 0.0, 0.0, 7.0])
    out = group_advantages(rewards, ["s1", "s1", "s2", "s2", "s3"])
    assert out.tolist() == pytest.approx([-1.0, 1.0, 0.0, 0.0, 0.0], abs=1e-5)


def test_kl_estimators_match_the_exact_kl_in_expectation():
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.2, 0.6])
    exact = float((p * (p / q).log()).sum())
    for estimator in ("k1", "k3"):
        expected = float((p * kl_penalty(p.log(), q.log(), estimator)).sum())
        assert expected == pytest.approx(exact, rel=1e-5), estimator
    k2 = kl_penalty(p.log(), q.log(), "k2")
    assert k2.tolist() == pytest.approx((0.5 * (p / q).log() ** 2).tolist())
    assert (kl_penalty(p.log(), q.log(), "k3") >= 0).all()
    assert kl_penalty(p.log(), p.log(), "k3").abs().max() == 0
    with pytest.raises(ValueError, match="k4"):
        kl_penalty(p, q, "k4")


def test_the_clip_stops_gradients_only_where_the_ratio_left_the_trust_region():
    old = torch.zeros(1, 4)
    # ratios 1.5, 0.5, 1.5, 1.1; advantages +1, +1, -1, +1
    logp = torch.tensor([[math.log(1.5), math.log(0.5), math.log(1.5), math.log(1.1)]], requires_grad=True)
    advantages = torch.tensor([[1.0, 1.0, -1.0, 1.0]])
    loss, stats = clipped_policy_loss(logp, old, advantages, torch.ones(1, 4), clip_eps=0.2)
    assert float(loss) == pytest.approx(-(1.2 + 0.5 - 1.5 + 1.1))
    assert stats["clipped_tokens"] == 1
    loss.backward()
    grad = logp.grad[0].tolist()
    assert grad[0] == 0  # ratio 1.5 > 1.2 with a positive advantage: clipped
    assert grad[1] == pytest.approx(-0.5)  # d(-ratio)/dlogp = -ratio
    assert grad[2] == pytest.approx(1.5)  # pessimistic side: the unclipped term counts
    assert grad[3] == pytest.approx(-1.1)


def test_collate_marks_only_generated_tokens():
    batch = Batch.collate([sample([5, 6, 7], [8, 9]), sample([5], [8, 9, 10])], pad_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9], [5, 8, 9, 10, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    # aligned with the predicted token: input_ids[:, 1:]
    assert batch.mask.tolist() == [[0, 0, 1, 1], [1, 1, 1, 0]]
    assert batch.rows(1, 2).input_ids.tolist() == [[5, 8, 9, 10]]


def test_no_gradient_reaches_the_prompt_or_the_padding():
    """The loss depends on the logits that predict generated tokens, and on no others: the
    environment's text and the other agent's words are never trained on."""
    batch = Batch.collate([sample([1, 2, 3], [4, 5]), sample([1, 2], [6])], pad_id=0)
    logits = torch.randn(2, batch.input_ids.shape[1], 8, requires_grad=True)
    logp = token_logprobs(logits, batch.input_ids)
    loss, _ = clipped_policy_loss(logp, logp.detach(), torch.ones_like(logp), batch.mask, clip_eps=0.2)
    loss.backward()
    touched = logits.grad.abs().sum(-1) > 0
    # row 0 predicts tokens 4, 5 from positions 2, 3; row 1 predicts 6 from position 1
    assert touched.tolist() == [[False, False, True, True, False], [False, True, False, False, False]]


def test_token_logprobs_equal_log_softmax():
    logits = torch.randn(2, 5, 11)
    ids = torch.randint(0, 11, (2, 5))
    expected = torch.log_softmax(logits, -1)[:, :-1].gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(token_logprobs(logits, ids), expected, atol=1e-6)


def test_grpo_counts_a_game_of_several_moves_once_in_its_group():
    rewards = torch.tensor([1.0, 1.0, 1.0, -1.0])  # game a: three moves; game b: one
    advantages = group_advantages(rewards, ["g"] * 4, games=["a", "a", "a", "b"])
    assert advantages.tolist() == pytest.approx([1.0, 1.0, 1.0, -1.0], abs=1e-4)  # the baseline is 0, not 0.5
    assert group_advantages(rewards, ["g"] * 4).tolist() != pytest.approx(advantages.tolist())  # moves as games
