"""gems-v0: its rules against its exact tables, the soft expert, and recorded demonstrations."""

import asyncio

import numpy as np
import pytest

from sparring.agents import load_policy, play
from sparring.agents.softq import policy_return
from sparring.agents.trajectories import read_transitions, record_transitions, write_transitions
from sparring.envs import make
from sparring.envs.gems import GemsConfig, GemsGame, parse_move
from sparring.errors import ConfigError

SMALL = {"size": 5, "blue_gems": 2, "red_gems": 2, "purple_gems": 2, "layout_seed": 0}


def test_steps_match_the_exact_tables():
    tables = GemsGame(GemsConfig(**SMALL)).tables()
    env = make("gems-v0", parallel=True, **SMALL)
    rng = np.random.default_rng(0)
    for episode in range(30):
        env.reset(seed=episode)
        while env.agents:
            s = env.game.state_index()
            a, b = (int(x) for x in rng.integers(5, size=2))
            obs, rewards, terminations, _, infos = env.step({"blue": a, "red": b})
            assert tables["next"][s, a, b] == env.game.state_index()
            assert tables["reward"][0, s, a, b] == rewards["blue"] == sum(infos["blue"]["reward_terms"].values())
            assert tables["reward"][1, s, a, b] == rewards["red"]
            assert tables["done"][s, a, b] == terminations["blue"]
            assert env.game.state_of("red", obs["red"]) == env.game.state_index()


def test_purple_pays_both_only_together():
    game = GemsGame(GemsConfig(size=3, blue_gems=0, red_gems=0, purple_gems=2, layout_seed=1))
    game.reset(np.random.default_rng(0))
    game.gem_cells = [0, 2]
    game.positions = [1, 5]  # blue beside both purple gems, red below the right one
    rewards, terms, _ = game.step((3, 0))  # blue onto purple, red stays
    assert rewards == [0.0, 0.0] and game.mask == 0b11
    rewards, terms, cleared = game.step((0, 1))  # red onto the other purple gem
    assert rewards == [3.0, 3.0] and terms[0]["purple"] == 3.0 and cleared


def test_bad_moves_are_penalised_not_raised():
    assert parse_move("UP") == (1, None) and parse_move(" 3 ") == (3, None)
    assert parse_move(7)[1] and parse_move("9")[1] and parse_move("²")[1] and parse_move("jump")[1]
    assert parse_move(None)[1]
    env = make("gems-v0", parallel=True)
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step({"blue": "jump", "red": 0})
    assert infos["blue"]["invalid"] and rewards["blue"] == -1.0 and infos["red"]["invalid"] is None


def test_tables_need_a_small_fixed_layout():
    with pytest.raises(ConfigError, match="layout_seed"):
        GemsGame(GemsConfig()).tables()
    with pytest.raises(ConfigError, match="states"):
        GemsGame(GemsConfig(layout_seed=0)).tables()
    with pytest.raises(ConfigError, match="do not fit"):
        GemsConfig(size=2, blue_gems=2)


def test_soft_expert_coordinates_on_purple():
    expert = load_policy("gems.expert")
    game, tables, solution = expert.solution()
    uniform = np.full((tables.num_states, 5), 0.2)
    best = policy_return(tables, solution.policies, 40)
    assert (best > policy_return(tables, (uniform, uniform), 40) + 3).all()
    assert (best > 6.5).all()  # 2 own gems + at least one purple bonus (3) most of the time
    episodes = [asyncio.run(play(make("gems-v0", **SMALL), {"blue": expert, "red": load_policy("gems.expert")}, seed))
                for seed in range(10)]
    assert np.mean([e.rewards["blue"] for e in episodes]) > 6.0
    assert any(e.reward_terms["blue"]["purple"] > 0 for e in episodes)


def test_expert_refuses_another_layout():
    expert = load_policy("gems.expert")
    env = make("gems-v0", parallel=True, **{**SMALL, "layout_seed": 5})
    obs, _ = env.reset(seed=0)
    with pytest.raises(ConfigError, match="layout"):
        asyncio.run(expert.act("blue", obs["blue"]))


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_recorded_demonstrations_round_trip(tmp_path, suffix):
    seats = {"blue": load_policy("gems.greedy"), "red": load_policy("gems.expert")}
    rows = record_transitions(lambda: make("gems-v0", parallel=True, **SMALL), seats, range(3))
    assert {r.agent for r in rows} == {"blue", "red"}
    for row in rows:
        assert isinstance(row.action, int) and len(row.obs) == len(row.next_obs) == 125
    ends = [r for r in rows if r.done or r.truncated]
    assert len(ends) == 6  # both agents' last step of each game
    path = write_transitions(tmp_path / f"demos{suffix}", rows)
    assert read_transitions(path) == rows


def test_record_command_writes_demonstrations(tmp_path):
    from typer.testing import CliRunner

    from sparring.cli import app

    out = tmp_path / "gems.parquet"
    args = ["record", "gems-v0", "--out", str(out), "--episodes", "2", "--seat", "blue=gems.expert"]
    args += [f"--set={k}={v}" for k, v in SMALL.items()]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = read_transitions(out)
    assert {r.policy for r in rows} == {"gems.expert", "gems.greedy"} and len({r.episode for r in rows}) == 2
    bad = CliRunner().invoke(app, ["record", "gems-v0", "--out", str(tmp_path / "x.csv"), "--episodes", "1"])
    assert bad.exit_code == 2 and ".jsonl or .parquet" in bad.output


def test_gems_plays_in_an_arena_tournament(tmp_path):
    from sparring.arenas.report import analyse
    from sparring.arenas.runner import Tournament
    from sparring.arenas.tournament import TournamentConfig

    roster = {"expert": {"policy": "gems.expert"}, "greedy": {"policy": "gems.greedy"},
              "greedy_b": {"policy": "gems.greedy", "seed": 1}}
    tournament = Tournament.create(TournamentConfig(name="gems", game={"id": "sparring/gems-v0", **SMALL},
                                                    roster=roster, games_per_pairing=2, out_dir=str(tmp_path),
                                                    bootstrap=20))
    matches = tournament.run()
    assert matches and all(m.status == "done" for m in matches)
    assert {row["agent"] for row in analyse(tournament.cfg, matches).leaderboard()} == set(roster)
