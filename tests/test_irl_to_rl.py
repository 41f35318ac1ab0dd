"""From demonstrations to an LLM negotiator: behaviour cloning by supervised fine-tuning, and
RL on the reward inverse RL recovered."""

import json

import numpy as np
import pytest

from sparring.agents import load_policy
from sparring.agents.learners import train
from sparring.agents.learners.mamql_run import RecoveredReward, load_learned, train_irl
from sparring.agents.rollout import Turn
from sparring.agents.scripted.negotiation import SoftmaxNegotiator
from sparring.agents.trajectories import (
    Transition,
    demonstrations_of,
    read_samples,
    record_transitions,
    write_transitions,
)
from sparring.envs import make
from sparring.envs.negotiation import MoveIndex, parallel_env
from sparring.errors import ConfigError, DataError, NotFoundError
from sparring.runs import checkpoint_of, read_safetensors

GAME = {"id": "sparring/negotiation-v0"}
QUIET = {"plot": False, "tensorboard": False}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    seats = {"player_0": SoftmaxNegotiator(2.0), "player_1": SoftmaxNegotiator(2.0)}
    return write_transitions(tmp_path_factory.mktemp("demos") / "demos.jsonl",
                             record_transitions(parallel_env, seats, range(40)))


@pytest.fixture(scope="module")
def irl_run(demos, tmp_path_factory):
    run = tmp_path_factory.mktemp("irl") / "run"
    train_irl({"trainer": "mamql", "env": GAME, "demonstrations": str(demos), "updates": 1, "steps_per_update": 100,
               "encoder": "sparring.envs.negotiation:position_features", "eval_every": 0, "run_dir": str(run),
               "irl": {"hidden": [], "lam": 0.5, "chi2_alpha": None, "lr": 0.03}, **QUIET})
    return run


def sft(demos, run, steps=3, **changes):
    return train({"trainer": "sft", "env": GAME, "demonstrations": str(demos), "run_dir": str(run),
                  "learner": {"algorithm": "sft", "lr": 1e-3, "batch_size": 4, "steps_per_update": steps}, **QUIET,
                  **changes})


def test_recorded_moves_become_prompted_demonstrations_without_the_invalid_ones():
    obs = "You are player_0 ..."
    rows = [Transition("g", 0, 0, "player_0", "x", obs, "a </think> <answer> [walk away] </answer>", 0.0, obs, True,
                       reward_terms={"invalid": 0.0}),
            Transition("g", 0, 1, "player_1", "x", obs, "gibberish", -1.0, obs, False, reward_terms={"invalid": -1.0})]
    found = demonstrations_of(rows, hidden_cot=True)
    assert [(d.agent, d.observation, d.output) for d in found] == [
        ("player_0", {"text": obs, "hidden_cot": True}, rows[0].action)]
    assert demonstrations_of(rows, hidden_cot=True, roles=["player_1"]) == []
    with pytest.raises(DataError, match="language game"):
        demonstrations_of([Transition("g", 0, 0, "a", "x", [0.0, 1.0], 2, 0.0, [0.0, 1.0], True)], hidden_cot=False)


def test_supervised_fine_tuning_learns_the_moves_and_holds_games_out(demos, tmp_path):
    metrics = sft(demos, tmp_path / "bc", updates=3, heldout_games=3)
    assert [row["update"] for row in metrics] == [1, 2, 3]
    assert metrics[-1]["nll/train"] < metrics[0]["nll/train"] / 2
    assert metrics[-1]["nll/heldout"] < metrics[0]["nll/heldout"]
    assert metrics[0]["heldout_moves"] > 0 and metrics[0]["train_moves"] > metrics[0]["heldout_moves"]


def test_supervised_fine_tuning_resumes_to_the_same_weights(demos, tmp_path):
    sft(demos, tmp_path / "straight", steps=1, updates=2, checkpoint_every=1)
    sft(demos, tmp_path / "resumed", steps=1, updates=1, checkpoint_every=1)
    train({"trainer": "sft", "env": GAME, "demonstrations": str(demos), "run_dir": str(tmp_path / "resumed"),
           "learner": {"algorithm": "sft", "lr": 1e-3, "batch_size": 4, "steps_per_update": 1}, "updates": 2,
           "checkpoint_every": 1, **QUIET}, resume=True)
    straight = read_safetensors(checkpoint_of(tmp_path / "straight") / "model")
    resumed = read_safetensors(checkpoint_of(tmp_path / "resumed") / "model")
    assert straight.keys() == resumed.keys() and all((straight[k] == resumed[k]).all() for k in straight)


@pytest.mark.parametrize("change, error, message", [
    ({"heldout_games": 40}, ConfigError, "leaves none"),
    ({"learn_roles": ["nobody"]}, ConfigError, "not seats"),
    ({"demonstrations": "no/such/file.jsonl"}, NotFoundError, "no such file"),
    ({"learner": {"algorithm": "grpo"}}, ConfigError, "train=selfplay"),
])
def test_supervised_fine_tuning_says_what_is_wrong(demos, tmp_path, change, error, message):
    with pytest.raises(error, match=message):
        sft(demos, tmp_path / "run", **change)


def test_the_recovered_reward_is_the_bellman_residual_and_its_return(irl_run):
    reward = RecoveredReward(irl_run)
    model = load_learned(irl_run)
    learner, moves = model.learner, MoveIndex()
    games = record_transitions(parallel_env, {a: SoftmaxNegotiator(2.0) for a in ("player_0", "player_1")},
                               range(500, 503))
    turns = [Turn(t.agent, t.obs, t.action) for t in games if t.episode == games[0].episode]
    turns.insert(1, Turn("player_1", turns[1].observation, "no move at all"))  # the game rejects it
    mine = [t for t in turns if t.agent == "player_1"]
    features = model.embed([t.observation for t in mine])
    legal = np.stack([moves.legal(t.observation) for t in mine])
    q = learner.marginal_q({a: features for a in learner.agents}, {a: legal for a in learner.agents})["player_1"]
    lam, gamma = learner.config.lam, model.cfg.irl.gamma
    values = [np.log(np.exp(lam * q[k][legal[k]]).sum()) / lam for k in range(len(mine))]
    expected = []
    for k, turn in enumerate(mine):
        index = moves.index(turn.observation, turn.action)
        taken = q[k][legal[k]].min() if index is None else q[k, index]
        expected.append(taken - gamma * (values[k + 1] if k + 1 < len(mine) else 0.0))
    assert np.allclose(reward.move_rewards("player_1", [(t.observation, t.action) for t in mine]), expected, atol=1e-5)
    returns = reward.returns(turns)
    at = [i for i, t in enumerate(turns) if t.agent == "player_1"]
    assert returns[at[-1]] == pytest.approx(expected[-1], abs=1e-5)
    assert returns[at[0]] == pytest.approx(sum(gamma ** k * r for k, r in enumerate(expected)), abs=1e-4)
    assert set(returns) == set(range(len(turns)))


def test_rl_on_the_recovered_reward_trains_on_it_and_logs_the_games_reward(demos, irl_run, tmp_path, monkeypatch):
    monkeypatch.setattr(RecoveredReward, "returns", lambda self, turns: {i: float(i) for i in range(len(turns))})
    run = tmp_path / "rl"
    metrics = train({"trainer": "selfplay", "env": GAME, "reward_model": str(irl_run), "demonstrations": str(demos),
                     "seats": {"player_1": {"policy": "negotiation.softmax", "temperature": 2.0}},
                     "updates": 1, "games_per_update": 2, "save_trajectories": True,
                     "learner": {"sft_batch": 2}, "run_dir": str(run), **QUIET})
    row = metrics[-1]
    assert "sft_nll" in row and "game_reward/player_0" in row
    samples = read_samples(run / "trajectories" / "update-000001.jsonl")
    assert samples and all(s.role == "player_0" for s in samples)
    assert all(s.reward == s.turn == s.reward_terms["recovered"] and "deal" in s.reward_terms for s in samples)
    assert row["reward/player_0"] == pytest.approx(np.mean([s.turn for s in samples]))
    recipe = json.loads((run / "config.json").read_text())
    assert recipe["reward_model"] == str(checkpoint_of(irl_run))  # the reward it trained on, even if that run goes on


@pytest.mark.parametrize("change, message", [
    ({"method": "bc"}, "recovers no reward"),
    ({"env": {"id": "sparring/negotiation-v0", "max_messages": 4}}, "learned its reward on"),
    ({"learner": {"algorithm": "grpo"}, "group_size": 2}, "reinforce_pp"),
])
def test_rl_on_a_recovered_reward_refuses_what_cannot_give_one(demos, tmp_path, change, message):
    irl = {"trainer": "mamql", "env": GAME, "demonstrations": str(demos), "updates": 1, "steps_per_update": 5,
           "encoder": "sparring.envs.negotiation:position_features", "eval_every": 0, "run_dir": str(tmp_path / "irl"),
           **QUIET}
    train_irl({**irl, **{k: v for k, v in change.items() if k == "method"}})
    rl = {k: v for k, v in change.items() if k in ("learner", "group_size")}
    with pytest.raises(ConfigError, match=message):
        train({"trainer": "selfplay", "env": change.get("env", GAME), "reward_model": str(tmp_path / "irl"),
               "updates": 1, "games_per_update": 2, "run_dir": str(tmp_path / "rl"), **QUIET, **rl})


def test_two_spellings_of_one_game_share_its_recovered_reward(demos, irl_run, tmp_path):
    env = {"id": "negotiation-v0", "items": ["books", "hats", "balls"], "max_messages": 8}
    train({"trainer": "selfplay", "env": env, "reward_model": str(irl_run), "agent": {"max_new_tokens": 8},
           "learner": {"sft_coef": 0}, "updates": 1, "games_per_update": 2, "run_dir": str(tmp_path / "rl"), **QUIET})
    with pytest.raises(ConfigError, match="sft_coef=0"):
        train({"trainer": "selfplay", "env": GAME, "demonstrations": str(demos), "learner": {"sft_coef": 0},
               "updates": 1, "run_dir": str(tmp_path / "other"), **QUIET})


def test_a_numeric_games_reward_cannot_score_text(tmp_path):
    gems = {"id": "sparring/gems-v0"}
    rows = record_transitions(lambda: make("sparring/gems-v0", parallel=True),
                              {a: load_policy("gems.greedy") for a in ("blue", "red")}, range(2))
    demos = write_transitions(tmp_path / "gems.jsonl", rows)
    train_irl({"trainer": "mamql", "env": gems, "demonstrations": str(demos), "updates": 1, "steps_per_update": 5,
               "eval_every": 0, "run_dir": str(tmp_path / "irl"), **QUIET})
    with pytest.raises(ConfigError, match="cannot score"):
        RecoveredReward(tmp_path / "irl")


def test_moves_longer_than_the_policy_may_write_are_refused(demos, tmp_path):
    with pytest.raises(ConfigError, match="agent.max_new_tokens=32"):
        sft(demos, tmp_path / "run", agent={"max_new_tokens": 32})
    with pytest.raises(ConfigError, match="agent.max_new_tokens=32"):
        train({"trainer": "selfplay", "env": GAME, "demonstrations": str(demos), "agent": {"max_new_tokens": 32},
               "updates": 1, "games_per_update": 2, "run_dir": str(tmp_path / "rl"), **QUIET})


def test_demonstrations_of_no_role_the_run_learns_are_refused(demos, tmp_path):
    from sparring.agents.trajectories import read_transitions

    others = write_transitions(tmp_path / "player_0.jsonl", [t for t in read_transitions(demos)
                                                             if t.agent == "player_0"])
    with pytest.raises(DataError, match=r"holds moves of \['player_0'\], none of the roles this run learns"):
        train({"trainer": "selfplay", "env": GAME, "demonstrations": str(others), "learn_roles": ["player_1"],
               "seats": {"player_0": "negotiation.fair"}, "updates": 1, "games_per_update": 2,
               "run_dir": str(tmp_path / "rl"), **QUIET})
