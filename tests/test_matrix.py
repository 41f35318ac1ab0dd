import asyncio

import numpy as np
import pytest

from sparring.agents import load_policy, play
from sparring.envs import make
from sparring.envs.matrix import BUILTIN, MatrixConfig, from_open_spiel
from sparring.errors import ConfigError


def run(kwargs, p0, p1, seed=0):
    env = make("sparring/matrix-v0", **kwargs)
    return asyncio.run(play(env, {"player_0": p0, "player_1": p1}, seed))


def test_iterated_prisoners_dilemma_known_payoffs():
    tft, defect = load_policy("matrix.tit_for_tat"), load_policy("matrix.constant", move="defect")
    ep = run({"rounds": 10}, tft, defect)
    assert ep.rewards == {"player_0": 9.0, "player_1": 14.0}  # suckered once, then mutual defection
    ep = run({"rounds": 10}, load_policy("matrix.tit_for_tat"), load_policy("matrix.tit_for_tat"))
    assert ep.rewards == {"player_0": 30.0, "player_1": 30.0}


def test_history_in_observations_and_none_of_the_pending_move():
    env = make("sparring/matrix-v0", raw=True, rounds=3)
    env.reset(seed=0)
    before = env.observe("player_1")
    env.step("[defect]")
    assert env.observe("player_1") == before  # player_0's pending move is not revealed
    env.step("[cooperate]")
    text = env.observe("player_1")["text"]
    assert "round 1: player_0 [defect], you [cooperate] -> you +0" in text
    assert "Round 2 of 3" in text


def test_invalid_move_is_penalised_and_scored_as_the_default():
    env = make("sparring/matrix-v0", parallel=True, game="rock_paper_scissors", default_action="rock",
               invalid_penalty=-2.0)
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step({"player_0": "I refuse to choose", "player_1": "[scissors]"})
    assert infos["player_0"]["invalid"].startswith("no bracketed legal move")
    assert infos["player_0"]["reward_terms"] == {"payoff": 1.0, "invalid": -2.0}
    assert rewards == {"player_0": -1.0, "player_1": -1.0}
    assert infos["player_0"]["joint_action"] == ("rock", "scissors")


def test_invalid_move_can_end_the_game():
    env = make("sparring/matrix-v0", parallel=True, rounds=5, invalid_ends_game=True)
    env.reset(seed=0)
    _, rewards, terms, _, _ = env.step({"player_0": "[cooperate] [defect]", "player_1": "[defect]"})
    assert all(terms.values()) and env.agents == []
    assert rewards == {"player_0": -1.0, "player_1": 0.0}


def test_missing_action_for_an_acting_agent_is_an_invalid_move():
    env = make("sparring/matrix-v0", parallel=True)
    env.reset(seed=0)
    _, _, _, _, infos = env.step({"player_0": "[defect]"})
    assert infos["player_1"]["invalid"] == "no output (None)"


def test_open_spiel_games_match_their_payoffs():
    rps = from_open_spiel("matrix_rps")
    assert [n.lower() for n in rps.action_names[0]] == ["rock", "paper", "scissors"]
    np.testing.assert_array_equal(rps.payoffs[..., 0], BUILTIN["rock_paper_scissors"].payoffs[..., 0])
    env = make("sparring/matrix-v0", parallel=True, game="open_spiel:matrix_pd")
    observations, _ = env.reset(seed=0)
    assert "Your moves: [Cooperate], [Defect]." in observations["player_0"]["text"]
    _, rewards, _, _, _ = env.step({"player_0": "[cooperate]", "player_1": "[DEFECT]"})
    pd = from_open_spiel("matrix_pd").payoffs
    assert rewards == {"player_0": pd[0, 1, 0], "player_1": pd[0, 1, 1]}
    with pytest.raises(ValueError, match="Did you mean 'matrix_rps'.*Known ones: matrix_bos") as caught:
        from_open_spiel("matrix_rsp")
    assert len(str(caught.value)) < 400  # not open_spiel's list of every game it has


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"rounds": 0}, "rounds=0"), ({"game": "chess"}, "game='chess' is unknown"),
     ({"payoffs": [[1, 2]]}, "action_names"),
     ({"payoffs": [[[1, 1]]], "action_names": [["a"], ["b", "c"]]}, "do not match"),
     ({"default_action": "lizard"}, "not a move of player_0"),
     ({"game": "rock_paper_scissors", "payoffs": [[[1, 1]]], "action_names": [["a"], ["b"]]}, "names a table of its own"),
     ({"action_names": [["C", "D"]] * 2}, "a table given in payoffs="),
     ({"payoffs": [[[1, 1]]], "action_names": [[" a"], ["b"]]}, "no leading or trailing space"),
     ({"payoffs": [[[1, 1]]], "action_names": [["a" * 65], ["b"]]}, "at most 64 characters")],
)
def test_config_errors_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make("sparring/matrix-v0", **kwargs)


def test_a_table_without_a_title_is_not_called_a_built_in_and_actions_go_to_agents_only():
    env = make("sparring/matrix-v0", parallel=True, payoffs=[[[1, 1]]], action_names=[["a"], ["b"]])
    observations, _ = env.reset(seed=0)
    assert observations["player_0"]["text"].startswith("A custom game.")
    with pytest.raises(ValueError, match=r"actions for \['player0'\], which are not agents"):
        env.step({"player0": "[a]", "player_1": "[b]"})
    env.step({"player_0": "[a]", "player_1": "[b]"})
    with pytest.raises(RuntimeError, match="after the game ended"):
        env.step({"player_0": "[a]", "player_1": "[b]"})
    with pytest.raises(ValueError, match="pass one"):
        make("sparring/matrix-v0", parallel=True, raw=True)


def test_config_is_a_typed_dataclass():
    assert MatrixConfig().rounds == 1


def test_a_zero_sum_table_has_no_negative_zero():  # "rock vs rock: -0, 0" read oddly, and a tie paid -0.0
    import numpy as np

    from sparring.envs.matrix.payoffs import resolve_game

    for name in ("rock_paper_scissors", "matching_pennies"):
        assert not np.signbit(resolve_game(name).payoffs[resolve_game(name).payoffs == 0]).any()


def test_an_open_spiel_game_object_plays_as_its_table():
    import pickle

    import pyspiel

    game = pyspiel.create_matrix_game("pd2", "My dilemma", ["C", "D"], ["C", "D"], [[3, 0], [5, 1]],
                                      [[3, 5], [0, 1]])
    env = make("sparring/matrix-v0", game=game, parallel=True)
    observations, _ = env.reset(seed=0)
    assert "My dilemma" in observations["player_0"]["text"] and "[D]" in observations["player_0"]["text"]
    _, rewards, *_ = env.step({"player_0": "[D]", "player_1": "[C]"})
    assert rewards == {"player_0": 5.0, "player_1": 0.0}
    pickle.loads(pickle.dumps(env))  # it holds the table, not the open_spiel object
    with pytest.raises(ConfigError, match="brings its own payoffs"):
        make("sparring/matrix-v0", game=game, payoffs=[[[1, 1]]], action_names=[["a"], ["a"]])
