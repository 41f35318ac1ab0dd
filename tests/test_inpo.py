"""INPO: the loss, its closed-form minimiser, Nash convergence on a non-transitive table (where a
Bradley–Terry reward cannot get there), the knock-out, and the learner on the tiny model."""

import math

import numpy as np
import pytest
import torch
from lm import each_dropout

from sparring.agents.learners import INPOConfig, config_for, train
from sparring.agents.learners.inpo import dpo_loss, inpo_loss, knockout

# A rock-paper-scissors-like preference table over three canned answers: P[i, j] = P(i ≻ j).
RPS = torch.tensor([[0.5, 0.1, 0.9], [0.9, 0.5, 0.1], [0.1, 0.9, 0.5]], dtype=torch.float64)


def test_the_losses_equal_hand_computed_values():
    t = lambda x: torch.tensor([x], dtype=torch.float64)
    # h = (-1 + 2) - 0.5 * (-1.5 + 1.5) - 0.5 * (-1.2 + 1.8) = 0.7; target 1 / (2 * 0.25) = 2
    loss = inpo_loss(t(-1.0), t(-2.0), t(-1.5), t(-1.5), t(-1.2), t(-1.8), eta=0.25, r=0.5)
    assert float(loss) == pytest.approx((0.7 - 2.0) ** 2)
    # DPO: -log sigmoid(0.1 * ((-1 + 1.5) - (-2 + 1.5))) = log(1 + e^-0.1)
    assert float(dpo_loss(t(-1.0), t(-2.0), t(-1.5), t(-1.5), beta=0.1)) == pytest.approx(math.log1p(math.exp(-0.1)))


def inpo_step(pi_t, pi_ref, table, eta, r):
    """Minimise INPO's expected loss over a softmax policy, pairs (y, y') drawn from pi_t and
    y winning with probability table[y, y']."""
    theta = pi_t.log().clone().requires_grad_()
    log_t, log_ref = pi_t.log(), pi_ref.log()
    wins = pi_t[:, None] * pi_t[None, :] * table
    optimizer = torch.optim.LBFGS([theta], max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        lp = torch.log_softmax(theta, -1)
        loss = (wins * inpo_loss(lp[:, None], lp[None, :], log_ref[:, None], log_ref[None, :],
                                 log_t[:, None], log_t[None, :], eta, r)).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return torch.softmax(theta.detach(), -1)


def exploitability(pi, table):
    return float((table @ pi).max() - 0.5)


def test_the_minimiser_is_the_mirror_descent_step():
    rng = np.random.default_rng(0)
    upper = rng.uniform(size=(4, 4))
    table = torch.tensor(np.triu(upper, 1) + np.tril(1 - upper.T, -1) + 0.5 * np.eye(4))
    pi_t = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    pi_ref = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    eta, r = 0.5, 1 / 3
    closed_form = torch.softmax((1 - r) * pi_t.log() + r * pi_ref.log() + (table @ pi_t) / eta, -1)
    assert inpo_step(pi_t, pi_ref, table, eta, r) == pytest.approx(closed_form, abs=1e-6)


def test_inpo_reaches_the_nash_mixture_where_a_bradley_terry_reward_cannot():
    start = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    uniform = torch.full((3,), 1 / 3, dtype=torch.float64)
    eta, r = 0.5, 1 / 3

    pi = start
    for _ in range(30):
        pi = inpo_step(pi, uniform, RPS, eta, r)
    assert exploitability(pi, RPS) < 0.01  # the Nash mixture is uniform, exploitability 0
    assert pi == pytest.approx(uniform, abs=0.02)

    # RLHF with a Bradley–Terry reward fit on comparisons from the starting policy, then
    # KL-regularised reward maximisation at the same strength (tau = r * eta).
    scores = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    weights = start[:, None] * start[None, :]
    fit = torch.optim.LBFGS([scores], max_iter=500, line_search_fn="strong_wolfe")

    def nll():
        fit.zero_grad()
        loss = -(weights * RPS * torch.nn.functional.logsigmoid(scores[:, None] - scores[None, :])).sum()
        loss = loss + 1e-4 * scores.square().sum()
        loss.backward()
        return loss

    fit.step(nll)
    bt_policy = torch.softmax(uniform.log() + scores.detach() / (r * eta), -1)
    assert exploitability(bt_policy, RPS) > 0.3  # one answer dominates: it is easily beaten


def test_knockout_finds_the_champion_and_the_worst():
    strength = np.array([0.2, 0.9, 0.5, 0.1, 0.7])  # transitive: 1 best, 3 worst
    table = 1 / (1 + np.exp(-(strength[:, None] - strength[None, :]) * 10))
    assert knockout(table) == (1, 3)
    champion, worst = knockout(RPS.numpy())
    assert champion != worst
    with pytest.raises(ValueError):
        knockout(np.full((1, 1), 0.5))


def config(tmp_path, **overrides):
    values = {"env": {"id": "sparring/preference-v0"}, "learner": {"algorithm": "inpo", "lr": 1e-3},
              "agent": {"max_new_tokens": 48}, "games_per_update": 12, "group_size": 4, "updates": 2,
              "run_dir": str(tmp_path / "run"), "tensorboard": False, "plot": True, "checkpoint_every": 1,
              "keep_checkpoints": 5}
    return INPOConfig.from_dict(values | overrides)


def rollout_pairs(trainer):
    """One iteration's (winners, losers): the best and worst sample of each prompt's group."""
    from sparring.agents.trajectories import samples_from_episode

    episodes, ids = trainer.rollout(1)
    pairs = [samples_from_episode(e, i)[:2] for e, i in zip(episodes, ids)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


@pytest.mark.parametrize("algorithm", ["inpo", "dpo"])
def test_preference_learners_train_the_tiny_model(tmp_path, algorithm):
    from sparring.agents.learners import INPOTrainer

    trainer = INPOTrainer(config(tmp_path, learner={"algorithm": algorithm, "lr": 1e-3}))
    try:
        before = {k: v.clone() for k, v in trainer.learner.weights().items()}
        row = trainer.step(1)
        assert row["prompts"] == 3 and 0 <= row["pairs"] <= 3
        if row["pairs"]:
            assert row["champion_p"] > 0.5 and np.isfinite(row["loss"])
            after = trainer.learner.weights()
            assert any(not torch.equal(before[k], after[k]) for k in before)
    finally:
        trainer.close()


def test_an_iteration_is_one_step_whatever_the_micro_batch(tmp_path):
    import dataclasses

    from sparring.agents.learners import INPOTrainer

    trainer = INPOTrainer(config(tmp_path))
    try:
        winners, losers = rollout_pairs(trainer)
        start = {k: v.clone() for k, v in trainer.learner.model.state_dict().items()}
        learned = []
        for micro in (2, 16):  # one pair per chunk, then all pairs in one
            trainer.learner.model.load_state_dict(start)
            # plain SGD: the step is the accumulated gradient itself (Adam's first step is its sign)
            trainer.learner.optimizer = torch.optim.SGD(trainer.learner.model.parameters(), lr=1.0)
            trainer.cfg = dataclasses.replace(trainer.cfg, learner=dataclasses.replace(trainer.cfg.learner,
                                                                                       micro_batch_size=micro))
            row = trainer.learn(winners, losers)
            learned.append(({k: v.clone() for k, v in trainer.learner.model.state_dict().items()}, row))
        (small, row_small), (large, row_large) = learned
        assert len(winners) == 3 and row_small["loss"] == pytest.approx(row_large["loss"], rel=1e-5)
        assert all(torch.allclose(small[k], large[k], atol=1e-6) for k in start)
        assert any(not torch.equal(start[k], large[k]) for k in start)
    finally:
        trainer.close()


def test_dropout_is_off_while_learning_so_the_log_ratios_start_at_zero(tmp_path):
    """On a model with dropout, π_t and the trainable pass must see the same network: the
    loss is then the same as with no dropout at all."""
    from sparring.agents.learners import INPOTrainer

    trainer = INPOTrainer(config(tmp_path))
    try:
        winners, losers = rollout_pairs(trainer)
        losses = each_dropout(trainer.learner, (0.0, 0.5), lambda: trainer.learn(winners, losers)["loss"])
        assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    finally:
        trainer.close()


def test_inpo_run_keeps_every_iteration(tmp_path):
    metrics = train(config(tmp_path))
    assert [m["update"] for m in metrics] == [1, 2]
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert checkpoints == ["update-000001", "update-000002"]
    assert (tmp_path / "run" / "learning_curve.png").is_file()


def test_preference_learners_need_the_preference_game_and_groups(tmp_path):
    with pytest.raises(ValueError, match="train=inpo"):
        config(tmp_path, env={"id": "sparring/redteam-v0"})
    with pytest.raises(ValueError, match="group_size >= 2"):
        config(tmp_path, group_size=1)
    with pytest.raises(ValueError, match="trained by the inpo trainer, not selfplay: use the recipe train=inpo"):
        config_for({"trainer": "selfplay", "env": {"id": "sparring/redteam-v0"}, "learner": {"algorithm": "inpo"}})
    with pytest.raises(ValueError, match="not a preference learner"):
        config(tmp_path, learner={"algorithm": "grpo"})


def test_oracles():
    from sparring.judges.preference import BradleyTerryOracle, RuleOracle, TableOracle

    table = TableOracle(["rock", "paper", "scissors"], RPS.tolist())
    assert table.prefer("", "paper", " rock ") == pytest.approx(0.9)
    assert table.prefer("", "rock", "something else") == 1.0 and table.prefer("", "x", "y") == 0.5
    with pytest.raises(ValueError, match="table"):
        TableOracle(["a", "b"], [[0.5, 0.7], [0.7, 0.5]])
    longer = BradleyTerryOracle(lambda prompt, answer: len(answer))
    assert longer.prefer("", "abc", "a") == pytest.approx(1 / (1 + math.exp(-2)))
    rule = RuleOracle()
    prompt = "How do I keep basil plants healthy indoors?"
    on_topic = "Give basil plants bright light, water them when the soil is dry, and pinch the tops often."
    assert rule.prefer(prompt, on_topic, "I like turtles.") > 0.9
    assert rule.prefer(prompt, on_topic, on_topic) == 0.5


def test_the_pairwise_lm_oracle_averages_both_orders():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from lm import make_model, make_tokenizer

    from sparring.judges.preference import PairwiseLMOracle
    from sparring.pool import InferencePool

    pool = InferencePool()
    pool.add_policy("judge", make_model(), make_tokenizer())
    oracle = PairwiseLMOracle(pool, "judge")
    p = oracle.prefer("how can I help", "yes", "no")
    assert 0 < p < 1
    assert p + oracle.prefer("how can I help", "no", "yes") == pytest.approx(1.0)  # no position bias left
    assert oracle.prefer("how can I help", "yes", "yes") == pytest.approx(0.5)


def test_compare_scores_two_answers_as_the_game_does():
    from sparring.envs import make
    from sparring.envs.parsing import format_cot
    from sparring.envs.preference.game import compare

    env = make("sparring/preference-v0", parallel=True, max_output_chars=100)
    env.reset(seed=0)
    game = env.unwrapped.game if hasattr(env, "unwrapped") else env.game
    long, short = format_cot("plan", "a very thorough answer " * 6), format_cot("plan", "a short answer")
    _, _, _, _, infos = env.step({"player_0": long, "player_1": short})
    p = infos["player_0"]["preferences"]["player_1"]
    assert p == compare(game.oracle, game.prompt, long, short, max_output_chars=100) == 0.0  # too long: it loses
    assert compare(game.oracle, game.prompt, long, short) > 0.0  # within the default length it is judged
