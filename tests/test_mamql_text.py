"""Inverse RL on a turn-based language game: negotiation-v0's moves as an index, its text
through an embedder, and the learners on its demonstrations."""

import asyncio

import numpy as np
import pytest

from sparring.agents import load_policy
from sparring.agents.learners.mamql import Demonstrations, IRLConfig, build_learner
from sparring.agents.learners.mamql_run import TextIRLPolicy, llm_features, train_irl
from sparring.agents.scripted.negotiation import SoftmaxNegotiator
from sparring.agents.trajectories import Transition, record_transitions, write_transitions
from sparring.envs.negotiation import MoveIndex, parallel_env, position_features, read_position
from sparring.errors import ConfigError, DataError

MOVES = MoveIndex()


@pytest.fixture(scope="module")
def expert_games():
    seats = {"player_0": SoftmaxNegotiator(2.0), "player_1": SoftmaxNegotiator(2.0)}
    return record_transitions(parallel_env, seats, range(150))


def test_the_move_index_covers_every_pool_with_legal_masks():
    assert len(MOVES) == 4 ** 3 + 2 and MOVES.texts()[-2:] == ["[accept]", "[walk away]"]
    env = parallel_env()
    obs, _ = env.reset(seed=1, options={"counts": [1, 2, 3], "values": {"player_0": [1, 0, 3], "player_1": [4, 3, 0]}})
    start = obs["player_0"]["text"]
    legal = MOVES.legal(start)
    assert legal.sum() == 2 * 3 * 4 + 1 and not legal[MOVES.accept] and legal[MOVES.walk]
    move = "ok </think> <answer> [propose books=1 hats=0 balls=2] Fair? </answer>"
    assert MOVES.texts()[MOVES.index(start, move)] == "[propose books=1 hats=0 balls=2]"
    assert MOVES.index(start, "ok </think> <answer> [accept] </answer>") is None  # nothing to accept
    assert MOVES.index(start, "[propose books=1 hats=0 balls=2]") is None  # hidden CoT missing
    assert MOVES.index(start, "ok </think> <answer> [propose books=2 hats=0 balls=0] </answer>") is None
    obs, *_ = env.step({"player_0": move})
    answer = obs["player_1"]["text"]
    assert MOVES.legal(answer)[MOVES.accept]
    assert MOVES.index(answer, "fine </think> <answer> [accept] </answer>") == MOVES.accept


def test_turn_rows_have_one_mover_masks_and_skip_invalid_outputs(expert_games):
    broken = Transition("broken", 0, 0, "player_0", "x", expert_games[0].obs, "no move here", -1.0,
                        expert_games[0].obs, False)
    demos = Demonstrations.from_turns([*expert_games, broken], position_features, MOVES)
    assert demos.turn_based and demos.skipped == 1 and len(demos) == len(expert_games)
    acts = np.stack([demos.acts[a] for a in demos.agents])
    assert (acts.sum(0) == 1).all()
    for a in demos.agents:
        mine = demos.acts[a]
        assert demos.legal[a][mine, demos.actions[a][mine]].all()
        assert not demos.obs[a][~mine].any()
    first_game = demos.episodes(1)
    assert first_game.num_episodes == 1 and first_game.acts is not None and len(first_game) < len(demos)
    with pytest.raises(DataError, match="text observations"):
        Demonstrations.from_turns([Transition("g", 0, 0, "a", "x", [0.0], 1, 0.0, [0.0], True)], position_features,
                                  MOVES)


def test_learners_recover_what_accepting_is_worth_and_imitate(expert_games):
    demos = Demonstrations.from_turns(expert_games, position_features, MOVES)
    held = record_transitions(parallel_env, {"player_0": SoftmaxNegotiator(2.0), "player_1": SoftmaxNegotiator(2.0)},
                              range(5000, 5060))
    texts = [t.obs for t in held if read_position(t.obs).offered is not None]
    worth = [float(np.dot(read_position(t).values, read_position(t).offered)) for t in texts]
    features = position_features(texts)
    legal = np.stack([MOVES.legal(t) for t in texts])
    config = IRLConfig(hidden=(), lam=1.0, chi2_alpha=None, lr=0.01, steps=1500)
    found = {}
    for method in ("mamql", "iq_learn", "bc"):
        learner = build_learner(method, config, demos, {a: len(MOVES) for a in demos.agents}).fit(demos)
        obs, masks = {a: features for a in demos.agents}, {a: legal for a in demos.agents}
        if method == "bc":
            p = learner.policies(obs, masks)["player_1"]
            gain = np.log(p[:, MOVES.accept]) - np.log(p[:, MOVES.walk])
        else:
            q = learner.marginal_q(obs, masks)["player_1"]
            gain = q[:, MOVES.accept] - q[:, MOVES.walk]  # both end the game: r̄ = Q̄ for each
        found[method] = gain
        assert np.corrcoef(gain, worth)[0, 1] > 0.5, method
        policy = learner.policies(obs, masks)["player_1"]
        assert np.allclose(policy[~legal], 0.0) and np.allclose(policy.sum(1), 1.0)
    # Nobody else moves where an agent moves: MAMQL's marginalisation is over nothing.
    np.testing.assert_allclose(found["mamql"], found["iq_learn"], atol=1e-5)


def test_a_learned_text_policy_plays_valid_moves(expert_games):
    demos = Demonstrations.from_turns(expert_games, position_features, MOVES)
    learner = build_learner("bc", IRLConfig(hidden=(), steps=300, lr=0.01), demos,
                            {a: len(MOVES) for a in demos.agents}).fit(demos)
    seats = {"player_0": TextIRLPolicy(learner, position_features, MOVES, seed=0), "player_1": SoftmaxNegotiator(2.0)}
    games = record_transitions(parallel_env, seats, range(900, 920))
    mine = [t for t in games if t.agent == "player_0"]
    assert mine and all(t.reward_terms.get("invalid", 0.0) == 0.0 for t in mine)
    assert asyncio.run(seats["player_0"].act("player_0", parallel_env().reset(seed=3)[0]["player_0"])).text
    with pytest.raises(ConfigError, match="seat"):
        seats["player_0"].probabilities("nobody", games[0].obs)


def test_turn_based_demonstrations_are_learned_offline_only(expert_games):
    demos = Demonstrations.from_turns(expert_games[:40], position_features, MOVES)
    learner = build_learner("mamql", IRLConfig(online=True, steps=10), demos, {a: len(MOVES) for a in demos.agents})
    with pytest.raises(ConfigError, match="offline"):
        learner.prepare(demos, rollout=lambda _: {})


def test_an_irl_run_on_negotiation_learns_and_its_policy_plays(expert_games, tmp_path):
    demos = write_transitions(tmp_path / "demos.jsonl", expert_games[:120])
    recipe = {"trainer": "mamql", "env": {"id": "sparring/negotiation-v0"}, "demonstrations": str(demos),
              "encoder": "sparring.envs.negotiation:position_features", "updates": 2, "steps_per_update": 50,
              "eval_every": 1, "eval_games": 3, "checkpoint_every": 1, "run_dir": str(tmp_path / "run"),
              "plot": False, "irl": {"hidden": [], "lam": 0.5, "chi2_alpha": None, "lr": 0.03}}
    metrics = train_irl(recipe)
    assert [row["update"] for row in metrics] == [1, 2]
    assert all(f"return/{a}" in row for row in metrics for a in ("player_0", "player_1"))
    policy = load_policy("irl", checkpoint=str(tmp_path / "run"), seed=0)
    games = record_transitions(parallel_env, {"player_0": policy, "player_1": load_policy("negotiation.fair")},
                               range(30, 40))
    assert all(t.reward_terms.get("invalid", 0.0) == 0.0 for t in games if t.agent == "player_0")


@pytest.mark.parametrize("change, message", [
    ({"env": {"id": "sparring/redteam-v0"}}, "move index"),
    ({"irl": {"online": True}}, "offline"),
    ({"encoder": "no_such_module:embed"}, "encoder="),
])
def test_an_irl_run_on_a_language_game_says_what_is_wrong(expert_games, tmp_path, change, message):
    demos = write_transitions(tmp_path / "demos.jsonl", expert_games[:20])
    recipe = {"trainer": "mamql", "env": {"id": "sparring/negotiation-v0"}, "demonstrations": str(demos),
              "run_dir": str(tmp_path / "run"), **change}
    with pytest.raises(ConfigError, match=message):
        train_irl(recipe)


def test_the_critics_can_read_the_llms_own_features(expert_games, tmp_path):
    demos = write_transitions(tmp_path / "demos.jsonl", expert_games[:60])
    metrics = train_irl({"trainer": "mamql", "env": {"id": "sparring/negotiation-v0"}, "demonstrations": str(demos),
                         "encoder": "llm", "updates": 1, "steps_per_update": 30, "eval_every": 1, "eval_games": 2,
                         "run_dir": str(tmp_path / "run"), "plot": False,
                         "irl": {"hidden": [], "lam": 0.5, "chi2_alpha": None, "lr": 0.03}})
    assert np.isfinite(metrics[-1]["loss/loss"]) and "return/player_0" in metrics[-1]
    features = llm_features()(["You are player_0.", "You are player_1."])
    assert features.shape == (2, 256) and np.allclose(np.linalg.norm(features[:, :128], axis=1), 1.0, atol=1e-5)


def test_demonstrations_of_another_game_are_refused_by_name(expert_games, tmp_path):
    demos = write_transitions(tmp_path / "demos.jsonl", expert_games[:20])  # negotiation's player_0 / player_1
    recipe = {"trainer": "mamql", "env": {"id": "sparring/gems-v0", "size": 5, "blue_gems": 2, "red_gems": 2,
                                          "purple_gems": 2, "layout_seed": 0},
              "demonstrations": str(demos), "run_dir": str(tmp_path / "run")}
    with pytest.raises(DataError, match=r"agents \['player_0', 'player_1'\], which sparring/gems-v0 does not have"):
        train_irl(recipe)
